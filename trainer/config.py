"""The typed training configuration, shared by the pipeline, the Trainer and the benchmarks.

The pipeline passes it to the Trainer as `custom_config["training"]` (a JSON dict), so every
field is JSON-serializable and `TrainingConfig.from_dict(c.to_dict()) == c` holds.
"""

import dataclasses
import math
from typing import Any, Dict, Mapping, Optional, Tuple

from trainer import features

MODEL_TYPES = ("unified", "hash", "collisionless")

# The tutorial's hash table sizes, with its duplicated-key bug fixed: the tutorial lists
# `user_occupation_text` twice (60, then 20) and never `bucketized_user_age`, so its hash
# model silently drops the age feature. Here every feature has its own table; the sizes
# sum to 1,500 buckets, i.e. 24,000 parameters at dimension 16.
TUTORIAL_HASH_BUCKETS: Tuple[Tuple[str, int], ...] = (
    (features.MOVIE_ID, 600),
    (features.USER_ID, 400),
    (features.USER_GENDER, 20),
    (features.USER_ZIP_CODE, 400),
    (features.USER_OCCUPATION, 60),
    (features.USER_AGE_BUCKET, 20),
)
TUTORIAL_EMBEDDING_BUDGET = 24_000

# The admission filter's size (`trainer/admission.py` builds it; its cost is paid from the
# embedding budget, so the config can check a budget before anything is built).
FILTER_BITS = 8192      # cells per feature: ~2,000 ids per window at a ~5% false admission
BYTES_PER_PARAMETER = 4  # a float32 embedding parameter

# Features Transform's admission filter covers (`trainer/admission.py`): the ids that churn,
# users (and their zip codes, nearly one per user) and movies. Gender, occupation and age
# bucket take a handful of values that every window contains.
ADMISSION_FEATURES = (features.MOVIE_ID, features.USER_ID, features.USER_ZIP_CODE)

LAYOUTS = ("budget_rule", "explicit")
# The fields a layout decides.
LAYOUT_FIELDS = ("num_tables", "dim_per_table", "chunks", "default_chunks",
                 "admission_features", "id_dropout")

# The budget rule (`budget_rule_layout`); docs/measured.md ("The budget rule") links the
# measurements each value comes from.
RULE_DIM_PER_TABLE = 8
RULE_OPEN_CHUNKS = 4          # chunks of a feature whose vocabulary can fill the table
# Open vocabularies by what they name: the item (the catalogue: most of next period's movies
# are known, while most of its users are new, so the item's rows are what a prediction for
# tomorrow mostly reads) gets 1.5x `RULE_OPEN_CHUNKS`; an open attribute of the user (the
# zip code: nearly one per user, so it repeats the user id for a known user and is as new
# as the user otherwise) gets half.
ITEM_FEATURE = features.MOVIE_ID
USER_ATTRIBUTES = (features.USER_ZIP_CODE,)
RULE_ITEM_CHUNKS = RULE_OPEN_CHUNKS * 3 // 2
RULE_USER_ATTRIBUTE_CHUNKS = RULE_OPEN_CHUNKS // 2
RULE_MAX_ROWS_PER_TABLE = 1 << 20  # beyond this, the rows are sharded over more tables
RULE_ID_DROPOUT = 0.0  # dropout lost AUC on the time-ordered replay
# Closed domains: how many values a feature can take (schema/schema.pbtxt's string domains;
# the age buckets by construction). Every other model feature is an open vocabulary.
DOMAIN_SIZES = {features.USER_GENDER: 2, features.USER_OCCUPATION: 21,
                features.USER_AGE_BUCKET: len(features.AGE_BUCKET_LOWER_BOUNDS)}


def budget_rule_layout(budget: int) -> Dict[str, Any]:
  """The unified layout the budget rule derives from an embedding budget.

  * one shared table of dimension `RULE_DIM_PER_TABLE` holding all `budget / 8` rows (more
    tables only when the rows exceed `RULE_MAX_ROWS_PER_TABLE`, for sharding: on one
    device, one table gives every lookup all the rows);
  * chunks proportional to the log of how many values a feature can take, relative to the
    rows: an open vocabulary (ids), which can fill the table, gets `RULE_OPEN_CHUNKS`
    (the item 1.5x that, an open attribute of the user half); a closed domain of n values
    gets
    `max(1, round(RULE_OPEN_CHUNKS * log2(n) / log2(rows)))`: more chunks buy capacity (and
    all-chunk collisions become rarer) where there are many values to tell apart;
  * the admission filter on the open-vocabulary ids (`ADMISSION_FEATURES`) with id dropout
    `RULE_ID_DROPOUT`; its bytes and defaults are paid from the same budget.

  Args:
    budget: embedding parameters.

  Returns:
    The values of `LAYOUT_FIELDS`.
  """
  rows = max(2, budget // RULE_DIM_PER_TABLE)
  chunks = []
  for f in features.MODEL_FEATURES:
    n = DOMAIN_SIZES.get(f)
    if f == ITEM_FEATURE:
      c = RULE_ITEM_CHUNKS
    elif f in USER_ATTRIBUTES:
      c = RULE_USER_ATTRIBUTE_CHUNKS
    elif n is None or n >= rows:
      c = RULE_OPEN_CHUNKS
    else:
      c = max(1, round(RULE_OPEN_CHUNKS * math.log2(n) / math.log2(rows)))
    chunks.append((f, c))
  return {"num_tables": max(1, math.ceil(rows / RULE_MAX_ROWS_PER_TABLE)),
          "dim_per_table": RULE_DIM_PER_TABLE, "chunks": tuple(chunks), "default_chunks": 1,
          "admission_features": ADMISSION_FEATURES, "id_dropout": RULE_ID_DROPOUT}


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
      these proportions (the tutorial's sizes by default, which the 24k budget reproduces
      exactly).
    shuffle_buffer: the most examples the shuffle holds in memory; every example is
      shuffled with every other (larger input through buckets on local disk).
    seed: seed for initialization and shuffling.
    eval_batch_size: batch size for the in-Trainer evaluation.
    admission_features: features whose ids pass Transform's admission filter (ids not
      seen in the training window) before the embedding; a non-admitted id gets its
      feature's default vector instead of hashed rows (`trainer/admission.py`). The
      filter's bytes and the default vectors are paid from `embedding_budget`. Empty: off.
    id_dropout: with `admission_features`: the training-time rate at which an admitted id is
      replaced by its feature's default (which trains the defaults as weights; after
      training they are set to the mean of the window's rarer ids either way).
    warm_start_lr_scale: the learning rate of a warm-started run is `learning_rate` times
      this: a fine-tune of the model in production, not a new fit. At 1.0 Adam's first steps
      move every weight by about the full learning rate and wash out what the previous
      windows taught (docs/measured.md, "The budget rule", has the scales compared).
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
  hash_bucket_weights: Tuple[Tuple[str, int], ...] = TUTORIAL_HASH_BUCKETS
  shuffle_buffer: int = 100_000
  seed: int = 42
  eval_batch_size: int = 4096
  admission_features: Tuple[str, ...] = ()
  id_dropout: float = 0.0
  warm_start_lr_scale: float = 0.5

  def __post_init__(self):
    if self.model_type not in MODEL_TYPES:
      raise ValueError(
          f"training.model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
    if self.layout not in LAYOUTS:
      raise ValueError(f"training.layout must be one of {LAYOUTS}, got {self.layout!r}")
    if self.layout == "budget_rule" and self.model_type == "unified":
      derived = budget_rule_layout(self.embedding_budget)
      defaults = {f.name: f.default for f in dataclasses.fields(self)}
      # Chunks compare as a mapping: JSON with sorted keys (TFX's custom_config) reorders.
      same = lambda k, a, b: dict(a) == dict(b) if k == "chunks" else a == b  # noqa: E731
      clashes = [k for k, v in derived.items()
                 if not (same(k, getattr(self, k), v) or same(k, getattr(self, k), defaults[k]))]
      if clashes:
        raise ValueError(f"training.layout 'budget_rule' derives {clashes} from the budget; "
                         "remove them, or set layout: explicit to give every layout field "
                         "yourself")
      for k, v in derived.items():
        object.__setattr__(self, k, v)  # frozen dataclass: fields set once, here
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
    unknown = set(self.admission_features) - set(ADMISSION_FEATURES)
    if unknown:
      raise ValueError(f"training.admission_features names {sorted(unknown)}; Transform "
                       f"filters only {list(ADMISSION_FEATURES)}")
    if self.id_dropout and not self.admission_features:
      raise ValueError("training.id_dropout needs training.admission_features: dropped ids "
                       "go to the default vector of an admission feature")
    unknown = {f for f, _ in self.chunks} - set(features.MODEL_FEATURES)
    if unknown:
      raise ValueError(f"training.chunks names unknown features {sorted(unknown)}; "
                       f"model features are {list(features.MODEL_FEATURES)}")
    missing = set(features.MODEL_FEATURES) - {f for f, _ in self.hash_bucket_weights}
    if missing:
      raise ValueError(f"training.hash_bucket_weights has no weight for {sorted(missing)}: "
                       "every model feature needs its own hash table")
    if self.model_type != "collisionless":
      self._check_budget()

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

  @property
  def chunks_per_feature(self) -> Dict[str, int]:
    """Chunk count of every model feature, in model-feature order."""
    overrides = dict(self.chunks)
    return {f: overrides.get(f, self.default_chunks) for f in features.MODEL_FEATURES}

  @property
  def feature_dims(self) -> Dict[str, int]:
    """Feature -> embedding dimension the config gives it (before sizing any table)."""
    if self.model_type == "unified":
      return {f: n * self.dim_per_table for f, n in self.chunks_per_feature.items()}
    return {f: self.embedding_dim for f in features.MODEL_FEATURES}

  @property
  def admission_parameters(self) -> int:
    """What the admission filter costs the embedding budget: its bytes / 4 plus the defaults.

    Zero without `admission_features`. The unified and hash tables are sized from
    `embedding_budget` minus this, so the model's total stays within the budget.
    """
    if not self.admission_features:
      return 0
    filter_bytes = len(self.admission_features) * FILTER_BITS / 8
    return (math.ceil(filter_bytes / BYTES_PER_PARAMETER)
            + sum(self.feature_dims[f] for f in self.admission_features))

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
    if "admission_features" in d:
      d["admission_features"] = tuple(str(x) for x in d["admission_features"])
    for key in ("chunks", "hash_bucket_weights"):
      if key in d:
        value = d[key]
        items = value.items() if isinstance(value, Mapping) else value
        d[key] = tuple((str(k), int(v)) for k, v in items)
    return cls(**d)
