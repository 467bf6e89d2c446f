"""Helpers of the failure tests: run `uet run`, fingerprint the serving directory, read MLMD."""

import contextlib
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import store as store_lib
from tests.conftest import REPO

UET = str(REPO / ".venv" / "bin" / "uet")

# Small and fast: one epoch, small batches. The blessing bar is lowered because a 3,000-rating
# slice cannot reach the full-data AUC floor; tests that check blessing set their own bar.
SMALL_RUN = {"training": {"epochs": 1, "batch_size": 512},
             "evaluation": {"min_auc_gain": -1.0, "auc_floor": 0.0}}


def write_config(path: pathlib.Path, values: Optional[dict] = None) -> str:
  """Writes a JSON config file (default SMALL_RUN) and returns its path."""
  path.write_text(json.dumps(values or SMALL_RUN))
  return str(path)


def uet_run(args: Sequence[str]) -> Tuple[int, str, str]:
  """`uet run ARGS` in this process (no TensorFlow start-up per run): (exit code, out, err)."""
  return uet(["run", *args])


def uet(args: Sequence[str], err: Optional[io.StringIO] = None) -> Tuple[int, str, str]:
  """`uet ARGS` in this process: (exit code, out, err); `err` may watch what is printed."""
  from tools import cli  # pylint: disable=g-import-not-at-top
  out, err = io.StringIO(), err or io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main([str(a) for a in args])
  return code, out.getvalue(), err.getvalue()


# A filesystem the disk-full tests can fill: small, and mounted for the test alone.
TMPFS_SIZE = "64m"
LEAVE_FREE = 128 * 1024
BALLAST = "ballast"


@contextlib.contextmanager
def small_tmpfs(directory: pathlib.Path) -> Iterator[None]:
  """Mounts a small tmpfs on `directory` for the block (or skips the test saying why it
  cannot), and unmounts it after."""
  directory.mkdir(parents=True, exist_ok=True)
  if not shutil.which("mount"):
    pytest.skip("no `mount` command here: cannot put the output on a small tmpfs")
  done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs",
                         str(directory)], capture_output=True, text=True)
  if done.returncode:
    pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): the "
                "disk-full faults need a small filesystem of their own")
  try:
    yield
  finally:
    subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: pathlib.Path, leave: int = LEAVE_FREE) -> None:
  """Fills the filesystem of `directory` up to `leave` free bytes."""
  stat = os.statvfs(directory)
  free_bytes = stat.f_bavail * stat.f_frsize
  with open(directory / BALLAST, "ab") as f:
    os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size + max(0, free_bytes - leave))
  left = shutil.disk_usage(directory).free
  assert left <= leave + (64 << 10), f"{directory} still has {left} bytes free after filling"


def free(directory: pathlib.Path) -> None:
  """Undoes `fill`."""
  (directory / BALLAST).unlink(missing_ok=True)


def serving_snapshot(serving_dir: str) -> Dict[str, str]:
  """relative path -> SHA-256 of every file under the serving directory (empty if none)."""
  snapshot = {}
  for root, _, files in os.walk(serving_dir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        snapshot[os.path.relpath(path, serving_dir)] = hashlib.sha256(f.read()).hexdigest()
  return snapshot


def versions(serving_dir: str) -> List[str]:
  """The pushed version directories (integer names)."""
  if not os.path.isdir(serving_dir):
    return []
  return sorted((n for n in os.listdir(serving_dir) if n.isdigit()), key=int)


def metadata_store(output_dir: str) -> mlmd.MetadataStore:
  """A read-only connection to the run's ML Metadata."""
  return store_lib.open_readonly(os.path.join(output_dir, "metadata.sqlite"))


def executions_of(output_dir: str, node_id: str,
                  pipeline_name: str = "uet-movielens") -> List[metadata_store_pb2.Execution]:
  """Every execution of one pipeline node, oldest first (reads MLMD: it must be readable)."""
  store = metadata_store(output_dir)
  context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
  if context is None:
    return []
  return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def pushed_models(output_dir: str) -> List[str]:
  """`pushed_destination` of every PushedModel artifact that was pushed."""
  store = metadata_store(output_dir)
  return [a.custom_properties["pushed_destination"].string_value
          for a in store.get_artifacts_by_type("PushedModel")
          if a.custom_properties["pushed"].int_value == 1]


def python_env() -> Dict[str, str]:
  """Environment of a `uet` subprocess: Keras 2, quiet C++ logs, and this checkout's code
  first on the path (the environment may be shared with another checkout)."""
  return dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
              PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))


def executable() -> str:
  """The `uet` entry point of this checkout's environment."""
  if os.path.exists(UET):
    return UET
  return os.path.join(os.path.dirname(sys.executable), "uet")


def raw_examples(ratings_file: str, users_file: str, n: int) -> list:
  """The first `n` ratings as raw tf.Examples (label included), as ExampleGen writes them
  (MovieLens preset; `users_file` is the side table beside the ratings or at the root)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from components.example_gen import executor  # pylint: disable=g-import-not-at-top
  from dataspec import spec as spec_lib  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(users_file)
  serialized = executor.read_examples(spec_lib.load("movielens"), root,
                                      pattern=os.path.relpath(ratings_file, root))
  return [tf.train.Example.FromString(e) for e in serialized[:n]]


def serving_requests(ratings_file: str, users_file: str, n: int) -> List[bytes]:
  """The first `n` ratings as serialized raw tf.Examples without the label: what a client
  sends to `serving_default`."""
  out = []
  for example in raw_examples(ratings_file, users_file, n):
    del example.features.feature["rating"]  # serving requests carry no label
    out.append(example.SerializeToString())
  return out
