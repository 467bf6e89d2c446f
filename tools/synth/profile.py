"""The synthesis profile: what `uet synth` needs that a dataset spec does not say.

A spec says which columns exist and what they mean; a profile says how to invent them: how
many ids a feature has (at a given number of rows), how skewed their popularity is, how
often a value is missing, which features carry the planted signal and how strongly. It is a
small YAML or JSON file beside the spec (`<spec>.synth.yaml`, e.g.
`dataspec/presets/wide.synth.yaml`), loaded as strictly as the spec: an unknown key, a
feature the spec lacks, a key that does not apply to the feature's kind or a rate outside
[0, 1) is a `ProfileError` naming the key. Every key is optional; what a profile leaves out
comes from `defaults.<kind>` in the profile, then from the built-in defaults by kind and role
below.

    time: {start: 2024-01-01, days: 28}       # the stream's first time and its length
    label:
      positive_rate: 0.25     # share of rows whose label the spec's rule maps to 1
      values: [1, 2, 3, 4, 5] # threshold rules: the raw values to write
      missing_rate: 0.0       # rows without a label
    interaction: {dims: 4, weight: 0.5}   # user x item taste (spec with user and item ids)
    files: {rows_per_file: 1000000, spans: 1}   # glob sources: rows per part; {SPAN}: spans
    defaults:                 # per kind: the feature keys below
      numeric: {missing_rate: 0.05}
    features:
      visitor: {cardinality: {fraction: 0.1, min: 100, max: 1000000}, zipf: 0.8}
      amount: {distribution: lognormal, median: 20, sigma: 1, decimals: 2, signal: 0.4}

Feature keys, by kind (id / categorical / multivalent / numeric):

  cardinality   id, and categorical/multivalent features whose domain neither the spec
                (`domain_size`) nor its schema gives: a number, or {fraction: F, min: A,
                max: B}: F x rows, at least A, at most B (so ids scale with --rows).
  zipf          id/categorical/multivalent: popularity exponent (rank r weighs r^-zipf).
  initial       id (not a side table's attribute): share of ids that exist when the stream
                starts; the others arrive evenly until 90% of it (1: no arrivals).
  width         id: ids are zero-padded to this many digits.
  min_values, max_values   multivalent: values per row (uniform in between).
  distribution  numeric: normal (mean, std), lognormal (median, sigma) or uniform (min, max);
                min/max also clip the other two. decimals: float values' rounding.
  missing_rate  share of rows (of side-table rows, for a side table's columns) without a
                value; only for features whose spec allows missing values.
  signal        how strongly the feature moves the label (0: pure noise): the spread of
                its per-value effects on the logit, or the amplitude of a numeric feature's
                non-monotonic effect.

Built-in defaults: ids {fraction: 0.01, min: 10, max: 1000000}, zipf 1.0, user ids start
with 20% of their ids present and item ids with 30% (others all present), signal 0.5 for
user and item ids, 0.3 for everything else; categorical features without a domain have 10
values (zipf 0.5); multivalent ones 50 values, 1 to 3 per row; numeric features are
normal(0, 1), or uniform over their `lower_bounds` buckets; 1% of the values of a feature
whose spec allows missing values are missing, except user and item ids and side-table keys.
"""

import dataclasses
import datetime
import math
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from dataspec import spec as spec_lib

KINDS = spec_lib.KINDS
DISTRIBUTIONS = ("normal", "lognormal", "uniform")
# Keys each kind of feature accepts (in `features.<name>` and `defaults.<kind>`).
KEYS = {
    "id": ("cardinality", "zipf", "initial", "width", "missing_rate", "signal"),
    "categorical": ("cardinality", "zipf", "missing_rate", "signal"),
    "multivalent": ("cardinality", "zipf", "min_values", "max_values", "missing_rate",
                    "signal"),
    "numeric": ("distribution", "mean", "std", "median", "sigma", "min", "max", "decimals",
                "missing_rate", "signal"),
}
DEFAULT_START = 1_704_067_200  # 2024-01-01T00:00:00Z
DEFAULT_DAYS = 30.0
DEFAULT_ROWS_PER_FILE = 1_000_000
DEFAULT_MISSING_RATE = 0.01


class ProfileError(ValueError):
  """A synthesis profile is invalid; the message names the file, the key and the fix."""


@dataclasses.dataclass(frozen=True)
class Cardinality:
  """How many values a feature has: `fixed`, or `fraction` x rows within [minimum, maximum]."""
  fixed: Optional[int] = None
  fraction: Optional[float] = None
  minimum: int = 1
  maximum: Optional[int] = None

  def at(self, rows: int) -> int:
    """The number of values at `rows` rows."""
    if self.fixed is not None:
      return self.fixed
    n = max(self.minimum, int(rows * self.fraction))
    return min(n, self.maximum) if self.maximum else n

  def describe(self) -> str:
    if self.fixed is not None:
      return str(self.fixed)
    cap = f", at most {self.maximum:,}" if self.maximum else ""
    return f"{self.fraction:g} x rows, at least {self.minimum:,}{cap}"


@dataclasses.dataclass(frozen=True)
class FeatureProfile:
  """One feature's synthesis settings, defaults resolved (see the module docstring)."""
  cardinality: Optional[Cardinality] = None
  zipf: float = 1.0
  initial: float = 1.0
  width: int = 0
  min_values: int = 1
  max_values: int = 3
  distribution: str = "normal"
  mean: float = 0.0
  std: float = 1.0
  median: float = 1.0
  sigma: float = 1.0
  minimum: Optional[float] = None
  maximum: Optional[float] = None
  decimals: int = 3
  missing_rate: float = 0.0
  signal: float = 0.3


@dataclasses.dataclass(frozen=True)
class Profile:
  """A whole profile, resolved against a spec: every spec feature has its settings.

  Attributes:
    features: feature name -> its settings.
    start: the stream's first time (unix seconds).
    days: the stream's length.
    positive_rate: share of positive labels.
    label_values: threshold rules: the raw label values to write (empty: from the spec's
      schema, else around the threshold).
    label_missing_rate: share of rows without a label.
    interaction_dims: rank of the user x item taste.
    interaction_weight: its standard deviation on the logit.
    rows_per_file: glob sources: rows per file.
    spans: `{SPAN}` sources: the number of spans (the rows split evenly, in time order).
    origin: the file it came from ("" for the built-in defaults).
  """
  features: Mapping[str, FeatureProfile]
  start: int = DEFAULT_START
  days: float = DEFAULT_DAYS
  positive_rate: float = 0.5
  label_values: Tuple[float, ...] = ()
  label_missing_rate: float = 0.0
  interaction_dims: int = 4
  interaction_weight: float = 0.5
  rows_per_file: int = DEFAULT_ROWS_PER_FILE
  spans: int = 1
  origin: str = ""


class _Section(spec_lib._Section):  # pylint: disable=protected-access
  """The spec's strict section reader, with errors that name the profile."""

  def error(self, message: str, key: Optional[str] = None) -> ProfileError:
    origin = f"synthesis profile {self.origin}: " if self.origin else "synthesis profile: "
    return ProfileError(f"{origin}{self.where(key)}: {message}")

  def section(self, key: str, required: bool = False) -> Optional["_Section"]:
    value = self.get(key, None, required)
    if value is None:
      return None
    return _Section(value, self.where(key), self.origin)

  def rate(self, key: str, below_one: bool = True) -> Optional[float]:
    value = self.number(key)
    if value is not None and not (0 <= value < 1 if below_one else 0 < value <= 1):
      bounds = "at least 0 and below 1" if below_one else "above 0 and at most 1"
      raise self.error(f"must be {bounds}, got {value:g}", key)
    return value

  def non_negative(self, key: str) -> Optional[float]:
    value = self.number(key)
    if value is not None and value < 0:
      raise self.error(f"must be at least 0, got {value:g}", key)
    return value


def default_path(spec: spec_lib.DatasetSpec) -> Optional[str]:
  """The profile beside `spec`'s file (`x.yaml` -> `x.synth.yaml`, or `.json`), if any."""
  if not spec.origin:
    return None
  stem = os.path.splitext(spec.origin)[0]
  for extension in (".synth.yaml", ".synth.yml", ".synth.json"):
    if os.path.isfile(stem + extension):
      return stem + extension
  return None


def load(spec: spec_lib.DatasetSpec, path: Optional[str] = None) -> Profile:
  """The profile of `spec`: `path`, else the one beside the spec, else the defaults.

  Raises:
    ProfileError: the file is unreadable or invalid (the message names the key).
  """
  path = path or default_path(spec)
  if path is None:
    return parse({}, spec)
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except OSError as e:
    raise ProfileError(f"synthesis profile {path}: cannot read it: {e}") from None
  import yaml  # pylint: disable=g-import-not-at-top
  try:
    values = yaml.safe_load(text)  # JSON is YAML too
  except yaml.YAMLError as e:
    mark = getattr(e, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
    raise ProfileError(f"synthesis profile {path}{where}: invalid YAML: "
                       f"{getattr(e, 'problem', None) or e}") from None
  if values is None:
    values = {}
  if not isinstance(values, dict):
    raise ProfileError(f"synthesis profile {path}: expected a mapping at the top level "
                       "(time:, label:, features:, ...)")
  return parse(values, spec, origin=path)


def parse(values: Mapping[str, Any], spec: spec_lib.DatasetSpec, origin: str = "") -> Profile:
  """Builds and checks a profile for `spec` from parsed YAML/JSON.

  Raises:
    ProfileError: naming the key and what to write instead.
  """
  top = _Section(values, "", origin)
  top.string("description")
  time = top.section("time")
  start, days = DEFAULT_START, DEFAULT_DAYS
  if time:
    start = _start(time)
    days = time.number("days", DEFAULT_DAYS, positive=True)
    time.finish()
  label = top.section("label")
  positive_rate, label_values, label_missing = 0.5, (), 0.0
  if label:
    positive_rate = label.number("positive_rate", 0.5)
    if not 0 < positive_rate < 1:
      raise label.error(f"must be above 0 and below 1, got {positive_rate:g}", "positive_rate")
    label_values = _numbers(label, "values")
    if label_values and not spec.label.positive_if:
      raise label.error(f"applies to threshold rules (positive_if); the spec's rule is "
                        f"{spec.label.rule}", "values")
    label_missing = label.rate("missing_rate") or 0.0
    label.finish()
  interaction = top.section("interaction")
  dims, weight = 4, 0.5
  if interaction:
    dims = interaction.integer("dims", 4, minimum=1)
    weight = interaction.non_negative("weight")
    weight = 0.5 if weight is None else weight
    interaction.finish()
  files = top.section("files")
  rows_per_file, spans = DEFAULT_ROWS_PER_FILE, 1
  if files:
    rows_per_file = files.integer("rows_per_file", DEFAULT_ROWS_PER_FILE, minimum=1)
    spans = files.integer("spans", 1, minimum=1)
    if spans > 1 and "{SPAN}" not in spec.source.path:
      raise files.error(f"the spec's source.path {spec.source.path!r} has no {{SPAN}}; "
                        "remove spans or give the source a span layout", "spans")
    files.finish()

  defaults: Dict[str, Dict[str, Any]] = {}
  defaults_section = top.section("defaults")
  if defaults_section:
    for kind in KINDS:
      section = defaults_section.section(kind)
      if section:
        defaults[kind] = _feature_values(section, kind, name=None, spec=spec)
    defaults_section.finish()

  given: Dict[str, Dict[str, Any]] = {}
  features_section = top.section("features")
  if features_section:
    names = spec.feature_names
    for name in features_section.value:
      if name not in names:
        raise features_section.error(f"{name!r} is not a feature of dataset "
                                     f"{spec.name}; its features are {', '.join(names)}")
      section = features_section.section(name)
      given[name] = _feature_values(section, spec.feature(name).kind, name, spec)
    features_section.finish()
  top.finish()

  resolved = {f.name: _resolve(f, spec, defaults.get(f.kind, {}), given.get(f.name, {}),
                               top.origin)
              for f in spec.features}
  return Profile(features=resolved, start=start, days=days, positive_rate=positive_rate,
                 label_values=label_values, label_missing_rate=label_missing,
                 interaction_dims=dims, interaction_weight=weight,
                 rows_per_file=rows_per_file, spans=spans, origin=origin)


def _start(section: _Section) -> int:
  value = section.get("start", DEFAULT_START)
  if isinstance(value, datetime.datetime):
    moment = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp())
  if isinstance(value, datetime.date):
    return int(datetime.datetime(value.year, value.month, value.day,
                                 tzinfo=datetime.timezone.utc).timestamp())
  if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
    return value
  if isinstance(value, str):
    text = value.strip().replace("Z", "+00:00")
    try:
      moment = datetime.datetime.fromisoformat(text)
    except ValueError:
      moment = None
    if moment is not None:
      if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
      return int(moment.timestamp())
  raise section.error(f"expected unix seconds or an ISO 8601 date/time (2024-01-01, "
                      f"2024-01-01T08:00:00Z), got {value!r}", "start")


def _numbers(section: _Section, key: str) -> Tuple[float, ...]:
  value = section.get(key)
  if value is None:
    return ()
  if (not isinstance(value, list) or len(value) < 2 or
      any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
          for v in value)):
    raise section.error(f"expected a list of at least two numbers, got {value!r}", key)
  if len(set(value)) != len(value):
    raise section.error(f"names a value twice: {value}", key)
  return tuple(float(v) for v in value)


def _feature_values(section: _Section, kind: str, name: Optional[str],
                    spec: spec_lib.DatasetSpec) -> Dict[str, Any]:
  """The keys given in `section` (a feature, or `defaults.<kind>` when `name` is None)."""
  allowed = KEYS[kind]
  for key in section.value:
    if key not in allowed and any(key in keys for keys in KEYS.values()):
      raise section.error(f"applies to {', '.join(k for k in KINDS if key in KEYS[k])} "
                          f"features, not {kind} ones; the keys of a {kind} feature are "
                          f"{', '.join(allowed)}", key)
  out: Dict[str, Any] = {}
  if "cardinality" in allowed:
    cardinality = _cardinality(section)
    if cardinality is not None:
      size = _spec_domain_size(spec.feature(name)) if name is not None else None
      if size:
        raise section.error(f"the spec gives {name}'s domain ({size} values, from domain_size "
                            "or the schema); remove cardinality", "cardinality")
      out["cardinality"] = cardinality
  for key in ("zipf", "signal", "std", "sigma"):
    if key in allowed:
      value = section.non_negative(key)
      if value is not None:
        out[key] = value
  if "initial" in allowed:
    value = section.rate("initial", below_one=False)
    if value is not None:
      if name is not None and spec.feature(name).attribute_of:
        raise section.error(f"{name} is an attribute in a side table (of "
                            f"{spec.feature(name).attribute_of}); its ids do not arrive over "
                            "time, its entity's do", "initial")
      out["initial"] = value
  for key, minimum in (("width", 1), ("min_values", 1), ("max_values", 1), ("decimals", 0)):
    if key in allowed:
      value = section.integer(key, None, minimum=minimum)
      if value is not None:
        out[key] = value
  if "min_values" in out and "max_values" in out and out["min_values"] > out["max_values"]:
    raise section.error(f"min_values {out['min_values']} is above max_values "
                        f"{out['max_values']}", "max_values")
  if "distribution" in allowed:
    distribution = section.string("distribution", None, choices=DISTRIBUTIONS)
    if distribution:
      out["distribution"] = distribution
    for key, field in (("mean", "mean"), ("median", "median"), ("min", "minimum"),
                       ("max", "maximum")):
      value = section.number(key)
      if value is not None:
        out[field] = value
    if "median" in out and out["median"] <= 0:
      raise section.error(f"a lognormal median is above 0, got {out['median']:g}", "median")
    if "minimum" in out and "maximum" in out and out["minimum"] >= out["maximum"]:
      raise section.error(f"min {out['minimum']:g} is not below max {out['maximum']:g}",
                          "max")
    if out.get("distribution") == "uniform" and name is not None and not (
        "minimum" in out and "maximum" in out):
      raise section.error("a uniform distribution needs min and max", "distribution")
  rate = section.rate("missing_rate")
  if rate is not None:
    if name is not None and rate > 0:
      why = _why_never_missing(spec, spec.feature(name))
      if why:
        raise section.error(f"{name} cannot have missing values: {why}", "missing_rate")
    out["missing_rate"] = rate
  section.finish()
  return out


def _cardinality(section: _Section) -> Optional[Cardinality]:
  value = section.get("cardinality")
  if value is None:
    return None
  if isinstance(value, int) and not isinstance(value, bool):
    if value < 1:
      raise section.error(f"must be at least 1, got {value}", "cardinality")
    return Cardinality(fixed=value)
  if not isinstance(value, Mapping):
    raise section.error(f"expected a number of values, or {{fraction: F, min: A, max: B}} "
                        f"(F x rows, at least A, at most B), got {value!r}", "cardinality")
  sub = _Section(value, section.where("cardinality"), section.origin)
  fraction = sub.number("fraction", None, positive=True)
  if fraction is None:
    raise sub.error("missing; write the share of rows, e.g. fraction: 0.01", "fraction")
  minimum = sub.integer("min", 1, minimum=1)
  maximum = sub.integer("max", None, minimum=1)
  if maximum is not None and maximum < minimum:
    raise sub.error(f"max {maximum} is below min {minimum}", "max")
  sub.finish()
  return Cardinality(fraction=fraction, minimum=minimum, maximum=maximum)


def _spec_domain_size(feature: spec_lib.Feature) -> Optional[int]:
  return feature.domain_size if feature.kind in ("categorical", "multivalent") else None


def side_table_of(spec: spec_lib.DatasetSpec, column: str) -> Optional[spec_lib.SideTable]:
  """The side table that brings `column`, or None (the column is the source's)."""
  for table in spec.source.side_tables:
    if column in table.columns:
      return table
  return None


def _why_never_missing(spec: spec_lib.DatasetSpec, feature: spec_lib.Feature) -> str:
  """Why `feature` can have no missing values ("" when it can)."""
  if feature.missing == "error":
    return "the spec says missing: error"
  if any(t.key == feature.column for t in spec.source.side_tables):
    return "its column is a side table's key (a missing key joins nothing)"
  if spec.time and feature.column == spec.time.column:
    return "its column is the time column"
  table = side_table_of(spec, feature.column)
  if table is not None:
    if table.format == "csv" and not table.csv.null_values:
      return f"side table {table.path} declares no csv.null_values to write it as"
  elif spec.source.format == "csv" and not spec.source.csv.null_values:
    return f"{spec.source.path} declares no csv.null_values to write it as"
  return ""


def _resolve(feature: spec_lib.Feature, spec: spec_lib.DatasetSpec, kind_defaults: Dict[str, Any],
             given: Dict[str, Any], origin: str) -> FeatureProfile:
  """`feature`'s settings: given, else the profile's defaults for its kind, else built-in."""
  entity = feature.attribute_of is None
  role = feature.role if entity else None
  builtin: Dict[str, Any] = {"signal": 0.5 if feature.kind == "id" and role in ("user", "item")
                             else 0.3}
  if feature.kind == "id":
    builtin.update(cardinality=Cardinality(fraction=0.01, minimum=10, maximum=1_000_000),
                   zipf=1.0, initial={"user": 0.2, "item": 0.3}.get(role, 1.0))
  elif feature.kind == "categorical":
    builtin.update(cardinality=Cardinality(fixed=10), zipf=0.5)
  elif feature.kind == "multivalent":
    builtin.update(cardinality=Cardinality(fixed=50), zipf=1.0)
  elif feature.lower_bounds:
    bounds = feature.lower_bounds
    gap = (bounds[-1] - bounds[0]) / (len(bounds) - 1)
    builtin.update(distribution="uniform", minimum=bounds[0], maximum=bounds[-1] + gap)
  never = _why_never_missing(spec, feature)
  if never:
    builtin["missing_rate"] = 0.0
  elif not (feature.kind == "id" and role in ("user", "item")):
    builtin["missing_rate"] = DEFAULT_MISSING_RATE
  values = {**builtin, **{k: v for k, v in kind_defaults.items()
                          if not (k == "missing_rate" and never)
                          and not (k == "initial" and not entity)
                          and not (k == "cardinality" and _spec_domain_size(feature))},
            **given}
  if feature.kind in ("categorical", "multivalent") and _spec_domain_size(feature):
    values.pop("cardinality", None)
  if feature.kind == "numeric":
    distribution = values.get("distribution", "normal")
    if distribution == "uniform" and not ("minimum" in values and "maximum" in values):
      where = f"synthesis profile {origin}: " if origin else "synthesis profile: "
      raise ProfileError(f"{where}features.{feature.name}: a uniform distribution needs "
                         "min and max")
  return FeatureProfile(**values)


def with_cardinalities(profile: Profile, spec: spec_lib.DatasetSpec,
                       cardinalities: Mapping[str, int]) -> Profile:
  """`profile` with fixed cardinalities (the command line's `--cardinality FEATURE=N`).

  Raises:
    ProfileError: an unknown feature, one whose domain the spec gives, a numeric one, or N < 1.
  """
  features = dict(profile.features)
  for name, n in cardinalities.items():
    if name not in features:
      raise ProfileError(f"--cardinality {name}={n}: {name!r} is not a feature of dataset "
                         f"{spec.name}; its features are {', '.join(spec.feature_names)}")
    feature = spec.feature(name)
    if feature.kind == "numeric" or _spec_domain_size(feature):
      raise ProfileError(f"--cardinality {name}={n}: {name} is a {feature.kind} feature "
                         "whose values come from the spec" + (
                             f" ({_spec_domain_size(feature)} values)"
                             if _spec_domain_size(feature) else ""))
    if n < 1:
      raise ProfileError(f"--cardinality {name}={n}: must be at least 1")
    features[name] = dataclasses.replace(features[name], cardinality=Cardinality(fixed=n))
  return dataclasses.replace(profile, features=features)
