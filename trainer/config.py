"""The typed training configuration, shared by the pipeline, the Trainer and the benchmarks.

The pipeline passes it to the Trainer as `custom_config["training"]` (a JSON dict), so every
field is JSON-serializable and `TrainingConfig.from_dict(c.to_dict()) == c` holds.
"""

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Hyper-parameters of one Trainer run. Defaults are the tutorial's.

  Attributes:
    model_type: "unified", "hash" or "collisionless".
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
    shuffle_buffer: examples in the shuffle buffer before batching.
    seed: seed for initialization and shuffling.
    eval_batch_size: batch size for the in-Trainer evaluation.
  """

  model_type: str = "unified"
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

  def __post_init__(self):
    if self.model_type not in MODEL_TYPES:
      raise ValueError(
          f"training.model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
    for name in ("batch_size", "epochs", "embedding_dim", "embedding_budget", "num_tables",
                 "dim_per_table", "default_chunks", "eval_batch_size"):
      if getattr(self, name) <= 0:
        raise ValueError(f"training.{name} must be positive, got {getattr(self, name)}")
    if self.learning_rate <= 0:
      raise ValueError(f"training.learning_rate must be positive, got {self.learning_rate}")
    unknown = {f for f, _ in self.chunks} - set(features.MODEL_FEATURES)
    if unknown:
      raise ValueError(f"training.chunks names unknown features {sorted(unknown)}; "
                       f"model features are {list(features.MODEL_FEATURES)}")
    missing = set(features.MODEL_FEATURES) - {f for f, _ in self.hash_bucket_weights}
    if missing:
      raise ValueError(f"training.hash_bucket_weights has no weight for {sorted(missing)}: "
                       "every model feature needs its own hash table")

  @property
  def chunks_per_feature(self) -> Dict[str, int]:
    """Chunk count of every model feature, in model-feature order."""
    overrides = dict(self.chunks)
    return {f: overrides.get(f, self.default_chunks) for f in features.MODEL_FEATURES}

  def replace(self, **changes: Any) -> "TrainingConfig":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> Dict[str, Any]:
    d = dataclasses.asdict(self)
    d["layer_sizes"] = list(self.layer_sizes)
    d["chunks"] = dict(self.chunks)
    d["hash_bucket_weights"] = dict(self.hash_bucket_weights)
    return d

  @classmethod
  def from_dict(cls, d: Optional[Mapping[str, Any]]) -> "TrainingConfig":
    """Builds a config from a (possibly partial) dict; unknown keys are an error."""
    d = dict(d or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
      raise ValueError(f"unknown training config keys {sorted(unknown)}; "
                       f"known keys are {sorted(known)}")
    if "layer_sizes" in d:
      d["layer_sizes"] = tuple(int(x) for x in d["layer_sizes"])
    for key in ("chunks", "hash_bucket_weights"):
      if key in d:
        value = d[key]
        items = value.items() if isinstance(value, Mapping) else value
        d[key] = tuple((str(k), int(v)) for k, v in items)
    return cls(**d)
