"""The Keras embedding layer for an `EmbeddingSpec`: unified, per-feature hash, collisionless.

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

Specs, salts and budgets (pure Python) are in `trainer.embeddings`; this module adds the
hashing of values into rows (`tf.strings.to_hash_bucket_strong`) and the tables.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer import strategy as strategy_lib
from trainer import embeddings
from trainer.embeddings import EmbeddingSpec, lookup_key

_TPUEmbedding = tfrs.layers.embedding.TPUEmbedding
_TableConfig = tf.tpu.experimental.embedding.TableConfig
_FeatureConfig = tf.tpu.experimental.embedding.FeatureConfig


def hash_ids(values: Union[tf.Tensor, tf.SparseTensor], num_buckets: int,
             salt: Sequence[int]) -> Union[tf.Tensor, tf.SparseTensor]:
  """Maps string values to ids in [0, num_buckets) with keyed SipHash (stable across runs).

  Args:
    values: string tensor of any shape, or a SparseTensor of strings (a multivalent
      feature: each value is hashed).
    num_buckets: number of rows of the table.
    salt: the SipHash key, a pair of integers (see `feature_salt`).

  Returns:
    An int64 tensor of `values`' shape (a SparseTensor for a SparseTensor).
  """
  if isinstance(values, tf.SparseTensor):
    return tf.SparseTensor(values.indices, hash_ids(values.values, num_buckets, salt),
                           values.dense_shape)
  return tf.strings.to_hash_bucket_strong(values, num_buckets, key=list(salt))


def hashed_ids(spec: EmbeddingSpec, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """The row id of every lookup of a hashed ("unified" or "hash") spec.

  The one place that turns values into rows: the layers and the collision report both use
  it, so the report describes exactly what the model looks up.

  Args:
    spec: a unified or hash spec.
    inputs: feature -> string tensor; every feature of the spec must be present.

  Returns:
    "feature/chunk" -> int64 row ids in that lookup's table, of the input's shape.
  """
  if spec.kind == "collisionless":
    raise ValueError("a collisionless spec has no hashed ids; use SpecEmbedding.ids")
  rows = spec.table_rows()
  # Through the module, so that a benchmark re-salting `embeddings.feature_salt` (the one
  # home of the salts) reaches every lookup.
  return {lookup_key(feature, chunk): hash_ids(inputs[feature], rows[table],
                                                embeddings.feature_salt(feature, chunk))
          for feature, lookups in spec.lookups for table, chunk in lookups}


@tf.keras.utils.register_keras_serializable(package="uet")
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
    # Keras' Embedding default (the tutorial's hash and collisionless tables) for all three
    # kinds, so the models differ only in how values map to rows. (TableConfig's default,
    # truncated normal with stddev 1/sqrt(dim), is what TFRS' UnifiedEmbedding gets.)
    table_configs = {
        name: _TableConfig(vocabulary_size=rows, dim=dim, name=name,
                           initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))
        for name, rows, dim in self.spec.tables
    }
    self._feature_configs = {
        lookup_key(f, c): _FeatureConfig(table=table_configs[t], name=lookup_key(f, c))
        for f, lk in self.spec.lookups for t, c in lk
    }
    self._lookup_tables = {}
    for feature, values in self.spec.vocabularies:
      self._lookup_tables[feature] = tf.keras.layers.StringLookup(
          vocabulary=list(values), num_oov_indices=1, mask_token=None,
          name=f"{feature}_lookup")
    self._embedding = _TPUEmbedding(feature_config=self._feature_configs, optimizer=optimizer)

  def ids(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The row id of every lookup, keyed "feature/chunk" (see `hashed_ids`).

    Args:
      inputs: feature -> string tensor.

    Returns:
      "feature/chunk" -> int64 row ids.
    """
    if self.spec.kind != "collisionless":
      return hashed_ids(self.spec, inputs)
    def lookup(f):
      x = inputs[f]
      if isinstance(x, tf.SparseTensor):
        return tf.SparseTensor(x.indices, self._lookup_tables[f](x.values), x.dense_shape)
      return self._lookup_tables[f](x)
    return {lookup_key(f, c): lookup(f) for f, lk in self.spec.lookups for _, c in lk}

  def call(self, inputs: Mapping[str, tf.Tensor], training: Optional[bool] = None,
           concatenated: bool = False) -> Union[List[tf.Tensor], tf.Tensor]:
    """Embeds `inputs` ([batch] string tensors).

    Args:
      inputs: feature -> [batch] string tensor.
      training: in training (and on the first call, which builds the tables), the lookups
        go through the TPU-embedding layer (which trains the tables, on TPU too); in
        inference off TPU, through `_fused_lookup`: the same rows with one gather per table
        (at batch 1 the op count is the serving cost).
      concatenated: return the features' embeddings side by side, one
        [batch, sum of dims] tensor, instead of a list.

    Returns:
      One [batch, dim] tensor per feature, in `spec.feature_names` order (or their
      concatenation).
    """
    # The first call builds the TPU-embedding layer (it creates and tracks the tables, under
    # its own name scope), so it goes through that layer whatever `training` is.
    if training or self._on_tpu() or not self._embedding.built:
      activations = self._embedding(self.ids(inputs))
      out = [tf.concat([activations[lookup_key(f, c)] for _, c in lk], axis=-1)
             for f, lk in self.spec.lookups]
      return tf.concat(out, axis=-1) if concatenated else out
    x = self._fused_lookup(inputs)
    if concatenated:
      return x
    return tf.split(x, list(self.spec.output_dims().values()), axis=-1)

  def _on_tpu(self) -> bool:
    return (strategy_lib.is_tpu(tf.distribute.get_strategy())
            or bool(getattr(self._embedding, "_using_tpu", False)))

  def _fused_lookup(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Inference: every lookup's row, features side by side: [batch, sum of dims].

    Exactly the rows the TPU-embedding layer's CPU lookup reads (a gather per lookup),
    gathered with one gather per table: the ids of a table's lookups are stacked, and
    the result is put back in lookup order (feature by feature, chunk by chunk). A
    multivalent feature's lookups average their rows per example, as the TPU-embedding
    layer's CPU lookup does (`safe_embedding_lookup_sparse` with the table's combiner).
    """
    ids = self.ids(inputs)
    tables = self.embedding_tables
    dims = {name: dim for name, _, dim in self.spec.tables}
    order = [(t, lookup_key(f, c)) for f, lk in self.spec.lookups for t, c in lk]
    by_table: Dict[str, List[str]] = {}
    parts, columns, start = [], {}, 0
    for t, key in order:
      if isinstance(ids[key], tf.SparseTensor):
        parts.append(tf.nn.safe_embedding_lookup_sparse(tables[t], ids[key], combiner="mean"))
        columns[key] = range(start, start + dims[t])
        start += dims[t]
      else:
        by_table.setdefault(t, []).append(key)
    for t, keys in by_table.items():
      if len(keys) == 1:
        parts.append(tf.gather(tables[t], ids[keys[0]]))
      else:
        rows = tf.gather(tables[t], tf.stack([ids[k] for k in keys], axis=1))
        parts.append(tf.reshape(rows, [-1, len(keys) * dims[t]]))
      for k in keys:
        columns[k] = range(start, start + dims[t])
        start += dims[t]
    x = parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)
    permutation = [j for _, key in order for j in columns[key]]
    if permutation != list(range(start)):
      x = tf.gather(x, permutation, axis=1)
    return x

  @property
  def embedding_tables(self) -> Dict[str, tf.Variable]:
    """Table name -> variable."""
    return {cfg.name: var for cfg, var in self._embedding.embedding_tables.items()}

  def get_config(self) -> Dict[str, Any]:
    """The Keras config: the layer's base config plus the spec as a JSON-able dict.

    The TPU-embedding optimizer is not part of it: it is bound at construction under
    `TPUStrategy` and irrelevant for serving.
    """
    config = super().get_config()
    config["spec"] = self.spec.to_dict()
    return config

  @classmethod
  def from_config(cls, config: Dict[str, Any]) -> "SpecEmbedding":
    """Rebuilds the layer `get_config` describes (untrained: weights travel separately)."""
    config = dict(config)
    return cls(spec=EmbeddingSpec.from_dict(config.pop("spec")), **config)


