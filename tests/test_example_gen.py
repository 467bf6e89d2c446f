"""The DatasetExampleGen on MovieLens (the preset): parsing, the join with u.user, errors that
name file, line and column, quarantine, the executor's deterministic 80/20 splits, and the
golden fingerprint of the full MovieLens-100K examples."""

import hashlib
import os
from typing import Dict, List, Optional

import pytest
import tensorflow as tf
from tfx.components.example_gen import utils as example_gen_utils
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.example_gen import component, executor, reader, source
from components.example_gen.reader import DataError
from dataspec import spec as spec_lib
from tests.conftest import require_ml100k, write_movielens_slice

MOVIELENS = spec_lib.load("movielens")
USERS = "1|24|M|technician|85711\n2|53|F|other|94043\n"
# sha256 over (8-byte little-endian length, bytes) of every serialized example of the full
# ml-100k u.data, in file order, as components/movielens_example_gen wrote them at 06c7c5f
# (the reader this component replaced): the split hashes these bytes.
ML100K_EXAMPLES = 100_000
ML100K_FINGERPRINT = "7e352b38a9c813414009fa6fdb188bc4e416d365ed85b74c3a7086deda71b752"
# That reader's executor's train/eval split of the full ml-100k.
ML100K_SPLIT = {"train": 80_122, "eval": 19_878}


def _write(directory, ratings, users=USERS):
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "u.data").write_bytes(ratings if isinstance(ratings, bytes) else ratings.encode())
  if users is not None:
    (directory / "u.user").write_bytes(users if isinstance(users, bytes) else users.encode())
  return directory


def _read(d, **kwargs) -> List[bytes]:
  return executor.read_examples(MOVIELENS, str(d), **kwargs)


def _example(user_id, movie_id, rating, timestamp, age, gender, occupation, zip_code) -> bytes:
  """The raw example of one rating, built with protobuf (the reference serialization)."""
  def b(v: str):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8")]))

  def i(v: int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
  return tf.train.Example(features=tf.train.Features(feature={
      "user_id": b(user_id), "movie_id": b(movie_id), "rating": i(rating),
      "timestamp": i(timestamp), "user_age": i(age), "user_gender": b(gender),
      "user_occupation": b(occupation), "user_zip_code": b(zip_code),
  })).SerializeToString(deterministic=True)


def fingerprint(examples) -> str:
  h = hashlib.sha256()
  for e in examples:
    h.update(len(e).to_bytes(8, "little"))
    h.update(e)
  return h.hexdigest()


def test_full_movielens_reproduces_the_golden_fingerprint():
  examples = _read(require_ml100k())
  assert len(examples) == ML100K_EXAMPLES
  assert fingerprint(examples) == ML100K_FINGERPRINT


def test_rating_joined_with_user_demographics(tmp_path):
  d = _write(tmp_path, "1\t242\t3\t881250949\n2\t302\t5\t891717742\n")
  assert _read(d) == [_example("1", "242", 3, 881250949, 24, "M", "technician", "85711"),
                      _example("2", "302", 5, 891717742, 53, "F", "other", "94043")]


@pytest.mark.parametrize("ratings, message", [
    ("1\t242\t3\n", "u.data:1: expected 4 tab-separated fields (user_id, movie_id, rating, "
                    "timestamp), found 3; csv.columns names 4 columns: fix the row or remove it"),
    ("1\t242\t3\t881250949\n1\t242\tfive\t881250949\n",
     "u.data:2: rating 'five' is not an integer (the label, type int: rule rating >= 3); "
     "write a whole number, or remove the row"),
    ("1\t242\t3\t881250949\n1\t242\t3\t88125O949\n",
     "u.data:2: timestamp '88125O949' is not an integer (unix seconds"),
    ("3\t242\t3\t881250949\n", "u.data:1: user_id '3' is not in u.user (the side table joined "
                               "on user_id); add a row for it there, or remove this row"),
    ("1\t\t3\t881250949\n", "u.data:1: movie_id is missing (an empty field); feature movie_id "
                            "declares missing: error"),
    ("1\t242\t\t881250949\n", "u.data:1: rating is missing (an empty field); every row needs "
                              "a label (label.missing: quarantine)"),
    ("1\t242\tNA\t881250949\n", "u.data:1: rating 'NA' is not an integer"),
    (b"1\t24\xff2\t3\t881250949\n", "u.data:1: not valid UTF-8 (byte 5 of the line is b'\\xff'); "
                                     "re-encode the file as UTF-8"),
    ("", "u.data: no rows; the file is empty"),
    ("\n\n", "u.data: no rows; the file is empty"),
])
def test_bad_rows_name_file_line_column_and_the_fix(tmp_path, ratings, message):
  d = _write(tmp_path, ratings)
  with pytest.raises(DataError) as e:
    _read(d)
  assert str(e.value).startswith(str(d / "u.data")) and message in str(e.value)


def test_side_table_problems_are_named(tmp_path):
  d = _write(tmp_path, "1\t242\t3\t881250949\n", users=None)
  with pytest.raises(DataError, match=r"u.user: file not found"):
    _read(d)
  _write(tmp_path, "1\t242\t3\t881250949\n",
         users=b"1|24|M|technician|85711\n2|53|F|oth\xffer|94043\n")
  with pytest.raises(DataError, match=r"u.user:2: not valid UTF-8 .*re-encode the file as "
                                      r"UTF-8"):
    _read(d)
  _write(tmp_path, "1\t242\t3\t881250949\n", users="1|24|M|technician|85711\n1|5|F|x|1\n")
  with pytest.raises(DataError, match=r"u.user:2: key user_id '1' appears twice, also at "
                                      r".*u.user:1; keep one of the two rows"):
    _read(d)
  _write(tmp_path, "1\t242\t3\t881250949\n", users="1|twenty|M|technician|85711\n")
  with pytest.raises(DataError, match=r"u.user:1: user_age 'twenty' is not an integer"):
    _read(d)
  _write(tmp_path, "1\t242\t3\t881250949\n", users="1|24|M|technician\n")
  with pytest.raises(DataError, match=r"u.user:1: expected 5 '\|'-separated fields"):
    _read(d)


def test_quarantine_keeps_good_rows_up_to_the_limit(tmp_path):
  d = _write(tmp_path, "1\t242\t3\t881250949\n1\tbad\n2\t302\t5\t891717742\n")
  quarantine = tmp_path / "q" / "quarantine.tsv"
  bad: List[reader.BadRow] = []
  examples = _read(d, max_bad_rows=1, quarantine_path=str(quarantine), bad_rows=bad)
  assert len(examples) == 2 and len(bad) == 1
  rows = quarantine.read_text().splitlines()
  assert rows[0] == "file\tline\treason\trow"
  path, line, reason, text = rows[1].split("\t")
  assert (path, line, text) == (str(d / "u.data"), "2", "1 bad")
  assert "expected 4 tab-separated fields" in reason
  _write(tmp_path, "1\tbad\n1\tworse\n1\t242\t3\t881250949\n", users=None)
  with pytest.raises(DataError, match=r"u.data:2: .*\(more than --max-bad-rows=1 bad rows\)"):
    _read(d, max_bad_rows=1)


@pytest.mark.parametrize("ratings", [
    "1\t242\t3\t881250949\r\n\n2\t302\t5\t891717742\r\n\n",  # CRLF and blank lines
    "1\t242\t3\t881250949\n2\t302\t5\t891717742",            # no final line break
    " 1\t242 \t3\t 881250949\n2\t302\t5\t891717742\n",        # whitespace around fields
])
def test_unusual_but_valid_files_give_the_same_examples(tmp_path, ratings):
  d = _write(tmp_path, ratings)
  assert _read(d) == [_example("1", "242", 3, 881250949, 24, "M", "technician", "85711"),
                      _example("2", "302", 5, 891717742, 53, "F", "other", "94043")]


def test_a_quote_is_data_in_movielens(tmp_path):
  d = _write(tmp_path, "1\t2\"42\t3\t881250949\n2\t\"302\t5\t891717742\n")
  assert _read(d) == [_example("1", '2"42', 3, 881250949, 24, "M", "technician", "85711"),
                      _example("2", '"302', 5, 891717742, 53, "F", "other", "94043")]


def test_serialization_matches_protobuf_for_long_strings_and_large_or_negative_ints(tmp_path):
  long_zip = "z" * 300  # lengths above 127 need two-byte varints at every level
  d = _write(tmp_path, "1\t242\t3\t-5\n2\t302\t9223372036854775807\t891717742\n1\t7\t1\t0\n",
             users=f"1|24|M|technician|{long_zip}\n2|53|F|other|94043\n")
  assert _read(d) == [
      _example("1", "242", 3, -5, 24, "M", "technician", long_zip),
      _example("2", "302", 9223372036854775807, 891717742, 53, "F", "other", "94043"),
      _example("1", "7", 1, 0, 24, "M", "technician", long_zip)]


def test_blocks_cover_the_file_on_line_boundaries_and_count_lines(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 500)
  path = str(data / "u.data")
  layout = reader.text_layout(path, MOVIELENS.source.csv)
  blocks = list(reader.text_blocks(layout, block_bytes=1000))
  assert len(blocks) > 5
  assert blocks[0].start == 0 and blocks[-1].end == os.path.getsize(path)
  assert all(a.end == b.start for a, b in zip(blocks, blocks[1:]))
  content = (data / "u.data").read_bytes()
  assert all(content[b.end - 1:b.end] == b"\n" for b in blocks)
  assert [b.first_line for b in blocks] == [1 + content[:b.start].count(b"\n") for b in blocks]
  whole = _read(data)
  ingest = source.Ingest(MOVIELENS, str(data), "u.data")
  from components.example_gen import encoder  # pylint: disable=g-import-not-at-top
  pieces = [e for b in blocks for c in ingest.convert(source.Unit(path, layout, b))
            for e in encoder.serialize_examples(c.table)]
  assert pieces == whole and len(whole) == 500


def test_a_bad_row_in_a_later_block_names_its_line(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 500)
  lines = (data / "u.data").read_text().splitlines()
  lines[436] = "1\t2\tthree\t881250949"
  (data / "u.data").write_text("\n".join(lines) + "\n")
  ingest = source.Ingest(MOVIELENS, str(data), "u.data")
  layout = reader.text_layout(str(data / "u.data"), MOVIELENS.source.csv)
  blocks = list(reader.text_blocks(layout, block_bytes=1000))
  bad = [r for b in blocks for c in ingest.convert(source.Unit(layout.path, layout, b))
         for r in c.bad]
  assert [(r.line, r.text) for r in bad] == [(437, "1\t2\tthree\t881250949")]


# --- The executor: TFX's FileBasedExampleGen machinery around the reader. ---


def run_executor(input_base, output_dir, spec: Optional[spec_lib.DatasetSpec] = None,
                 max_bad_rows: int = 0, quarantine_path: str = "",
                 pattern: Optional[str] = None) -> Dict[str, list]:
  """Runs the executor's Do (Beam, DirectRunner) as the TFX launcher would; returns each
  split's serialized examples in file order, and the artifact under key "artifact"."""
  examples = standard_artifacts.Examples()
  examples.uri = str(output_dir)
  spec = spec or MOVIELENS
  gen = component.DatasetExampleGen(
      input_base=str(input_base), spec_json=spec.to_json(),
      input_config=component.make_input_config(pattern) if pattern else None,
      max_bad_rows=max_bad_rows, quarantine_path=quarantine_path)
  exec_properties = dict(gen.exec_properties)
  for key in (standard_component_specs.INPUT_CONFIG_KEY,
              standard_component_specs.OUTPUT_CONFIG_KEY,
              standard_component_specs.CUSTOM_CONFIG_KEY):
    if not isinstance(exec_properties[key], str):
      exec_properties[key] = proto_utils.proto_to_json(exec_properties[key])
  exec_properties[example_gen_utils.SPAN_PROPERTY_NAME] = 0
  exec_properties[example_gen_utils.FINGERPRINT_PROPERTY_NAME] = ""
  executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]},
                         exec_properties)
  out = {}
  for split in ("train", "eval"):
    uri = artifact_utils.get_split_uri([examples], split)
    files = sorted(tf.io.gfile.glob(os.path.join(uri, "*")))
    out[split] = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
  out["artifact"] = examples
  return out


def test_executor_writes_deterministic_80_20_splits(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 2000)
  first = run_executor(data, tmp_path / "out1")
  second = run_executor(data, tmp_path / "out2")
  total = len(first["train"]) + len(first["eval"])
  assert total == 2000
  assert 0.75 < len(first["train"]) / total < 0.85
  assert first["train"] == second["train"] and first["eval"] == second["eval"]
  assert not set(first["train"]) & set(first["eval"])
  assert sorted(first["train"] + first["eval"]) == sorted(_read(data))
  artifact = first["artifact"]
  assert artifact.get_int_custom_property(executor.QUARANTINED_ROWS_PROPERTY) == 0
  assert artifact.get_int_custom_property(executor.DROPPED_ROWS_PROPERTY) == 0


def test_executor_writes_each_split_in_file_order(tmp_path):
  # No shuffle before writing (TFX's Reshuffle held whole splits in memory): the Trainer
  # shuffles. Ratings sorted by time are written in time order in each split.
  data = write_movielens_slice(tmp_path / "ml", 2000)
  lines = (data / "u.data").read_text().splitlines()
  lines.sort(key=lambda line: int(line.split("\t")[3]))
  (data / "u.data").write_text("\n".join(lines) + "\n")
  written = run_executor(data, tmp_path / "out")
  for split in ("train", "eval"):
    times = [tf.train.Example.FromString(e).features.feature["timestamp"].int64_list.value[0]
             for e in written[split]]
    assert times == sorted(times), split


def test_executor_quarantines_and_counts_on_the_artifact(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 300)
  lines = (data / "u.data").read_text().splitlines()
  lines[9] = "196\t242"
  lines[19] = "186\t302\tfour\t891717742"
  (data / "u.data").write_text("\n".join(lines) + "\n")
  quarantine = tmp_path / "quarantine.tsv"
  written = run_executor(data, tmp_path / "out", max_bad_rows=2,
                         quarantine_path=str(quarantine))
  assert len(written["train"]) + len(written["eval"]) == 298
  assert written["artifact"].get_int_custom_property(
      executor.QUARANTINED_ROWS_PROPERTY) == 2
  rows = [line.split("\t") for line in quarantine.read_text().splitlines()[1:]]
  assert [int(r[1]) for r in rows] == [10, 20]
  assert "rating 'four' is not an integer" in rows[1][2]
  with pytest.raises(DataError, match=r"u.data:20: rating 'four' .*\(more than "
                                      r"--max-bad-rows=1 bad rows\)"):
    run_executor(data, tmp_path / "out2", max_bad_rows=1)


def test_executor_on_full_movielens_splits_as_before(tmp_path):
  written = run_executor(require_ml100k(), tmp_path / "out")
  assert {s: len(written[s]) for s in ("train", "eval")} == ML100K_SPLIT


def _span_pipeline(feed, root):
  """A pipeline of the ExampleGen alone on a `span-{SPAN}/u.data` feed (TFX resolves the
  newest span, as in `uet run`)."""
  from tfx.orchestration import metadata, pipeline as tfx_pipeline  # pylint: disable=g-import-not-at-top
  gen = component.DatasetExampleGen(
      input_base=str(feed), spec_json=MOVIELENS.to_json(),
      input_config=component.make_input_config("span-{SPAN}/u.data"))
  return tfx_pipeline.Pipeline(
      pipeline_name="example-gen-only", pipeline_root=str(root / "root"), components=[gen],
      metadata_connection_config=metadata.sqlite_metadata_connection_config(
          str(root / "metadata.sqlite")), enable_cache=False)


def test_local_dag_runner_ingests_the_newest_span_and_bounds_its_times(tmp_path, ml100k):
  from tfx.orchestration.local.local_dag_runner import LocalDagRunner  # pylint: disable=g-import-not-at-top
  import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top
  lines = (ml100k / "u.data").read_text().splitlines()[:600]
  lines.sort(key=lambda line: int(line.split("\t")[3]))
  feed = _write(tmp_path / "feed", "", users=(ml100k / "u.user").read_text())
  (feed / "u.data").unlink()
  _write(feed / "span-1", "\n".join(lines[:300]) + "\n", users=None)
  _write(feed / "span-2", "\n".join(lines[300:]) + "\n", users=None)
  LocalDagRunner().run(_span_pipeline(feed, tmp_path))
  store = mlmd.MetadataStore(_span_pipeline(feed, tmp_path).metadata_connection_config)
  [examples] = store.get_artifacts_by_type("Examples")
  assert examples.custom_properties["span"].int_value == 2
  assert examples.custom_properties[executor.QUARANTINED_ROWS_PROPERTY].int_value == 0
  written = sum(1 for split in ("train", "eval") for _ in tf.data.TFRecordDataset(
      tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*")),
      compression_type="GZIP"))
  assert written == 300
  # Span 3 carries a rating older than span 1's first: the run fails naming it.
  first = int(lines[0].split("\t")[3])
  _write(feed / "span-3", f"1\t2\t3\t{first - 1}\n", users=None)
  with pytest.raises(DataError, match=rf"span-3/u.data:1: timestamp {first - 1} .* is before "
                                      r"the feed's first span"):
    LocalDagRunner().run(_span_pipeline(feed, tmp_path))
