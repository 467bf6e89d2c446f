"""One ingest of a dataset's source: which files, cut into which units, read and converted
how, and the scan that finds every bad row before any example is written.

`Ingest` resolves the files of one span (or of a file or glob), loads the side tables once,
fixes the timestamp bounds, and reads and converts any unit of work (`Unit`: a text block,
a Parquet row group, or a whole TFRecord file). `scan` converts every unit once, in file
order, counting rows and collecting bad rows: the first bad row beyond `max_bad_rows` stops
it with its message. The executor then hands the units to Beam, whose workers read and
convert them again and encode the examples, so memory stays flat at any size.

Pure pyarrow: the TFRecord reader (TensorFlow) and decoder (tfx_bsl) are passed in by the
executor as `record_batches`.
"""

import dataclasses
import os
from typing import Callable, Iterator, List, Optional, Tuple

import pyarrow as pa

from components.example_gen import convert, reader, timestamps
from components.example_gen.reader import BadRow, DataError
from dataspec import files as files_lib
from dataspec import spec as spec_lib

# tfrecord path -> (first record number, decoded batch, record index -> text) per batch.
RecordBatches = Callable[[str], Iterator[Tuple[int, pa.RecordBatch, Callable[[int], str]]]]


@dataclasses.dataclass(frozen=True)
class Unit:
  """A unit of work: a text block (with its file's layout), a Parquet row group, or a
  TFRecord file."""
  path: str
  layout: Optional[reader.TextLayout] = None
  block: Optional[reader.TextBlock] = None
  row_group: Optional[reader.ParquetUnit] = None


class Ingest:
  """The source files of one ingest, their side tables and timestamp bounds."""

  def __init__(self, spec: spec_lib.DatasetSpec, input_base: str, pattern: str,
               fs=reader.LOCAL, span_pattern: Optional[str] = None,
               span: Optional[int] = None, now: Optional[int] = None,
               check_times: bool = True, record_batches: Optional[RecordBatches] = None):
    """Args:
      spec: the dataset spec.
      input_base: the data directory.
      pattern: the source files relative to `input_base` (a file or a glob; `{SPAN}`
        already resolved).
      fs: the file system (`reader.LOCAL`, or the executor's over tf.io.gfile).
      span_pattern: the pattern with `{SPAN}` when the source is a span feed, else None.
      span: the span being ingested (with `span_pattern`).
      now: the time of ingestion (default: the clock).
      check_times: apply the timestamp bounds (`timestamps`).
      record_batches: reads a TFRecord file (required for format tfrecord).

    Raises:
      DataError: no file matches; a side table is missing or malformed; in a Parquet span
        feed, a span's schema differs from the previous span's.
    """
    self.spec = spec
    self.input_base = input_base
    self.fs = fs
    self.files = reader.match_files(input_base, pattern, fs)
    if not self.files:
      raise DataError(f"{os.path.join(input_base, pattern)}: no file matches; put the "
                      "source files there, or fix source.path")
    for path in self.files:
      if not fs.exists(path) or fs.isdir(path):
        raise DataError(f"{path}: file not found")
    self._record_batches = record_batches
    if spec.source.format == "tfrecord" and record_batches is None:
      raise ValueError("reading TFRecord files needs `record_batches` (the executor's)")
    sides = [convert.load_side_table(
        spec, i, files_lib.side_table_path(t, input_base, self.files[0], fs.exists), fs)
        for i, t in enumerate(spec.source.side_tables)]
    first_earliest, first_file = None, ""
    self.previous_span_files: List[str] = []
    if span_pattern and files_lib.SPAN in span_pattern:
      spans = files_lib.span_files(input_base, span_pattern, fs.glob, fs.isdir)
      earlier = [n for n in spans if span is not None and n < span]
      if earlier:
        self.previous_span_files = spans[max(earlier)]
        if spec.time and check_times:
          first_file = spans[min(earlier)][0]
          first_earliest = self._earliest_time(spans[min(earlier)])
    self.converter = convert.Converter(
        spec, sides, timestamps.bounds(now, first_earliest, first_file)
        if spec.time and check_times else None)
    if spec.source.format == "parquet":
      schemas = ([self.previous_span_files[0]] if self.previous_span_files else []) + \
          self.files
      for previous, current in zip(schemas, schemas[1:]):
        reader.check_parquet_schemas(previous, current, fs)

  def _earliest_time(self, paths: List[str]) -> Optional[int]:
    """The smallest valid time of `paths` (rows with other problems included: they are
    their own span's problem)."""
    earliest = None
    columns = [self.spec.time.column]
    for path in paths:
      for unit in self._units_of(path, columns):
        for rows in self.rows(unit, columns):
          value = convert.earliest_time(self.spec, rows)
          if value is not None and (earliest is None or value < earliest):
            earliest = value
    return earliest

  def _units_of(self, path: str, columns: Optional[List[str]]) -> Iterator[Unit]:
    """The units of `path`; with `columns` None, checks it has the columns the spec needs."""
    fmt = self.spec.source.format
    if fmt == "csv":
      layout = reader.text_layout(path, self.spec.source.csv, self.fs)
      problem = files_lib.missing_columns(self.spec, path, layout.columns) \
          if columns is None else None
      if problem:
        raise DataError(problem)
      for block in reader.text_blocks(layout, self.fs):
        yield Unit(path, layout=layout, block=block)
    elif fmt == "parquet":
      units = reader.parquet_units(path, self.fs)
      if columns is None:
        have = reader.parquet_schema(path, self.fs).names
        problem = files_lib.missing_columns(self.spec, path, have)
        if problem:
          raise DataError(problem)
      for row_group in units:
        yield Unit(path, row_group=row_group)
    else:
      yield Unit(path)

  def units(self) -> Iterator[Unit]:
    """The units of work of every file, in file order (reads text files once to cut them).

    Raises:
      DataError: a file is empty or lacks a column the spec needs.
    """
    for path in self.files:
      yield from self._units_of(path, None)

  def rows(self, unit: Unit, columns: Optional[List[str]] = None) -> Iterator[reader.Rows]:
    """The rows of one unit: one batch for a text block or row group, one per batch of
    records for a TFRecord file.

    Args:
      unit: the unit.
      columns: the columns to read (default: what the conversion needs).
    """
    columns = columns or self.converter.source_columns
    if unit.block is not None:
      yield reader.read_text_block(unit.layout, unit.block, columns, self.fs)
      return
    if unit.row_group is not None:
      yield from reader.read_parquet_unit(unit.row_group, columns, self.fs)
      return
    empty = True
    for first, batch, text in self._record_batches(unit.path):
      empty = False
      yield reader.rows_from_examples(batch, unit.path, first, text)
    if empty:
      raise DataError(f"{unit.path}: no records; the file is empty")

  def convert(self, unit: Unit) -> Iterator[convert.Converted]:
    """The converted rows of one unit."""
    for rows in self.rows(unit):
      yield self.converter.convert(rows)


@dataclasses.dataclass
class Scan:
  """What `scan` found.

  Attributes:
    units: the units of work, in file order.
    rows: how many rows become examples.
    bad: the quarantined bad rows, in file order.
    dropped: rows dropped for lack of a label (`label.missing: drop`).
  """
  units: List[Unit]
  rows: int
  bad: List[BadRow]
  dropped: int


def scan(ingest: Ingest, max_bad_rows: int = 0) -> Scan:
  """Reads and converts every unit once; counts the rows; collects the bad rows.

  Raises:
    DataError: the first bad row beyond `max_bad_rows` (its message, plus the limit when
      one was given); a file without rows; a source whose rows are all bad.
  """
  units: List[Unit] = []
  bad: List[BadRow] = []
  rows = dropped = 0
  read_any = {path: False for path in ingest.files}
  for unit in ingest.units():
    units.append(unit)
    for converted in ingest.convert(unit):
      for row in converted.bad:
        if len(bad) >= max_bad_rows:
          if max_bad_rows:
            raise DataError(f"{row.reason} (more than --max-bad-rows={max_bad_rows} bad "
                            "rows)")
          raise DataError(row.reason)
        bad.append(row)
      rows += converted.table.num_rows
      dropped += converted.dropped
      if converted.table.num_rows or converted.bad or converted.dropped:
        read_any[unit.path] = True
  for path, any_rows in read_any.items():
    if not any_rows:
      raise DataError(f"{path}: no rows; the file is empty")
  if not rows:
    where = ingest.files[0] if len(ingest.files) == 1 else \
        f"{len(ingest.files)} files ({ingest.files[0]}, ...)"
    raise DataError(f"{where}: no valid rows: {len(bad)} bad (quarantined) and {dropped} "
                    "without a label (dropped); fix the rows")
  return Scan(units, rows, bad, dropped)
