"""Whether a `uet run` would find nothing to do, decided before TensorFlow and TFX load.

Re-running on unchanged data is what a schedule does most of the time. TFX would find every
component in its cache, but only after loading TensorFlow, TFX, TFMA and Beam to build the
pipeline, which takes far longer than the cached pipeline itself. So each successful
run records in OUTPUT/last_run.json a key over everything TFX's cache key and the
ProductionModel's choice depend on, and the next run compares it first:

  * the run's config (data and output paths, Beam arguments, training and gates);
  * the code the run executes (this repository's pipeline, components, trainer, dataspec,
    tools and uet_upstream sources), the dataset spec (in the config) and its curated
    schema file;
  * the versions of Python and of the TFX stack;
  * every file under the data directory (path, size, modification time: what ExampleGen
    fingerprints);
  * the ML Metadata store (size and modification time) and the pushed model versions.

Only when all are unchanged since a run that succeeded does `uet run` say so and stop
(`--no-cache` always runs). Anything else, even a change TFX would find cached (a touched
data file), runs the pipeline as before: a stale key can only cost a TFX run, never skip
one that had work to do.
"""

import hashlib
import importlib.metadata
import json
import os
import pathlib
import sys
from typing import Any, Dict, Optional

from pipeline import fingerprint
from pipeline.config import PipelineConfig

# The summary's field holding the key (pipeline/local_runner.py writes it).
KEY_FIELD = "up_to_date_key"
# The packages whose code a run executes, relative to the repository.
_SOURCE_DIRS = ("pipeline", "components", "trainer", "dataspec", "tools", "uet_upstream")
_SOURCE_SUFFIXES = (".py", ".pbtxt", ".yaml", ".html", ".css", ".js", ".j2")
# Distributions that execute the pipeline; an upgrade of any changes TFX's executors.
_DISTRIBUTIONS = ("tfx", "tensorflow", "tf-keras", "tensorflow-transform",
                  "tensorflow-model-analysis", "tensorflow-data-validation", "tfx-bsl",
                  "apache-beam", "ml-metadata", "tensorflow-recommenders", "numpy", "pyarrow")
_REPO = pathlib.Path(__file__).resolve().parent.parent


def _update_with_stats(h: "hashlib._Hash", root: str) -> None:
  """Adds every file under `root` (sorted): its relative path, size and modification time."""
  for directory, subdirs, files in os.walk(root):
    subdirs.sort()
    for name in sorted(files):
      path = os.path.join(directory, name)
      st = os.stat(path)
      h.update(f"{os.path.relpath(path, root)}:{st.st_size}:{st.st_mtime_ns}\0".encode())


def _stat(path: str) -> str:
  try:
    st = os.stat(path)
  except FileNotFoundError:
    return "absent"
  return f"{st.st_size}:{st.st_mtime_ns}"


def run_key(config: PipelineConfig) -> str:
  """sha256 over what decides whether `uet run` with `config` has work to do (see above)."""
  h = hashlib.sha256()
  h.update(json.dumps(config.to_dict(), sort_keys=True).encode() + b"\0")
  if config.schema_path:  # may be outside the repository
    with open(config.schema_path, "rb") as f:
      h.update(f.read() + b"\0")
  sources = [p for name in _SOURCE_DIRS for p in (_REPO / name).rglob("*")
             if p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts]
  h.update(fingerprint.fingerprint(sources, root=_REPO).encode() + b"\0")
  h.update(sys.version.encode() + b"\0")
  for name in _DISTRIBUTIONS:
    try:
      version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      version = "absent"
    h.update(f"{name}={version}\0".encode())
  _update_with_stats(h, config.data_dir)
  # The store and its SQLite side files: any write changes their size or time.
  for suffix in ("", "-journal", "-wal"):
    h.update(_stat(config.metadata_path + suffix).encode() + b"\0")
  if os.path.isdir(config.serving_dir):
    for version in sorted(os.listdir(config.serving_dir)):
      h.update(f"{version}:{_stat(os.path.join(config.serving_dir, version))}\0".encode())
  return h.hexdigest()


def unchanged_since_last_run(config: PipelineConfig) -> Optional[Dict[str, Any]]:
  """The summary of the last run if it succeeded and nothing changed since; else None."""
  if not config.enable_cache:
    return None
  try:
    with open(config.summary_path) as f:
      summary = json.load(f)
  except (OSError, ValueError):
    return None
  if not (isinstance(summary, dict) and summary.get("succeeded")
          and summary.get(KEY_FIELD)):
    return None
  return summary if summary[KEY_FIELD] == run_key(config) else None
