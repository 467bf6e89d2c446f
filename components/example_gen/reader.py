"""Reads a dataset's files into columns with pyarrow, a block at a time, knowing where every
row came from.

Formats: delimited text (CSV, TSV, pipe-separated; with a header or with the column names
given by the spec; any ASCII-compatible encoding; RFC 4180 quoting or none) and Parquet.
TFRecord files of `tf.Example` are read by the executor (TensorFlow) and decoded with
tfx_bsl; `rows_from_examples` turns the decoded batch into rows like the others. No
TensorFlow or Beam here, so `uet spans` and the tools read with the same code; headers are
read by `dataspec.files.read_header`, which the plan-time checks share.

Units of work, each small enough that memory stays flat at any file size:

* a text file is cut into `TextBlock`s of about `BLOCK_BYTES`, each a byte range that
  starts and ends on a record boundary, with the physical line number of its first line;
* a Parquet file is cut by row group (`ParquetUnit`), read in batches of
  `PARQUET_BATCH_ROWS` rows.

Each unit is read into `Rows`: the columns as the file holds them (text columns as
strings, exactly as written between the delimiters), the location of every row (the
physical line where a text record starts, counting every line of the file from 1, blank
lines and the header included; the 1-based row number of a Parquet file; the 1-based record
number of a TFRecord file), and the rows the format itself rejects (a wrong number of
fields, bytes that are not valid in the declared encoding) as `BadRow`s with their
location. `convert` then turns rows into the examples' raw columns.

A text record is one line unless a quoted field holds a line break (RFC 4180): records are
found by quote parity, which is exact for RFC 4180 files. Where pyarrow's parse and the
parity disagree (a quote inside an unquoted field), the block is re-read line by line with
Python's `csv` module, so every row still gets its own line number.
"""

import csv
import dataclasses
import glob as glob_lib
import os
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv

from dataspec import files
from dataspec import spec as spec_lib

# Bytes per text block: big enough that per-block overhead vanishes, small enough that
# memory stays flat.
BLOCK_BYTES = 16 << 20
# Rows per batch read from a Parquet row group.
PARQUET_BATCH_ROWS = 1 << 18
# Where a text block may end when quotes never balance (a stray quote): a line end after this
# many bytes, so one bad quote cannot make a block the size of the file.
MAX_BLOCK_BYTES = 4 * BLOCK_BYTES
_QUOTE = ord('"')


class DataError(ValueError):
  """A data file is missing or malformed. The message names the file, the line (or Parquet
  row, or TFRecord record), the column and what to fix."""


@dataclasses.dataclass
class BadRow:
  """A row that cannot become an example.

  Attributes:
    path: the file.
    line: where the row is: the physical line of a text file, else the 1-based row
      (Parquet) or record (TFRecord) number.
    reason: the whole message (with file and line), as the error would say it.
    text: the row as written (text files), or its values (other formats).
  """
  path: str
  line: int
  reason: str
  text: str


def where(path: str, unit: str, number: int) -> str:
  """A row's location for messages: `file:line` for text, `file: row N` otherwise."""
  if unit == "line":
    return f"{path}:{number}"
  return f"{path}: {unit} {number}"


# ---------------------------------------------------------------------------------------
# Files: local paths here; the executor passes one over tf.io.gfile (gs:// and local).


class LocalFileSystem:
  """The file operations the readers need, on local paths."""

  def open(self, path: str) -> BinaryIO:
    return open(path, "rb")

  def exists(self, path: str) -> bool:
    return os.path.exists(path)

  def isdir(self, path: str) -> bool:
    return os.path.isdir(path)

  def size(self, path: str) -> int:
    return os.path.getsize(path)

  def glob(self, pattern: str) -> List[str]:
    return sorted(glob_lib.glob(pattern))


LOCAL = LocalFileSystem()


def has_glob(path: str) -> bool:
  return any(c in path for c in "*?[")


def match_files(base: str, pattern: str, fs=LOCAL) -> List[str]:
  """The files `pattern` (relative to `base`; a plain path or a glob) names, sorted.

  A plain path is returned as is (whether or not it exists: its reader says so); a glob
  returns the regular files it matches.
  """
  path = os.path.join(base, pattern)
  if not has_glob(pattern):
    return [path]
  return [p for p in fs.glob(path) if not fs.isdir(p)]


# ---------------------------------------------------------------------------------------
# Delimited text.


def delimiter_name(delimiter: str) -> str:
  return {"\t": "tab", ",": "comma", ";": "semicolon", " ": "space"}.get(delimiter,
                                                                       repr(delimiter))


def encoding_name(encoding: str) -> str:
  return "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _is_utf8(encoding: str) -> bool:
  return encoding_name(encoding) == "UTF-8"


@dataclasses.dataclass(frozen=True)
class TextLayout:
  """How one delimited text file is laid out.

  Attributes:
    path: the file.
    options: the spec's CSV options.
    columns: the file's columns, in order (its header, or `options.columns`).
    data_start: the byte offset of the first data line (after the header and a BOM).
    first_line: the line number of the line at `data_start`.
    size: the file's size in bytes.
  """
  path: str
  options: spec_lib.CsvOptions
  columns: Tuple[str, ...]
  data_start: int
  first_line: int
  size: int


def _python_csv(line: str, options: spec_lib.CsvOptions) -> List[str]:
  """One record parsed with Python's csv module (the slow path)."""
  quoting = csv.QUOTE_MINIMAL if options.quoting else csv.QUOTE_NONE
  return next(csv.reader([line], delimiter=options.delimiter,
                         quotechar='"' if options.quoting else None, quoting=quoting,
                         doublequote=True, strict=True), [])


def text_layout(path: str, options: spec_lib.CsvOptions, fs=LOCAL) -> TextLayout:
  """Reads the header (if any) of a delimited text file (`dataspec.files.read_header`).

  Raises:
    DataError: the file is missing or empty, or its header cannot be decoded or parsed.
  """
  if not fs.exists(path) or fs.isdir(path):
    raise DataError(f"{path}: file not found")
  try:
    header = files.read_header(path, options, fs.open)
  except files.HeaderError as e:
    raise DataError(str(e)) from None
  return TextLayout(path, options, header.columns, header.data_start, header.first_line,
                    fs.size(path))


@dataclasses.dataclass(frozen=True)
class TextBlock:
  """Bytes [start, end) of a text file: whole records, the first on line `first_line`."""
  path: str
  start: int
  end: int
  first_line: int


def _line_ends(b: np.ndarray) -> np.ndarray:
  """Positions of the line terminators of `b` as pyarrow's CSV parser sees them: every
  `\\n`, and every `\\r` not followed by `\\n`."""
  nl = np.flatnonzero(b == 10)
  cr = np.flatnonzero(b == 13)
  if not len(cr):
    return nl
  following = np.append(b, np.uint8(0))[cr + 1]
  return np.union1d(nl, cr[following != 10])


def _count_lines(data: bytes) -> int:
  """The number of line terminators in `data` (as `_line_ends`), when `data` does not end
  between a `\\r` and its `\\n`."""
  return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _record_ends(b: np.ndarray, ends: np.ndarray, quoting: bool) -> np.ndarray:
  """The line terminators among `ends` that end a record: outside quotes (an even number
  of quote characters since the start of `b`)."""
  if not quoting or not len(ends) or _QUOTE not in b:
    return ends
  quotes = np.cumsum(b == _QUOTE)
  return ends[quotes[ends] % 2 == 0]


def text_blocks(layout: TextLayout, fs=LOCAL,
                block_bytes: int = BLOCK_BYTES) -> Iterator[TextBlock]:
  """Cuts a text file's data into blocks of about `block_bytes` on record boundaries.

  Reads the file once, a block at a time; each block knows the line number it starts on.
  A block ends after a `\\n` that ends a record (outside quotes); a record longer than
  `block_bytes` makes its block longer.
  """
  position, line = layout.data_start, layout.first_line
  block_bytes = max(int(block_bytes), 1)
  with fs.open(layout.path) as f:
    f.seek(position)
    pending = b""
    limit = block_bytes
    while position < layout.size:
      chunk = pending + f.read(max(limit - len(pending), 0))
      if position + len(chunk) >= layout.size:
        cut = len(chunk)
      elif not layout.options.quoting or b'"' not in chunk:
        cut = chunk.rfind(b"\n") + 1
      else:
        b = np.frombuffer(chunk, np.uint8)
        nl = np.flatnonzero(b == 10)
        ends = _record_ends(b, nl, True)
        cut = int(ends[-1]) + 1 if len(ends) else 0
        if not cut and len(nl) and len(chunk) >= MAX_BLOCK_BYTES:
          cut = int(nl[-1]) + 1   # quotes never balance: cut at a line end anyway
      if not cut:   # no record ends in the chunk: read more
        pending, limit = chunk, limit * 2
        continue
      yield TextBlock(layout.path, position, position + cut, line)
      line += _count_lines(chunk[:cut])
      position += cut
      pending, limit = chunk[cut:], block_bytes


def read_range(path: str, start: int, end: int, fs=LOCAL) -> bytes:
  with fs.open(path) as f:
    f.seek(start)
    return f.read(end - start)


class _LineIndex:
  """The lines of a block of text: where each starts, where its content ends (before its
  terminator), and which ones start a record."""

  def __init__(self, data: bytes, quoting: bool):
    b = np.frombuffer(data, np.uint8)
    ends = _line_ends(b)
    self.count = len(ends) + (1 if len(data) and (not len(ends) or ends[-1] != len(b) - 1)
                              else 0)
    self.starts = np.concatenate([[0], ends + 1])[:self.count].astype(np.int64)
    content_ends = np.concatenate([ends, [len(b)]])[:self.count].astype(np.int64)
    if len(ends):   # a \r\n line's content ends before its \r
      crlf = np.zeros(self.count, bool)
      crlf[:len(ends)] = (b[ends] == 10) & (ends > 0) & (b[np.maximum(ends - 1, 0)] == 13)
      content_ends -= crlf & (content_ends > self.starts)
    self.content_ends = content_ends
    record_ends = _record_ends(b, ends, quoting)
    end_line = np.searchsorted(ends, record_ends)
    first = np.concatenate([[0], end_line + 1]).astype(np.int64)
    last = np.concatenate([end_line, [self.count - 1]]).astype(np.int64)
    keep = first <= last
    first, last = first[keep], last[keep]
    blank = (first == last) & (self.content_ends[first] == self.starts[first])
    self.record_first_lines = first[~blank]   # 0-based line index of each non-blank record
    self.record_last_lines = last[~blank]
    # Where each line ends, its terminator included.
    self.stops = np.concatenate([ends + 1, [len(b)]])[:self.count].astype(np.int64)
    self._data = data

  def line(self, index: int) -> bytes:
    return self._data[self.starts[index]:self.content_ends[index]]

  def lines(self) -> Iterator[bytes]:
    for i in range(self.count):
      yield self.line(i)


@dataclasses.dataclass
class Rows:
  """Rows of one unit of a file, before conversion.

  Attributes:
    table: the columns read, as the file holds them.
    numbers: per row, where it is (see `where`).
    path: the file.
    unit: "line" (text), "row" (Parquet) or "record" (TFRecord).
    text: row index -> the row as written, for messages and the quarantine.
    bad: rows the format rejected, with their reasons (not in `table`).
    delimited: the values are text fields (whitespace around them is dropped and the CSV
      options' null values mean missing).
    null_values: text values that mean missing (delimited text only).
  """
  table: pa.Table
  numbers: np.ndarray
  path: str
  unit: str
  text: Callable[[int], str]
  bad: List[BadRow]
  delimited: bool = False
  null_values: Tuple[str, ...] = ()

  @property
  def num_rows(self) -> int:
    return self.table.num_rows

  def where(self, index: int) -> str:
    return where(self.path, self.unit, int(self.numbers[index]))


def record_bytes(data: bytes, quoting: bool, first_lines: np.ndarray) -> List[bytes]:
  """The bytes (terminator included) of the records of a block that start on the given
  lines (0-based line indexes within the block, as `Rows.numbers - block.first_line`)."""
  index = _LineIndex(data, quoting)
  position = np.searchsorted(index.record_first_lines, first_lines)
  last = index.record_last_lines[position]
  return [data[index.starts[a]:index.stops[z]] for a, z in zip(first_lines, last)]


def _decode_lines(data: bytes, first_line: int, layout: TextLayout,
                  bad: List[BadRow]) -> bytes:
  """`data` as UTF-8, each line that does not decode blanked out and reported in `bad`."""
  encoding = layout.options.encoding
  try:
    text = data.decode(encoding)
    return data if _is_utf8(encoding) else text.encode("utf-8")
  except UnicodeDecodeError:
    pass
  out = []
  for number, raw in enumerate(data.splitlines(keepends=True), start=first_line):
    content = raw.rstrip(b"\r\n")
    try:
      out.append(content.decode(encoding).encode("utf-8") + raw[len(content):])
    except UnicodeDecodeError as e:
      bad.append(BadRow(layout.path, number,
                        f"{layout.path}:{number}: not valid {encoding_name(encoding)} (byte "
                        f"{e.start + 1} of the line is {content[e.start:e.start + 1]!r}); "
                        f"re-encode the file as {encoding_name(encoding)} or declare its "
                        "encoding (csv.encoding)",
                        content.decode(encoding, errors="replace")))
      out.append(raw[len(content):])  # keeps the line count: pyarrow skips empty lines
  return b"".join(out)


def _field_count_reason(path: str, number: int, layout: TextLayout, found: int) -> str:
  columns = layout.columns
  named = "its header" if layout.options.header else "csv.columns"
  return (f"{path}:{number}: expected {len(columns)} {delimiter_name(layout.options.delimiter)}"
          f"-separated fields ({', '.join(columns)}), found {found}; {named} names "
          f"{len(columns)} columns: fix the row or remove it")


def _text_table(data: bytes, layout: TextLayout, columns: Sequence[str],
                use_threads: bool, invalid: Optional[list]) -> pa.Table:
  def handler(row):
    invalid.append(row)
    return "skip"
  options = layout.options
  return pa_csv.read_csv(
      pa.py_buffer(data),
      read_options=pa_csv.ReadOptions(column_names=list(layout.columns),
                                      use_threads=use_threads,
                                      block_size=max(1 << 20, len(data) + 1)),
      parse_options=pa_csv.ParseOptions(
          delimiter=options.delimiter, quote_char='"' if options.quoting else False,
          double_quote=True, escape_char=False, newlines_in_values=options.quoting,
          ignore_empty_lines=True, invalid_row_handler=handler),
      convert_options=pa_csv.ConvertOptions(
          column_types={c: pa.string() for c in columns}, include_columns=list(columns),
          null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
          check_utf8=False))


def read_text_block(layout: TextLayout, block: TextBlock, columns: Sequence[str],
                    fs=LOCAL, data: Optional[bytes] = None) -> Rows:
  """Parses one block into string columns, with the line of every row.

  Args:
    layout: the file's layout (`text_layout`).
    block: the block (`text_blocks`).
    columns: the columns to return (each one of `layout.columns`).
    fs: the file system.
    data: the block's bytes, if already read.

  Returns:
    Rows whose `bad` holds the records with a wrong number of fields or with bytes that do
    not decode.
  """
  if data is None:
    data = read_range(block.path, block.start, block.end, fs)
  bad: List[BadRow] = []
  data = _decode_lines(data, block.first_line, layout, bad)
  index = _LineIndex(data, layout.options.quoting)
  record_lines = index.record_first_lines + block.first_line
  invalid: list = []
  table = _text_table(data, layout, columns, True, invalid)
  if invalid:   # pyarrow numbers the invalid rows only when it parses on one thread
    invalid = []
    table = _text_table(data, layout, columns, False, invalid)
  if table.num_rows + len(invalid) != len(record_lines):
    return _read_lines_one_by_one(index, layout, block, columns, bad)
  valid = np.ones(len(record_lines), bool)
  for row in invalid:
    valid[row.number - 1] = False
    number = int(record_lines[row.number - 1])
    bad.append(BadRow(layout.path, number,
                      _field_count_reason(layout.path, number, layout, row.actual_columns),
                      row.text))
  numbers = record_lines[valid]
  bad.sort(key=lambda r: r.line)

  def text(i: int) -> str:
    return index.line(int(numbers[i]) - block.first_line).decode("utf-8", errors="replace")
  return Rows(table, numbers, layout.path, "line", text, bad, delimited=True,
              null_values=tuple(layout.options.null_values))


def _read_lines_one_by_one(index: _LineIndex, layout: TextLayout, block: TextBlock,
                           columns: Sequence[str], bad: List[BadRow]) -> Rows:
  """The slow path of `read_text_block`, for a block whose quotes do not balance (a quote
  inside an unquoted field): each line is a record, parsed with Python's csv module."""
  position = {c: layout.columns.index(c) for c in columns}
  values: Dict[str, List[str]] = {c: [] for c in columns}
  numbers, texts = [], {}
  for number, raw in enumerate(index.lines(), start=block.first_line):
    if not raw:
      continue
    line = raw.decode("utf-8")
    try:
      fields = _python_csv(line, layout.options)
    except csv.Error as e:
      bad.append(BadRow(layout.path, number,
                        f"{layout.path}:{number}: cannot parse the row ({e}): quote a field "
                        "that holds a quote, a delimiter or a line break, doubling the quotes "
                        "inside it (RFC 4180), or declare csv.quoting: false", line))
      continue
    if len(fields) != len(layout.columns):
      bad.append(BadRow(layout.path, number,
                        _field_count_reason(layout.path, number, layout, len(fields)), line))
      continue
    for c in columns:
      values[c].append(fields[position[c]])
    numbers.append(number)
    texts[number] = line
  numbers_array = np.asarray(numbers, np.int64)
  table = pa.table({c: pa.array(values[c], pa.string()) for c in columns})
  bad.sort(key=lambda r: r.line)
  return Rows(table, numbers_array, layout.path, "line",
              lambda i: texts[int(numbers_array[i])], bad, delimited=True,
              null_values=tuple(layout.options.null_values))


# ---------------------------------------------------------------------------------------
# Parquet.


@dataclasses.dataclass(frozen=True)
class ParquetUnit:
  """One row group of a Parquet file; its rows are `first_row` .. (1-based)."""
  path: str
  row_group: int
  first_row: int
  num_rows: int


def parquet_metadata(path: str, fs=LOCAL):
  """The footer (`pyarrow.parquet.FileMetaData`) of a Parquet file. DataError when it is
  missing or not Parquet."""
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  if not fs.exists(path) or fs.isdir(path):
    raise DataError(f"{path}: file not found")
  try:
    with fs.open(path) as f:
      return pq.ParquetFile(f).metadata
  except (pa.ArrowInvalid, OSError) as e:
    raise DataError(f"{path}: not a Parquet file ({e}); declare the source's format") from None


def parquet_schema(path: str, fs=LOCAL) -> pa.Schema:
  return parquet_metadata(path, fs).schema.to_arrow_schema()


def parquet_units(path: str, fs=LOCAL) -> List[ParquetUnit]:
  """The row groups of a Parquet file. DataError when it has no rows."""
  metadata = parquet_metadata(path, fs)
  units, first = [], 1
  for i in range(metadata.num_row_groups):
    n = metadata.row_group(i).num_rows
    if n:
      units.append(ParquetUnit(path, i, first, n))
    first += n
  if not units:
    raise DataError(f"{path}: no rows; the file is empty")
  return units


def _row_text(table: pa.Table, i: int) -> str:
  return "\t".join(f"{name}={table.column(name)[i].as_py()!r}" for name in table.column_names)


def read_parquet_unit(unit: ParquetUnit, columns: Sequence[str], fs=LOCAL,
                      batch_rows: int = PARQUET_BATCH_ROWS) -> Iterator[Rows]:
  """One row group's `columns`, as typed in the file, in batches of at most `batch_rows`
  rows (a row group may be large)."""
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  first = unit.first_row
  with fs.open(unit.path) as f:
    for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows,
                                                row_groups=[unit.row_group],
                                                columns=list(columns)):
      table = pa.Table.from_batches([batch])
      numbers = np.arange(first, first + table.num_rows, dtype=np.int64)
      yield Rows(table, numbers, unit.path, "row", lambda i, t=table: _row_text(t, i), [])
      first += table.num_rows


def check_parquet_schemas(previous_path: str, current_path: str, fs=LOCAL) -> None:
  """Raises DataError naming both files and the columns that differ, if they do."""
  changes = files.parquet_schema_changes(parquet_schema(previous_path, fs),
                                         parquet_schema(current_path, fs))
  if changes:
    raise DataError(f"{current_path}: its Parquet schema differs from {previous_path}'s: "
                    f"{'; '.join(changes)}. Write every file of the feed with the same "
                    "columns and types, or rewrite the older files")


# ---------------------------------------------------------------------------------------
# TFRecord of tf.Example, decoded by tfx_bsl (in the executor) into list columns.


def rows_from_examples(batch: pa.RecordBatch, path: str, first_record: int,
                       text: Callable[[int], str]) -> Rows:
  """Rows of a batch of tf.Examples decoded by tfx_bsl's ExamplesToRecordBatchDecoder
  (every column a list; an absent feature is null)."""
  table = pa.Table.from_batches([batch]) if batch.num_columns else pa.table(
      {"__records__": pa.nulls(batch.num_rows)})
  numbers = np.arange(first_record, first_record + batch.num_rows, dtype=np.int64)
  return Rows(table, numbers, path, "record", text, [])
