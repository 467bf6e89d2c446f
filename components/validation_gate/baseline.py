"""The drift baseline of the ValidationGate: the statistics of the last span that passed it.

"The latest statistics" would not do: after a bad span fails the gate, its statistics are
the newest, and the corrected span that follows would be compared with the bad one and fail
too. And taking this run's own statistics would compare a span with itself. So the gate
records every statistics it passes (`record_validated`), and `DriftBaseline` returns the
newest recorded one that is not the statistics being validated now:

  * new data is compared with the last span that passed, never with one that failed;
  * a re-run on the same data (the same, cached statistics) is a cache hit of
    `DriftBaseline`, so the gate sees the same baseline as before and stays a cache hit.

The records are files (components/decisions.py says why this is not a Resolver); with none
yet (the first run) the output is marked empty and the gate skips the drift check.
"""

from typing import Any, Dict, Optional

from absl import logging
from tfx import types
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import decisions

# Custom property of the DriftBaseline output: the statistics it copies.
SOURCE_URI_KEY = "source_uri"
NOTHING_VALIDATED = "no statistics have passed the gate yet (the first run)"


def record_validated(validated_dir: str, statistics: types.Artifact) -> str:
  """Records that `statistics` passed the gate; returns the record's path."""
  return decisions.append_record(validated_dir, {
      "statistics_uri": statistics.uri,
      "split_names": statistics.split_names,
      "span": int(statistics.span) if statistics.has_property("span") else 0,
  })


def latest_validated(validated_dir: str, current_uri: str) -> Optional[Dict[str, Any]]:
  """The newest record of statistics that passed the gate, other than `current_uri`.

  Raises:
    decisions.RecordError: the newest records name statistics that no longer exist (the
      pipeline root of the runs that wrote them was removed); the message lists them.
      The gate does not fall back to an older span on its own: that would change what new
      data is compared with without anyone deciding it.
  """
  found, stale = None, []
  for path, record in decisions.records_with_paths(validated_dir):
    uri = record.get("statistics_uri")
    if uri == current_uri:
      continue
    if uri and fileio.isdir(uri):
      found = record
      break
    stale.append(f"{path} -> {uri}")
  if stale:
    raise decisions.RecordError(
        f"the drift baseline is missing: {len(stale)} record(s) of validated statistics "
        f"name directories that no longer exist ({'; '.join(stale)}). They were written by "
        "runs whose pipeline root was since removed or moved. Restore those directories, or "
        "delete these records: the gate then compares new data with the newest span whose "
        "statistics still exist (or skips the drift check if there is none)")
  return found


def write_baseline(statistics: types.Artifact, validated_dir: str,
                   baseline: types.Artifact) -> Optional[str]:
  """Fills the DriftBaseline output with a copy of the baseline, or marks it empty.

  Returns:
    The URI of the statistics copied, or None (nothing validated yet).
  """
  record = latest_validated(validated_dir, statistics.uri)
  if record is None:
    decisions.mark_empty(baseline, NOTHING_VALIDATED)
    baseline.split_names = artifact_utils.encode_split_names([])
    logging.info("DriftBaseline: %s", NOTHING_VALIDATED)
    return None
  io_utils.copy_dir(record["statistics_uri"], baseline.uri)
  baseline.split_names = record["split_names"]
  baseline.span = int(record.get("span") or 0)
  baseline.set_string_custom_property(SOURCE_URI_KEY, record["statistics_uri"])
  logging.info("DriftBaseline: %s", record["statistics_uri"])
  return record["statistics_uri"]
