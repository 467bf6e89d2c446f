"""Writes generated columns as the spec's files: delimited text or Parquet, split into the
files a glob or a `{SPAN}` layout names.

Delimited text follows the spec's CSV options: its delimiter, a header line or none, its
column order, its encoding, a missing value as the first of its `null_values`, and quotes
(RFC 4180) only around a value that needs them, which is an error when the spec's CSV has
`quoting: false`. A multivalent value is its values joined by the feature's separator.
Parquet columns have the spec's types (string, int64, double, list of strings for a
multivalent feature), missing values are null, and row groups hold `ROW_GROUP` rows
whatever the chunk size, so the bytes depend only on the data.
"""

import codecs
import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataspec import spec as spec_lib
from tools.synth.world import SynthError

ROW_GROUP = 262_144
SPAN = "{SPAN}"


@dataclasses.dataclass(frozen=True)
class OutputFile:
  """One file to write: its path relative to the data directory and its rows
  [start, stop) of the stream (all rows of its table, for a side table)."""
  path: str
  start: int
  stop: int
  span: Optional[int] = None


def source_files(source: spec_lib.Source, rows: int, spans: int,
                 rows_per_file: int) -> List[OutputFile]:
  """The source files, in stream order: `spans` spans of equal rows (a `{SPAN}` path; spans
  numbered from 1), each in files of `rows_per_file` rows (a path with one `*`: part-00000,
  part-00001, ...), else one file.

  Raises:
    SynthError: a glob other than one `*`.
  """
  path = source.path
  if any(c in path for c in "?[") or path.count("*") > 1 or "**" in path:
    raise SynthError(f"source.path {path!r}: uet synth names files for one '*' (part-00000, "
                     "...) and {SPAN}; write the path with at most one '*'")
  files = []
  span_count = spans if SPAN in path else 1
  for s in range(span_count):
    span_start, span_stop = rows * s // span_count, rows * (s + 1) // span_count
    span_path = path.replace(SPAN, str(s + 1))
    span = s + 1 if SPAN in path else None
    if "*" not in span_path:
      files.append(OutputFile(span_path, span_start, span_stop, span))
      continue
    starts = list(range(span_start, span_stop, rows_per_file)) or [span_start]
    for part, start in enumerate(starts):
      files.append(OutputFile(span_path.replace("*", f"part-{part:05d}"), start,
                              min(start + rows_per_file, span_stop), span))
  return files


def side_table_paths(table: spec_lib.SideTable, source: List[OutputFile]) -> List[str]:
  """Where a side table goes: its path, in every span when it has `{SPAN}`."""
  if SPAN not in table.path:
    return [table.path]
  spans = sorted({f.span for f in source if f.span is not None}) or [1]
  return [table.path.replace(SPAN, str(s)) for s in spans]


class CsvWriter:
  """A delimited text file written chunk by chunk.

  Args:
    path: the file.
    columns: its columns, in order.
    options: the spec's CSV options.
    alphabets: column -> the characters its values can hold (to know what needs quotes).
    where: the spec key of these options, for messages.
  """

  def __init__(self, path: str, columns: Sequence[str], options: spec_lib.CsvOptions,
               alphabets: Dict[str, str], where: str):
    self.columns = list(columns)
    self.options = options
    self.null = options.null_values[0] if options.null_values else None
    special = {options.delimiter, "\n", "\r"} | ({'"'} if options.quoting else set())
    self.quote = {}
    for name in self.columns:
      risky = special & set(alphabets[name])
      if risky and not options.quoting:
        raise SynthError(f"{where}: column {name}'s values can contain {sorted(risky)!r} and "
                         "the CSV has quoting: false; choose another delimiter")
      self.quote[name] = bool(risky)
    codec = codecs.lookup(options.encoding)
    self.encoder = None if codec.name == "utf-8" else codec.incrementalencoder()
    self.file = open(path, "wb")
    if options.header:
      self._write(options.delimiter.join(self._quoted_text(c) for c in self.columns) + "\n")

  def _quoted_text(self, text: str) -> str:
    if (self.options.quoting and any(c in text for c in
                                     (self.options.delimiter, '"', "\n", "\r"))):
      return '"' + text.replace('"', '""') + '"'
    return text

  def _write(self, text) -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    if self.encoder is not None:
      try:
        data = self.encoder.encode(data.decode("utf-8"))
      except UnicodeEncodeError as e:
        raise SynthError(f"{self.file.name}: {e.object[e.start:e.end]!r} cannot be written in "
                         f"the spec's encoding {self.options.encoding}") from None
    self.file.write(data)

  def _text(self, name: str, values: pa.Array) -> pa.Array:
    if pa.types.is_list(values.type):
      raise SynthError(f"column {name}: a list reached the CSV writer unjoined")
    text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    if self.quote[name]:
      needs = pc.match_substring_regex(
          text, "[" + "".join("\\" + c if c in "\\]^-" else c for c in
                              (self.options.delimiter, '"', "\n", "\r")) + "]")
      quoted = pc.binary_join_element_wise(
          '"', pc.replace_substring(text, '"', '""'), '"', "")
      text = pc.if_else(needs, quoted, text)
    if text.null_count:
      if self.null is None:
        raise SynthError(f"{self.file.name}: column {name} has missing values and the CSV "
                         "declares no null_values to write them as")
      text = pc.fill_null(text, self.null)
    return text

  def write(self, chunk: Dict[str, pa.Array], separators: Dict[str, str]) -> None:
    """Writes rows; `separators`: the multivalent columns' separators."""
    texts = []
    for name in self.columns:
      values = chunk[name]
      if pa.types.is_list(values.type):
        values = pc.binary_join(values, separators[name])
      texts.append(self._text(name, values))
    if not texts or not len(texts[0]):
      return
    lines = pc.binary_join_element_wise(*texts, self.options.delimiter) if len(texts) > 1 \
        else texts[0]
    lines = pc.binary_join_element_wise(lines, "\n", "")
    self._write(_string_bytes(lines))

  def close(self) -> None:
    if self.encoder is not None:
      self.file.write(self.encoder.encode("", final=True))
    self.file.close()


def _string_bytes(values: pa.Array) -> bytes:
  """The concatenated bytes of a string array without nulls."""
  offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[
      values.offset:values.offset + len(values) + 1]
  return values.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]


class ParquetWriter:
  """A Parquet file written chunk by chunk, in row groups of exactly `ROW_GROUP` rows."""

  def __init__(self, path: str, schema: pa.Schema):
    self.schema = schema
    self.writer = pq.ParquetWriter(path, schema)
    self.pending: List[pa.Table] = []
    self.pending_rows = 0

  def write(self, chunk: Dict[str, pa.Array], separators: Dict[str, str]) -> None:
    del separators  # lists stay lists
    table = pa.table([chunk[f.name] for f in self.schema], schema=self.schema)
    self.pending.append(table)
    self.pending_rows += table.num_rows
    while self.pending_rows >= ROW_GROUP:
      self._flush(ROW_GROUP)

  def _flush(self, rows: int) -> None:
    table = pa.concat_tables(self.pending).combine_chunks()
    self.writer.write_table(table.slice(0, rows), row_group_size=rows)
    rest = table.slice(rows)
    self.pending = [rest] if rest.num_rows else []
    self.pending_rows = rest.num_rows

  def close(self) -> None:
    if self.pending_rows:
      self._flush(self.pending_rows)
    self.writer.close()


def open_writer(path: str, file_format: str, columns: Sequence[Tuple[str, pa.DataType]],
                options: Optional[spec_lib.CsvOptions], alphabets: Dict[str, str],
                where: str):
  """A writer of `columns` (name, Parquet type) at `path` (directories created)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  if file_format == "parquet":
    return ParquetWriter(path, pa.schema(list(columns)))
  if file_format == "csv":
    return CsvWriter(path, [c for c, _ in columns], options, alphabets, where)
  raise SynthError(f"{where}: uet synth writes csv and parquet files, not {file_format}; "
                   "write the data as csv or parquet and declare that format")
