"""The typed dataset spec and its strict loader (JSON or YAML).

A spec declares, once, what the product needs to know about a dataset:

  * `source`: the interactions file (CSV with or without a header, Parquet, or TFRecord of
    `tf.Example`), given as a file, a glob or a span layout (`span-{SPAN}/events.csv`), and
    zero or more side tables (CSV or Parquet) joined onto it by a key column;
  * `label`: a column and the rule that makes it 0/1, and what happens to rows without one;
  * `time` (optional): a column of unix seconds, unix milliseconds or ISO 8601 times;
  * `features`: each with a kind (`id`, `categorical`, `numeric`, `multivalent`), an optional
    role (`user`, `item`, `context`), and a treatment of missing values;
  * `slices`: features the Evaluator reports its metrics by;
  * `schema` (optional): a curated raw schema (`schema.pbtxt`); without one the pipeline
    derives the raw schema from the spec.

Loading is strict: an unknown key, a wrong type or an impossible combination raises
`SpecError` naming the key path (`features.genres.kind`) and what to write instead. Nothing
here reads the data files (`dataspec.files` does) or imports TensorFlow.

Names: a feature's `column` is its raw column (the name in the raw `tf.Example`s and the raw
schema); the feature's own name is its name after Transform (what the model, the slices and
the salts of the embeddings use). They are the same unless `column` says otherwise.
"""

import dataclasses
import hashlib
import json
import math
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

KINDS = ("id", "categorical", "numeric", "multivalent")
ROLES = ("user", "item", "context")
FORMATS = ("csv", "parquet", "tfrecord")
SIDE_TABLE_FORMATS = ("csv", "parquet")
TIME_FORMATS = ("unix_seconds", "unix_millis", "iso8601")
LABEL_MISSING = ("quarantine", "drop")
NUMERIC_TYPES = ("int", "float")
LABEL_TYPES = ("int", "float", "string")
MISSING_POLICIES = ("token", "error")
COMPARISONS = (">=", ">", "<=", "<", "==", "!=")
DEFAULT_QUANTILES = 10
# The value a missing id, categorical or multivalent value becomes (missing: token), and the
# bucket of a missing numeric value: a category of its own.
MISSING_TOKEN = "__missing__"
# Names Transform gives its own outputs; no feature may take them.
LABEL_FEATURE = "label"
ADMITTED_SUFFIX = "_admitted"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_PACKAGE_PREFIX = "package:"


class SpecError(ValueError):
  """A dataset spec is invalid; the message names the spec, the key and what to write."""


# ---------------------------------------------------------------------------------------
# The spec's parts.


@dataclasses.dataclass(frozen=True)
class CsvOptions:
  """How a delimited text file is read.

  Attributes:
    delimiter: one character (`,`, a tab, `|`, ...).
    header: the first line names the columns.
    columns: the column names, in file order, when there is no header (required then; not
      allowed with a header).
    encoding: the text encoding (`utf-8`, `latin-1`, ...).
    quoting: `"` quotes a field (RFC 4180); false: a quote is ordinary data.
    null_values: field values that mean "missing" (default: the empty field).
  """
  delimiter: str = ","
  header: bool = True
  columns: Tuple[str, ...] = ()
  encoding: str = "utf-8"
  quoting: bool = True
  null_values: Tuple[str, ...] = ("",)


@dataclasses.dataclass(frozen=True)
class SideTable:
  """A table joined onto every row of the source by `key` (the same column name in both).

  `columns` are the columns it brings (besides the key): attributes of the entity the key
  names (a user's age, an item's category). A row whose key is not in the table is a bad
  row (file:line error, or quarantined under `max_bad_rows`); a key that appears twice in
  the table is an error naming both lines.
  """
  path: str
  key: str
  columns: Tuple[str, ...] = ()
  format: str = "csv"
  csv: CsvOptions = CsvOptions()


@dataclasses.dataclass(frozen=True)
class Source:
  """Where the rows come from.

  Attributes:
    path: the interactions file, relative to the data directory: a file, a glob
      (`events/*.parquet`) or a span layout with `{SPAN}` (`span-{SPAN}/events.csv`, one
      directory per span as `uet spans` writes them; each run ingests the newest span).
    format: csv, parquet or tfrecord (of `tf.Example`, optionally gzipped).
    csv: how CSV files are read.
    side_tables: tables joined onto each row by key.
    data_dir: the data directory when the command line gives none: absolute, relative to
      the spec file, or `package:<python package>/<path>` inside an installed package.
  """
  path: str
  format: str = "csv"
  csv: CsvOptions = CsvOptions()
  side_tables: Tuple[SideTable, ...] = ()
  data_dir: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Label:
  """The label column and the rule that makes it 0/1.

  Exactly one rule: `positive_if` (a comparison with a number, e.g. `>= 3`),
  `positive_values` (these values are 1; with `negative_values` too, any other value is a
  bad row, else any other value is 0), or `binary` (the values are already 0/1, also
  `true`/`false`). A value the rule cannot map (a word under `positive_if`, a 2 under
  `binary`) is a bad row.

  Attributes:
    column: the raw column.
    type: the raw value's type in the examples: int, float or string.
    positive_if: (comparison, threshold).
    positive_values: values that are positive.
    negative_values: values that are negative.
    binary: the values are 0/1.
    missing: a row without a label is `quarantine`d (a bad row, counted against
      `max_bad_rows`) or `drop`ped (counted in the report).
  """
  column: str
  type: str = "float"
  positive_if: Optional[Tuple[str, float]] = None
  positive_values: Tuple[str, ...] = ()
  negative_values: Tuple[str, ...] = ()
  binary: bool = False
  missing: str = "quarantine"

  @property
  def rule(self) -> str:
    """The rule in words, for messages and the report."""
    if self.positive_if:
      op, value = self.positive_if
      return f"{self.column} {op} {_number_text(value)}"
    if self.binary:
      return f"{self.column} is 0/1"
    text = f"{self.column} in {list(self.positive_values)}"
    if self.negative_values:
      text += f" (negative: {list(self.negative_values)})"
    return text


@dataclasses.dataclass(frozen=True)
class Time:
  """The event-time column: spans by time, the replay, the warm-start window and the
  timestamp bounds use it. Ingestion converts it to int64 unix seconds."""
  column: str
  format: str = "unix_seconds"


@dataclasses.dataclass(frozen=True)
class Feature:
  """One model feature.

  Attributes:
    name: the feature's name after Transform (model input, slice name, hash salt).
    kind: `id` (an open vocabulary: users, items, devices), `categorical` (a small closed
      domain), `numeric` (bucketized in Transform, by quantiles or given lower bounds,
      then a category), `multivalent` (several values per row, joined by `separator` in
      text files or a list column in Parquet; their embeddings are averaged).
    column: the raw column it is computed from.
    role: `user`, `item` or `context` (None: unspecified). The budget rule gives an item's
      ids more of the table.
    missing: what a missing value becomes: `token` (a value of its own, `MISSING_TOKEN`;
      for a numeric feature, a bucket of its own), `error` (the row is a bad row), or a
      declared default value (`default`).
    default: the value that replaces a missing one when `missing` is "default" (a number
      for numeric features, else a string).
    type: the raw value's type: string for id, categorical and multivalent features; int or
      float for numeric ones.
    quantiles: numeric: the number of quantile buckets Transform computes from the
      training window (when `lower_bounds` is not given).
    lower_bounds: numeric: fixed buckets, each named by its lower bound; a value below the
      first bound falls in the first bucket.
    separator: multivalent, in text files: what joins the values.
    domain_size: how many values the feature can take (the budget rule sizes its chunks by
      it); None: from the schema's domain, from the buckets of a numeric feature, or open.
    hash_weight: the baseline (one hashed table per feature) gives this feature a table in
      this proportion of the budget; None: the default split (`trainer.config`).
    attribute_of: derived, not written in the spec: the key feature of the side table
      this feature's column comes from (the entity it describes), else None.
  """
  name: str
  kind: str
  column: str = ""
  role: Optional[str] = None
  missing: str = "token"
  default: Optional[Union[str, float]] = None
  type: str = "string"
  quantiles: Optional[int] = None
  lower_bounds: Tuple[float, ...] = ()
  separator: str = "|"
  domain_size: Optional[int] = None
  hash_weight: Optional[float] = None
  attribute_of: Optional[str] = None

  @property
  def num_buckets(self) -> Optional[int]:
    """Numeric features: the number of buckets, without the missing bucket."""
    if self.kind != "numeric":
      return None
    return len(self.lower_bounds) if self.lower_bounds else self.quantiles

  @property
  def bucket_names(self) -> Tuple[str, ...]:
    """Numeric features with `lower_bounds`: each bucket's value after Transform (its lower
    bound, written as an integer where it is one: "18", "2.5")."""
    return tuple(_number_text(b) for b in self.lower_bounds)

  @property
  def closed_domain_size(self) -> Optional[int]:
    """How many distinct values the feature takes after Transform, if bounded.

    Numeric: its buckets (plus the missing bucket under `missing: token`); categorical and
    multivalent: `domain_size` (set from the schema at load when the spec gives none); id
    features are open (None).
    """
    if self.kind == "id":
      return None
    if self.kind == "numeric":
      return self.num_buckets + (1 if self.missing == "token" else 0)
    return self.domain_size


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A whole dataset declaration; see the module docstring.

  Attributes:
    name: a short name (letters, digits, `_`, `-`); the pipeline is `uet-<name>`.
    source: where the rows come from.
    label: the label rule.
    features: the model features, in model order.
    time: the event-time column, if any.
    slices: features the Evaluator reports by (besides overall).
    schema: the curated raw schema file (absolute path), or None (derived from the spec).
    description: free text for people.
    origin: the file the spec was loaded from ("" when built in code), for messages.
  """
  name: str
  source: Source
  label: Label
  features: Tuple[Feature, ...]
  time: Optional[Time] = None
  slices: Tuple[str, ...] = ()
  schema: Optional[str] = None
  description: str = ""
  origin: str = ""

  @property
  def pipeline_name(self) -> str:
    """The TFX pipeline name (and ML Metadata context) of runs on this dataset."""
    return f"uet-{self.name}"

  @property
  def feature_names(self) -> Tuple[str, ...]:
    """The model features, in model order."""
    return tuple(f.name for f in self.features)

  def feature(self, name: str) -> Feature:
    """The feature called `name` (KeyError naming the features otherwise)."""
    for f in self.features:
      if f.name == name:
        return f
    raise KeyError(f"no feature {name!r}; the features are {list(self.feature_names)}")

  def features_of_kind(self, *kinds: str) -> Tuple[Feature, ...]:
    return tuple(f for f in self.features if f.kind in kinds)

  @property
  def id_features(self) -> Tuple[str, ...]:
    """The open-vocabulary features (kind `id`): what the admission filter covers."""
    return tuple(f.name for f in self.features_of_kind("id"))

  @property
  def raw_columns(self) -> Dict[str, str]:
    """Every raw column the examples carry -> its type (string, int or float), in order:
    the features' columns, the label, the time."""
    columns: Dict[str, str] = {}
    for f in self.features:
      columns.setdefault(f.column, f.type)
    columns[self.label.column] = self.label.type
    if self.time:
      columns[self.time.column] = "int"
    return columns

  @property
  def serving_columns(self) -> Dict[str, str]:
    """The raw columns of a serving request: every raw column but the label."""
    return {c: t for c, t in self.raw_columns.items() if c != self.label.column}

  def to_dict(self) -> Dict[str, Any]:
    """The spec as plain JSON values; `from_dict(to_dict())` gives the same spec."""
    return _to_plain(self)

  def to_json(self) -> str:
    """Canonical JSON (sorted keys) of what the spec declares: what travels in
    `custom_config` and in a compiled pipeline, and so is part of the components' cache keys.

    Where the spec was read on this machine is left out (`origin`, the curated schema's
    file path `schema`, `source.data_dir`): the same spec gives the same JSON from any
    checkout or machine. The components never read those paths: the data directory reaches
    ExampleGen as its `input_base`, and the curated schema's text reaches SchemaGen as its
    own property (`PipelineConfig.curated_schema`); the domain sizes taken from it are
    already in the features. `from_json(to_json())` is the spec with those three unset.
    """
    d = self.to_dict()
    d["origin"] = ""
    d["schema"] = None
    d["source"]["data_dir"] = None
    return json.dumps(d, sort_keys=True, separators=(",", ":"))

  @property
  def fingerprint(self) -> str:
    """A hash of the spec's content and its curated schema's text, not of where either was
    loaded from."""
    schema_bytes = b""
    if self.schema and os.path.isfile(self.schema):
      with open(self.schema, "rb") as f:
        schema_bytes = f.read()
    return hashlib.sha256(self.to_json().encode("utf-8") + b"\0" + schema_bytes).hexdigest()[:16]

  def replace(self, **changes: Any) -> "DatasetSpec":
    return dataclasses.replace(self, **changes)


def _number_text(value: float) -> str:
  return str(int(value)) if float(value).is_integer() else repr(float(value))


def _to_plain(value: Any) -> Any:
  if dataclasses.is_dataclass(value):
    return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
  if isinstance(value, (tuple, list)):
    return [_to_plain(v) for v in value]
  return value


def from_dict(d: Mapping[str, Any]) -> DatasetSpec:
  """Rebuilds a spec from `DatasetSpec.to_dict()` (no validation: it was validated once)."""
  source = dict(d["source"])
  source["csv"] = _csv_from_plain(source["csv"])
  source["side_tables"] = tuple(
      SideTable(**{**t, "csv": _csv_from_plain(t["csv"]), "columns": tuple(t["columns"])})
      for t in source["side_tables"])
  label = dict(d["label"])
  if label.get("positive_if") is not None:
    label["positive_if"] = (label["positive_if"][0], float(label["positive_if"][1]))
  for key in ("positive_values", "negative_values"):
    label[key] = tuple(label[key])
  features = tuple(Feature(**{**f, "lower_bounds": tuple(f["lower_bounds"])})
                   for f in d["features"])
  return DatasetSpec(
      name=d["name"], source=Source(**source), label=Label(**label), features=features,
      time=Time(**d["time"]) if d.get("time") else None, slices=tuple(d["slices"]),
      schema=d.get("schema"), description=d.get("description", ""),
      origin=d.get("origin", ""))


def _csv_from_plain(d: Mapping[str, Any]) -> CsvOptions:
  return CsvOptions(**{**d, "columns": tuple(d["columns"]),
                       "null_values": tuple(d["null_values"])})


def from_json(text: str) -> DatasetSpec:
  """`from_dict` of `DatasetSpec.to_json()` (the spec as it travels in `custom_config`)."""
  return from_dict(json.loads(text))


# ---------------------------------------------------------------------------------------
# Strict parsing of a user's spec.


class _Section:
  """One mapping of the spec being parsed: remembers its key path and the keys it used."""

  def __init__(self, value: Any, path: str, origin: str):
    self.path = path
    self.origin = origin
    if not isinstance(value, Mapping):
      raise self.error(f"expected a mapping (key: value lines), got {_kind(value)}",
                       key=None)
    self.value = dict(value)
    self._allowed: List[str] = []

  def where(self, key: Optional[str]) -> str:
    return ".".join(p for p in (self.path, key) if p) or "<top level>"

  def error(self, message: str, key: Optional[str] = None) -> SpecError:
    origin = f"dataset spec {self.origin}: " if self.origin else "dataset spec: "
    return SpecError(f"{origin}{self.where(key)}: {message}")

  def get(self, key: str, default: Any = None, required: bool = False) -> Any:
    self._allowed.append(key)
    if key not in self.value:
      if required:
        raise self.error("missing; this key is required", key)
      return default
    return self.value[key]

  def string(self, key: str, default: Optional[str] = None, required: bool = False,
             choices: Optional[Sequence[str]] = None) -> Optional[str]:
    value = self.get(key, default, required)
    if value is None:
      return None
    if not isinstance(value, str):
      raise self.error(f"expected a string, got {_kind(value)} {value!r}", key)
    if choices is not None and value not in choices:
      raise self.error(f"{value!r} is not one of {', '.join(choices)}", key)
    return value

  def boolean(self, key: str, default: bool) -> bool:
    value = self.get(key, default)
    if not isinstance(value, bool):
      raise self.error(f"expected true or false, got {value!r}", key)
    return value

  def integer(self, key: str, default: Optional[int] = None, minimum: int = 1) -> Optional[int]:
    value = self.get(key, default)
    if value is None:
      return None
    if isinstance(value, bool) or not isinstance(value, int):
      raise self.error(f"expected a whole number, got {value!r}", key)
    if value < minimum:
      raise self.error(f"must be at least {minimum}, got {value}", key)
    return value

  def number(self, key: str, default: Optional[float] = None,
             positive: bool = False) -> Optional[float]:
    value = self.get(key, default)
    if value is None:
      return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
      raise self.error(f"expected a number, got {value!r}", key)
    if positive and value <= 0:
      raise self.error(f"must be greater than 0, got {value}", key)
    return float(value)

  def strings(self, key: str, default: Sequence[str] = ()) -> Tuple[str, ...]:
    value = self.get(key, list(default))
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
      raise self.error(f"expected a list of strings, got {_kind(value)} {value!r}", key)
    out = []
    for i, item in enumerate(value):
      if isinstance(item, bool) or not isinstance(item, (str, int, float)):
        raise self.error(f"item {i} ({item!r}) is not a string", key)
      out.append(item if isinstance(item, str) else _number_text(item))
    return tuple(out)

  def section(self, key: str, required: bool = False) -> Optional["_Section"]:
    value = self.get(key, None, required)
    if value is None:
      return None
    return _Section(value, self.where(key), self.origin)

  def finish(self) -> None:
    """Rejects the keys nobody asked for (a typo never falls back to a default)."""
    unknown = [k for k in self.value if k not in self._allowed]
    if unknown:
      import difflib  # pylint: disable=g-import-not-at-top
      close = difflib.get_close_matches(str(unknown[0]), self._allowed, n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise self.error(
          f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
          f"{hint}; the keys here are {', '.join(self._allowed)}", key=None)


def _kind(value: Any) -> str:
  return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false",
          int: "a number", float: "a number", type(None): "nothing"}.get(type(value),
                                                                          type(value).__name__)


def _name(section: _Section, key: str, value: str, what: str) -> str:
  if not _NAME.match(value):
    raise section.error(f"{what} {value!r}: use letters, digits, '_', '.' or '-', starting "
                        "with a letter or '_'", key)
  return value


def _csv_options(section: Optional[_Section]) -> CsvOptions:
  if section is None:
    return CsvOptions()
  delimiter = section.string("delimiter", ",")
  if len(delimiter) != 1:
    raise section.error(f"must be one character (write a tab as \"\\t\"), got {delimiter!r}",
                        "delimiter")
  header = section.boolean("header", True)
  columns = section.strings("columns")
  if header and columns:
    raise section.error("columns are read from the header line; give columns only with "
                        "header: false", "columns")
  if not header and not columns:
    raise section.error("a file without a header needs its column names: columns: [a, b, ...]",
                        "columns")
  if len(set(columns)) != len(columns):
    raise section.error(f"names a column twice: {list(columns)}", "columns")
  encoding = section.string("encoding", "utf-8")
  try:
    "".encode(encoding)
  except LookupError:
    raise section.error(f"unknown encoding {encoding!r}; e.g. utf-8, latin-1, cp1252",
                        "encoding") from None
  options = CsvOptions(delimiter=delimiter, header=header, columns=columns, encoding=encoding,
                       quoting=section.boolean("quoting", True),
                       null_values=section.strings("null_values", ("",)))
  section.finish()
  return options


def _side_table(section: _Section) -> SideTable:
  fmt = section.string("format", "csv", choices=SIDE_TABLE_FORMATS)
  csv_section = section.section("csv")
  if csv_section is not None and fmt != "csv":
    raise section.error(f"csv options apply to format csv, not {fmt}", "csv")
  csv = _csv_options(csv_section)
  key = section.string("key", required=True)
  columns = section.strings("columns")
  if not columns and fmt == "csv" and not csv.header:
    columns = tuple(c for c in csv.columns if c != key)
  if not columns:
    raise section.error("name the columns this table brings: columns: [age, gender, ...] "
                        "(without the key)", "columns")
  if key in columns:
    raise section.error(f"lists the key {key!r}; columns are what the table adds to a row",
                        "columns")
  if fmt == "csv" and not csv.header:
    unknown = [c for c in columns + (key,) if c not in csv.columns]
    if unknown:
      raise section.error(f"{unknown} are not among csv.columns {list(csv.columns)}",
                          "columns")
  table = SideTable(path=section.string("path", required=True), key=key, columns=columns,
                    format=fmt, csv=csv)
  section.finish()
  return table


def _source(section: _Section) -> Source:
  fmt = section.string("format", "csv", choices=FORMATS)
  path = section.string("path", required=True)
  if path.count("{SPAN}") > 1:
    raise section.error("{SPAN} may appear once", "path")
  csv_section = section.section("csv")
  if csv_section is not None and fmt != "csv":
    raise section.error(f"csv options apply to format csv, not {fmt}", "csv")
  tables = section.get("side_tables", [])
  if not isinstance(tables, list):
    raise section.error(f"expected a list of tables, got {_kind(tables)}", "side_tables")
  if tables and fmt == "tfrecord":
    raise section.error("side tables are joined onto CSV or Parquet rows; join them before "
                        "writing the tf.Examples", "side_tables")
  side_tables = tuple(_side_table(_Section(t, section.where(f"side_tables[{i}]"),
                                           section.origin))
                      for i, t in enumerate(tables))
  source = Source(path=path, format=fmt, csv=_csv_options(csv_section),
                  side_tables=side_tables, data_dir=section.string("data_dir"))
  section.finish()
  return source


_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")


def _label(section: _Section) -> Label:
  column = section.string("column", required=True)
  positive_if = section.get("positive_if")
  values = section.get("positive_values")
  negatives = section.get("negative_values")
  binary = section.boolean("binary", False)
  given = [k for k, v in (("positive_if", positive_if), ("positive_values", values),
                          ("binary", binary or None)) if v is not None]
  if len(given) != 1:
    raise section.error(
        "give exactly one rule: positive_if: \">= 3.5\" (a comparison with a number), "
        "positive_values: [click, purchase] (these values are 1), or binary: true (the "
        f"values are already 0/1); found {given or 'none'}", key=None)
  rule: Optional[Tuple[str, float]] = None
  if positive_if is not None:
    text = positive_if if isinstance(positive_if, str) else None
    match = _COMPARISON.match(text or "")
    threshold = None
    if match:
      try:
        threshold = float(match.group(2))
      except ValueError:
        threshold = None
    if threshold is None or not math.isfinite(threshold):
      raise section.error(f"{positive_if!r} is not a comparison with a number; write e.g. "
                          f"\">= 3.5\" (one of {', '.join(COMPARISONS)}, then a number)",
                          "positive_if")
    rule = (match.group(1), threshold)
  positive = section.strings("positive_values") if values is not None else ()
  negative = section.strings("negative_values") if negatives is not None else ()
  if negative and not positive:
    raise section.error("negative_values goes with positive_values", "negative_values")
  if set(positive) & set(negative):
    raise section.error(f"{sorted(set(positive) & set(negative))} are both positive and "
                        "negative", "negative_values")
  default_type = "string" if positive else ("int" if binary else "float")
  label_type = section.string("type", default_type, choices=LABEL_TYPES)
  if rule and label_type == "string":
    raise section.error("a comparison needs a numeric label: type int or float", "type")
  if binary and label_type == "float":
    raise section.error("binary labels are int 0/1 (or true/false): type int or string",
                        "type")
  label = Label(column=column, type=label_type, positive_if=rule, positive_values=positive,
                negative_values=negative, binary=binary,
                missing=section.string("missing", "quarantine", choices=LABEL_MISSING))
  section.finish()
  return label


def _time(section: _Section) -> Time:
  time = Time(column=section.string("column", required=True),
              format=section.string("format", "unix_seconds", choices=TIME_FORMATS))
  section.finish()
  return time


def _feature(name: str, section: _Section) -> Feature:
  kind = section.string("kind", required=True, choices=KINDS)
  column = section.string("column", name)
  role = section.string("role", None, choices=ROLES)
  missing_value = section.get("missing", "token")
  default = None
  if isinstance(missing_value, Mapping):
    sub = _Section(missing_value, section.where("missing"), section.origin)
    default = sub.get("default", required=True)
    sub.finish()
    missing = "default"
  elif missing_value in MISSING_POLICIES:
    missing = missing_value
  else:
    raise section.error(f"{missing_value!r} is not a treatment of missing values; write "
                        "token (a value of its own), error (a bad row), or {default: VALUE}",
                        "missing")
  raw_type = "string"
  quantiles = None
  lower_bounds: Tuple[float, ...] = ()
  if kind == "numeric":
    raw_type = section.string("type", "float", choices=NUMERIC_TYPES)
    bounds = section.get("lower_bounds")
    quantiles = section.integer("quantiles", None, minimum=2)
    if bounds is not None and quantiles is not None:
      raise section.error("give quantiles (computed from the data) or lower_bounds (fixed), "
                          "not both", "quantiles")
    if bounds is not None:
      if (not isinstance(bounds, list) or len(bounds) < 2 or
          any(isinstance(b, bool) or not isinstance(b, (int, float)) for b in bounds)):
        raise section.error(f"expected a list of at least two numbers, got {bounds!r}",
                            "lower_bounds")
      if any(b >= c for b, c in zip(bounds, bounds[1:])):
        raise section.error(f"must increase strictly, got {bounds}", "lower_bounds")
      lower_bounds = tuple(float(b) for b in bounds)
    elif quantiles is None:
      quantiles = DEFAULT_QUANTILES
    if missing == "default" and (isinstance(default, bool) or
                                 not isinstance(default, (int, float))):
      raise section.error(f"a numeric feature's default must be a number, got {default!r}",
                          "missing.default")
  else:
    for key in ("type", "quantiles", "lower_bounds"):
      if key in section.value:
        raise section.error(f"applies to numeric features only (this one is {kind})", key)
    if missing == "default":
      if isinstance(default, bool) or not isinstance(default, (str, int, float)):
        raise section.error(f"expected a string, got {default!r}", "missing.default")
      default = default if isinstance(default, str) else _number_text(default)
  separator = "|"
  if kind == "multivalent":
    separator = section.string("separator", "|")
    if not separator:
      raise section.error("must not be empty", "separator")
  elif "separator" in section.value:
    raise section.error(f"applies to multivalent features only (this one is {kind})",
                        "separator")
  domain_size = section.integer("domain_size", None, minimum=1)
  if domain_size is not None and kind in ("id", "numeric"):
    raise section.error(
        "id features are open vocabularies (use kind categorical for a closed domain)"
        if kind == "id" else "a numeric feature's domain is its buckets", "domain_size")
  feature = Feature(name=name, kind=kind, column=column, role=role, missing=missing,
                    default=default, type=raw_type, quantiles=quantiles,
                    lower_bounds=lower_bounds, separator=separator, domain_size=domain_size,
                    hash_weight=section.number("hash_weight", None, positive=True))
  section.finish()
  return feature


def parse(values: Mapping[str, Any], origin: str = "",
          base_dir: Optional[str] = None) -> DatasetSpec:
  """Builds and checks a spec from parsed JSON/YAML.

  Args:
    values: the parsed file.
    origin: where it came from (for messages).
    base_dir: what relative `schema` and `source.data_dir` paths are relative to (the spec
      file's directory); None: the current directory.

  Returns:
    The spec. Domain sizes of categorical features still come from the schema: `load`
    fills them in (`with_schema_domains`).

  Raises:
    SpecError: naming the key and what to write instead.
  """
  top = _Section(values, "", origin)
  name = _name(top, "name", top.string("name", required=True), "name")
  description = top.string("description", "")
  source = _source(top.section("source", required=True))
  label = _label(top.section("label", required=True))
  time_section = top.section("time")
  time = _time(time_section) if time_section else None
  features_value = top.get("features", required=True)
  if not isinstance(features_value, Mapping) or not features_value:
    raise top.error("expected a mapping of feature name -> {kind: ..., ...}, with at least "
                    "one feature", "features")
  features = []
  for fname, fvalue in features_value.items():
    fname = _name(top, "features", str(fname), "feature name")
    features.append(_feature(fname, _Section(fvalue, f"features.{fname}", origin)))
  slices = top.strings("slices")
  schema = top.string("schema")
  top.finish()

  base_dir = base_dir or os.getcwd()
  if schema:
    schema = schema if os.path.isabs(schema) else os.path.normpath(os.path.join(base_dir, schema))
  data_dir = source.data_dir
  if data_dir and not data_dir.startswith(_PACKAGE_PREFIX) and not os.path.isabs(data_dir):
    source = dataclasses.replace(source, data_dir=os.path.normpath(os.path.join(base_dir,
                                                                               data_dir)))
  features = _with_attributes(top, features, source)
  spec = DatasetSpec(name=name, source=source, label=label, features=tuple(features),
                     time=time, slices=slices, schema=schema, description=description,
                     origin=origin)
  _check(top, spec)
  return spec


def _with_attributes(top: _Section, features: List[Feature], source: Source) -> List[Feature]:
  """Marks each feature whose column comes from a side table (other than its key) as an
  attribute of that table's key feature, with the key feature's role unless it has one."""
  by_column: Dict[str, Feature] = {}
  for f in features:
    by_column.setdefault(f.column, f)
  out = []
  for f in features:
    for i, table in enumerate(source.side_tables):
      key_feature = by_column.get(table.key)
      if f.column in table.columns:
        if key_feature is None:
          raise top.error(f"feature {f.name} comes from side table {table.path}, whose key "
                          f"{table.key!r} is no feature's column: declare the key as a feature "
                          "(kind id) so its attributes have an entity",
                          f"source.side_tables[{i}].key")
        f = dataclasses.replace(f, attribute_of=key_feature.name,
                                role=f.role or key_feature.role)
    out.append(f)
  return out


def _check(top: _Section, spec: DatasetSpec) -> None:
  """Checks across sections (names, columns, roles of the label and time)."""
  names = [f.name for f in spec.features]
  for f in spec.features:
    if f.name == LABEL_FEATURE or f.name.endswith(ADMITTED_SUFFIX):
      raise top.error(f"{f.name!r} is reserved (Transform's label output is {LABEL_FEATURE!r}, "
                      f"its admission flags end in {ADMITTED_SUFFIX!r}); rename the feature",
                      f"features.{f.name}")
    if f.column == spec.label.column:
      raise top.error(f"reads the label column {spec.label.column!r}: the model would see "
                      "its own label. Remove the feature or choose another column",
                      f"features.{f.name}.column")
  types: Dict[str, Tuple[str, str]] = {}
  for f in spec.features:
    previous = types.setdefault(f.column, (f.type, f.name))
    if previous[0] != f.type:
      raise top.error(f"column {f.column!r} is read as {f.type} here and as {previous[0]} by "
                      f"feature {previous[1]}; one column has one type",
                      f"features.{f.name}")
  if spec.time and spec.time.column == spec.label.column:
    raise top.error("the time column cannot be the label column", "time.column")
  for f in spec.features:
    if spec.time and f.column == spec.time.column and f.type == "string":
      raise top.error(f"reads the time column {spec.time.column!r} as a string; the time "
                      "column reaches the examples as int64 unix seconds: make it a numeric "
                      "feature (type: int) or use another column", f"features.{f.name}")
  for i, s in enumerate(spec.slices):
    if s not in names:
      raise top.error(f"{s!r} is not a feature; slices name features ({', '.join(names)})",
                      f"slices[{i}]")
    if spec.feature(s).kind in ("id", "multivalent"):
      raise top.error(f"{s!r} is an {spec.feature(s).kind} feature: one slice per value of an "
                      "open vocabulary is not a report. Slice by a categorical or numeric "
                      "feature", f"slices[{i}]")
  if len(set(spec.slices)) != len(spec.slices):
    raise top.error(f"names a feature twice: {list(spec.slices)}", "slices")
  keys = [t.key for t in spec.source.side_tables]
  if len(set(keys)) != len(keys):
    raise top.error(f"two side tables join on the same key {keys}; join them into one",
                    "source.side_tables")
  brought: Dict[str, str] = {}
  for t in spec.source.side_tables:
    for c in t.columns:
      if c in brought:
        raise top.error(f"column {c!r} comes from both {brought[c]} and {t.path}; rename it "
                        "in one of them", "source.side_tables")
      brought[c] = t.path
  if spec.source.format == "csv" and not spec.source.csv.header:
    mine = set(spec.source.csv.columns)
    for i, t in enumerate(spec.source.side_tables):
      if t.key not in mine:
        raise top.error(f"key {t.key!r} is not a column of {spec.source.path} "
                        f"({', '.join(spec.source.csv.columns)})",
                        f"source.side_tables[{i}].key")


# ---------------------------------------------------------------------------------------
# Files, presets and domain sizes from the schema.


def read_file(path: str) -> Tuple[Dict[str, Any], str]:
  """Parses a JSON or YAML spec file; returns (values, origin). SpecError on bad syntax."""
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except FileNotFoundError:
    raise SpecError(f"dataset spec {path}: file not found; give a preset name "
                    f"({', '.join(preset_names())}) or the path of a .yaml/.json spec") from None
  except (OSError, UnicodeDecodeError) as e:
    raise SpecError(f"dataset spec {path}: cannot read it: {e}") from None
  if path.endswith(".json"):
    try:
      values = json.loads(text)
    except json.JSONDecodeError as e:
      raise SpecError(f"dataset spec {path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
  else:
    import yaml  # pylint: disable=g-import-not-at-top
    try:
      values = yaml.safe_load(text)
    except yaml.YAMLError as e:
      mark = getattr(e, "problem_mark", None)
      where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
      problem = getattr(e, "problem", None) or str(e)
      raise SpecError(f"dataset spec {path}{where}: invalid YAML: {problem}") from None
  if not isinstance(values, dict):
    raise SpecError(f"dataset spec {path}: expected a mapping at the top level "
                    "(name:, source:, label:, features:, ...)")
  return values, path


PRESETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")
# Preset name -> its file in PRESETS_DIR. `movielens` is the default dataset.
PRESETS = {"movielens": "movielens_100k.yaml", "taxi": "chicago_taxi.yaml",
           "wide": "wide.yaml"}
DEFAULT_PRESET = "movielens"


def preset_names() -> List[str]:
  return sorted(PRESETS)


def preset_path(name: str) -> str:
  return os.path.join(PRESETS_DIR, PRESETS[name])


def load(name_or_path: Optional[str] = None) -> DatasetSpec:
  """Loads a preset (by name) or a spec file, checked, with domain sizes from its schema.

  Args:
    name_or_path: a preset name (`movielens`, `taxi`), a .yaml/.yml/.json file, or None
      (the default preset).

  Raises:
    SpecError: the spec is invalid (the message names the key and the fix).
  """
  name_or_path = name_or_path or DEFAULT_PRESET
  path = preset_path(name_or_path) if name_or_path in PRESETS else name_or_path
  values, origin = read_file(path)
  spec = parse(values, origin=origin, base_dir=os.path.dirname(os.path.abspath(path)))
  return with_schema_domains(spec)


def with_schema_domains(spec: DatasetSpec) -> DatasetSpec:
  """Fills in each categorical/multivalent feature's `domain_size` from the curated
  schema's domain of its column, where the spec gives none.

  Raises:
    SpecError: the schema file is missing or unreadable.
  """
  if not spec.schema:
    return spec
  domains = schema_domain_sizes(spec.schema, origin=spec.origin)
  features = tuple(
      dataclasses.replace(f, domain_size=domains[f.column])
      if f.kind in ("categorical", "multivalent") and f.domain_size is None
      and f.column in domains else f
      for f in spec.features)
  return dataclasses.replace(spec, features=features)


def schema_domain_sizes(path: str, origin: str = "") -> Dict[str, int]:
  """Column -> number of values of its domain in a schema.pbtxt (string domains, and
  int domains with both bounds)."""
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top
  prefix = f"dataset spec {origin}: " if origin else ""
  try:
    with open(path, encoding="utf-8") as f:
      schema = text_format.Parse(f.read(), schema_pb2.Schema())
  except FileNotFoundError:
    raise SpecError(f"{prefix}schema: {path} not found; give the path of a schema.pbtxt "
                    "(relative to the spec file), or leave schema out to derive it from the "
                    "spec") from None
  except (OSError, text_format.ParseError) as e:
    raise SpecError(f"{prefix}schema: {path}: not a readable schema.pbtxt: {e}") from None
  named = {d.name: len(d.value) for d in schema.string_domain}
  sizes = {}
  for feature in schema.feature:
    if feature.HasField("domain") and feature.domain in named:
      sizes[feature.name] = named[feature.domain]
    elif feature.HasField("string_domain"):
      sizes[feature.name] = len(feature.string_domain.value)
    elif (feature.HasField("int_domain") and feature.int_domain.HasField("min")
          and feature.int_domain.HasField("max")):
      sizes[feature.name] = feature.int_domain.max - feature.int_domain.min + 1
  return sizes


def resolve_data_dir(spec: DatasetSpec, given: Optional[str]) -> Optional[str]:
  """The data directory: `given` (the command line), else the spec's `source.data_dir`
  (a `package:` path resolved inside the installed package), else None."""
  if given:
    return os.path.abspath(given)
  data_dir = spec.source.data_dir
  if not data_dir:
    return None
  if data_dir.startswith(_PACKAGE_PREFIX):
    import importlib.util  # pylint: disable=g-import-not-at-top
    package, _, rest = data_dir[len(_PACKAGE_PREFIX):].partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
      raise SpecError(f"dataset spec {spec.origin}: source.data_dir: package {package!r} is "
                      "not installed; pass --data-dir")
    return os.path.join(list(found.submodule_search_locations)[0], rest)
  return data_dir


def model_feature_columns(spec: DatasetSpec) -> Iterable[Tuple[str, str]]:
  """(feature, raw column) pairs in model order."""
  return ((f.name, f.column) for f in spec.features)
