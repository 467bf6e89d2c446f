"""Which event times an ingest accepts: not after ingestion, not before the feed began.

A row dated in the future (a clock set wrong upstream, `99999999999`) or long before the feed
began (a replayed archive, a zero-filled field) parses fine and may pass the schema, yet it
bends every time window the pipeline cuts: `uet spans` would stretch a window to the year
5138, and a rolling window would train on a period that never happened. The ExampleGen
therefore rejects, with file and line, every row whose time (the spec's `time` column) is

* **after the time of ingestion**: later than the clock of the machine running the
  ExampleGen when it reads the file (`TimestampBounds.not_after`);
* **before the feed's first span**: in a span feed (a `{SPAN}` source), earlier than the
  earliest time of the lowest-numbered span present (`TimestampBounds.not_before`). Late
  rows are fine (span 5 may carry rows from the period of span 4), but nothing can predate
  the feed itself. A source without spans has no such bound.

Such rows are bad rows like any other: the first one fails the run, or up to
`--max-bad-rows` are quarantined with their reason. A dataset without a time column has no
bounds.
"""

import dataclasses
import datetime
import time
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class TimestampBounds:
  """The range of event times (unix seconds, inclusive) an ingest accepts.

  Attributes:
    not_after: the time of ingestion.
    not_before: the earliest time of the feed's first span; None without spans.
    first_span_file: the file `not_before` was read from (for the message).
  """
  not_after: int
  not_before: Optional[int] = None
  first_span_file: str = ""

  @property
  def range(self) -> Tuple[Optional[int], int]:
    """(not_before, not_after)."""
    return self.not_before, self.not_after

  def problem(self, column: str, timestamp: int) -> Optional[str]:
    """Why a row's time is rejected (a sentence without file and line), or None.

    Args:
      column: the time column's name, for the message.
      timestamp: the row's unix time.
    """
    if timestamp > self.not_after:
      return (f"{column} {timestamp} ({utc(timestamp)}) is after the time of ingestion "
              f"({utc(self.not_after)}); fix the clock or the field upstream, or drop the "
              "row")
    if self.not_before is not None and timestamp < self.not_before:
      return (f"{column} {timestamp} ({utc(timestamp)}) is before the feed's first span "
              f"(its earliest time is {self.not_before}, {utc(self.not_before)}, in "
              f"{self.first_span_file}); fix the field upstream, or drop the row")
    return None


def utc(timestamp: int) -> str:
  """A unix time as `YYYY-MM-DD HH:MM:SS UTC` (or "beyond the calendar")."""
  try:
    return datetime.datetime.fromtimestamp(
        timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
  except (OverflowError, OSError, ValueError):
    return "beyond the calendar"


def bounds(now: Optional[int] = None, first_span_earliest: Optional[int] = None,
           first_span_file: str = "") -> TimestampBounds:
  """The bounds of one ingest.

  Args:
    now: the time of ingestion (default: the clock, now).
    first_span_earliest: in a span feed, when the ingested span is not the first one, the
      earliest time of the first span; else None.
    first_span_file: where that time was read.
  """
  not_after = int(time.time()) if now is None else int(now)
  return TimestampBounds(not_after, first_span_earliest,
                         first_span_file if first_span_earliest is not None else "")
