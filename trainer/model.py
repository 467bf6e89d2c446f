"""The ranking model: an embedding layer (unified, hash or collisionless) under an MLP."""

from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from trainer import admission, embedding_layer, embeddings
from trainer.config import TrainingConfig

# A collisionless table's row of the ids outside its vocabulary (`embeddings.
# collisionless_spec`; the StringLookup's one out-of-vocabulary index).
OUT_OF_VOCABULARY_ROW = 0


def mlp_parameters(input_width: int, layer_sizes: Sequence[int]) -> int:
  """Weights and biases of the MLP: `input_width` -> `layer_sizes` -> 1 (the logit)."""
  widths = [int(input_width), *[int(n) for n in layer_sizes], 1]
  return sum(a * b + b for a, b in zip(widths, widths[1:]))


def parameter_counts(config: TrainingConfig, spec: embeddings.EmbeddingSpec) -> Dict[str, int]:
  """Every parameter a model of `config` and `spec` holds or ships, by part, and the total.

  * `embeddings`: the tables (a collisionless table's out-of-vocabulary row included);
  * `mlp`: the dense layers on the concatenated embeddings, whose input is as wide as the
    sum of the features' dimensions (so models of different widths differ here too);
  * `admission_filter`: the filter's bytes in float32 parameters (it ships in the
    Transform graph, not in the model's variables);
  * `default_vectors`: the unseen-id defaults (`admission.UnseenDefault`).
  """
  counts = {
      "embeddings": spec.num_parameters,
      "mlp": mlp_parameters(sum(spec.output_dims().values()), config.layer_sizes),
      "admission_filter": config.filter_parameters,
      "default_vectors": config.default_parameters,
  }
  counts["total"] = sum(counts.values())
  return counts


def embedding_spec(config: TrainingConfig,
                   vocabularies: Optional[Mapping[str, Sequence[str]]] = None
                   ) -> embeddings.EmbeddingSpec:
  """The embedding spec `config.model_type` asks for.

  Unified and hash are sized from the same budget: `embedding_budget` rounded down to a
  multiple of both row widths (`dim_per_table`, `embedding_dim`), so the two specs have
  exactly the same number of parameters. With `admission_features`, the filter and the
  default vectors are paid first (`TrainingConfig.admission_parameters`). Collisionless needs the
  vocabularies (Transform's) and ignores the budget.

  Args:
    config: training configuration.
    vocabularies: feature -> distinct values; needed only for "collisionless".

  Returns:
    The spec.
  """
  budget = embeddings.usable_budget(config.embedding_budget - config.admission_parameters,
                                    config.dim_per_table, config.embedding_dim)
  if config.model_type == "unified":
    return embeddings.unified_spec_from_budget(
        budget, config.chunks_per_feature, config.dim_per_table, config.num_tables)
  if config.model_type == "hash":
    return embeddings.hash_spec_from_budget(
        budget, dict(config.hash_bucket_weights), config.embedding_dim, config.features)
  if config.model_type == "collisionless":
    if vocabularies is None:
      raise ValueError("the collisionless model needs vocabularies (from Transform)")
    return embeddings.collisionless_spec(
        {f: vocabularies[f] for f in config.features}, config.embedding_dim)
  raise ValueError(f"unknown model_type {config.model_type!r}")


@tf.keras.utils.register_keras_serializable(package="uet")
class RankingModel(tf.keras.Model):
  """P(label = 1 | features): concatenated embeddings -> ReLU MLP -> sigmoid."""

  def __init__(self, spec: embeddings.EmbeddingSpec, layer_sizes: Sequence[int],
               embedding_optimizer=None, admission_features: Sequence[str] = (),
               id_dropout: float = 0.0, sparse_features: Sequence[str] = (), **kwargs):
    """Args:
      spec: the embedding spec (or its dict).
      layer_sizes: hidden layer widths.
      embedding_optimizer: TPU-embedding optimizer, needed only under TPUStrategy.
      admission_features: features whose non-admitted ids (input `<feature>_admitted` = 0)
        get their feature's default vector (`admission.UnseenDefault`). A collisionless
        spec reads no flags: its vocabulary decides, and these features' out-of-vocabulary
        rows are the defaults (`fit_unseen_defaults`).
      id_dropout: training-time rate at which admitted ids get the default too.
      sparse_features: the multivalent features: [batch, None] sparse inputs, whose values'
        embeddings are averaged.
      **kwargs: Keras model arguments.
    """
    super().__init__(**kwargs)
    self.embedding = embedding_layer.SpecEmbedding(spec, optimizer=embedding_optimizer,
                                                   name="embedding")
    self.admission_features = [str(f) for f in admission_features]
    self.id_dropout = float(id_dropout)
    self.sparse_features = [str(f) for f in sparse_features]
    self.unseen_default = None
    if self.admission_features and self.spec.kind != "collisionless":
      dims = self.embedding.spec.output_dims()
      self.unseen_default = admission.UnseenDefault(
          {f: dims[f] for f in self.admission_features}, id_dropout=self.id_dropout,
          layout=[(f, dims[f]) for f in self.spec.feature_names], name="unseen_default")
    self.layer_sizes = [int(x) for x in layer_sizes]
    self.hidden = [tf.keras.layers.Dense(n, activation="relu", name=f"dense_{i}")
                   for i, n in enumerate(self.layer_sizes)]
    self.logit = tf.keras.layers.Dense(1, activation="sigmoid", name="probability")

  @property
  def spec(self) -> embeddings.EmbeddingSpec:
    """The embedding spec."""
    return self.embedding.spec

  @property
  def input_names_and_dtypes(self) -> Dict[str, tf.DType]:
    """Every input the model reads: the string features, then the admission flags (int64)."""
    names = {f: tf.string for f in self.spec.feature_names}
    if self.unseen_default is not None:
      names.update({admission.admitted_name(f): tf.int64 for f in self.admission_features})
    return names

  def empty_inputs(self, batch: int = 0) -> Dict[str, tf.Tensor]:
    """A batch of `batch` default inputs (empty strings, admitted): builds the weights."""
    def empty(name, dtype):
      if name in self.sparse_features:
        return tf.sparse.from_dense(tf.zeros([batch, 1], tf.string))
      return tf.zeros([batch], dtype) if dtype == tf.string else tf.ones([batch], dtype)
    return {k: empty(k, dtype) for k, dtype in self.input_names_and_dtypes.items()}

  def call(self, inputs: Mapping[str, tf.Tensor], training=None) -> tf.Tensor:
    """[batch] string features ([batch, None] sparse for multivalent ones) and admission
    flags -> [batch, 1] P(label = 1)."""
    x = self.embedding(inputs, training=training, concatenated=True)
    if self.unseen_default is not None:
      # One select over the concatenation for all admission features.
      admitted = {f: inputs[admission.admitted_name(f)] for f in self.admission_features}
      x = self.unseen_default(x, admitted, training=training)
    for layer in self.hidden:
      x = layer(x)
    return self.logit(x)

  def fit_unseen_defaults(self, dataset: tf.data.Dataset) -> Dict[str, float]:
    """After training: each admission feature's default becomes the mean embedding of the
    window's rarer ids in `dataset` (`admission.rare_id_means`).

    A collisionless model's default is its feature's out-of-vocabulary row: when no row of
    `dataset` fell into it (every training id has its own row), training never touched it,
    and it becomes the mean of the rarer in-vocabulary ids, as for the hashed models; when
    training rows did use it, it is a trained default and is kept.

    Returns:
      feature -> how far the default moved (L2 norm), for the log.
    """
    if self.spec.kind == "collisionless":
      return self._fit_out_of_vocabulary_rows(dataset)
    if self.unseen_default is None:
      return {}
    means = admission.rare_id_means(self.embedding, dataset, self.unseen_default.layout,
                                    self.admission_features)
    moved = {f: float(np.linalg.norm(v - self.unseen_default.defaults[f].numpy()))
             for f, v in means.items()}
    self.unseen_default.assign(means)
    return moved

  def _fit_out_of_vocabulary_rows(self, dataset: tf.data.Dataset) -> Dict[str, float]:
    """`fit_unseen_defaults` of a collisionless model (its out-of-vocabulary rows)."""
    if not self.admission_features:
      return {}
    vocabularies = {f: {v.encode("utf-8") for v in values}
                    for f, values in self.spec.vocabularies if f in self.admission_features}
    out_of_vocabulary = {f: 0 for f in vocabularies}
    for x, _ in dataset:
      for f, known in vocabularies.items():
        out_of_vocabulary[f] += sum(v not in known for v in x[f].numpy().reshape(-1))
    untouched = [f for f, n in out_of_vocabulary.items() if n == 0]
    if not untouched:
      return {}
    dims = self.spec.output_dims()
    means = admission.rare_id_means(self.embedding, dataset,
                                    [(f, dims[f]) for f in self.spec.feature_names],
                                    untouched, known=vocabularies)
    tables, lookups = self.embedding.embedding_tables, dict(self.spec.lookups)
    moved = {}
    for f, mean in means.items():
      table = tables[lookups[f][0][0]]
      moved[f] = float(np.linalg.norm(mean - table[OUT_OF_VOCABULARY_ROW].numpy()))
      table.scatter_update(tf.IndexedSlices(tf.cast(mean[np.newaxis], table.dtype),
                                            tf.constant([OUT_OF_VOCABULARY_ROW])))
    return moved

  # Keras' step functions are plain Python over tensors (no data-dependent control flow), so
  # AutoGraph has nothing to convert; left on, it re-parses hundreds of Keras functions per
  # process (docs/measured.md, "Trainer").
  @tf.autograph.experimental.do_not_convert
  def train_step(self, data):
    """Keras' train step, traced without AutoGraph."""
    return super().train_step(data)

  @tf.autograph.experimental.do_not_convert
  def test_step(self, data):
    """Keras' test step, traced without AutoGraph."""
    return super().test_step(data)

  @tf.autograph.experimental.do_not_convert
  def predict_step(self, data):
    """Keras' predict step, traced without AutoGraph."""
    return super().predict_step(data)

  def get_config(self) -> Dict:
    """The architecture (spec and layer sizes); weights travel separately."""
    return {"spec": self.spec.to_dict(), "layer_sizes": self.layer_sizes, "name": self.name,
            "admission_features": self.admission_features, "id_dropout": self.id_dropout,
            "sparse_features": self.sparse_features}

  @classmethod
  def from_config(cls, config: Dict) -> "RankingModel":
    """An untrained model with the architecture `get_config` describes."""
    return cls(spec=config["spec"], layer_sizes=config["layer_sizes"],
               name=config.get("name"),
               admission_features=config.get("admission_features", ()),
               id_dropout=config.get("id_dropout", 0.0),
               sparse_features=config.get("sparse_features", ()))

  def build_from_config(self, config: Dict) -> None:
    """Creates the weights when Keras loads a `.keras` file.

    Keras' default builds from input shapes with float placeholders, which cannot be
    hashed; one call on an empty batch of strings creates the same weights.
    """
    del config
    self(self.empty_inputs())


def build_model(config: TrainingConfig, spec: embeddings.EmbeddingSpec,
                under_tpu: bool = False, sparse_features: Sequence[str] = ()) -> RankingModel:
  """Builds and compiles the model in the current strategy scope.

  Args:
    config: training configuration.
    spec: embedding spec (see `embedding_spec`).
    under_tpu: whether the current strategy is a TPUStrategy; then the embedding tables are
      trained by a TPU-embedding translation of the same Adam.
    sparse_features: the multivalent features (`RankingModel`).

  Returns:
    A compiled model (binary cross-entropy; AUC and LogLoss metrics).
  """
  # The legacy Adam is the one TFRS' TPU embedding translation supports; on CPU/GPU it
  # trains the tables like any other variable.
  optimizer = tf.keras.optimizers.legacy.Adam(config.learning_rate)
  embedding_optimizer = None
  if under_tpu:
    import tensorflow_recommenders as tfrs  # pylint: disable=g-import-not-at-top
    embedding_optimizer = (
        tfrs.layers.embedding.tpu_embedding_layer.translate_keras_optimizer(optimizer))
  model = RankingModel(spec, config.layer_sizes, embedding_optimizer=embedding_optimizer,
                       admission_features=config.admission_features,
                       id_dropout=config.id_dropout, sparse_features=sparse_features)
  model.compile(
      optimizer=optimizer,
      loss=tf.keras.losses.BinaryCrossentropy(),
      metrics=[tf.keras.metrics.AUC(name="auc"),
               tf.keras.metrics.BinaryCrossentropy(name="logloss")],
      steps_per_execution=1 if not under_tpu else 32)
  return model
