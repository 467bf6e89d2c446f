"""Dataset specs and resolved training configs for the model-level tests."""

from dataspec import spec as spec_lib
from trainer import config as training_lib
from trainer.config import TrainingConfig

MOVIELENS = spec_lib.load("movielens")
FEATURES = MOVIELENS.feature_names
# The tutorial's hash table sizes (the MovieLens preset's hash weights).
TUTORIAL_HASH_BUCKETS = tuple((f.name, int(f.hash_weight)) for f in MOVIELENS.features)


def resolved(spec: spec_lib.DatasetSpec = MOVIELENS, **fields) -> TrainingConfig:
  """`TrainingConfig(**fields)` resolved against `spec` (MovieLens by default)."""
  return training_lib.resolve(TrainingConfig(**fields), spec)
