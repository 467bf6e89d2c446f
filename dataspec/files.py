"""Plan-time checks of a dataset spec against its files, before TensorFlow loads.

`check(spec, data_dir)` finds the source files (a file, a glob, the newest span of a
`{SPAN}` layout, or the span layout `uet spans` writes: `span-N/<path>` directories), reads
the header of the first file (or counts the fields of the first line of a headerless file)
or its Parquet schema, and the same of every side table, and raises `SpecError` (a usage
error, exit 2) for a column the spec names that no file has, a side table's key absent from
either side, a missing or empty file, or a headerless file whose field count differs from
`csv.columns`. It reads headers only, so it takes milliseconds; the rows themselves are the
ExampleGen's to check.

No TensorFlow, TFX or Beam here; `pyarrow.parquet` is imported only to read a Parquet
file's schema. The ExampleGen's reader uses `read_header`, `span_files` and
`source_pattern` from here, so plan time and run time read headers and spans alike.
"""

import csv
import dataclasses
import fnmatch
import glob as glob_lib
import os
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from dataspec import spec as spec_lib
from dataspec.spec import SpecError

SPAN = "{SPAN}"
# The span layout `uet spans` writes: one directory per span.
SPAN_DIR_PATTERN = "span-" + SPAN
UTF8_BOM = b"\xef\xbb\xbf"
_HEADER_READ_BYTES = 1 << 16
# What to do about an empty data file (plan time).
EMPTY_FIX = ("write its rows there (an interrupted export leaves such files), or point the "
             "spec at another file")


class HeaderError(ValueError):
  """A text file's first line cannot be read; the message names the file and line."""


# ---------------------------------------------------------------------------------------
# Spans.


def span_regex(pattern: str) -> str:
  """A regex matching the relative paths of `pattern` (with `{SPAN}`, maybe globs); the span
  number is group 1 (TFX's `{SPAN}`: digits)."""
  parts = re.split(r"(\{SPAN\})", pattern)
  return "^" + "".join(r"(\d+)" if part == SPAN else fnmatch.translate(part)[:-2]
                       for part in parts) + "$"


def span_files(base: str, pattern: str,
               glob: Callable[[str], List[str]] = glob_lib.glob,
               isdir: Callable[[str], bool] = os.path.isdir) -> Dict[int, List[str]]:
  """Span number -> its files (sorted), for a `{SPAN}` pattern relative to `base`."""
  regex = re.compile(span_regex(pattern))
  found: Dict[int, List[str]] = {}
  prefix = base.rstrip("/") + "/"
  for path in glob(os.path.join(base, pattern.replace(SPAN, "*"))):
    relative = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, base)
    match = regex.match(relative)
    if match and not isdir(path):
      found.setdefault(int(match.group(1)), []).append(path)
  return {k: sorted(v) for k, v in sorted(found.items())}


def source_pattern(spec: spec_lib.DatasetSpec, data_dir: str) -> str:
  """The source's path pattern in `data_dir`: the spec's `source.path`, or
  `span-{SPAN}/<path>` when the spec's path has no `{SPAN}`, `data_dir` does not hold it
  directly and holds `span-N/<path>` spans (the layout `uet spans` writes)."""
  path = spec.source.path
  if SPAN in path or "://" in data_dir:
    return path
  direct = os.path.join(data_dir, path)
  if glob_lib.glob(direct) if has_glob(path) else os.path.exists(direct):
    return path
  spanned = f"{SPAN_DIR_PATTERN}/{path}"
  return spanned if span_files(data_dir, spanned) else path


def has_glob(path: str) -> bool:
  return any(c in path for c in "*?[")


# ---------------------------------------------------------------------------------------
# Headers.


@dataclasses.dataclass(frozen=True)
class Header:
  """The first line of a delimited text file.

  Attributes:
    columns: the header's column names, or the given `csv.columns` of a headerless file.
    data_start: the byte offset of the first data line.
    first_line: that line's number (from 1).
    fields: the number of fields of the first line (header or not).
    has_rows: something other than blank lines follows the header.
  """
  columns: Tuple[str, ...]
  data_start: int
  first_line: int
  fields: int
  has_rows: bool


def _parse_line(text: str, options: spec_lib.CsvOptions) -> List[str]:
  quoting = csv.QUOTE_MINIMAL if options.quoting else csv.QUOTE_NONE
  return next(csv.reader([text], delimiter=options.delimiter,
                         quotechar='"' if options.quoting else None, quoting=quoting,
                         doublequote=True, strict=True), [])


def read_header(path: str, options: spec_lib.CsvOptions,
                opener: Callable[[str], object] = lambda p: open(p, "rb")) -> Header:
  """Reads the first non-blank line of a delimited text file.

  Raises:
    HeaderError: the file is empty, or its first line does not decode or parse, or its
      header names a column twice.
  """
  with opener(path) as f:
    head = f.read(_HEADER_READ_BYTES)
    start = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
    position, number = start, 1
    while True:
      end = head.find(b"\n", position)
      while end < 0:
        more = f.read(_HEADER_READ_BYTES)
        if not more:
          break
        head += more
        end = head.find(b"\n", position)
      raw = head[position:] if end < 0 else head[position:end]
      if raw.strip(b"\r \t"):
        break
      if end < 0:
        raise HeaderError(f"{path}: no rows; the file is empty")
      position, number = end + 1, number + 1
    rest = head[end + 1:] if end >= 0 else b""
    if end >= 0 and not rest.strip():
      rest = f.read(_HEADER_READ_BYTES)
  where = f"{path}:{number}"
  raw = raw.rstrip(b"\r")
  try:
    # The first line of a headerless file is a row: its bytes are the reader's to judge.
    text = raw.decode(options.encoding, errors="strict" if options.header else "replace")
  except UnicodeDecodeError as e:
    encoding = _encoding_name(options.encoding)
    raise HeaderError(f"{where}: the header is not valid {encoding} (byte {e.start + 1} of "
                      f"the line is {raw[e.start:e.start + 1]!r}); re-encode the file as "
                      f"{encoding} or declare its encoding (csv.encoding)") from None
  try:
    fields = _parse_line(text, options)
  except csv.Error as e:
    if not options.header:   # a malformed first row: the reader names it
      fields = text.split(options.delimiter)
    else:
      raise HeaderError(f"{where}: cannot parse the header ({e}): {text[:200]!r}") from None
  if not options.header:
    return Header(tuple(options.columns), start, 1, len(fields), True)
  columns = tuple(c.strip() for c in fields)
  for c in columns:
    if columns.count(c) > 1:
      raise HeaderError(f"{where}: the header names column {c!r} twice; rename one")
  data_start = len(head) if end < 0 else end + 1
  return Header(columns, data_start, number + 1, len(fields), bool(rest.strip()))


def _encoding_name(encoding: str) -> str:
  return "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


# ---------------------------------------------------------------------------------------
# The checks.


def column_keys(spec: spec_lib.DatasetSpec) -> Dict[str, str]:
  """Raw column -> the spec key that names it first (for messages)."""
  keys: Dict[str, str] = {}
  for f in spec.features:
    keys.setdefault(f.column, f"features.{f.name}" + (".column" if f.column != f.name else ""))
  keys.setdefault(spec.label.column, "label.column")
  if spec.time:
    keys.setdefault(spec.time.column, "time.column")
  return keys


def source_columns(spec: spec_lib.DatasetSpec) -> List[str]:
  """The columns the source files must have: the raw columns no side table brings, and
  the side tables' keys."""
  brought = {c for t in spec.source.side_tables for c in t.columns}
  names = [c for c in spec.raw_columns if c not in brought]
  for t in spec.source.side_tables:
    if t.key not in names:
      names.append(t.key)
  return names


@dataclasses.dataclass(frozen=True)
class DataFiles:
  """What `check` found.

  Attributes:
    data_dir: the data directory (absolute).
    pattern: the source pattern relative to it (may hold `{SPAN}`).
    files: the source files of the newest span (or of the file/glob).
    side_tables: each side table's file, in spec order.
  """
  data_dir: str
  pattern: str
  files: Tuple[str, ...]
  side_tables: Tuple[str, ...]

  @property
  def spans(self) -> bool:
    return SPAN in self.pattern


def _columns_of(path: str, fmt: str, options: spec_lib.CsvOptions, what: str) -> List[str]:
  """The columns of a file (header, given names, or Parquet schema). SpecError when it is
  empty or unreadable, or a headerless file's first line has another field count."""
  if os.path.getsize(path) == 0:
    raise SpecError(f"{path}: the file is empty ({what}): {EMPTY_FIX}")
  if fmt == "parquet":
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    try:
      metadata = pq.read_metadata(path)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
      raise SpecError(f"{path}: not a Parquet file ({e}); {what} declares format parquet") \
          from None
    if metadata.num_rows == 0:
      raise SpecError(f"{path}: no rows; the file is empty ({what}): {EMPTY_FIX}")
    return list(metadata.schema.to_arrow_schema().names)
  try:
    header = read_header(path, options)
  except HeaderError as e:
    raise SpecError(f"{e} ({what})") from None
  if not options.header and header.fields != len(options.columns):
    raise SpecError(f"{path}:{header.first_line}: {header.fields} "
                    f"{_delimiter_name(options.delimiter)}-separated fields, but csv.columns "
                    f"names {len(options.columns)} ({', '.join(options.columns)}); fix "
                    f"csv.columns or csv.delimiter in the spec ({what})")
  if options.header and not header.has_rows:
    raise SpecError(f"{path}: no rows after the header; the file is empty ({what}): "
                    f"{EMPTY_FIX}")
  return list(header.columns)


def _delimiter_name(delimiter: str) -> str:
  return {"\t": "tab", ",": "comma", ";": "semicolon", " ": "space"}.get(delimiter,
                                                                       repr(delimiter))


def _spec_name(spec: spec_lib.DatasetSpec) -> str:
  return f"dataset spec {spec.origin}" if spec.origin else f"dataset spec {spec.name!r}"


def side_table_path(table: spec_lib.SideTable, data_dir: str,
                    source_file: Optional[str] = None, exists=os.path.exists) -> str:
  """A side table's file: beside the source file (a span directory may carry its own),
  else in the data directory."""
  if source_file:
    beside = os.path.join(os.path.dirname(source_file), table.path)
    if os.path.dirname(source_file).rstrip("/") != data_dir.rstrip("/") and exists(beside):
      return beside
  return os.path.join(data_dir, table.path)


def check(spec: spec_lib.DatasetSpec, data_dir: Optional[str],
          given_as: str = "--data-dir") -> DataFiles:
  """Checks that the files of `data_dir` can be read as `spec` declares.

  Args:
    spec: the dataset spec.
    data_dir: the data directory from the command line (None: the spec's `source.data_dir`).
    given_as: how the user gave the directory, for messages.

  Returns:
    The files found.

  Raises:
    SpecError: naming the file, the spec key and what to fix.
  """
  name = _spec_name(spec)
  resolved = spec_lib.resolve_data_dir(spec, data_dir)
  if not resolved:
    raise SpecError(f"{name}: no data directory: pass {given_as} DIR, or set source.data_dir "
                    "in the spec")
  if not os.path.isdir(resolved):
    raise SpecError(f"{given_as} {resolved}: not a directory")
  pattern = source_pattern(spec, resolved)
  source = spec.source
  if SPAN in pattern:
    spans = span_files(resolved, pattern)
    if not spans:
      raise SpecError(f"{os.path.join(resolved, pattern)}: no span matches (source.path of "
                      f"{name}); write span directories such as "
                      f"{pattern.replace(SPAN, '1')} (uet spans does), or fix source.path")
    numbers = sorted(spans)
    files = spans[numbers[-1]]
    if source.format == "parquet" and len(numbers) > 1:
      _check_parquet_span(spans[numbers[-2]][0], files[0])
  elif has_glob(pattern):
    files = sorted(p for p in glob_lib.glob(os.path.join(resolved, pattern))
                   if not os.path.isdir(p))
    if not files:
      raise SpecError(f"{os.path.join(resolved, pattern)}: no file matches (source.path of "
                      f"{name}); put the files there, or fix source.path")
  else:
    path = os.path.join(resolved, pattern)
    if not os.path.isfile(path):
      raise SpecError(f"{path}: missing; source.path of {name} names it: put the file in "
                      f"{resolved}, or fix source.path")
    files = [path]
  if source.format == "tfrecord":
    for path in files:
      if os.path.getsize(path) == 0:
        raise SpecError(f"{path}: the file is empty (source.path of {name}): {EMPTY_FIX}")
  else:
    have = _columns_of(files[0], source.format, source.csv, f"source.path of {name}")
    problem = missing_columns(spec, files[0], have)
    if problem:
      raise SpecError(problem)
    for path in files[1:]:
      if source.format == "parquet":
        _check_parquet_span(files[0], path, same_span=True)
  side_paths = []
  for i, table in enumerate(source.side_tables):
    path = side_table_path(table, resolved, files[0])
    what = f"source.side_tables[{i}] of {name}"
    if not os.path.isfile(path):
      raise SpecError(f"{path}: missing; {what} names it: put the file in {resolved}, or fix "
                      f"source.side_tables[{i}].path")
    have = _columns_of(path, table.format, table.csv, what)
    if table.key not in have:
      raise SpecError(f"{name}: source.side_tables[{i}].key names column {table.key!r}, which "
                      f"{path} does not have; its columns are {', '.join(have)}")
    missing = [c for c in table.columns if c not in have]
    if missing:
      raise SpecError(f"{name}: source.side_tables[{i}].columns names {missing}, which {path} "
                      f"does not have; its columns are {', '.join(have)}")
    side_paths.append(path)
  return DataFiles(resolved, pattern, tuple(files), tuple(side_paths))


def _check_parquet_span(previous: str, current: str, same_span: bool = False) -> None:
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  changes = parquet_schema_changes(pq.read_schema(previous), pq.read_schema(current))
  if changes:
    what = "another file of the same span" if same_span else "the previous span's file"
    raise SpecError(f"{current}: its Parquet schema differs from {previous} ({what}): "
                    f"{'; '.join(changes)}. Write every file of the feed with the same "
                    "columns and types")


def parquet_schema_changes(previous, current) -> List[str]:
  """How pyarrow schema `current` differs from `previous`: new, gone and retyped columns."""
  before = {f.name: f.type for f in previous}
  after = {f.name: f.type for f in current}
  changes = [f"column {n} is new ({after[n]})" for n in after if n not in before]
  changes += [f"column {n} is gone (was {before[n]})" for n in before if n not in after]
  changes += [f"column {n} was {before[n]}, is {after[n]}" for n in after
              if n in before and before[n] != after[n]]
  return changes


def missing_columns(spec: spec_lib.DatasetSpec, path: str,
                    have: Sequence[str]) -> Optional[str]:
  """The message for a source file `path` (columns `have`) that lacks a column the spec
  needs, naming the spec key, the file and the columns it has; None when none is missing."""
  missing = [c for c in source_columns(spec) if c not in have]
  if not missing:
    return None
  c = missing[0]
  key = column_keys(spec).get(c) or next(
      f"source.side_tables[{i}].key" for i, t in enumerate(spec.source.side_tables)
      if t.key == c)
  others = f" (and {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else ""
  return (f"{_spec_name(spec)}: {key} names column {c!r}{others}, which {path} does not "
          f"have; its columns are {', '.join(have)}. Fix the spec or the file")
