"""Cuts a MovieLens ratings file into time-window spans, the layout TFX's `{SPAN}` reads.

    OUT/u.user               users (shared by every span)
    OUT/span-1/u.data        ratings with the earliest timestamps
    OUT/span-2/u.data        ...

A scheduled ExampleGen with the pattern `span-{SPAN}/u.data` picks up the newest span on each
run, exactly as it would when an upstream system drops one directory per day or week.
"""

import dataclasses
import os
import shutil
import time
from typing import List, Optional

from components.movielens_example_gen import reader, timestamps

SPAN_PATTERN = "span-{SPAN}/" + reader.RATINGS_FILE
SECONDS_PER_DAY = 86_400


@dataclasses.dataclass(frozen=True)
class Span:
  """One time window: ratings with start <= timestamp < end."""
  number: int
  start: int
  end: int
  num_ratings: int
  path: str


def span_dir(root: str, number: int) -> str:
  return os.path.join(root, f"span-{number}")


def list_spans(root: str) -> List[int]:
  """Span numbers present under `root` (directories `span-N` holding a ratings file)."""
  numbers = []
  if os.path.isdir(root):
    for name in os.listdir(root):
      if name.startswith("span-") and name[5:].isdigit() and os.path.isfile(
          os.path.join(root, name, reader.RATINGS_FILE)):
        numbers.append(int(name[5:]))
  return sorted(numbers)


def write_time_spans(data_dir: str, out_dir: str, num_spans: Optional[int] = None,
                     span_days: Optional[float] = None) -> List[Span]:
  """Writes the ratings of `data_dir` as time-window spans under `out_dir`.

  Exactly one of `num_spans` (N windows of equal duration between the first and the last
  rating) or `span_days` (windows of that many days from the first rating) must be given.
  Every rating lands in exactly one span; windows without ratings are skipped, so span
  numbers stay consecutive. Lines are copied verbatim (malformed lines are still caught by
  the ExampleGen, with their line number in the span file).

  Args:
    data_dir: a MovieLens directory (`u.data`, `u.user`).
    out_dir: where to write; replaced if it exists.
    num_spans: number of equal windows.
    span_days: window length in days.

  Returns:
    The spans written, in time order.

  Raises:
    ValueError: bad arguments, or a ratings line whose timestamp cannot be read or is in
      the future (one such rating would stretch the windows to its date).
  """
  if (num_spans is None) == (span_days is None):
    raise ValueError("give exactly one of num_spans or span_days")
  if num_spans is not None and num_spans < 1:
    raise ValueError(f"num_spans must be >= 1, got {num_spans}")
  if span_days is not None and span_days <= 0:
    raise ValueError(f"span_days must be > 0, got {span_days}")
  ratings_path = os.path.join(data_dir, reader.RATINGS_FILE)
  rows = []
  now = timestamps.TimestampBounds(not_after=int(time.time()))
  with open(ratings_path, "rb") as f:
    for number, raw in enumerate(f, start=1):
      if not raw.strip():
        continue
      fields = raw.rstrip(b"\r\n").split(b"\t")
      try:
        rows.append((int(fields[3]), raw if raw.endswith(b"\n") else raw + b"\n"))
      except (IndexError, ValueError):
        raise ValueError(f"{ratings_path}:{number}: no integer timestamp in the 4th "
                         f"tab-separated field: {raw[:80]!r}") from None
      problem = timestamps.timestamp_problem(rows[-1][0], now)
      if problem:
        raise ValueError(f"{ratings_path}:{number}: {problem}")
  if not rows:
    raise ValueError(f"{ratings_path}: no ratings")
  rows.sort(key=lambda r: r[0])
  first, last = rows[0][0], rows[-1][0]
  if span_days is not None:
    width = span_days * SECONDS_PER_DAY
  else:
    width = max(1, last - first + 1) / num_spans

  buckets = {}
  for ts, raw in rows:
    index = min(int((ts - first) // width), (num_spans - 1) if num_spans else 1 << 62)
    buckets.setdefault(index, []).append(raw)

  if os.path.exists(out_dir):
    shutil.rmtree(out_dir)
  os.makedirs(out_dir)
  shutil.copy2(os.path.join(data_dir, reader.USERS_FILE),
               os.path.join(out_dir, reader.USERS_FILE))
  spans = []
  for number, index in enumerate(sorted(buckets), start=1):
    path = span_dir(out_dir, number)
    os.makedirs(path)
    with open(os.path.join(path, reader.RATINGS_FILE), "wb") as f:
      f.writelines(buckets[index])
    start = int(first + index * width)
    end = int(first + (index + 1) * width)
    spans.append(Span(number, start, end, len(buckets[index]), path))
  return spans
