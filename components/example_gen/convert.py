"""Turns rows as read (`reader.Rows`) into the raw columns of the examples, as the dataset
spec declares them, and finds the rows that cannot become examples.

For every column of `spec.raw_columns` (the features' columns, the label, the time):

* id, categorical and multivalent features are strings; numeric features are int64 or
  float per their `type`; the label has the label's `type`; the time is int64 unix seconds.
  A multivalent text value is split at the feature's `separator` (a Parquet or tf.Example
  list holds its values already); empty items are dropped.
* Text fields (delimited files) lose the whitespace around them, and the CSV options'
  `null_values` (the empty field by default) are missing values. In Parquet a null is
  missing; in a tf.Example an absent feature (or an empty list) is.
* A missing value stays missing (a null: the example will not carry the feature, and
  Transform applies the feature's `missing` treatment, as it does for serving requests),
  except under `missing: error`, where the row is bad.
* Columns brought by a side table are joined on its key; a key missing from the table
  makes the row bad.
* The label must be one the rule can map (a number under `positive_if`, 0/1/true/false
  under `binary`, one of the positive or negative values when negative values are given).
  A row without a label is bad (`label.missing: quarantine`) or dropped and counted
  (`drop`).
* The time is converted from unix seconds, unix milliseconds (floored to seconds) or
  ISO 8601 (a time without a zone is UTC; fractions of a second are dropped), and must lie
  within the ingest's `TimestampBounds` when given.

A bad row's reason names the file, the line (or Parquet row, or TFRecord record), the
column and the value, and says what to fix. The checks are vectorized: rows are looked at
one by one only to word the reasons of bad rows.
"""

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.example_gen import reader
from components.example_gen.reader import BadRow, DataError, Rows
from dataspec import spec as spec_lib

_INT = pa.int64()
_FLOAT = pa.float64()
_STRING = pa.string()
_STRING_LIST = pa.list_(pa.string())
_INTEGER_TEXT = r"^[+-]?[0-9]+$"
_NUMBER_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
# Integers of up to 18 digits fit in int64 whatever they are.
_SAFE_INTEGER_TEXT = r"^[+-]?[0-9]{1,18}$"
_BINARY_TRUE = ("1", "true")
_BINARY_FALSE = ("0", "false")


@dataclasses.dataclass(frozen=True)
class RawColumn:
  """One raw column of the examples.

  Attributes:
    name: the column (the feature name in the raw tf.Examples).
    type: string, int or float; list of strings when `separator` is set.
    role: feature, label or time.
    separator: multivalent: the separator of text values (None: single-valued).
    required_by: the feature that declares `missing: error` for it, if any.
    side: the index of the side table that brings it (None: the source file).
  """
  name: str
  type: str
  role: str = "feature"
  separator: Optional[str] = None
  required_by: Optional[str] = None
  side: Optional[int] = None


def raw_columns(spec: spec_lib.DatasetSpec) -> List[RawColumn]:
  """The raw columns of `spec`, in `spec.raw_columns` order.

  Raises:
    DataError: one column is read as multivalent by one feature and as single-valued by
      another.
  """
  side_of = {c: i for i, t in enumerate(spec.source.side_tables) for c in t.columns}
  out = []
  for name, type_ in spec.raw_columns.items():
    readers = [f for f in spec.features if f.column == name]
    multivalent = {f.kind == "multivalent" for f in readers}
    if len(multivalent) > 1:
      raise DataError(f"dataset spec: column {name!r} is read by a multivalent feature and a "
                      f"single-valued one ({', '.join(f.name for f in readers)}); read it "
                      "with one kind")
    separator = next((f.separator for f in readers if f.kind == "multivalent"), None)
    required = next((f.name for f in readers if f.missing == "error"), None)
    role = "feature"
    if name == spec.label.column:
      role = "label"
    elif spec.time and name == spec.time.column:
      role = "time"
    out.append(RawColumn(name, type_, role, separator, required, side_of.get(name)))
  return out


# ---------------------------------------------------------------------------------------
# Column conversions. Each returns the converted array (null where missing or bad) and
# the rows whose value is bad, with a function that words why.


@dataclasses.dataclass
class _Result:
  values: pa.Array
  bad: Optional[np.ndarray] = None           # bool per row
  why: Callable[[int], str] = lambda i: ""   # row -> reason (without the location)


def _mask(array: pa.Array) -> np.ndarray:
  """A boolean array as numpy, null as False."""
  return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), bool)


def _present(values: pa.Array) -> np.ndarray:
  return _mask(pc.is_valid(values))


def _flat(values) -> pa.Array:
  if isinstance(values, pa.ChunkedArray):
    return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
  return values


def _null_where(values: pa.Array, mask: np.ndarray) -> pa.Array:
  if not mask.any():
    return values
  return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def _shown(value) -> str:
  text = repr(value)
  return text if len(text) <= 80 else text[:77] + "..."


def _text(values: pa.Array, rows: Rows) -> pa.Array:
  """A delimited file's field values without surrounding whitespace, the CSV options'
  null values made null. Other formats' strings are kept as they are."""
  values = values.cast(_STRING) if values.type != _STRING else values
  if not rows.delimited:
    return values
  values = pc.utf8_trim_whitespace(values)
  if rows.null_values:
    values = _null_where(values, _mask(pc.is_in(values, value_set=pa.array(
        list(rows.null_values), _STRING))))
  return values


def _from_binary(values: pa.Array, column: str) -> _Result:
  """Bytes that must be UTF-8 text (Parquet binary, tf.Example bytes_list)."""
  try:
    return _Result(values.cast(_STRING))
  except pa.ArrowInvalid:
    pass
  items = values.to_pylist()
  bad = np.zeros(len(items), bool)
  text = []
  for i, item in enumerate(items):
    try:
      text.append(None if item is None else item.decode("utf-8"))
    except UnicodeDecodeError:
      bad[i] = True
      text.append(None)
  return _Result(pa.array(text, _STRING), bad,
                 lambda i: f"{column} {_shown(items[i])} is not valid UTF-8; write it as UTF-8 "
                           "text, or remove the row")


def _single_values(values: pa.Array, column: str) -> _Result:
  """A list column (tf.Example, Parquet lists) read as one value per row: an empty list is
  missing; more than one value is a bad row."""
  lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False)
  flat = pc.list_flatten(values)
  starts = np.cumsum(lengths) - lengths
  taken = flat.take(pa.array(np.where(lengths > 0, starts, 0), mask=lengths == 0)) \
      if len(flat) else pa.nulls(len(values), values.type.value_type)
  bad = lengths > 1
  return _Result(taken, bad if bad.any() else None,
                 lambda i: (f"{column} holds {int(lengths[i])} values; it is read as one value "
                            "per row: declare its feature multivalent, or write one value"))


def _to_string(values: pa.Array, rows: Rows, column: str) -> _Result:
  t = values.type
  if pa.types.is_dictionary(t):
    return _to_string(values.dictionary_decode(), rows, column)
  if pa.types.is_string(t) or pa.types.is_large_string(t):
    return _Result(_text(values, rows))
  if pa.types.is_binary(t) or pa.types.is_large_binary(t):
    result = _from_binary(values, column)
    result.values = _text(result.values, rows)
    return result
  if pa.types.is_floating(t):
    finite = _mask(pc.is_finite(values))
    whole = finite & _mask(pc.equal(pc.floor(values), values)) & _mask(
        pc.less(pc.abs(values), 2.0 ** 53))
    as_int = pc.cast(_null_where(values, ~whole), _INT, safe=False).cast(_STRING)
    text = pc.if_else(pa.array(whole), as_int, values.cast(_STRING))
    bad = _present(values) & ~finite
    return _Result(text, bad if bad.any() else None,
                   lambda i: f"{column} {values[i].as_py()} is not a finite number; write a "
                             "number or a missing value (null), or remove the row")
  return _Result(values.cast(_STRING))


def _integer_text(text: pa.Array) -> Tuple[pa.Array, np.ndarray]:
  """Integers written as text -> (int64, null where not; rows that are not integers)."""
  present = _present(text)
  try:
    return text.cast(_INT), np.zeros(len(text), bool)
  except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
    pass
  safe = _mask(pc.match_substring_regex(text, _SAFE_INTEGER_TEXT))
  values = np.array(pc.fill_null(_null_where(text, ~safe).cast(_INT), 0).to_numpy(
      zero_copy_only=False), np.int64)
  longer = np.flatnonzero(present & ~safe &
                          _mask(pc.match_substring_regex(text, _INTEGER_TEXT)))
  ok = safe.copy()
  for i in longer:   # more than 18 digits: fits in int64 or not
    number = int(text[i].as_py())
    if -2 ** 63 <= number < 2 ** 63:
      values[i] = number
      ok[i] = True
  return pa.array(values, _INT, mask=~ok), present & ~ok


def _to_int(values: pa.Array, rows: Rows, column: str, what: str) -> _Result:
  t = values.type
  if pa.types.is_dictionary(t):
    return _to_int(values.dictionary_decode(), rows, column, what)
  if pa.types.is_integer(t) or pa.types.is_boolean(t):
    try:
      return _Result(values.cast(_INT))
    except pa.ArrowInvalid:   # uint64 above int64's range
      big = _mask(pc.greater(values, 2 ** 63 - 1))
      return _Result(_null_where(values, big).cast(_INT), big,
                     lambda i: f"{column} {values[i].as_py()} does not fit in int64 {what}")
  if pa.types.is_floating(t):
    whole = _mask(pc.is_finite(values)) & _mask(pc.equal(pc.floor(values), values)) & \
        _mask(pc.less(pc.abs(values), 2.0 ** 63))
    bad = _present(values) & ~whole
    return _Result(pc.cast(_null_where(values, ~whole), _INT, safe=False), bad,
                   lambda i: f"{column} {values[i].as_py()} is not an integer {what}; write a "
                             "whole number, or remove the row")
  base = _to_string(values, rows, column)
  text = base.values
  numbers, bad = _integer_text(text)
  if base.bad is not None:
    bad = bad & ~base.bad
  return _Result(numbers, _either(base.bad, bad),
                 lambda i: base.why(i) if base.bad is not None and base.bad[i] else
                 f"{column} {_shown(text[i].as_py())} is not an integer {what}; write a whole "
                 "number, or remove the row")


def _to_float(values: pa.Array, rows: Rows, column: str, what: str) -> _Result:
  t = values.type
  if pa.types.is_dictionary(t):
    return _to_float(values.dictionary_decode(), rows, column, what)
  if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
    numbers = values.cast(_FLOAT)
    finite = _mask(pc.is_finite(numbers))
    bad = _present(numbers) & ~finite
    return _Result(_null_where(numbers, bad), bad if bad.any() else None,
                   lambda i: f"{column} {values[i].as_py()} is not a finite number {what}; "
                             "write a number or a missing value (null), or remove the row")
  base = _to_string(values, rows, column)
  text = base.values
  try:
    numbers = text.cast(_FLOAT)
    bad = _present(numbers) & ~_mask(pc.is_finite(numbers))
  except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
    ok = _mask(pc.match_substring_regex(text, _NUMBER_TEXT))
    numbers = _null_where(text, ~ok).cast(_FLOAT)
    bad = _present(text) & ~(ok & _mask(pc.is_finite(numbers)))
  if base.bad is not None:
    bad = bad & ~base.bad
  return _Result(_null_where(numbers, bad), _either(base.bad, bad),
                 lambda i: base.why(i) if base.bad is not None and base.bad[i] else
                 f"{column} {_shown(text[i].as_py())} is not a number {what}; write a finite "
                 "number such as 3 or 2.5, or remove the row")


def _either(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> Optional[np.ndarray]:
  if a is None:
    return b if b is not None and b.any() else None
  if b is None:
    return a
  return a | b


def _to_string_list(values: pa.Array, rows: Rows, column: str, separator: str) -> _Result:
  """Multivalent: a list of non-empty strings per row; missing when there are none."""
  n = len(values)
  t = values.type
  bad = None
  why: Callable[[int], str] = lambda i: ""
  if pa.types.is_list(t) or pa.types.is_large_list(t):
    parents = pc.list_parent_indices(values).to_numpy(zero_copy_only=False)
    flat_rows = Rows(pa.table({}), rows.numbers, rows.path, rows.unit, rows.text, [])
    items = _to_string(pc.list_flatten(values), flat_rows, column)
    if items.bad is not None:
      bad = np.zeros(n, bool)
      bad[parents[items.bad]] = True
      first_bad = {}
      for k in np.flatnonzero(items.bad)[::-1]:
        first_bad[int(parents[k])] = int(k)
      why = lambda i: items.why(first_bad[i])
    items = items.values
  else:
    base = _to_string(values, rows, column)
    bad, why = base.bad, base.why
    lists = pc.split_pattern(base.values, separator)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    items = pc.utf8_trim_whitespace(pc.list_flatten(lists))
  keep = _present(items) & _mask(pc.greater(pc.utf8_length(items), 0))
  counts = np.bincount(parents[keep], minlength=n) if n else np.zeros(0, np.int64)
  offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
  result = pa.ListArray.from_arrays(pa.array(offsets), items.filter(pa.array(keep)),
                                    mask=pa.array(counts == 0))
  return _Result(result, bad, why)


# ---------------------------------------------------------------------------------------
# The time column.

# A zone after a time of day (after `_FRACTION` dropped the fraction): Z, +02, +0200, -02:00.
_ZONE = r"[0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_FRACTION = r"([0-9]{2}:[0-9]{2}:[0-9]{2})[.,][0-9]+"


def _iso8601_seconds(text: pa.Array) -> Tuple[pa.Array, np.ndarray]:
  """ISO 8601 times -> (int64 unix seconds, rows that are not ISO 8601 times)."""
  text = pc.replace_substring_regex(text, _FRACTION, r"\1")
  zoned = _mask(pc.match_substring_regex(text, _ZONE))
  seconds = np.zeros(len(text), np.int64)
  ok = np.zeros(len(text), bool)
  for has_zone, unit in ((True, pa.timestamp("s", tz="UTC")), (False, pa.timestamp("s"))):
    select = (zoned == has_zone) & _present(text)
    if not select.any():
      continue
    part = text.filter(pa.array(select))
    try:
      parsed = part.cast(unit).cast(_INT).to_numpy(zero_copy_only=False)
      good = np.ones(len(part), bool)
    except pa.ArrowInvalid:
      parsed = np.zeros(len(part), np.int64)
      good = np.zeros(len(part), bool)
      for k, value in enumerate(part.to_pylist()):
        try:
          parsed[k] = pa.array([value]).cast(unit).cast(_INT)[0].as_py()
          good[k] = True
        except pa.ArrowInvalid:
          pass
    seconds[select] = parsed
    ok[select] = good
  return pa.array(seconds, _INT, mask=~ok), _present(text) & ~ok


def _to_time(values: pa.Array, rows: Rows, column: str, time_format: str) -> _Result:
  t = values.type
  if pa.types.is_timestamp(t):
    return _Result(pc.floor_temporal(values, unit="second").cast(pa.timestamp(
        "s", tz=t.tz)).cast(_INT) if t.unit != "s" else values.cast(_INT))
  if pa.types.is_date(t):
    return _Result(pc.multiply(values.cast(pa.date32()).cast(pa.int32()).cast(_INT), 86_400))
  if time_format == "iso8601":
    base = _to_string(values, rows, column)
    seconds, bad = _iso8601_seconds(base.values)
    text = base.values
    return _Result(seconds, _either(base.bad, bad),
                   lambda i: base.why(i) if base.bad is not None and base.bad[i] else
                   f"{column} {_shown(text[i].as_py())} is not an ISO 8601 time (time.format: "
                   "iso8601), e.g. 2014-05-16T19:45:00Z or 2014-05-16 19:45:00; fix it, or "
                   "remove the row")
  divisor = 1000 if time_format == "unix_millis" else 1
  unit = "unix milliseconds" if divisor == 1000 else "unix seconds"
  what = f"({unit}, time.format: {time_format})"
  as_int = _to_int(values, rows, column, what)
  if as_int.bad is not None and not (pa.types.is_integer(t) or pa.types.is_floating(t)):
    # Exports write integers with a fraction (pandas: an int column with gaps is float).
    as_float = _to_float(values, rows, column, what)
    float_bad = as_float.bad if as_float.bad is not None else np.zeros(len(values), bool)
    rescued = as_int.bad & ~float_bad
    if rescued.any():
      floats = np.floor(np.nan_to_num(as_float.values.to_numpy(zero_copy_only=False)))
      ints = np.nan_to_num(as_int.values.to_numpy(zero_copy_only=False)).astype(np.int64)
      merged = np.where(rescued, floats.astype(np.int64), ints)
      still = as_int.bad & ~rescued
      valid = _present(as_int.values) | rescued
      as_int = _Result(pa.array(merged, _INT, mask=~valid), still if still.any() else None,
                       as_int.why)
  if divisor != 1:
    numbers = as_int.values.to_numpy(zero_copy_only=False)
    valid = _present(as_int.values)
    numbers = np.floor_divide(np.where(valid, numbers, 0).astype(np.int64), divisor)
    as_int.values = pa.array(numbers, _INT, mask=~valid)
  return as_int


# ---------------------------------------------------------------------------------------
# The label.


def _label_result(values: pa.Array, rows: Rows, label: spec_lib.Label) -> _Result:
  """The label as its type, bad where the rule cannot map it."""
  column = label.column
  what = f"(the label, type {label.type}: rule {label.rule})"
  if label.binary:
    text = _to_string(values, rows, column)
    lower = pc.utf8_lower(text.values)
    truthy = _mask(pc.is_in(lower, value_set=pa.array(list(_BINARY_TRUE))))
    falsy = _mask(pc.is_in(lower, value_set=pa.array(list(_BINARY_FALSE))))
    bad = _present(text.values) & ~(truthy | falsy)
    if text.bad is not None:
      bad &= ~text.bad
    if label.type == "int":
      out = pa.array(np.where(truthy, 1, 0), _INT, mask=~(truthy | falsy))
    else:
      out = _null_where(text.values, bad)
    shown = text.values
    return _Result(out, _either(text.bad, bad),
                   lambda i: text.why(i) if text.bad is not None and text.bad[i] else
                   f"{column} {_shown(shown[i].as_py())} is not 0/1 {what}: the label must be 0, "
                   "1, true or false; fix it, or remove the row")
  if label.type == "int":
    result = _to_int(values, rows, column, what)
  elif label.type == "float":
    result = _to_float(values, rows, column, what)
  else:
    result = _to_string(values, rows, column)
  if not label.negative_values:
    return result
  allowed = list(label.positive_values) + list(label.negative_values)
  if label.type == "string":
    known = pa.array(allowed, _STRING)
  else:
    try:
      known = pa.array([float(v) for v in allowed], _FLOAT).cast(
          _INT if label.type == "int" else _FLOAT, safe=False)
    except ValueError:
      raise DataError(f"dataset spec: label.positive_values/negative_values {allowed} must be "
                      f"numbers for a label of type {label.type}") from None
  unknown = _present(result.values) & ~_mask(pc.is_in(result.values, value_set=known))
  if result.bad is not None:
    unknown &= ~result.bad
  shown = result.values
  earlier = result.bad
  return _Result(_null_where(result.values, unknown), _either(earlier, unknown),
                 lambda i: result.why(i) if earlier is not None and earlier[i] else
                 f"{column} {_shown(shown[i].as_py())} is neither positive "
                 f"({', '.join(label.positive_values)}) nor negative "
                 f"({', '.join(label.negative_values)}); add it to label.positive_values or "
                 "label.negative_values in the spec, or remove the row")


def convert_column(column: RawColumn, values, rows: Rows,
                   spec: spec_lib.DatasetSpec) -> _Result:
  """One column of `rows` as raw column `column`."""
  values = _flat(values)
  if column.separator is None and (pa.types.is_list(values.type) or
                                   pa.types.is_large_list(values.type)):
    single = _single_values(values, column.name)
    inner = convert_column(column, single.values, rows, spec)
    bad = _either(single.bad, inner.bad)
    return _Result(inner.values, bad,
                   lambda i: single.why(i) if single.bad is not None and single.bad[i]
                   else inner.why(i))
  if column.role == "label":
    return _label_result(values, rows, spec.label)
  if column.role == "time":
    return _to_time(values, rows, column.name, spec.time.format)
  if column.separator is not None:
    return _to_string_list(values, rows, column.name, column.separator)
  what = f"(type {column.type})"
  if column.type == "int":
    return _to_int(values, rows, column.name, what)
  if column.type == "float":
    return _to_float(values, rows, column.name, what)
  return _to_string(values, rows, column.name)


# ---------------------------------------------------------------------------------------
# Side tables.


@dataclasses.dataclass
class SideData:
  """A side table loaded for the join: its keys and the raw columns it brings.

  Attributes:
    table: the spec's side table.
    path: the file read.
    keys: the key of each row (strings).
    columns: raw column -> its values per row, converted.
    numbers: per row, its line (text) or row (Parquet) number in `path`.
    unit: "line" or "row".
  """
  table: spec_lib.SideTable
  path: str
  keys: pa.Array
  columns: Dict[str, pa.Array]
  numbers: np.ndarray
  unit: str

  def where(self, index: int) -> str:
    return reader.where(self.path, self.unit, int(self.numbers[index]))


def _side_units(path: str, table: spec_lib.SideTable, columns: Sequence[str], fs):
  """The rows of a side table's file; DataError when it lacks one of `columns`."""
  if table.format == "parquet":
    units = reader.parquet_units(path, fs)
    have = reader.parquet_schema(path, fs).names
  else:
    layout = reader.text_layout(path, table.csv, fs)
    have = layout.columns
  missing = [c for c in columns if c not in have]
  if missing:
    raise DataError(f"{path}: no column {', '.join(map(repr, missing))} (the side table "
                    f"joined on {table.key}); it has {', '.join(have)}. Fix the spec's "
                    "side table or the file")
  if table.format == "parquet":
    for unit in units:
      yield from reader.read_parquet_unit(unit, columns, fs)
    return
  for block in reader.text_blocks(layout, fs):
    yield reader.read_text_block(layout, block, columns, fs)


def load_side_table(spec: spec_lib.DatasetSpec, index: int, path: str,
                    fs=reader.LOCAL) -> SideData:
  """Reads side table `index` of `spec` from `path`, keyed, its columns converted.

  Raises:
    DataError: the file is missing or empty; a row is malformed, has no key, or has a
      value of the wrong type (naming file, line and column); a key appears twice (naming
      both lines).
  """
  table = spec.source.side_tables[index]
  wanted = [c for c in raw_columns(spec) if c.side == index]
  read = [table.key] + [c.name for c in wanted]
  keys: List[pa.Array] = []
  columns: Dict[str, List[pa.Array]] = {c.name: [] for c in wanted}
  numbers: List[np.ndarray] = []
  unit = "row" if table.format == "parquet" else "line"
  for rows in _side_units(path, table, read, fs):
    if rows.bad:
      raise DataError(rows.bad[0].reason)
    key = _to_string(_flat(rows.table.column(table.key)), rows, table.key)
    absent = ~_present(key.values)
    if key.bad is not None or absent.any():
      i = int(np.flatnonzero(absent | (key.bad if key.bad is not None else False))[0])
      problem = key.why(i) if key.bad is not None and key.bad[i] else \
          f"key {table.key} is missing"
      raise DataError(f"{rows.where(i)}: {problem}; every row of a side table needs its key")
    for column in wanted:
      result = convert_column(column, rows.table.column(column.name), rows, spec)
      if result.bad is not None:
        i = int(np.flatnonzero(result.bad)[0])
        raise DataError(f"{rows.where(i)}: {result.why(i)}")
      columns[column.name].append(result.values)
    keys.append(key.values)
    numbers.append(rows.numbers)
  if not keys or not sum(len(k) for k in keys):
    raise DataError(f"{path}: no rows; the file is empty")
  all_keys = pa.concat_arrays(keys)
  codes = all_keys.dictionary_encode().indices.to_numpy(zero_copy_only=False)
  if len(np.unique(codes)) != len(codes):
    order = np.argsort(codes, kind="stable")
    repeat = np.flatnonzero(codes[order][1:] == codes[order][:-1])
    first, second = sorted((int(order[repeat[0]]), int(order[repeat[0] + 1])))
    lines = np.concatenate(numbers)
    raise DataError(f"{reader.where(path, unit, int(lines[second]))}: key {table.key} "
                    f"{all_keys[second].as_py()!r} appears twice, also at "
                    f"{reader.where(path, unit, int(lines[first]))}; keep one of the two rows")
  return SideData(table, path, all_keys,
                  {name: pa.concat_arrays(parts) for name, parts in columns.items()},
                  np.concatenate(numbers), unit)


# ---------------------------------------------------------------------------------------
# Rows -> raw columns.


@dataclasses.dataclass
class Converted:
  """The result of converting one unit of rows.

  Attributes:
    table: the raw columns (spec order) of the rows that become examples; null where a
      value is missing.
    numbers: where each of those rows is (line, row or record number).
    bad: the bad rows, in file order.
    dropped: rows without a label dropped under `label.missing: drop`.
  """
  table: pa.Table
  numbers: np.ndarray
  bad: List[BadRow]
  dropped: int


class Converter:
  """Converts units of rows of one dataset (its side tables loaded once)."""

  def __init__(self, spec: spec_lib.DatasetSpec, sides: Sequence[SideData] = (),
               bounds=None):
    """Args:
      spec: the dataset spec.
      sides: the side tables, in spec order (`load_side_table`).
      bounds: a `timestamps.TimestampBounds` for the time column, or None.
    """
    self.spec = spec
    self.columns = raw_columns(spec)
    self.sides = list(sides)
    if len(self.sides) != len(spec.source.side_tables):
      raise ValueError(f"{len(spec.source.side_tables)} side tables declared, "
                       f"{len(self.sides)} loaded")
    self.bounds = bounds

  @property
  def source_columns(self) -> List[str]:
    """The columns read from the source files: raw columns not brought by a side table,
    and the side tables' keys."""
    names = [c.name for c in self.columns if c.side is None]
    for table in self.spec.source.side_tables:
      if table.key not in names:
        names.append(table.key)
    return names

  def _missing_how(self, rows: Rows) -> str:
    if rows.unit == "record":
      return "absent from the tf.Example"
    if rows.unit == "row":
      return "null"
    if tuple(rows.null_values) == ("",):
      return "an empty field"
    return f"empty or one of the null values {list(rows.null_values)}"

  def convert(self, rows: Rows) -> Converted:
    """The raw columns of `rows`, and its bad and dropped rows."""
    n = rows.num_rows
    checks: List[Tuple[np.ndarray, Callable[[int], str]]] = []
    out: Dict[str, pa.Array] = {}
    table = rows.table
    for column in self.columns:
      if column.side is not None:
        continue
      values = table.column(column.name) if column.name in table.column_names else \
          pa.nulls(n, _STRING)
      result = convert_column(column, values, rows, self.spec)
      if result.bad is not None:
        checks.append((result.bad, result.why))
      out[column.name] = result.values
    for i, side in enumerate(self.sides):
      key_name = side.table.key
      key_values = out.get(key_name)
      if key_values is None or key_values.type != _STRING:
        key = _to_string(_flat(table.column(key_name)), rows, key_name)
        key_values = key.values
      index = pc.index_in(key_values, value_set=side.keys)
      unknown = _present(key_values) & ~_present(index)
      shown = key_values
      checks.append((unknown, lambda r, shown=shown, side=side, key_name=key_name: (
          f"{key_name} {_shown(shown[r].as_py())} is not in {side.table.path} (the side "
          f"table joined on {key_name}); add a row for it there, or remove this row")))
      no_key = ~_present(key_values)
      if no_key.any() and not any(c.name == key_name and c.required_by for c in self.columns):
        checks.append((no_key, lambda r, side=side, key_name=key_name, rows=rows: (
            f"{key_name} is missing ({self._missing_how(rows)}): the row cannot be joined "
            f"with {side.table.path}; fill it in, or remove the row")))
      for name, values in side.columns.items():
        out[name] = values.take(index)
    for column in self.columns:
      values = out[column.name]
      absent = ~_present(values)
      if not absent.any():
        continue
      if column.role == "label":
        if self.spec.label.missing == "drop":
          continue
        checks.append((absent, lambda r, c=column.name: (
            f"{c} is missing ({self._missing_how(rows)}); every row needs a label "
            "(label.missing: quarantine): fill it in, or declare label.missing: drop to drop "
            "such rows")))
      elif column.role == "time":
        checks.append((absent, lambda r, c=column.name: (
            f"{c} is missing ({self._missing_how(rows)}); every row needs its time "
            "(time.column): fill it in, or remove the row")))
      elif column.required_by:
        checks.append((absent, lambda r, c=column: (
            f"{c.name} is missing ({self._missing_how(rows)}"
            f"{self._side_note(c, out, r)}); feature {c.required_by} declares missing: error: "
            "fill it in, or declare missing: token (a value of its own) or "
            "missing: {default: VALUE}")))
    if self.spec.time and self.bounds is not None:
      name = self.spec.time.column
      seconds = out[name].to_numpy(zero_copy_only=False)
      present = _present(out[name])
      low, high = self.bounds.range
      outside = np.zeros(n, bool)
      if present.any():
        numbers = np.where(present, seconds, 0).astype(np.int64)
        if high is not None:
          outside |= present & (numbers > high)
        if low is not None:
          outside |= present & (numbers < low)
      checks.append((outside, lambda r, name=name, numbers=out[name]: self.bounds.problem(
          name, numbers[r].as_py())))
    bad_rows = list(rows.bad)
    failed = np.zeros(n, bool)
    for mask, why in checks:
      new = mask & ~failed
      for r in np.flatnonzero(new):
        bad_rows.append(BadRow(rows.path, int(rows.numbers[r]),
                               f"{rows.where(int(r))}: {why(int(r))}", rows.text(int(r))))
      failed |= new
    dropped = 0
    label = out[self.spec.label.column]
    if self.spec.label.missing == "drop":
      missing_label = ~_present(label) & ~failed
      dropped = int(missing_label.sum())
      failed |= missing_label
    bad_rows.sort(key=lambda b: b.line)
    result = pa.table({c.name: out[c.name] for c in self.columns})
    numbers = rows.numbers
    if failed.any():
      keep = pa.array(~failed)
      result = result.filter(keep)
      numbers = numbers[~failed]
    return Converted(result, numbers, bad_rows, dropped)

  def _side_note(self, column: RawColumn, out: Dict[str, pa.Array], row: int) -> str:
    if column.side is None:
      return ""
    side = self.sides[column.side]
    key = side.table.key
    return f" in {side.table.path} for {key} {_shown(out[key][row].as_py() if key in out else None)}"


def earliest_time(spec: spec_lib.DatasetSpec, rows: Rows) -> Optional[int]:
  """The smallest valid time of `rows` (bad values are skipped: they are their own span's
  problem, reported when that span is ingested)."""
  column = next(c for c in raw_columns(spec) if c.role == "time")
  if column.name not in rows.table.column_names:
    return None
  result = convert_column(column, rows.table.column(column.name), rows, spec)
  low = pc.min(result.values).as_py()
  return None if low is None else int(low)

