"""Embedding layers: stable salts, serialization, budgets and per-feature chunks."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from trainer import embedding_layer, embeddings, features, model as model_lib
from tests.specs import FEATURES, TUTORIAL_HASH_BUCKETS, resolved
from trainer.config import TUTORIAL_EMBEDDING_BUDGET

VALUES = {
    "movie_id": ["242", "302", "377", "51", "346", "474", "265", "465"],
    "user_id": ["196", "186", "22", "244", "166", "298", "115", "253"],
    "user_gender": ["M", "F", "M", "M", "M", "F", "M", "F"],
    "user_zip_code": ["55105", "00000", "40206", "80525", "55113", "94043", "T8H1N",
                             "60402"],
    "user_occupation": ["writer", "executive", "writer", "technician", "educator",
                               "other", "artist", "student"],
    "user_age_bucket": ["45", "35", "25", "25", "45", "18", "56", "1"],
}
BUDGET_MULTIPLES = (0.25, 0.5, 1, 2)


def _inputs(names=FEATURES):
  return {f: tf.constant(VALUES[f]) for f in names}


def _ids(spec, names):
  layer = embedding_layer.SpecEmbedding(spec)
  return {k: v.numpy() for k, v in layer.ids(_inputs(names)).items()}


def _layer_parameters(spec):
  """Parameters the built layer really holds (not what the spec claims)."""
  layer = embedding_layer.SpecEmbedding(spec)
  layer(_inputs(spec.feature_names))
  return sum(int(np.prod(v.shape)) for v in layer.trainable_variables)


def _small_config(**changes):
  return resolved(embedding_budget=2_400, layer_sizes=(8,), **changes)


# --- Hashing and salts --------------------------------------------------------------------


def test_hashing_is_deterministic_and_pinned():
  # Pinned values: a change here re-hashes every trained model's rows (breaks warm starts).
  salt = embeddings.feature_salt("movie_id", 0)
  assert salt == (3901301843, 0)  # first 4 bytes of sha256("movie_id"), chunk 0
  ids = embedding_layer.hash_ids(tf.constant(["242", "302", "377"]), 1_500, salt).numpy()
  np.testing.assert_array_equal(ids, PINNED_MOVIE_IDS)


def test_salt_depends_on_feature_name_and_chunk_only():
  assert embeddings.feature_salt("movie_id", 0) != embeddings.feature_salt("user_id", 0)
  assert embeddings.feature_salt("movie_id", 0) != embeddings.feature_salt("movie_id", 1)
  assert embeddings.feature_salt("movie_id", 1)[0] == embeddings.feature_salt("movie_id", 0)[0]


def test_adding_a_feature_keeps_every_existing_features_ids():
  chunks = {f: 2 for f in FEATURES[:-1]}
  before = embeddings.unified_spec_from_budget(24_000, chunks, 8, 2)
  after = embeddings.unified_spec_from_budget(
      24_000, {**chunks, "user_age_bucket": 2}, 8, 2)
  ids_before = _ids(before, FEATURES[:-1])
  ids_after = _ids(after, FEATURES)
  assert len(ids_after) == len(ids_before) + 2
  for key, ids in ids_before.items():
    np.testing.assert_array_equal(ids, ids_after[key], err_msg=key)
  # ... and the same lookups go to the same tables.
  assert dict(before.lookups).items() <= dict(after.lookups).items()


def test_reordering_features_keeps_every_features_ids():
  order = list(FEATURES)
  spec = embeddings.unified_spec_from_budget(24_000, {f: 2 for f in order}, 8, 2)
  reversed_spec = embeddings.unified_spec_from_budget(
      24_000, {f: 2 for f in reversed(order)}, 8, 2)
  assert reversed_spec.feature_names == order[::-1]
  ids, reversed_ids = _ids(spec, order), _ids(reversed_spec, order)
  assert ids.keys() == reversed_ids.keys()
  for key in ids:
    np.testing.assert_array_equal(ids[key], reversed_ids[key], err_msg=key)
  assert dict(spec.lookups) == dict(reversed_spec.lookups)


def test_hash_baseline_ids_survive_adding_a_feature():
  buckets = dict(TUTORIAL_HASH_BUCKETS)
  before = embeddings.hash_spec({f: buckets[f] for f in FEATURES[:-1]}, 16)
  after = embeddings.hash_spec(buckets, 16)
  ids_before = _ids(before, FEATURES[:-1])
  ids_after = _ids(after, FEATURES)
  for key, ids in ids_before.items():
    np.testing.assert_array_equal(ids, ids_after[key], err_msg=key)


def test_layer_ids_are_the_shared_hashing_code():
  spec = embeddings.unified_spec_from_budget(24_000, {"movie_id": 3}, 8, 2)
  rows = spec.table_rows()
  layer_ids = _ids(spec, ["movie_id"])
  for table, chunk in dict(spec.lookups)["movie_id"]:
    expected = embedding_layer.hash_ids(tf.constant(VALUES["movie_id"]), rows[table],
                                   embeddings.feature_salt("movie_id", chunk))
    np.testing.assert_array_equal(layer_ids[f"movie_id/{chunk}"], expected)


# --- Serialization ------------------------------------------------------------------------


def _copy_weights(source, target):
  for name, var in source.embedding_tables.items():
    target.embedding_tables[name].assign(var)


@pytest.mark.parametrize("kind", ["unified", "hash", "collisionless"])
def test_layer_get_config_from_config_round_trip(kind):
  config = _small_config(model_type=kind, chunks=(("movie_id", 3),))
  vocabs = {f: sorted(set(v)) for f, v in VALUES.items()}
  layer = embedding_layer.SpecEmbedding(model_lib.embedding_spec(config, vocabs), name="emb")
  outputs = layer(_inputs())

  # Through JSON, as a Keras config file would carry it.
  config_json = json.loads(json.dumps(layer.get_config()))
  clone = embedding_layer.SpecEmbedding.from_config(config_json)
  assert clone.spec == layer.spec
  assert clone.name == "emb"
  assert clone.get_config() == layer.get_config()
  clone(_inputs())
  _copy_weights(layer, clone)
  for a, b in zip(outputs, clone(_inputs())):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("kind,num_tables", [("unified", 1), ("unified", 2),
                                             ("unified", 3), ("hash", 1),
                                             ("collisionless", 1)])
def test_inference_lookup_reads_exactly_the_training_lookups_rows(kind, num_tables):
  # Inference gathers each table once (`_fused_lookup`); training goes through the
  # TPU-embedding layer, a gather per lookup. Same rows, same order, bit for bit.
  config = _small_config(model_type=kind, num_tables=num_tables,
                         chunks=(("movie_id", 3), ("user_gender", 1)))
  vocabs = {f: sorted(set(v)) for f, v in VALUES.items()}
  layer = embedding_layer.SpecEmbedding(model_lib.embedding_spec(config, vocabs))
  trained = layer(_inputs(), training=True)
  served = layer(_inputs(), training=False)
  assert [t.shape for t in served] == [t.shape for t in trained]
  for a, b in zip(trained, served):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(
      layer(_inputs(), concatenated=True).numpy(),
      tf.concat(trained, axis=-1).numpy())


def test_layer_deserializes_by_registered_name():
  layer = embedding_layer.SpecEmbedding(embeddings.hash_spec({"user_gender": 3}, 4))
  clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
  assert isinstance(clone, embedding_layer.SpecEmbedding)
  assert clone.spec == layer.spec


def _trained_model(config, steps=3):
  tf.keras.utils.set_random_seed(0)
  vocabs = {f: sorted(set(v)) for f, v in VALUES.items()}
  model = model_lib.build_model(config, model_lib.embedding_spec(config, vocabs))
  labels = tf.constant([1, 0, 1, 1, 0, 1, 0, 1], tf.float32)
  model.fit(tf.data.Dataset.from_tensors((_inputs(), labels)).repeat(steps), verbose=0)
  return model


@pytest.mark.parametrize("kind", ["unified", "hash"])
def test_saved_model_round_trip_gives_identical_predictions(tmp_path, kind):
  model = _trained_model(_small_config(model_type=kind))
  # A graph call, like the restored function's (eager kernels may differ in the last bit).
  expected = tf.function(model)(_inputs()).numpy()
  path = str(tmp_path / "saved_model")
  tf.saved_model.save(model, path)
  restored = tf.saved_model.load(path)
  np.testing.assert_array_equal(restored(_inputs()).numpy(), expected)
  # Another batch size than the one seen in training goes through the same signature.
  half = {k: v[:3] for k, v in _inputs().items()}
  np.testing.assert_array_equal(restored(half).numpy(), expected[:3])


def test_keras_file_round_trip_gives_identical_predictions(tmp_path):
  model = _trained_model(_small_config(model_type="unified", chunks=(("user_id", 3),)))
  expected = model(_inputs()).numpy()
  path = str(tmp_path / "model.keras")
  model.save(path)
  restored = tf.keras.models.load_model(path)
  assert isinstance(restored, model_lib.RankingModel)
  assert restored.spec == model.spec
  np.testing.assert_array_equal(restored(_inputs()).numpy(), expected)


# --- Parameter budgets --------------------------------------------------------------------


@pytest.mark.parametrize("multiple", BUDGET_MULTIPLES)
def test_unified_and_hash_have_exactly_the_same_parameters(multiple):
  budget = int(TUTORIAL_EMBEDDING_BUDGET * multiple)
  unified = model_lib.embedding_spec(resolved(model_type="unified",
                                                    embedding_budget=budget))
  hashed = model_lib.embedding_spec(resolved(model_type="hash", embedding_budget=budget))
  assert unified.num_parameters == hashed.num_parameters == budget
  assert _layer_parameters(unified) == _layer_parameters(hashed) == budget


@pytest.mark.parametrize("budget,num_tables,dim_per_table", [
    (24_010, 3, 8), (1_000, 3, 8), (24_000, 4, 4), (7_777, 2, 6), (50_000, 5, 16)])
def test_same_parameters_for_budgets_that_do_not_divide(budget, num_tables, dim_per_table):
  chunks = tuple((f, 4) for f in FEATURES)  # every table gets a lookup
  base = resolved(embedding_budget=budget, num_tables=num_tables,
                        dim_per_table=dim_per_table, chunks=chunks)
  unified = model_lib.embedding_spec(base.replace(model_type="unified"))
  hashed = model_lib.embedding_spec(base.replace(model_type="hash"))
  assert unified.num_parameters == hashed.num_parameters
  assert budget - np.lcm(dim_per_table, 16) < unified.num_parameters <= budget
  assert _layer_parameters(unified) == unified.num_parameters
  assert _layer_parameters(hashed) == hashed.num_parameters


def test_hash_baseline_gives_every_model_feature_its_own_table():
  spec = model_lib.embedding_spec(resolved(model_type="hash"))
  assert spec.feature_names == list(FEATURES)
  assert [t for t, _, _ in spec.tables] == [f"hash_{f}" for f in FEATURES]
  # The tutorial drops the age bucket (its dict lists the occupation twice); not here.
  assert "user_age_bucket" in spec.feature_names
  # At the tutorial's budget the tables are the tutorial's sizes.
  assert {f: rows for (_, rows, _), f in zip(spec.tables, FEATURES)} == \
      dict(TUTORIAL_HASH_BUCKETS)


def test_hash_budget_without_a_weight_for_a_feature_is_an_error():
  with pytest.raises(ValueError, match="user_age_bucket"):
    embeddings.hash_spec_from_budget(
        24_000, {f: 1 for f in FEATURES[:-1]}, 16, FEATURES)


@pytest.mark.parametrize("kind", ["unified", "hash"])
def test_smaller_budget_means_fewer_parameters(kind):
  sizes = [_layer_parameters(model_lib.embedding_spec(resolved(
      model_type=kind, embedding_budget=int(TUTORIAL_EMBEDDING_BUDGET * m))))
      for m in BUDGET_MULTIPLES]
  assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_any_number_of_tables():
  for num_tables in (1, 2, 3, 4):
    spec = embeddings.unified_spec_from_budget(
        24_000, {f: 4 for f in FEATURES}, 4, num_tables)
    assert len(spec.tables) == num_tables
    assert spec.num_parameters == 24_000
    assert _layer_parameters(spec) == 24_000


def test_a_table_without_lookups_is_an_error():
  with pytest.raises(ValueError, match="no lookup"):
    embeddings.unified_spec({"user_gender": 1}, 100, 8, 3)


def test_budget_too_small_is_an_error():
  with pytest.raises(ValueError, match="smaller than one row"):
    embeddings.usable_budget(15, 8, 16)


# --- Per-feature chunks -------------------------------------------------------------------


def test_per_feature_chunks_change_only_that_features_output_dim():
  base = model_lib.embedding_spec(resolved(model_type="unified"))
  more = model_lib.embedding_spec(resolved(
      model_type="unified", chunks=(("movie_id", 4), ("user_gender", 1))))
  dims, more_dims = base.output_dims(), more.output_dims()
  assert dims == {f: 16 for f in FEATURES}
  assert more_dims == {**dims, "movie_id": 32, "user_gender": 8}
  assert more.num_parameters == base.num_parameters  # chunks share the same tables

  layer = embedding_layer.SpecEmbedding(more)
  outputs = dict(zip(more.feature_names, layer(_inputs())))
  for f in FEATURES:
    assert outputs[f].shape == (len(VALUES[f]), more_dims[f])
  # The chunks that exist in both configurations look up the same rows.
  base_ids, more_ids = _ids(base, FEATURES), _ids(more, FEATURES)
  for key, ids in base_ids.items():
    if key in more_ids:
      np.testing.assert_array_equal(ids, more_ids[key], err_msg=key)


def test_unified_chunks_of_a_feature_use_different_tables():
  spec = embeddings.unified_spec_from_budget(24_000, {"movie_id": 3}, 8, 3)
  tables = [t for t, _ in dict(spec.lookups)["movie_id"]]
  assert len(set(tables)) == 3


PINNED_MOVIE_IDS = [660, 575, 1427]
