"""The synthetic world of a dataset spec: every column's values, the planted signal, the
label and the time, generated block by block.

What makes the data look like a real log, and learnable:

- id features have Zipf popularity (a value's weight is r^-zipf for its popularity rank r,
  ranks assigned in random order); a user or item id feature starts with a share of its ids
  (`initial`) and the others arrive evenly until 90% of the stream, each only used after it
  arrived, so a time-ordered replay meets new users and items;
- categorical features draw from their domain (the curated schema's values, `domain_size`
  generated values, or the profile's cardinality), multivalent ones several values per row;
- numeric features come from a normal, lognormal or uniform distribution, and their effect on
  the label is a sine of the standardized value (two periods over +-2 standard deviations):
  non-monotonic, so a linear use of the value learns little and quantile buckets learn it;
- the label is Bernoulli(sigmoid(bias + the sum of per-value effects of the features with
  `signal` > 0 + a low-rank user x item taste)): a feature with `signal: 0` is pure noise.
  Side tables hold one row per key; their columns are the key entity's attributes, and
  their effects reach every row of that entity. The bias is solved for the profile's
  `positive_rate` on a sample of blocks;
- the raw label is written so that the spec's rule maps it back: 0/1 (binary), one of the
  positive or negative values, or a value on the right side of the threshold (the profile's
  `label.values`, the schema's int domain, or values around the threshold), higher values
  for likelier rows;
- the time increases with the row: the stream spans `days` from `start`.

Randomness is counter-based: block b of `BLOCK` rows draws column c from a generator seeded
by (seed, b, c's name), so the same seed gives the same values whatever the chunk size, and
adding a feature changes no other feature's values. Memory is the per-value tables (a few
arrays of each id feature's cardinality) plus one chunk.
"""

from __future__ import annotations  # numpy types in annotations stay unevaluated

import dataclasses
import math
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataspec import spec as spec_lib
from tools.synth import profile as profile_lib

BLOCK = 8192         # rows per random stream; chunks are whole blocks
ARRIVAL_END = 0.9    # every id has arrived by 90% of the stream
FILLER_VALUES = 10   # distinct values of a column the spec lists but no feature reads
CALIBRATION_BLOCKS = 24
_DIGITS = "0123456789"
_NUMBER_CHARS = "0123456789.-+e"
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_ISO_CHARS = "0123456789-:TZ"
_TRUE, _FALSE = "true", "false"


class SynthError(ValueError):
  """The spec asks for something `uet synth` cannot write; the message says what to change."""


def _stream(name: str) -> int:
  return zlib.crc32(name.encode("utf-8"))


def tokens(n: int) -> List[str]:
  """n distinct lowercase words of equal length: a, b, ... or aa, ab, ..."""
  width = 1
  while 26 ** width < n:
    width += 1
  out = []
  for i in range(n):
    letters = []
    for _ in range(width):
      i, digit = divmod(i, 26)
      letters.append(chr(ord("a") + digit))
    out.append("".join(reversed(letters)))
  return out


def zipf_cumulative(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
  """Cumulative Zipf weights of n values, popularity ranks in random order."""
  weights = (np.arange(1, n + 1, dtype=np.float64) ** -exponent)[rng.permutation(n)]
  return np.cumsum(weights)


def arrivals(n: int, initial: float, rows: int) -> Optional[np.ndarray]:
  """Row from which each value (in value order) may appear; None when all exist at once."""
  first = max(1, int(round(n * initial)))
  later = n - first
  if not later:
    return None
  positions = np.zeros(n, dtype=np.int64)
  positions[first:] = (np.arange(1, later + 1) * (ARRIVAL_END * rows / later)).astype(np.int64)
  return positions


def _sample(cumulative: np.ndarray, available, n: int, rng: np.random.Generator) -> np.ndarray:
  """n indices drawn with the weights behind `cumulative`, each < available (a number or
  an array of n)."""
  totals = cumulative[np.asarray(available) - 1]
  picks = np.searchsorted(cumulative, rng.random(n) * totals, side="right")
  return np.minimum(picks, np.asarray(available) - 1)


def _distinct_values(cumulative: np.ndarray, size: int, counts: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
  """Values of rows of `counts` values each (at most `size`), no value twice in a row:
  drawn by popularity, repeats redrawn. Returns them flattened, row by row."""
  counts = np.minimum(counts, size)
  rows = np.repeat(np.arange(len(counts)), counts)
  flat = _sample(cumulative, size, len(rows), rng)
  for _ in range(1000):
    order = np.lexsort((flat, rows))
    repeat = np.zeros(len(flat), bool)
    repeat[order[1:]] = (rows[order][1:] == rows[order][:-1]) & (
        flat[order][1:] == flat[order][:-1])
    if not repeat.any():
      break
    flat[repeat] = _sample(cumulative, size, int(repeat.sum()), rng)
  return flat


def sigmoid(x: np.ndarray) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-x))


@dataclasses.dataclass
class Draw:
  """Values of one column for some rows.

  `index`: positions in the column's values (ids, categorical, filler) or, with `counts`,
  the flattened values of a multivalent column (`counts` per row); `number`: a numeric
  column's values; `missing`: rows without a value (None: none).
  """
  index: Optional[np.ndarray] = None
  counts: Optional[np.ndarray] = None
  number: Optional[np.ndarray] = None
  missing: Optional[np.ndarray] = None

  def slice(self, start: int, stop: int) -> "Draw":
    index = self.index
    if self.counts is not None:
      offsets = np.concatenate([[0], np.cumsum(self.counts)])
      index = self.index[offsets[start]:offsets[stop]]
    elif index is not None:
      index = index[start:stop]
    return Draw(index=index,
                counts=None if self.counts is None else self.counts[start:stop],
                number=None if self.number is None else self.number[start:stop],
                missing=None if self.missing is None else self.missing[start:stop])

  @staticmethod
  def concat(draws: Sequence["Draw"]) -> "Draw":
    def join(field):
      parts = [getattr(d, field) for d in draws]
      if all(p is None for p in parts):
        return None
      return np.concatenate([p if p is not None else np.zeros(len(d), bool)
                             for p, d in zip(parts, draws)])
    return Draw(index=join("index"), counts=join("counts"), number=join("number"),
                missing=join("missing"))

  def __len__(self) -> int:
    if self.counts is not None:
      return len(self.counts)
    return len(self.index if self.index is not None else self.number)


@dataclasses.dataclass
class Column:
  """One generated column (a feature's, or a filler the spec lists but no feature reads).

  Attributes:
    name: the raw column.
    kind: id, categorical, multivalent, numeric or filler.
    settings: the feature's profile (None for a filler).
    arrow_type: its type in a Parquet file (string, int64, float64, list of strings).
    size: the number of values (not numeric).
    values: the values as strings (categorical, multivalent, filler; ids are 1..size).
    cumulative: cumulative popularity of the values.
    arrival: the row from which each value may appear (None: all from the start).
    effect: each value's effect on the logit (None: no signal).
    phase: numeric: the phase of its effect.
    alphabet: the characters its text can hold (to know what a CSV must quote).
  """
  name: str
  kind: str
  settings: Optional[profile_lib.FeatureProfile]
  arrow_type: pa.DataType
  size: int = 0
  values: Optional[pa.Array] = None
  cumulative: Optional[np.ndarray] = None
  arrival: Optional[np.ndarray] = None
  effect: Optional[np.ndarray] = None
  phase: float = 0.0
  alphabet: str = ""

  @property
  def stream(self) -> int:
    return _stream(self.name)

  def draw(self, rng: np.random.Generator, n: int,
           positions: Optional[np.ndarray] = None) -> Tuple[Draw, Optional[np.ndarray]]:
    """Values of n rows (at stream `positions`, for arrivals) and their effect on the logit."""
    rate = self.settings.missing_rate if self.settings else 0.0
    missing = rng.random(n) < rate if rate > 0 else None
    effect = None
    if self.kind == "numeric":
      number, latent = self._numbers(rng, n)
      if self.settings.signal > 0:
        effect = self.settings.signal * np.sin(math.pi * latent + self.phase)
      draw = Draw(number=number, missing=missing)
    elif self.kind == "multivalent":
      s = self.settings
      counts = rng.integers(s.min_values, s.max_values + 1, n)
      if missing is not None:
        counts[missing] = 0
      counts = np.minimum(counts, self.size)
      flat = _distinct_values(self.cumulative, self.size, counts, rng)
      if self.effect is not None:
        sums = np.bincount(np.repeat(np.arange(n), counts), weights=self.effect[flat],
                           minlength=n)
        effect = sums / np.maximum(counts, 1)
      draw = Draw(index=flat, counts=counts, missing=missing)
    else:
      available = self.size
      if self.arrival is not None and positions is not None:
        available = np.searchsorted(self.arrival, positions, side="right")
      index = _sample(self.cumulative, available, n, rng)
      if self.effect is not None:
        effect = self.effect[index]
      draw = Draw(index=index, missing=missing)
    if effect is not None and missing is not None:
      effect = np.where(missing, 0.0, effect)
    return draw, effect

  def _numbers(self, rng: np.random.Generator, n: int) -> Tuple[np.ndarray, np.ndarray]:
    s = self.settings
    if s.distribution == "uniform":
      u = rng.random(n)
      value, latent = s.minimum + (s.maximum - s.minimum) * u, 4.0 * u - 2.0
    else:
      latent = rng.standard_normal(n)
      value = (s.mean + s.std * latent if s.distribution == "normal"
               else s.median * np.exp(s.sigma * latent))
    if s.minimum is not None or s.maximum is not None:
      value = np.clip(value, s.minimum, s.maximum)
    if self.arrow_type == pa.int64():
      return np.rint(value).astype(np.int64), latent
    return np.round(value, s.decimals), latent

  def to_arrow(self, draw: Draw) -> pa.Array:
    """The values as an Arrow array of `arrow_type`, missing values null."""
    mask = draw.missing
    if self.kind == "numeric":
      return pa.array(draw.number, self.arrow_type, mask=mask)
    if self.kind == "id":
      text = pc.cast(pa.array(draw.index + 1, pa.int64(), mask=mask), pa.string())
      if self.settings.width:
        text = pc.utf8_lpad(text, width=self.settings.width, padding="0")
      return text
    if self.kind == "multivalent":
      offsets = np.concatenate([[0], np.cumsum(draw.counts)]).astype(np.int32)
      return pa.ListArray.from_arrays(
          pa.array(offsets), self.values.take(pa.array(draw.index)),
          mask=None if mask is None else pa.array(mask))
    return self.values.take(pa.array(draw.index, mask=mask))


@dataclasses.dataclass
class Table:
  """A side table's rows: one per value of its key, with the key entity's attributes."""
  spec: spec_lib.SideTable
  key: Column
  order: Tuple[str, ...]                 # its columns in file order (the key among them)
  attributes: Dict[str, Tuple[Column, Draw]]

  @property
  def rows(self) -> int:
    return self.key.size

  def chunk(self, start: int, stop: int) -> Dict[str, pa.Array]:
    out = {}
    for name in self.order:
      if name == self.key.name:
        out[name] = self.key.to_arrow(Draw(index=np.arange(start, stop)))
      else:
        column, draw = self.attributes[name]
        out[name] = column.to_arrow(draw.slice(start, stop))
    return out


class Label:
  """Writes 0/1 outcomes as raw label values that the spec's rule maps back to them."""

  def __init__(self, spec: spec_lib.DatasetSpec, profile: profile_lib.Profile,
               schema: Dict[str, tuple]):
    label = spec.label
    self.label = label
    self.arrow_type = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}[label.type]
    self.missing_rate = profile.label_missing_rate
    self.continuous = False
    self.positive: List = []
    self.negative: List = []
    where = f"label {label.column} ({label.rule})"
    if label.binary:
      self.positive, self.negative = ([1], [0]) if label.type == "int" else ([_TRUE], [_FALSE])
    elif label.positive_values:
      self.positive = [self._typed(v, where) for v in label.positive_values]
      self.negative = [self._typed(v, where) for v in label.negative_values]
      if not self.negative:
        taken = set(label.positive_values)
        if label.type == "string":
          word = "negative"
          while word in taken:
            word += "_"
          self.negative = [word]
        else:
          self.negative = [next(self._typed(str(i), where) for i in range(len(taken) + 1)
                                if not self._matches_positive(i))]
    else:
      op, threshold = label.positive_if
      values = profile.label_values
      bounds = schema.get(label.column)
      if not values and bounds and bounds[0] == "int" and bounds[2] - bounds[1] <= 100:
        values = tuple(float(v) for v in range(bounds[1], bounds[2] + 1))
      if not values and label.type == "int":
        low, high = math.floor(threshold) - 2, math.ceil(threshold) + 2
        values = tuple(float(v) for v in range(low, high + 1))
      if values:
        keep = [v for v in values if label.type != "int" or float(v).is_integer()]
        ordered = sorted(keep, reverse=op in ("<", "<="))
        self.positive = [self._cast(v) for v in ordered if _compare(v, op, threshold)]
        self.negative = [self._cast(v) for v in ordered if not _compare(v, op, threshold)]
        if not self.positive or not self.negative:
          raise SynthError(f"{where}: the raw values {list(keep)} (profile label.values, else "
                           "the schema's domain) must fall on both sides of the rule; give "
                           "label.values in the synthesis profile")
      else:
        self.continuous = True
        self.op, self.threshold = op, threshold
    self.alphabet = "".join(sorted(set("".join(str(v) for v in self.positive + self.negative))
                                   | (set(_NUMBER_CHARS) if self.continuous else set())))

  def _matches_positive(self, i: int) -> bool:
    return any(float(v) == float(i) for v in self.label.positive_values
               if _is_number(v))

  def _typed(self, text: str, where: str):
    if self.label.type == "string":
      return text
    if not _is_number(text):
      raise SynthError(f"{where}: value {text!r} is not a number, but label.type is "
                       f"{self.label.type}")
    return self._cast(float(text))

  def _cast(self, value: float):
    return int(value) if self.label.type == "int" else float(value)

  def raw(self, positive: np.ndarray, rank: np.ndarray, missing: Optional[np.ndarray]) -> pa.Array:
    """Raw values: `positive` rows get a positive value, the others a negative one; within a
    side, `rank` in [0, 1) picks from the least to the most positive value."""
    if self.continuous:
      values = self._continuous(positive, rank)
    else:
      pos = np.array(self.positive, dtype=object if self.label.type == "string" else None)
      neg = np.array(self.negative, dtype=object if self.label.type == "string" else None)
      def pick(side):  # by rank, least positive first
        return side[np.minimum((rank * len(side)).astype(np.int64), len(side) - 1)]
      values = np.where(positive, pick(pos), pick(neg))
    return pa.array(values, self.arrow_type, mask=missing)

  def _continuous(self, positive: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Float labels: a distance of 0.1 to 2 from the threshold, on the right side."""
    op, t = self.op, self.threshold
    up = np.round(t + 0.1 + 1.9 * rank, 2)
    down = np.round(t - 0.1 - 1.9 * (1 - rank), 2)
    if op in (">", ">="):
      values = np.where(positive, up, down)
    elif op in ("<", "<="):
      values = np.where(positive, down, up)
    elif op == "==":
      values = np.where(positive, t, np.where(rank < 0.5, down, up))
    else:
      values = np.where(positive, np.where(rank < 0.5, down, up), t)
    # Rounding must not carry a value across the threshold.
    wrong = _compare(values, op, t) != positive
    above, below = t + 1.0, t - 1.0
    values[wrong & positive] = {">": above, ">=": above, "<": below, "<=": below, "==": t,
                                "!=": above}[op]
    values[wrong & ~positive] = {">": below, ">=": below, "<": above, "<=": above,
                                 "==": above, "!=": t}[op]
    return values


def _is_number(text: str) -> bool:
  try:
    return math.isfinite(float(text))
  except ValueError:
    return False


def _compare(value, op: str, threshold: float):
  return {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less,
          "==": np.equal, "!=": np.not_equal}[op](value, threshold)


def schema_domains(spec: spec_lib.DatasetSpec) -> Dict[str, tuple]:
  """Column -> ("string", values) or ("int", min, max) from the spec's curated schema."""
  if not spec.schema:
    return {}
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top
  with open(spec.schema, encoding="utf-8") as f:
    schema = text_format.Parse(f.read(), schema_pb2.Schema())
  named = {d.name: list(d.value) for d in schema.string_domain}
  out: Dict[str, tuple] = {}
  for feature in schema.feature:
    if feature.HasField("domain") and feature.domain in named:
      out[feature.name] = ("string", named[feature.domain])
    elif feature.HasField("string_domain"):
      out[feature.name] = ("string", list(feature.string_domain.value))
    elif (feature.HasField("int_domain") and feature.int_domain.HasField("min")
          and feature.int_domain.HasField("max")):
      out[feature.name] = ("int", feature.int_domain.min, feature.int_domain.max)
  return out


class World:
  """Everything fixed about a synthetic dataset; `chunk` generates its rows.

  Args:
    spec: the dataset spec.
    profile: its synthesis profile (resolved).
    rows: rows of the source.
    seed: the random seed.

  Raises:
    SynthError: the spec asks for a layout `uet synth` cannot write.
  """

  def __init__(self, spec: spec_lib.DatasetSpec, profile: profile_lib.Profile, rows: int,
               seed: int):
    self.spec, self.profile, self.rows, self.seed = spec, profile, rows, seed
    self.blocks = -(-rows // BLOCK)
    domains = schema_domains(spec)
    brought = {c: t for t in spec.source.side_tables for c in t.columns}
    self.columns: Dict[str, Column] = {}
    for f in spec.features:
      if f.column not in self.columns and not (spec.time and f.column == spec.time.column):
        self.columns[f.column] = self._column(f, profile.features[f.name], domains)
    self.source_order = self._source_order(brought)
    self.label = Label(spec, profile, domains)
    # Columns of the source rows (the label and the time come separately).
    self.row_columns = [self._column_or_filler(c) for c in self.source_order
                        if c not in (spec.label.column, self.time_column)]
    self.tables = [self._table(i, t) for i, t in enumerate(spec.source.side_tables)]
    self.user, self.item = self._entity("user"), self._entity("item")
    self.taste = None
    if self.user and self.item and profile.interaction_weight > 0:
      d = profile.interaction_dims
      self.taste = tuple(
          np.random.default_rng([seed, 3, c.stream]).standard_normal((c.size, d))
          for c in (self.user, self.item))
    self.bias = self._calibrate()

  @property
  def time_column(self) -> Optional[str]:
    return self.spec.time.column if self.spec.time else None

  def _column(self, feature: spec_lib.Feature, settings: profile_lib.FeatureProfile,
              domains: Dict[str, tuple]) -> Column:
    rng = np.random.default_rng([self.seed, 0, _stream(feature.column)])
    if feature.kind == "numeric":
      arrow_type = pa.int64() if feature.type == "int" else pa.float64()
      return Column(feature.column, "numeric", settings, arrow_type,
                    phase=float(rng.uniform(0, 2 * math.pi)), alphabet=_NUMBER_CHARS)
    if feature.kind == "id":
      size, values, alphabet = settings.cardinality.at(self.rows), None, _DIGITS
    else:
      domain = domains.get(feature.column)
      if domain and domain[0] == "string":
        words = list(domain[1])
      elif domain:
        words = [str(v) for v in range(domain[1], domain[2] + 1)]
      elif feature.domain_size:
        words = tokens(feature.domain_size)
      else:
        words = tokens(settings.cardinality.at(self.rows))
      if feature.kind == "multivalent":
        bad = [w for w in words if feature.separator in w or not w]
        if bad:
          raise SynthError(f"feature {feature.name}: value {bad[0]!r} contains its separator "
                           f"{feature.separator!r} (or is empty) and cannot be written joined")
      size, values = len(words), pa.array(words, pa.string())
      alphabet = "".join(sorted(set("".join(words)) | (
          set(feature.separator) if feature.kind == "multivalent" else set())))
    arrival = None
    if feature.kind == "id" and feature.attribute_of is None and settings.initial < 1:
      arrival = arrivals(size, settings.initial, self.rows)
    effect = rng.normal(0.0, settings.signal, size) if settings.signal > 0 else None
    arrow_type = pa.list_(pa.string()) if feature.kind == "multivalent" else pa.string()
    return Column(feature.column, feature.kind, settings, arrow_type, size=size, values=values,
                  cumulative=zipf_cumulative(size, settings.zipf, rng), arrival=arrival,
                  effect=effect, alphabet=alphabet)

  def _column_or_filler(self, name: str) -> Column:
    if name not in self.columns:
      rng = np.random.default_rng([self.seed, 0, _stream(name)])
      words = tokens(FILLER_VALUES)
      self.columns[name] = Column(name, "filler", None, pa.string(), size=FILLER_VALUES,
                                  values=pa.array(words),
                                  cumulative=zipf_cumulative(FILLER_VALUES, 0.0, rng),
                                  alphabet="".join(sorted(set("".join(words)))))
    return self.columns[name]

  def _source_order(self, brought: Dict[str, spec_lib.SideTable]) -> List[str]:
    """The source file's columns in file order."""
    spec = self.spec
    needed = [c for c in spec.raw_columns if c not in brought]
    for t in spec.source.side_tables:
      if t.key in brought:
        raise SynthError(f"side table {t.path}: its key {t.key!r} is brought by side table "
                         f"{brought[t.key].path}; uet synth joins side tables onto the source "
                         "only")
      if t.key not in needed:
        raise SynthError(f"side table {t.path}: its key {t.key!r} is no feature's column; "
                         "declare it as a feature (kind id) so its rows have an entity")
    for column in (spec.label.column, self.time_column):
      if column and column in brought:
        raise SynthError(f"column {column!r} (the label or the time) is brought by side "
                         f"table {brought[column].path}; uet synth writes it in the source")
    if spec.source.format == "csv" and not spec.source.csv.header:
      given = list(spec.source.csv.columns)
      absent = [c for c in needed if c not in given]
      if absent:
        raise SynthError(f"source.csv.columns {given} lacks {absent}, which no side table "
                         "brings either; add them to csv.columns")
      both = [c for c in given if c in brought]
      if both:
        raise SynthError(f"{both} are both in source.csv.columns and brought by a side "
                         "table; keep each column in one file")
      return given
    order = [self.time_column] if self.time_column else []
    order += [c for c in needed if c not in (spec.label.column, self.time_column)]
    return order + [spec.label.column]

  def _table(self, index: int, table: spec_lib.SideTable) -> Table:
    key = self.columns[table.key]
    if key.kind in ("numeric", "multivalent"):
      raise SynthError(f"side table {table.path}: key {table.key!r} is a {key.kind} feature; "
                       "a key is an id or categorical feature")
    if table.format == "csv" and not table.csv.header:
      order = tuple(table.csv.columns)
    else:
      order = (table.key,) + tuple(table.columns)
    rng_seed = [self.seed, 2, _stream(table.key)]
    attributes = {}
    entity_effect = np.zeros(key.size)
    for name in order:
      if name == table.key:
        continue
      column = self._column_or_filler(name)
      draw, effect = column.draw(np.random.default_rng(rng_seed + [column.stream]), key.size)
      attributes[name] = (column, draw)
      if effect is not None:
        entity_effect += effect
    # An entity's attributes move the label of every row of that entity.
    key.effect = entity_effect if key.effect is None else key.effect + entity_effect
    return Table(table, key, order, attributes)

  def _entity(self, role: str) -> Optional[Column]:
    """The source's first id feature of `role` (not a side table's attribute)."""
    for f in self.spec.features:
      if (f.kind == "id" and f.role == role and f.attribute_of is None
          and f.column in self.columns and any(c.name == f.column for c in self.row_columns)):
        return self.columns[f.column]
    return None

  def _draw_block(self, b: int) -> Tuple[np.ndarray, Dict[str, Draw], np.ndarray]:
    """Block b: its stream positions, every row column's draw, and the logit without bias."""
    positions = np.arange(b * BLOCK, min((b + 1) * BLOCK, self.rows), dtype=np.int64)
    n = len(positions)
    logit = np.zeros(n)
    draws = {}
    for column in self.row_columns:
      rng = np.random.default_rng([self.seed, 1, b, column.stream])
      draw, effect = column.draw(rng, n, positions)
      draws[column.name] = draw
      if effect is not None:
        logit += effect
    if self.taste is not None:
      user, item = draws[self.user.name], draws[self.item.name]
      match = np.einsum("ij,ij->i", self.taste[0][user.index], self.taste[1][item.index])
      match *= self.profile.interaction_weight / math.sqrt(self.profile.interaction_dims)
      for draw in (user, item):
        if draw.missing is not None:
          match[draw.missing] = 0.0
      logit += match
    return positions, draws, logit

  def _calibrate(self) -> float:
    """The bias that gives `positive_rate` positives, on a sample of blocks."""
    sample = np.unique(np.linspace(0, self.blocks - 1, min(self.blocks, CALIBRATION_BLOCKS))
                       .astype(np.int64))
    logits = np.concatenate([self._draw_block(int(b))[2] for b in sample])
    low, high = -40.0, 40.0
    for _ in range(60):
      middle = (low + high) / 2
      if sigmoid(middle + logits).mean() < self.profile.positive_rate:
        low = middle
      else:
        high = middle
    return (low + high) / 2

  def chunk(self, first_block: int, stop_block: int) -> Dict[str, pa.Array]:
    """The source rows of blocks [first_block, stop_block), by column, in file order.

    Also returns, under `_positive`, the 0/1 outcome each raw label encodes (not written).
    """
    parts = [self._block(b) for b in range(first_block, stop_block)]
    out: Dict[str, pa.Array] = {}
    for name in self.source_order:
      if name == self.spec.label.column:
        out[name] = pa.concat_arrays([p[name] for p in parts])
      elif name == self.time_column:
        out[name] = self._time_array(np.concatenate([p[name] for p in parts]))
      else:
        out[name] = self.columns[name].to_arrow(Draw.concat([p[name] for p in parts]))
    out["_positive"] = pa.array(np.concatenate([p["_positive"] for p in parts]))
    return out

  def _block(self, b: int) -> Dict[str, object]:
    positions, draws, logit = self._draw_block(b)
    n = len(positions)
    rng = np.random.default_rng([self.seed, 1, b, _stream("\0label")])
    positive = rng.random(n) < sigmoid(self.bias + logit)
    rank = sigmoid(logit + rng.logistic(size=n))
    missing = rng.random(n) < self.label.missing_rate if self.label.missing_rate > 0 else None
    part: Dict[str, object] = dict(draws)
    part[self.spec.label.column] = self.label.raw(positive, rank, missing)
    part["_positive"] = positive
    if self.time_column:
      rng = np.random.default_rng([self.seed, 1, b, _stream("\0time")])
      part[self.time_column] = positions + rng.random(n)
    return part

  def _time_array(self, offsets: np.ndarray) -> pa.Array:
    """Times at stream offsets (row + a fraction): increasing, in the spec's format."""
    span = self.profile.days * 86_400 / self.rows
    if self.spec.time.format == "unix_millis":
      return pa.array(self.profile.start * 1000 + (offsets * span * 1000).astype(np.int64))
    seconds = self.profile.start + (offsets * span).astype(np.int64)
    if self.spec.time.format == "unix_seconds":
      return pa.array(seconds)
    return pc.strftime(pa.array(seconds, pa.timestamp("s")), format=ISO_FORMAT)

  def column_alphabet(self, name: str) -> str:
    """The characters a source or side-table column's text can hold."""
    if name == self.spec.label.column:
      return self.label.alphabet
    if name == self.time_column:
      return _ISO_CHARS if self.spec.time.format == "iso8601" else _DIGITS
    return self.columns[name].alphabet

  def arrow_type(self, name: str) -> pa.DataType:
    if name == self.spec.label.column:
      return self.label.arrow_type
    if name == self.time_column:
      return pa.string() if self.spec.time.format == "iso8601" else pa.int64()
    return self.columns[name].arrow_type
