"""Cuts a dataset's source (CSV or Parquet) into time-window spans, the layout TFX's
`{SPAN}` reads.

    OUT/<side tables>        shared by every span (as in the data directory)
    OUT/span-1/<source>      the rows with the earliest times
    OUT/span-2/<source>      ...

`<source>` is the spec's `source.path` (a glob's wildcards replaced: `events/*.csv` ->
`events/part.csv`), so `span-{SPAN}/<source.path>` reads the feed, and `uet run --data-dir
OUT` finds it without another spec (`dataspec.files.source_pattern`). A scheduled
ExampleGen then ingests the newest span on each run, exactly as it would when an upstream
system drops one directory per day or week.

Rows are sorted by time (stable) and copied verbatim: a text file keeps its header, its
encoding and its quoting, and a row keeps its bytes, so a malformed row is still caught by
the ExampleGen, with its line in the span file. A row whose time cannot be read, is
missing, or lies after the present stops the cut with its file and line: one such row would
stretch the windows to its date.
"""

import dataclasses
import os
import re
import shutil
from typing import List, Optional, Tuple

import numpy as np
import pyarrow as pa

from components.example_gen import convert, reader, timestamps
from components.example_gen.reader import DataError
from dataspec import files as files_lib
from dataspec import spec as spec_lib

SECONDS_PER_DAY = 86_400


@dataclasses.dataclass(frozen=True)
class Span:
  """One time window: rows with start <= time < end."""
  number: int
  start: int
  end: int
  num_rows: int
  path: str


def span_file(spec: spec_lib.DatasetSpec) -> str:
  """The source's path inside a span directory: `source.path`, wildcards replaced."""
  path = re.sub(r"\[([^\]])[^\]]*\]", r"\1", spec.source.path)
  return path.replace("*", "part").replace("?", "0")


def span_pattern(spec: spec_lib.DatasetSpec) -> str:
  """The `{SPAN}` pattern of the feed `write_time_spans` writes."""
  return f"{files_lib.SPAN_DIR_PATTERN}/{spec.source.path}"


def span_dir(root: str, number: int) -> str:
  return os.path.join(root, files_lib.SPAN_DIR_PATTERN.replace(files_lib.SPAN, str(number)))


def list_spans(root: str, spec: spec_lib.DatasetSpec) -> List[int]:
  """Span numbers present under `root` (`span-N` directories holding the source)."""
  if not os.path.isdir(root):
    return []
  return sorted(files_lib.span_files(root, span_pattern(spec)))


def _time_column(spec: spec_lib.DatasetSpec) -> convert.RawColumn:
  return next(c for c in convert.raw_columns(spec) if c.role == "time")


def _times(spec: spec_lib.DatasetSpec, rows: reader.Rows,
           now: timestamps.TimestampBounds) -> np.ndarray:
  """The rows' times; DataError at the first row that has none or a bad one."""
  if rows.bad:
    raise DataError(rows.bad[0].reason)
  column = _time_column(spec)
  result = convert.convert_column(column, rows.table.column(column.name), rows, spec)
  if result.bad is not None:
    i = int(np.flatnonzero(result.bad)[0])
    raise DataError(f"{rows.where(i)}: {result.why(i)}")
  present = np.asarray(result.values.is_valid().to_numpy(zero_copy_only=False), bool)
  if not present.all():
    i = int(np.flatnonzero(~present)[0])
    raise DataError(f"{rows.where(i)}: {column.name} is missing; every row needs its time "
                    "(time.column) to be placed in a span")
  times = np.asarray(result.values.to_numpy(zero_copy_only=False), np.int64)
  late = np.flatnonzero(times > now.not_after)
  if len(late):
    i = int(late[0])
    raise DataError(f"{rows.where(i)}: {now.problem(column.name, int(times[i]))}")
  return times


def _text_rows(spec: spec_lib.DatasetSpec, paths: List[str],
               now: timestamps.TimestampBounds) -> Tuple[bytes, List[int], List[bytes]]:
  """(the first file's header bytes, each row's time, each row's bytes) of text files."""
  header = None
  times: List[np.ndarray] = []
  records: List[bytes] = []
  for path in paths:
    layout = reader.text_layout(path, spec.source.csv)
    with open(path, "rb") as f:
      head = f.read(layout.data_start)
    if header is None:
      header = head
    elif head != header:
      raise DataError(f"{path}: its header differs from {paths[0]}'s; give every file of the "
                      "source the same columns")
    for block in reader.text_blocks(layout):
      data = reader.read_range(path, block.start, block.end)
      rows = reader.read_text_block(layout, block, [spec.time.column], data=data)
      times.append(_times(spec, rows, now))
      records.extend(reader.record_bytes(data, spec.source.csv.quoting,
                                         rows.numbers - block.first_line))
  return header or b"", np.concatenate(times) if times else np.zeros(0, np.int64), records


def write_time_spans(spec: spec_lib.DatasetSpec, data_dir: str, out_dir: str,
                     num_spans: Optional[int] = None, span_days: Optional[float] = None,
                     now: Optional[int] = None) -> List[Span]:
  """Writes the source rows of `data_dir` as time-window spans under `out_dir`.

  Exactly one of `num_spans` (N windows of equal duration between the first and the last
  time) or `span_days` (windows of that many days from the first time) must be given.
  Every row lands in exactly one span; windows without rows are skipped, so span numbers
  stay consecutive.

  Args:
    spec: the dataset spec (CSV or Parquet source with a time column, not already spans).
    data_dir: the data directory.
    out_dir: where to write; replaced if it exists.
    num_spans: number of equal windows.
    span_days: window length in days.
    now: the present (default: the clock); a row dated later stops the cut.

  Returns:
    The spans written, in time order.

  Raises:
    ValueError: bad arguments or a spec without a time column.
    DataError: a missing or empty file, or a row without a readable time or dated after
      `now` (naming file, line and column).
  """
  if (num_spans is None) == (span_days is None):
    raise ValueError("give exactly one of num_spans or span_days")
  if num_spans is not None and num_spans < 1:
    raise ValueError(f"num_spans must be >= 1, got {num_spans}")
  if span_days is not None and span_days <= 0:
    raise ValueError(f"span_days must be > 0, got {span_days}")
  if not spec.time:
    raise ValueError(f"dataset {spec.name} has no time column (time.column): spans are time "
                     "windows")
  if spec.source.format not in ("csv", "parquet"):
    raise ValueError(f"spans are cut from CSV or Parquet sources, not {spec.source.format}")
  if files_lib.SPAN in spec.source.path:
    raise ValueError(f"source.path {spec.source.path!r} is already a span layout")
  paths = reader.match_files(data_dir, spec.source.path)
  if not paths:
    raise DataError(f"{os.path.join(data_dir, spec.source.path)}: no file matches")
  bounds = timestamps.bounds(now)
  if spec.source.format == "csv":
    header, times, records = _text_rows(spec, paths, bounds)
    table = None
  else:
    table, times = _parquet_rows(spec, paths, bounds)
  if not len(times):
    raise DataError(f"{paths[0]}: no rows; the file is empty")
  order = np.argsort(times, kind="stable")
  times = times[order]
  first, last = int(times[0]), int(times[-1])
  width = span_days * SECONDS_PER_DAY if span_days is not None else \
      max(1, last - first + 1) / num_spans
  index = ((times - first) // width).astype(np.int64)
  if num_spans is not None:
    index = np.minimum(index, num_spans - 1)

  if os.path.exists(out_dir):
    shutil.rmtree(out_dir)
  os.makedirs(out_dir)
  for table_spec in spec.source.side_tables:
    target = os.path.join(out_dir, table_spec.path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(os.path.join(data_dir, table_spec.path), target)
  spans = []
  for number, window in enumerate(np.unique(index), start=1):
    members = order[index == window]
    directory = span_dir(out_dir, number)
    path = os.path.join(directory, span_file(spec))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if table is None:
      with open(path, "wb") as f:
        f.write(header)
        for i in members:
          record = records[i]
          f.write(record if record.endswith((b"\n", b"\r")) else record + b"\n")
    else:
      import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
      pq.write_table(table.take(pa.array(members)), path)
    spans.append(Span(number, int(first + window * width), int(first + (window + 1) * width),
                      len(members), directory))
  return spans


def _parquet_rows(spec: spec_lib.DatasetSpec, paths: List[str],
                  now: timestamps.TimestampBounds) -> Tuple[pa.Table, np.ndarray]:
  """(every row of the Parquet files, each row's time)."""
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  for previous, current in zip(paths, paths[1:]):
    reader.check_parquet_schemas(previous, current)
  tables, times = [], []
  for path in paths:
    for unit in reader.parquet_units(path):
      for rows in reader.read_parquet_unit(unit, [spec.time.column]):
        times.append(_times(spec, rows, now))
    tables.append(pq.read_table(path))
  return pa.concat_tables(tables), np.concatenate(times)
