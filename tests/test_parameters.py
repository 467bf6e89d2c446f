"""Every parameter a model holds or ships is counted: embeddings, MLP, filter, defaults."""

import numpy as np
import tensorflow as tf

from pipeline import config as pipeline_config
from tests.specs import MOVIELENS, resolved
from trainer import embeddings, model as model_lib
from trainer.config import BYTES_PER_PARAMETER, FILTER_BITS


def _variables(model):
  """Parameters in the model's variables, by part (the filter is not one: it ships in the
  Transform graph)."""
  tables = sum(int(np.prod(v.shape)) for v in model.embedding.embedding_tables.values())
  mlp = sum(int(np.prod(v.shape)) for layer in [*model.hidden, model.logit]
            for v in layer.weights)
  defaults = (sum(int(np.prod(v.shape)) for v in model.unseen_default.weights)
              if model.unseen_default is not None else 0)
  return {"embeddings": tables, "mlp": mlp, "default_vectors": defaults,
          "all": int(sum(np.prod(v.shape) for v in model.weights))}


def _built(config, spec):
  model = model_lib.build_model(config, spec)
  model(model.empty_inputs(1))
  return model


def test_default_movielens_candidate_total_is_its_budget_plus_its_mlp():
  candidate = pipeline_config.PipelineConfig(data_dir="/d", output_dir="/o").candidate
  spec = model_lib.embedding_spec(candidate)
  counts = model_lib.parameter_counts(candidate, spec)
  # The budget it claims: tables, filter and defaults fill the embedding budget, rounded
  # down to whole rows of both models' widths.
  within_budget = counts["embeddings"] + counts["admission_filter"] + counts["default_vectors"]
  usable = embeddings.usable_budget(candidate.embedding_budget - candidate.admission_parameters,
                                    candidate.dim_per_table, candidate.embedding_dim)
  assert within_budget == usable + candidate.admission_parameters
  assert within_budget <= candidate.embedding_budget
  # The filter: one FILTER_BITS-cell array per admission feature, in float32 parameters.
  assert counts["admission_filter"] == (len(MOVIELENS.id_features) * FILTER_BITS // 8
                                        // BYTES_PER_PARAMETER)
  # The MLP reads every chunk of every feature: chunks x table dimension wide.
  width = sum(candidate.chunks_per_feature.values()) * candidate.dim_per_table
  sizes = [width, *candidate.layer_sizes, 1]
  assert counts["mlp"] == sum(a * b + b for a, b in zip(sizes, sizes[1:]))
  assert counts["total"] == within_budget + counts["mlp"]
  # What the built model really holds, part by part.
  held = _variables(_built(candidate, spec))
  for part in ("embeddings", "mlp", "default_vectors"):
    assert held[part] == counts[part], part
  assert held["all"] + counts["admission_filter"] == counts["total"]


def test_hash_and_collisionless_totals_count_their_narrower_mlp():
  hash_config = pipeline_config.PipelineConfig(data_dir="/d", output_dir="/o").baseline
  hash_spec = model_lib.embedding_spec(hash_config)
  counts = model_lib.parameter_counts(hash_config, hash_spec)
  assert counts["admission_filter"] == counts["default_vectors"] == 0
  held = _variables(_built(hash_config, hash_spec))
  assert held["all"] == counts["total"] == counts["embeddings"] + counts["mlp"]
  # Collisionless: the same admission features as the candidate, but no filter (its
  # vocabulary is exact) and no separate defaults (its out-of-vocabulary rows).
  config = resolved(model_type="collisionless", admission_features=MOVIELENS.id_features)
  vocabularies = {f: [f"{f}-{i}" for i in range(5 + j)] for j, f in enumerate(config.features)}
  spec = model_lib.embedding_spec(config, vocabularies)
  counts = model_lib.parameter_counts(config, spec)
  assert counts["admission_filter"] == counts["default_vectors"] == 0
  assert counts["embeddings"] == sum((len(v) + 1) * config.embedding_dim
                                     for v in vocabularies.values())
  model = _built(config, spec)
  assert model.unseen_default is None
  assert not any(k.endswith("_admitted") for k in model.input_names_and_dtypes)
  assert _variables(model)["all"] == counts["total"]


def test_collisionless_out_of_vocabulary_row_becomes_the_rare_id_mean_when_untrained():
  tf.keras.utils.set_random_seed(0)
  config = resolved(model_type="collisionless", admission_features=("user_id",), epochs=1)
  users = [b"u1"] * 5 + [b"u2"] * 3 + [b"u3", b"u4"]
  x = {f: tf.constant([b"a"] * len(users)) for f in config.features}
  x["user_id"] = tf.constant(users)
  vocabularies = {f: ["a"] for f in config.features}
  vocabularies["user_id"] = ["u1", "u2", "u3", "u4"]
  model = model_lib.build_model(config, model_lib.embedding_spec(config, vocabularies))
  dataset = tf.data.Dataset.from_tensor_slices((x, tf.constant([1.0, 0.0] * 5))).batch(4)
  model.fit(dataset, epochs=1, verbose=0)
  moved = model.fit_unseen_defaults(dataset)
  table = model.embedding.embedding_tables["exact_user_id"].numpy()
  # Row 0 is out of vocabulary; u3 and u4 (rows 3 and 4) are the rarer ids.
  np.testing.assert_allclose(table[model_lib.OUT_OF_VOCABULARY_ROW],
                             (table[3] + table[4]) / 2, rtol=1e-6)
  assert moved["user_id"] > 0
  unseen = dict(x, user_id=tf.constant([b"never-seen"] * len(users)))
  rare = dict(x, user_id=tf.constant([b"u3"] * len(users)))
  assert not np.allclose(model(unseen).numpy(), model(rare).numpy())  # a mean, not u3


def test_a_trained_out_of_vocabulary_row_is_kept():
  tf.keras.utils.set_random_seed(0)
  config = resolved(model_type="collisionless", admission_features=("user_id",), epochs=1)
  x = {f: tf.constant([b"a"] * 6) for f in config.features}
  x["user_id"] = tf.constant([b"u1", b"u1", b"u2", b"new", b"new", b"u2"])
  vocabularies = {f: ["a"] for f in config.features}
  vocabularies["user_id"] = ["u1", "u2"]
  model = model_lib.build_model(config, model_lib.embedding_spec(config, vocabularies))
  dataset = tf.data.Dataset.from_tensor_slices((x, tf.constant([1.0, 0.0] * 3))).batch(6)
  model.fit(dataset, epochs=1, verbose=0)
  before = model.embedding.embedding_tables["exact_user_id"].numpy().copy()
  assert model.fit_unseen_defaults(dataset) == {}
  np.testing.assert_array_equal(model.embedding.embedding_tables["exact_user_id"].numpy(),
                                before)
