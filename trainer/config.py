"""The typed training configuration, shared by the pipeline, the Trainer and the benchmarks.

A `TrainingConfig` is built from a config file and flags without knowing the dataset;
`resolve(config, spec)` then fixes everything that depends on the dataset's features (the
budget rule's layout, the hash baseline's split, which features are embedded) and checks
the budget. The pipeline passes the resolved config to the Trainer as
`custom_config["training"]` (a JSON dict), so every field is JSON-serializable and
`TrainingConfig.from_dict(c.to_dict()) == c` holds.
"""

import dataclasses
import math
from typing import Any, Dict, Mapping, Optional, Tuple

from dataspec import spec as spec_lib

MODEL_TYPES = ("unified", "hash", "collisionless")

# The tutorial's embedding budget: its hash tables hold 1,500 rows of dimension 16.
TUTORIAL_EMBEDDING_BUDGET = 24_000

# The admission filter's size (`trainer/admission.py` builds it; its cost is paid from the
# embedding budget, so a budget can be checked before anything is built).
FILTER_BITS = 8192      # cells per feature
BYTES_PER_PARAMETER = 4  # a float32 embedding parameter

LAYOUTS = ("budget_rule", "explicit")
# The fields a layout decides.
LAYOUT_FIELDS = ("num_tables", "dim_per_table", "chunks", "default_chunks",
                 "admission_features", "id_dropout")

# The budget rule (`budget_rule_layout`); bench/results/unified_configs.md and
# bench/results/cold_start.md hold the measurements behind each constant.
RULE_DIM_PER_TABLE = 8
RULE_OPEN_CHUNKS = 4          # chunks of an open vocabulary (kind id), which can fill the table
RULE_ITEM_CHUNKS = RULE_OPEN_CHUNKS * 3 // 2       # the item's ids (role item)
RULE_ATTRIBUTE_CHUNKS = RULE_OPEN_CHUNKS // 2      # an open attribute of a side table's entity
RULE_MAX_ROWS_PER_TABLE = 1 << 20  # beyond this, the rows are sharded over more tables
RULE_ID_DROPOUT = 0.0

# The hash baseline's default split (features without a `hash_weight` in the spec): a
# closed domain of n values gets this many rows per value, at most an equal share of the
# rows; the open vocabularies share the rest equally.
HASH_ROWS_PER_VALUE = 2


def rule_chunks(feature: spec_lib.Feature, rows: int) -> int:
  """The budget rule's chunk count of one feature, for a table of `rows` rows.

  Chunks grow with the log of how many values a feature can take, relative to the rows: an
  open vocabulary (kind id), which can fill the table, gets `RULE_OPEN_CHUNKS`; the item's
  ids (role item) 1.5x that, since tomorrow's items are mostly known while most of
  tomorrow's users are new; an open attribute of a side table's entity (a user's zip code:
  known exactly when the user is) half. A closed domain of n values gets
  `max(1, round(RULE_OPEN_CHUNKS * log2(n) / log2(rows)))`, and a multivalent or
  categorical feature of unknown domain is treated as open.
  """
  if feature.kind == "id":
    if feature.attribute_of:
      return RULE_ATTRIBUTE_CHUNKS
    return RULE_ITEM_CHUNKS if feature.role == "item" else RULE_OPEN_CHUNKS
  n = feature.closed_domain_size
  if n is None or n >= rows:
    return RULE_OPEN_CHUNKS
  return max(1, round(RULE_OPEN_CHUNKS * math.log2(max(n, 2)) / math.log2(rows)))


def budget_rule_layout(budget: int, spec: spec_lib.DatasetSpec) -> Dict[str, Any]:
  """The unified layout the budget rule derives from an embedding budget and a dataset.

  * one shared table of dimension `RULE_DIM_PER_TABLE` holding all `budget / 8` rows (more
    tables only when the rows exceed `RULE_MAX_ROWS_PER_TABLE`, for sharding: on one
    device, one table gives every lookup all the rows);
  * each feature's chunks by `rule_chunks` (its kind, role and domain size);
  * the admission filter on the open vocabularies (the spec's id features) with id dropout
    `RULE_ID_DROPOUT`; its bytes and defaults are paid from the same budget.

  Args:
    budget: embedding parameters.
    spec: the dataset.

  Returns:
    The values of `LAYOUT_FIELDS`.
  """
  rows = max(2, budget // RULE_DIM_PER_TABLE)
  return {"num_tables": max(1, math.ceil(rows / RULE_MAX_ROWS_PER_TABLE)),
          "dim_per_table": RULE_DIM_PER_TABLE,
          "chunks": tuple((f.name, rule_chunks(f, rows)) for f in spec.features),
          "default_chunks": 1, "admission_features": spec.id_features,
          "id_dropout": RULE_ID_DROPOUT}


def hash_weights(budget: int, dim: int, spec: spec_lib.DatasetSpec) -> Tuple[Tuple[str, float], ...]:
  """The hash baseline's table weights: the spec's `hash_weight`s, or the default split.

  Default: the budget buys `budget / dim` rows; a closed domain of n values (`Feature.
  closed_domain_size`) gets `HASH_ROWS_PER_VALUE * n` rows, at most an equal share of all
  rows, and the open vocabularies share what is left equally (each at least one row).

  Raises:
    ValueError: some features have a `hash_weight` and others not.
  """
  given = [f for f in spec.features if f.hash_weight is not None]
  if given and len(given) != len(spec.features):
    missing = [f.name for f in spec.features if f.hash_weight is None]
    raise ValueError(f"dataset spec: features {missing} have no hash_weight while others do; "
                     "give every feature a hash_weight, or none (the default split)")
  if given:
    return tuple((f.name, float(f.hash_weight)) for f in spec.features)
  rows = max(len(spec.features), budget // dim)
  share = rows / len(spec.features)
  closed = {f.name: min(HASH_ROWS_PER_VALUE * f.closed_domain_size, share)
            for f in spec.features if f.closed_domain_size is not None}
  open_features = [f.name for f in spec.features if f.name not in closed]
  left = max(rows - sum(closed.values()), len(open_features))
  return tuple((f.name, float(closed[f.name]) if f.name in closed
                else left / len(open_features)) for f in spec.features)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Hyper-parameters of one Trainer run. Field defaults are the tutorial's.

  Attributes:
    model_type: "unified", "hash" or "collisionless".
    layout: unified: "explicit" (the fields below as given; their defaults are the
      tutorial's 2 tables x dimension 8, 2 chunks per feature) or "budget_rule" (tables,
      dimension, chunks and admission derived from `embedding_budget` by
      `budget_rule_layout`; the pipeline's default candidate). Under "budget_rule", setting
      a field the rule decides is an error.
    layer_sizes: hidden layers of the MLP on top of the concatenated embeddings.
    learning_rate: Adam learning rate.
    batch_size: training batch size.
    epochs: passes over the train split.
    embedding_dim: output dimension per feature (unified: num_chunks * dim_per_table).
    embedding_budget: total embedding parameters of the hashed models (unified and hash
      get exactly the same number; collisionless ignores it).
    num_tables: unified: number of shared tables.
    dim_per_table: unified: dimension of each table (one chunk).
    chunks: unified: per-feature chunk counts, as (feature, chunks) pairs; features not
      listed get `default_chunks`.
    default_chunks: unified: chunks of a feature not in `chunks`.
    hash_bucket_weights: hash: relative table sizes per feature; the budget is split in
      these proportions (empty: `hash_weights` of the dataset, set by `resolve`).
    shuffle_buffer: the most examples the shuffle holds in memory; every example is
      shuffled with every other (larger input through buckets on local disk).
    seed: seed for initialization and shuffling.
    eval_batch_size: batch size for the in-Trainer evaluation.
    admission_features: features whose ids pass Transform's admission filter (ids not
      seen in the training window) before the embedding; a non-admitted id gets its
      feature's default vector instead of hashed rows (`trainer/admission.py`). The
      filter's bytes and the default vectors are paid from `embedding_budget`. Empty: off.
      A collisionless model needs no filter (its vocabulary is exact): for it these
      features' out-of-vocabulary rows become the defaults (`RankingModel.
      fit_unseen_defaults`).
    id_dropout: with `admission_features`: the training-time rate at which an admitted id is
      replaced by its feature's default (which trains the defaults as weights; after
      training they are set to the mean of the window's rarer ids either way).
    warm_start_lr_scale: the learning rate of a warm-started run is `learning_rate` times
      this: a fine-tune of the model in production, not a new fit. At 1.0 Adam's first steps
      move every weight by about the full learning rate and wash out what the previous
      windows taught (docs/measured.md, "The budget rule", has the scales compared).
    features: the embedded features, in model order; set by `resolve` from the dataset.
  """

  model_type: str = "unified"
  layout: str = "explicit"
  layer_sizes: Tuple[int, ...] = (128, 64)
  learning_rate: float = 0.01
  batch_size: int = 8192
  epochs: int = 5
  embedding_dim: int = 16
  embedding_budget: int = TUTORIAL_EMBEDDING_BUDGET
  num_tables: int = 2
  dim_per_table: int = 8
  chunks: Tuple[Tuple[str, int], ...] = ()
  default_chunks: int = 2
  hash_bucket_weights: Tuple[Tuple[str, float], ...] = ()
  shuffle_buffer: int = 100_000
  seed: int = 42
  eval_batch_size: int = 4096
  admission_features: Tuple[str, ...] = ()
  id_dropout: float = 0.0
  warm_start_lr_scale: float = 0.5
  features: Tuple[str, ...] = ()

  def __post_init__(self):
    if self.model_type not in MODEL_TYPES:
      raise ValueError(
          f"training.model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
    if self.layout not in LAYOUTS:
      raise ValueError(f"training.layout must be one of {LAYOUTS}, got {self.layout!r}")
    for name in ("batch_size", "epochs", "embedding_dim", "embedding_budget", "num_tables",
                 "dim_per_table", "default_chunks", "eval_batch_size"):
      if getattr(self, name) <= 0:
        raise ValueError(f"training.{name} must be positive, got {getattr(self, name)}")
    if self.learning_rate <= 0:
      raise ValueError(f"training.learning_rate must be positive, got {self.learning_rate}")
    if not 0.0 < self.warm_start_lr_scale <= 1.0:
      raise ValueError(f"training.warm_start_lr_scale must be in (0, 1], got "
                       f"{self.warm_start_lr_scale}")
    if not 0.0 <= self.id_dropout < 1.0:
      raise ValueError(f"training.id_dropout must be in [0, 1), got {self.id_dropout}")
    if self.id_dropout and not self.admission_features:
      raise ValueError("training.id_dropout needs training.admission_features: dropped ids "
                       "go to the default vector of an admission feature")

  def _check_budget(self) -> None:
    """The budget must hold the admission filter, its defaults and at least one row."""
    unit = math.lcm(self.dim_per_table, self.embedding_dim)
    needed = self.admission_parameters + unit
    if self.embedding_budget < needed:
      paid = (f" after the admission filter and its default vectors "
              f"({self.admission_parameters} parameters for {list(self.admission_features)})"
              if self.admission_features else "")
      raise ValueError(
          f"training.embedding_budget {self.embedding_budget} leaves no room for the "
          f"{self.model_type} tables{paid}: they need at least one row of {unit} parameters. "
          f"Set embedding_budget to at least {needed}"
          + (", or give layout: explicit without admission_features" if paid else ""))

  def _resolved_features(self) -> Tuple[str, ...]:
    if not self.features:
      raise ValueError("this training config is not resolved against a dataset yet: "
                       "trainer.config.resolve(config, spec) sets its features")
    return self.features

  @property
  def chunks_per_feature(self) -> Dict[str, int]:
    """Chunk count of every model feature, in model-feature order."""
    overrides = dict(self.chunks)
    return {f: overrides.get(f, self.default_chunks) for f in self._resolved_features()}

  @property
  def feature_dims(self) -> Dict[str, int]:
    """Feature -> embedding dimension the config gives it (before sizing any table)."""
    if self.model_type == "unified":
      return {f: n * self.dim_per_table for f, n in self.chunks_per_feature.items()}
    return {f: self.embedding_dim for f in self._resolved_features()}

  @property
  def filter_parameters(self) -> int:
    """The admission filter's bytes / `BYTES_PER_PARAMETER`, rounded up.

    Zero without `admission_features`, and for "collisionless": its vocabularies tell a
    known id from an unseen one exactly, so it needs no filter.
    """
    if not self.admission_features or self.model_type == "collisionless":
      return 0
    filter_bytes = len(self.admission_features) * FILTER_BITS / 8
    return math.ceil(filter_bytes / BYTES_PER_PARAMETER)

  @property
  def default_parameters(self) -> int:
    """The default vectors of the admission features (one per feature, its dimension).

    Zero without `admission_features`, and for "collisionless": its defaults are its
    out-of-vocabulary rows, which its tables already hold (and count).
    """
    if not self.admission_features or self.model_type == "collisionless":
      return 0
    return sum(self.feature_dims[f] for f in self.admission_features)

  @property
  def admission_parameters(self) -> int:
    """What the admission filter costs the embedding budget: the filter plus the defaults.

    The unified and hash tables are sized from `embedding_budget` minus this, so the
    model's embedding parameters, filter and defaults stay within the budget.
    """
    return self.filter_parameters + self.default_parameters

  def for_warm_start(self) -> "TrainingConfig":
    """The config of a run that starts from the model in production (`warm_start_lr_scale`)."""
    return self.replace(learning_rate=self.learning_rate * self.warm_start_lr_scale)

  def replace(self, **changes: Any) -> "TrainingConfig":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> Dict[str, Any]:
    d = dataclasses.asdict(self)
    d["layer_sizes"] = list(self.layer_sizes)
    d["chunks"] = dict(self.chunks)
    d["hash_bucket_weights"] = dict(self.hash_bucket_weights)
    d["admission_features"] = list(self.admission_features)
    d["features"] = list(self.features)
    return d

  @classmethod
  def from_dict(cls, d: Optional[Mapping[str, Any]],
                default_layout: str = "explicit") -> "TrainingConfig":
    """Builds a config from a (possibly partial) dict; unknown keys are an error.

    Args:
      d: the values.
      default_layout: the layout when `d` names none: "explicit" as soon as `d` sets a
        layout field (`LAYOUT_FIELDS`), else this.
    """
    d = dict(d or {})
    if "layout" not in d:
      d["layout"] = "explicit" if set(d) & set(LAYOUT_FIELDS) else default_layout
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
      raise ValueError(f"unknown training config keys {sorted(unknown)}; "
                       f"known keys are {sorted(known)}")
    if "layer_sizes" in d:
      d["layer_sizes"] = tuple(int(x) for x in d["layer_sizes"])
    for key in ("admission_features", "features"):
      if key in d:
        d[key] = tuple(str(x) for x in d[key])
    for key in ("chunks", "hash_bucket_weights"):
      if key in d:
        value = d[key]
        items = value.items() if isinstance(value, Mapping) else value
        d[key] = tuple((str(k), int(v) if key == "chunks" else float(v)) for k, v in items)
    return cls(**d)


def resolve(config: TrainingConfig, spec: spec_lib.DatasetSpec) -> TrainingConfig:
  """`config` with everything that depends on the dataset fixed, and checked.

  Sets `features` (the spec's, in model order); under the budget rule (unified) the layout
  fields (`budget_rule_layout`); the hash tables' weights (`hash_weights`) unless the
  config gives them. Idempotent: resolving a resolved config changes nothing.

  Raises:
    ValueError: the config names a feature the dataset lacks, sets a field the budget rule
      decides, misses a hash weight, or its budget cannot hold the tables (the message
      names the smallest budget that works).
  """
  names = spec.feature_names
  changes: Dict[str, Any] = {"features": names}
  if config.layout == "budget_rule" and config.model_type == "unified":
    derived = budget_rule_layout(config.embedding_budget, spec)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}
    # Chunks compare as a mapping: JSON with sorted keys (TFX's custom_config) reorders.
    same = lambda k, a, b: dict(a) == dict(b) if k == "chunks" else a == b  # noqa: E731
    clashes = [k for k, v in derived.items()
               if not (same(k, getattr(config, k), v) or same(k, getattr(config, k), defaults[k]))]
    if clashes:
      raise ValueError(f"training.layout 'budget_rule' derives {clashes} from the budget; "
                       "remove them, or set layout: explicit to give every layout field "
                       "yourself")
    changes.update(derived)
  if not config.hash_bucket_weights:
    changes["hash_bucket_weights"] = hash_weights(config.embedding_budget,
                                                  config.embedding_dim, spec)
  resolved = dataclasses.replace(config, **changes)
  # In the dataset's feature order, whatever order a config file (or sorted JSON) gave.
  order = {name: i for i, name in enumerate(names)}
  by_order = lambda pairs: tuple(sorted(pairs, key=lambda p: order.get(p[0], len(order))))  # noqa: E731
  resolved = dataclasses.replace(resolved, chunks=by_order(resolved.chunks),
                                 hash_bucket_weights=by_order(resolved.hash_bucket_weights))
  ids = set(spec.id_features)
  wrong = [f for f in resolved.admission_features if f not in ids]
  if wrong:
    raise ValueError(f"training.admission_features names {wrong}; the admission filter "
                     f"covers the dataset's id features {list(spec.id_features)}")
  unknown = sorted({f for f, _ in resolved.chunks} - set(names))
  if unknown:
    raise ValueError(f"training.chunks names unknown features {unknown}; the dataset's "
                     f"features are {list(names)}")
  if resolved.model_type == "hash":
    missing = sorted(set(names) - {f for f, _ in resolved.hash_bucket_weights})
    if missing:
      raise ValueError(f"training.hash_bucket_weights has no weight for {missing}: every "
                       "feature needs its own hash table")
  if resolved.model_type != "collisionless":
    resolved._check_budget()  # pylint: disable=protected-access
  return resolved
