"""A damaged ML Metadata store: named with the way out; the last-good copy and its restore."""

import os
import pathlib
import sqlite3
import subprocess
import sys

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import disk, exit_codes, metadata_backup
from tests import runs
from tests.conftest import REPO
from tools import cli


def _store(path: pathlib.Path, uris=()) -> mlmd.MetadataStore:
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(path)
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
  store = mlmd.MetadataStore(config)
  if uris:
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Examples"))
    store.put_artifacts([metadata_store_pb2.Artifact(type_id=type_id, uri=str(u))
                         for u in uris])
  return store


def _uris(path: pathlib.Path):
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(path)
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return sorted(a.uri for a in mlmd.MetadataStore(config).get_artifacts())


def _truncate(path: pathlib.Path, size: int = 4096) -> None:
  """What a full disk or a crash mid-copy leaves: the first `size` bytes."""
  data = path.read_bytes()
  assert len(data) > size
  path.write_bytes(data[:size])


@pytest.fixture
def output(tmp_path):
  """An output directory whose store records two artifacts that exist under tfx/."""
  artifacts = [tmp_path / "tfx" / "ExampleGen" / "examples" / str(i) for i in (1, 2)]
  for a in artifacts:
    a.mkdir(parents=True)
  _store(tmp_path / "metadata.sqlite", artifacts)
  return tmp_path


def test_a_store_cut_to_4_kib_is_named_with_both_ways_out(output):
  path = output / "metadata.sqlite"
  metadata_backup.check_store(str(path))                      # healthy: no error
  metadata_backup.save_last_good(str(path))
  _truncate(path)
  with pytest.raises(metadata_backup.MetadataStoreError) as e:
    metadata_backup.check_store(str(path))
  message = str(e.value)
  assert message.startswith(f"{path}: the ML Metadata store is unreadable (database disk "
                            "image is malformed)")
  assert f"uet restore-metadata --output-dir {output}" in message
  assert f"mv {path} {path}.bad" in message and "retrains from scratch" in message
  assert f"{output}/serving are kept either way" in message


def test_random_bytes_and_a_foreign_database_are_unusable_too(tmp_path):
  junk = tmp_path / "metadata.sqlite"
  junk.write_bytes(os.urandom(8192))
  with pytest.raises(metadata_backup.MetadataStoreError, match="file is not a database"):
    metadata_backup.check_store(str(junk))
  junk.unlink()
  connection = sqlite3.connect(junk)
  connection.execute("CREATE TABLE t (x)")
  connection.commit()
  connection.close()
  with pytest.raises(metadata_backup.MetadataStoreError, match="not an ML Metadata store"):
    metadata_backup.check_store(str(junk))
  # Without a last-good copy, the message offers only moving the file aside.
  assert "restore-metadata" not in metadata_backup.describe(str(junk), "x")
  metadata_backup.check_store(str(tmp_path / "absent.sqlite"))  # no store yet: fine


def test_reading_results_from_a_damaged_store_raises_the_same_message(output):
  from pipeline import store  # pylint: disable=g-import-not-at-top
  path = output / "metadata.sqlite"
  _truncate(path)
  with pytest.raises(metadata_backup.MetadataStoreError) as e:
    store.open_readonly(str(path)).get_contexts_by_type("pipeline_run")
  assert str(e.value).startswith(f"{path}: the ML Metadata store is unreadable (database "
                                 "disk image is malformed). ")
  assert f"no last-good copy exists yet: move it aside (mv {path} {path}.bad)" in str(e.value)


def test_restore_puts_back_the_last_good_copy_and_keeps_the_damaged_one(output, capsys):
  path = output / "metadata.sqlite"
  before = _uris(path)
  metadata_backup.save_last_good(str(path))
  assert _uris(output / metadata_backup.LAST_GOOD_FILE) == before
  damaged = path.read_bytes()[:4096]
  path.write_bytes(damaged)
  assert cli.main(["restore-metadata", "--output-dir", str(output)]) == 0
  out = capsys.readouterr().out
  assert f"restored {path} from {output}/{metadata_backup.LAST_GOOD_FILE}" in out
  metadata_backup.check_store(str(path))
  assert _uris(path) == before
  [kept] = [p for p in output.iterdir() if p.name.startswith("metadata.sqlite.damaged-")]
  assert kept.read_bytes() == damaged and f"kept as {kept}" in out


def test_restore_refuses_without_a_copy_while_locked_or_when_artifacts_are_gone(output,
                                                                                 capsys):
  args = ["restore-metadata", "--output-dir", str(output)]
  assert cli.main(args) == exit_codes.EXIT_USAGE
  assert "no last-good copy" in capsys.readouterr().err
  metadata_backup.save_last_good(str(output / "metadata.sqlite"))
  # Another process holds the output directory (a run under way): refuse, touch nothing.
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys; from pipeline import lock\n"
       f"with lock.output_lock({str(output)!r}):\n print('held', flush=True); sys.stdin.read()"],
      cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    assert cli.main(args) == exit_codes.EXIT_LOCKED
    assert f"is in use by uet run (pid {holder.pid})" in capsys.readouterr().err
  finally:
    holder.communicate("")
  assert not [p for p in output.iterdir() if ".damaged-" in p.name]
  # A run on a new store moved the artifacts aside: the old copy no longer matches.
  moved = metadata_backup.start_fresh_if_missing(str(output / "absent.sqlite"),
                                                 str(output / "tfx"))
  assert moved and not (output / "tfx").exists()
  assert cli.main(args) == exit_codes.EXIT_USAGE
  err = capsys.readouterr().err
  assert "refers to 2 artifact(s) that no longer exist" in err
  assert (output / "metadata.sqlite").exists()   # nothing replaced


def test_a_missing_store_moves_the_lost_artifacts_aside_once(output):
  tfx_root = output / "tfx"
  # A store exists: nothing moves.
  assert metadata_backup.start_fresh_if_missing(str(output / "metadata.sqlite"),
                                                str(tfx_root)) is None
  (output / "metadata.sqlite").rename(output / "elsewhere.sqlite")
  moved = metadata_backup.start_fresh_if_missing(str(output / "metadata.sqlite"),
                                                 str(tfx_root))
  assert moved.startswith(f"{tfx_root}.orphaned-")
  assert sorted(os.listdir(pathlib.Path(moved) / "ExampleGen" / "examples")) == ["1", "2"]
  assert not tfx_root.exists()
  assert metadata_backup.start_fresh_if_missing(str(output / "metadata.sqlite"),
                                                str(tfx_root)) is None


def test_a_full_disk_keeps_the_earlier_copy_and_raises_the_error_callers_catch(tmp_path):
  # SQLite reports a full disk as sqlite3.OperationalError, not OSError: a successful run
  # that filled the disk must warn, not end in a traceback (local_runner catches this type).
  out = tmp_path / "out"
  with runs.small_tmpfs(out):
    path = out / "metadata.sqlite"
    store = _store(path, [out / "tfx" / "a"])
    metadata_backup.save_last_good(str(path))
    earlier = (out / metadata_backup.LAST_GOOD_FILE).read_bytes()
    type_id = store.get_artifact_type("Examples").id
    store.put_artifacts([metadata_store_pb2.Artifact(type_id=type_id, uri=f"/b/{i}" * 40)
                         for i in range(2000)])
    runs.fill(out, leave=8192)
    with pytest.raises(metadata_backup.MetadataStoreError) as e:
      metadata_backup.save_last_good(str(path))
    assert f"could not copy {path} to {out / metadata_backup.LAST_GOOD_FILE}" in str(e.value)
    assert disk.is_full(e.value)
    assert (out / metadata_backup.LAST_GOOD_FILE).read_bytes() == earlier
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
