"""Embedding layers: unified (feature multiplexing), per-feature hash, and collisionless.

All three share one hashing function and one table back end, TFRS' `TPUEmbedding`, so the
same code runs on CPU, GPU and under `TPUStrategy` (where the tables live in TPU HBM).

Why not TFRS' `UnifiedEmbedding` (0.7.7) directly:
  * its salts are `[feature index, chunk index]`: adding, removing or reordering one feature
    re-hashes every later feature, so a warm-started model reads the wrong rows. Here a
    lookup's salt derives from the feature *name* and the chunk index only;
  * its `get_config`/`from_config` cannot round-trip (wrong key, assignment to a read-only
    property, the hashing config reset to `{}`). Here the config is the layer's spec;
  * it gives every feature the same number of chunks and cannot be sized from a parameter
    budget. Here chunks are per feature and `unified_spec_from_budget` derives the tables.
"""

import dataclasses
import hashlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_recommenders as tfrs

_TPUEmbedding = tfrs.layers.embedding.TPUEmbedding
_TableConfig = tf.tpu.experimental.embedding.TableConfig
_FeatureConfig = tf.tpu.experimental.embedding.FeatureConfig


def _name_hash32(name: str) -> int:
  return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big")


def feature_salt(feature: str, chunk: int = 0) -> Tuple[int, int]:
  """The SipHash key of one lookup: it depends on the feature's name and chunk only.

  Args:
    feature: feature name.
    chunk: index of the chunk (sub-embedding) of that feature.

  Returns:
    A pair of unsigned 32-bit integers, usable as `tf.strings.to_hash_bucket_strong`'s key.
  """
  return (_name_hash32(feature), int(chunk))


def hash_ids(values: tf.Tensor, num_buckets: int, salt: Sequence[int]) -> tf.Tensor:
  """Maps string values to ids in [0, num_buckets) with keyed SipHash (stable across runs)."""
  return tf.strings.to_hash_bucket_strong(values, num_buckets, key=list(salt))


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
  """What an embedding layer holds and how each feature is looked up.

  Attributes:
    kind: "unified", "hash" or "collisionless".
    tables: (table name, rows, dim) for every table.
    lookups: (feature, ((table name, chunk), ...)) for every feature, in output order.
      A feature's embedding is the concatenation of its lookups.
    vocabularies: collisionless only: (feature, values) pairs; row 0 is out-of-vocabulary.
  """

  kind: str
  tables: Tuple[Tuple[str, int, int], ...]
  lookups: Tuple[Tuple[str, Tuple[Tuple[str, int], ...]], ...]
  vocabularies: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()

  @property
  def num_parameters(self) -> int:
    return sum(rows * dim for _, rows, dim in self.tables)

  @property
  def feature_names(self) -> List[str]:
    return [f for f, _ in self.lookups]

  def table_rows(self) -> Dict[str, int]:
    return {name: rows for name, rows, _ in self.tables}

  def output_dims(self) -> Dict[str, int]:
    dims = {name: dim for name, _, dim in self.tables}
    return {f: sum(dims[t] for t, _ in lk) for f, lk in self.lookups}

  def to_dict(self) -> Dict[str, Any]:
    return {
        "kind": self.kind,
        "tables": [list(t) for t in self.tables],
        "lookups": [[f, [list(x) for x in lk]] for f, lk in self.lookups],
        "vocabularies": [[f, list(v)] for f, v in self.vocabularies],
    }

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "EmbeddingSpec":
    return cls(
        kind=d["kind"],
        tables=tuple((str(n), int(r), int(dm)) for n, r, dm in d["tables"]),
        lookups=tuple((str(f), tuple((str(t), int(c)) for t, c in lk))
                      for f, lk in d["lookups"]),
        vocabularies=tuple((str(f), tuple(str(x) for x in v))
                           for f, v in d.get("vocabularies", ())),
    )


def unified_spec(chunks_per_feature: Mapping[str, int], buckets_per_table: int,
                 dim_per_table: int, num_tables: int,
                 name: str = "unified") -> EmbeddingSpec:
  """A unified-embedding spec: every feature's chunks hashed into shared tables.

  Chunk c of feature f goes to table (hash(f) + c) % num_tables: chunks of one feature land
  in different tables, and the assignment does not depend on the other features.

  Args:
    chunks_per_feature: feature -> number of chunks (its output dim is chunks*dim_per_table).
    buckets_per_table: rows of each table.
    dim_per_table: dimension of each table.
    num_tables: number of shared tables.
    name: prefix of the table names.

  Returns:
    The spec.
  """
  if buckets_per_table <= 0 or dim_per_table <= 0 or num_tables <= 0:
    raise ValueError("unified embedding needs positive buckets_per_table, dim_per_table "
                     f"and num_tables; got {buckets_per_table}, {dim_per_table}, {num_tables}")
  tables = tuple((f"{name}_{i}", buckets_per_table, dim_per_table) for i in range(num_tables))
  lookups = []
  for feature, n in chunks_per_feature.items():
    if n <= 0:
      raise ValueError(f"feature {feature!r} needs at least one chunk, got {n}")
    offset = _name_hash32(feature)
    lookups.append((feature, tuple((tables[(offset + c) % num_tables][0], c)
                                   for c in range(n))))
  return EmbeddingSpec("unified", tables, tuple(lookups))


def unified_spec_from_budget(budget: int, chunks_per_feature: Mapping[str, int],
                             dim_per_table: int, num_tables: int) -> EmbeddingSpec:
  """Sizes a unified embedding from a total parameter budget.

  Rows per table = budget // (num_tables * dim_per_table); the result never exceeds the
  budget and meets it exactly when it divides.
  """
  buckets = budget // (num_tables * dim_per_table)
  if buckets <= 0:
    raise ValueError(f"budget {budget} is too small for {num_tables} tables of dimension "
                     f"{dim_per_table}")
  return unified_spec(chunks_per_feature, buckets, dim_per_table, num_tables)


def allocate_buckets(total: int, weights: Mapping[str, int]) -> Dict[str, int]:
  """Splits `total` rows among features in proportion to `weights` (largest remainder).

  The result sums to `total` exactly, and every feature gets at least one row.
  """
  if total < len(weights):
    raise ValueError(f"{total} buckets cannot give each of {len(weights)} features a row")
  weight_sum = sum(weights.values())
  if weight_sum <= 0 or any(w < 0 for w in weights.values()):
    raise ValueError(f"bucket weights must be non-negative with a positive sum: {weights}")
  exact = {f: total * w / weight_sum for f, w in weights.items()}
  alloc = {f: max(1, int(x)) for f, x in exact.items()}
  # Hand out (or take back) the rounding difference by largest (smallest) remainder.
  order = sorted(weights, key=lambda f: (exact[f] - int(exact[f]), f), reverse=True)
  diff = total - sum(alloc.values())
  i = 0
  while diff != 0:
    f = order[i % len(order)] if diff > 0 else order[::-1][i % len(order)]
    if diff > 0:
      alloc[f] += 1
      diff -= 1
    elif alloc[f] > 1:
      alloc[f] -= 1
      diff += 1
    i += 1
  return alloc


def hash_spec(buckets: Mapping[str, int], dim: int) -> EmbeddingSpec:
  """One hashed table per feature (the baseline). Chunk 0's salt, as in unified."""
  tables = tuple((f"hash_{f}", int(b), dim) for f, b in buckets.items())
  lookups = tuple((f, ((f"hash_{f}", 0),)) for f in buckets)
  return EmbeddingSpec("hash", tables, lookups)


def hash_spec_from_budget(budget: int, weights: Mapping[str, int], dim: int,
                          features: Sequence[str]) -> EmbeddingSpec:
  """Sizes the hash baseline from the same budget as the unified model."""
  return hash_spec(allocate_buckets(budget // dim, {f: weights[f] for f in features}), dim)


def collisionless_spec(vocabularies: Mapping[str, Sequence[str]], dim: int) -> EmbeddingSpec:
  """One exact table per feature: a row per vocabulary value plus one out-of-vocabulary row."""
  tables = tuple((f"exact_{f}", len(v) + 1, dim) for f, v in vocabularies.items())
  lookups = tuple((f, ((f"exact_{f}", 0),)) for f in vocabularies)
  vocabs = tuple((f, tuple(v)) for f, v in vocabularies.items())
  return EmbeddingSpec("collisionless", tables, lookups, vocabs)


class SpecEmbedding(tf.keras.layers.Layer):
  """Embeds a dict of string features as `spec` says; returns one tensor per feature.

  Serializable: `get_config` is the spec, so `from_config(get_config())` rebuilds the same
  layer (weights travel separately, through checkpoints or SavedModel).
  """

  def __init__(self, spec: EmbeddingSpec, optimizer: Optional[Any] = None, **kwargs):
    """Args:
      spec: an `EmbeddingSpec` or its `to_dict()`.
      optimizer: the TPU-embedding optimizer (`tf.tpu.experimental.embedding.*`), needed
        only under `TPUStrategy`; elsewhere the Keras optimizer trains the tables.
      **kwargs: Keras layer arguments.
    """
    super().__init__(**kwargs)
    self.spec = spec if isinstance(spec, EmbeddingSpec) else EmbeddingSpec.from_dict(spec)
    table_configs = {
        name: _TableConfig(vocabulary_size=rows, dim=dim, name=name,
                           initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))
        for name, rows, dim in self.spec.tables
    }
    self._rows = self.spec.table_rows()
    self._feature_configs = {
        _lookup_key(f, c): _FeatureConfig(table=table_configs[t], name=_lookup_key(f, c))
        for f, lk in self.spec.lookups for t, c in lk
    }
    self._lookup_tables = {}
    for feature, values in self.spec.vocabularies:
      self._lookup_tables[feature] = tf.keras.layers.StringLookup(
          vocabulary=list(values), num_oov_indices=1, mask_token=None,
          name=f"{feature}_lookup")
    self._embedding = _TPUEmbedding(feature_config=self._feature_configs, optimizer=optimizer)

  def ids(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The row id of every lookup, keyed "feature/chunk" (for tests and collision reports)."""
    out = {}
    for feature, lookups in self.spec.lookups:
      values = inputs[feature]
      for table, chunk in lookups:
        if self.spec.kind == "collisionless":
          ids = self._lookup_tables[feature](values)
        else:
          ids = hash_ids(values, self._rows[table], feature_salt(feature, chunk))
        out[_lookup_key(feature, chunk)] = ids
    return out

  def call(self, inputs: Mapping[str, tf.Tensor]) -> List[tf.Tensor]:
    activations = self._embedding(self.ids(inputs))
    return [tf.concat([activations[_lookup_key(f, c)] for _, c in lk], axis=-1)
            for f, lk in self.spec.lookups]

  @property
  def embedding_tables(self) -> Dict[str, tf.Variable]:
    """Table name -> variable."""
    return {cfg.name: var for cfg, var in self._embedding.embedding_tables.items()}

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config["spec"] = self.spec.to_dict()
    return config

  @classmethod
  def from_config(cls, config: Dict[str, Any]) -> "SpecEmbedding":
    config = dict(config)
    return cls(spec=EmbeddingSpec.from_dict(config.pop("spec")), **config)


def _lookup_key(feature: str, chunk: int) -> str:
  return f"{feature}/{chunk}"
