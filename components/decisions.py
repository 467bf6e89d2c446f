"""What earlier runs decided, recorded by the deciding executors, read by later runs.

Two inputs of a run depend on what earlier runs decided: the model in production (the
newest pushed one not trained on the data ingested now) and the drift baseline (the
statistics of the last span that passed the ValidationGate). The executors that decide
write a small JSON record when they decide (the AtomicPusher inside each pushed version
directory, the ValidationGate into a directory of its own), and the components
`ProductionModel` and `DriftBaseline` read those records. Records are plain files beside the
pipeline's outputs, so this works the same under every runner: `uet run`, Vertex AI /
Kubeflow Pipelines (on gs://) and `uet run-spec`, none of which gives an executor its ML
Metadata store.

A component's output always exists, so "none" (the first run: nothing pushed or validated
yet) is an artifact marked empty; the consuming executors drop it from their inputs, which
is exactly what they see when a resolver finds nothing.
"""

import json
import os
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from tfx import types
from tfx.dsl.io import fileio

from components import paths

# String custom property of an output that stands for "nothing": its value says why.
EMPTY_KEY = "uet_empty"
RECORD_SUFFIX = ".json"


def mark_empty(artifact: types.Artifact, reason: str) -> None:
  """Marks `artifact` as standing for no artifact (e.g. no model in production yet)."""
  artifact.set_string_custom_property(EMPTY_KEY, reason)


def is_empty(artifact: types.Artifact) -> bool:
  """Whether `artifact` was marked by `mark_empty`."""
  return bool(artifact.has_custom_property(EMPTY_KEY)
              and artifact.get_string_custom_property(EMPTY_KEY))


def drop_empty(input_dict: Dict[str, List[types.Artifact]],
               key: str) -> Dict[str, List[types.Artifact]]:
  """A copy of `input_dict` without the artifacts of `key` marked empty."""
  result = dict(input_dict)
  if key in result:
    result[key] = [a for a in result[key] if not is_empty(a)]
    if not result[key]:
      del result[key]
  return result


def write_json(path: str, record: Dict[str, Any]) -> None:
  """Writes `record` to `path` so that a reader sees all of it or nothing.

  A local file is written beside and renamed into place; an object store write is
  atomic per object.
  """
  fileio.makedirs(os.path.dirname(path))
  if not paths.is_local(path):
    with fileio.open(path, "w") as f:
      f.write(json.dumps(record, indent=1, sort_keys=True))
    return
  temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
  with fileio.open(temporary, "w") as f:
    f.write(json.dumps(record, indent=1, sort_keys=True))
  fileio.rename(temporary, path, overwrite=True)


class RecordError(ValueError):
  """A record cannot be read; the message names the file and what to do."""


def read_json(path: str) -> Optional[Dict[str, Any]]:
  """The record at `path`, or None when there is none.

  Raises:
    RecordError: the file is not a JSON object (e.g. edited by hand).
  """
  if not fileio.exists(path):
    return None
  with fileio.open(path, "r") as f:
    text = f.read()
  try:
    record = json.loads(text)
  except ValueError as e:
    record = e
  if not isinstance(record, dict):
    raise RecordError(f"{path}: not a JSON record ({record}); it was written by the "
                      "AtomicPusher or the ValidationGate of an earlier run. Restore it, or "
                      "delete it: a pushed version without its record is never the model in "
                      "production, and validated statistics without one are never a drift "
                      "baseline")
  return record


def append_record(directory: str, record: Dict[str, Any]) -> str:
  """Adds `record` to the log in `directory`; returns its path.

  Names are increasing integers (the time in nanoseconds, or one past the newest), so the
  log orders itself even if the clock is set back.
  """
  existing = [int(n) for n, _ in _numbered(directory)]
  number = max(time.time_ns(), (max(existing) + 1) if existing else 0)
  path = os.path.join(directory, f"{number}{RECORD_SUFFIX}")
  write_json(path, record)
  return path


def _numbered(directory: str) -> List[Tuple[str, str]]:
  if not fileio.isdir(directory):
    return []
  names = [n.rstrip("/") for n in fileio.listdir(directory)]
  stems = [n[:-len(RECORD_SUFFIX)] for n in names if n.endswith(RECORD_SUFFIX)]
  return sorted(((s, os.path.join(directory, s + RECORD_SUFFIX)) for s in stems
                 if s.isdigit()), key=lambda item: int(item[0]))


def records_with_paths(directory: str) -> List[Tuple[str, Dict[str, Any]]]:
  """(path, record) for the records of the log in `directory`, newest first."""
  result = []
  for _, path in reversed(_numbered(directory)):
    record = read_json(path)
    if record is not None:
      result.append((path, record))
  return result


def records(directory: str) -> List[Dict[str, Any]]:
  """The records of the log in `directory`, newest first."""
  return [record for _, record in records_with_paths(directory)]
