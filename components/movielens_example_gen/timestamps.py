"""Which rating timestamps an ingest accepts: not after ingestion, not before the feed began.

A rating dated in the future (a clock set wrong upstream, `99999999999`) or long before the
feed began (a replayed archive, a zero-filled field) parses fine and passes the schema's
`int_domain`, yet it bends every time window the pipeline cuts: `uet spans` would stretch a
window to the year 5138, and a rolling window would train on a period that never happened.
The ExampleGen therefore rejects, with file and line, every rating dated

* **after the time of ingestion**: later than the clock of the machine running the
  ExampleGen when it reads the file (`TimestampBounds.not_after`);
* **before the feed's first span**: in a span feed (`span-N/u.data`), earlier than the
  earliest rating of the lowest-numbered span directory present (`TimestampBounds.not_before`).
  Late ratings are fine (span 5 may carry ratings from the period of span 4), but nothing can
  predate the feed itself. A single ratings file (no spans) has no such bound; the schema's
  `timestamp` minimum (0) still applies at the validation gate.

Such rows are malformed rows like any other: the first one fails the run, or up to
`--max-bad-rows` are quarantined with their reason.
"""

import dataclasses
import datetime
import os
import re
import time
from typing import Optional

from components.movielens_example_gen import reader

# A span directory as `uet spans` writes it and the ExampleGen's `{SPAN}` pattern reads it.
_SPAN_DIR = re.compile(r"^span-(\d+)$")


@dataclasses.dataclass(frozen=True)
class TimestampBounds:
  """The range of rating timestamps (unix seconds, inclusive) an ingest accepts.

  Attributes:
    not_after: the time of ingestion.
    not_before: the earliest rating of the feed's first span; None without spans.
    first_span_file: the ratings file `not_before` was read from (for the message).
  """
  not_after: int
  not_before: Optional[int] = None
  first_span_file: str = ""


def _utc(timestamp: int) -> str:
  try:
    return datetime.datetime.fromtimestamp(
        timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
  except (OverflowError, OSError, ValueError):
    return "beyond the calendar"


def timestamp_problem(timestamp: int, bounds: Optional[TimestampBounds]) -> Optional[str]:
  """Why a rating's timestamp is rejected, or None when it is acceptable.

  Args:
    timestamp: the rating's unix time.
    bounds: the accepted range; None accepts everything.

  Returns:
    A sentence for the error message (without file and line), or None.
  """
  if bounds is None:
    return None
  if timestamp > bounds.not_after:
    return (f"timestamp {timestamp} ({_utc(timestamp)}) is after the time of ingestion "
            f"({_utc(bounds.not_after)}); fix the clock or the field upstream, or drop the "
            "rating")
  if bounds.not_before is not None and timestamp < bounds.not_before:
    return (f"timestamp {timestamp} ({_utc(timestamp)}) is before the feed's first span "
            f"(its earliest rating is {bounds.not_before}, {_utc(bounds.not_before)}, in "
            f"{bounds.first_span_file}); fix the field upstream, or drop the rating")
  return None


def _earliest_timestamp(path: str) -> Optional[int]:
  """The smallest integer in the 4th tab-separated field of a ratings file.

  Malformed lines are skipped: they are the first span's own problem, reported when that
  span is ingested.
  """
  from tensorflow.io import gfile  # pylint: disable=g-import-not-at-top
  earliest = None
  with gfile.GFile(path, "rb") as f:
    for raw in iter(f.readline, b""):
      fields = raw.split(b"\t")
      if len(fields) != 4:
        continue
      try:
        value = int(fields[3])
      except ValueError:
        continue
      if earliest is None or value < earliest:
        earliest = value
  return earliest


def first_span_file(input_base: str) -> Optional[str]:
  """The ratings file of the lowest-numbered `span-N` directory under `input_base`."""
  from tensorflow.io import gfile  # pylint: disable=g-import-not-at-top
  if not gfile.isdir(input_base):
    return None
  numbers = []
  for name in gfile.listdir(input_base):
    match = _SPAN_DIR.match(name.rstrip("/"))
    if match:
      numbers.append(int(match.group(1)))
  for number in sorted(numbers):
    path = os.path.join(input_base, f"span-{number}", reader.RATINGS_FILE)
    if gfile.exists(path):
      return path
  return None


def bounds_for(ratings_path: str, input_base: str,
               now: Optional[int] = None) -> TimestampBounds:
  """The bounds of one ingest.

  Args:
    ratings_path: the ratings file being ingested.
    input_base: the feed's root directory (holding `span-N/` directories, if any).
    now: the time of ingestion (default: the clock, now).

  Returns:
    `not_after` = `now`; `not_before` = the earliest rating of the first span when
    `ratings_path` is a later span of a span feed, else None.
  """
  not_after = int(time.time()) if now is None else int(now)
  first = first_span_file(input_base)
  if first is None or os.path.normpath(first) == os.path.normpath(ratings_path):
    return TimestampBounds(not_after)
  return TimestampBounds(not_after, _earliest_timestamp(first), first)
