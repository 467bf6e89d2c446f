"""Warm start restores the production model's tables and MLP; a changed config is refused."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import model as model_lib, warm_start
from tests.specs import FEATURES, resolved

FEATURES = {"movie_id": ["242", "302", "377"], "user_id": ["196", "186", "22"],
            "user_gender": ["M", "F", "M"], "user_zip_code": ["55105", "T8H1N", "40206"],
            "user_occupation": ["writer", "artist", "other"], "user_age_bucket": ["45", "35", "25"]}


def _trained_model(config):
  model = model_lib.build_model(config, model_lib.embedding_spec(config))
  x = {k: tf.constant(v) for k, v in FEATURES.items()}
  model.fit(tf.data.Dataset.from_tensors((x, tf.constant([1.0, 0.0, 1.0]))), epochs=3,
            verbose=0)
  return model


def _export(model, directory):
  tf.saved_model.save(model, str(directory))
  warm_start.write_model_config(str(directory), model.get_config())


def _rows_for(model, feature, value):
  """The embedding rows a value reads, per lookup."""
  ids = model.embedding.ids({f: tf.constant([v[0] if f != feature else value])
                             for f, v in FEATURES.items()})
  tables = model.embedding.embedding_tables
  rows = {}
  for f, lookups in model.spec.lookups:
    if f != feature:
      continue
    for table, chunk in lookups:
      rows[(table, chunk)] = tables[table].numpy()[int(ids[f"{f}/{chunk}"][0])]
  return rows


@pytest.mark.parametrize("model_type", ["unified", "hash"])
def test_warm_start_restores_rows_of_a_known_id(tmp_path, model_type):
  config = resolved(model_type=model_type, embedding_budget=4800)
  old = _trained_model(config)
  _export(old, tmp_path / "prod")
  new = model_lib.build_model(config, model_lib.embedding_spec(config))
  result = warm_start.warm_start(new, str(tmp_path / "prod"))
  assert result["variables"] == len(old.variables)
  before, after = _rows_for(old, "user_id", "196"), _rows_for(new, "user_id", "196")
  assert before.keys() == after.keys() and before
  for key in before:
    np.testing.assert_array_equal(before[key], after[key])
  x = {k: tf.constant(v) for k, v in FEATURES.items()}
  np.testing.assert_allclose(old(x).numpy(), new(x).numpy(), rtol=1e-6)
  # And a cold model is different (the check can fail).
  cold = model_lib.build_model(config, model_lib.embedding_spec(config))
  assert not np.allclose(cold(x).numpy(), old(x).numpy())


def test_warm_start_restores_the_weights_not_the_optimizer(tmp_path):
  # The export tracks Adam (moments, step count, learning rate); a warm start fine-tunes with
  # a fresh optimizer at its own config's rate, not at the production model's.
  config = resolved(embedding_budget=4800, learning_rate=0.01)
  old = _trained_model(config)
  assert int(old.optimizer.iterations.numpy()) == 3
  _export(old, tmp_path / "prod")
  fine_tune = config.for_warm_start()
  new = model_lib.build_model(fine_tune, model_lib.embedding_spec(fine_tune))
  warm_start.warm_start(new, str(tmp_path / "prod"))
  x = {k: tf.constant(v) for k, v in FEATURES.items()}
  new.fit(tf.data.Dataset.from_tensors((x, tf.constant([1.0, 0.0, 1.0]))), verbose=0)
  assert int(new.optimizer.iterations.numpy()) == 1
  assert float(tf.keras.backend.get_value(new.optimizer.learning_rate)) == pytest.approx(0.005)
  slots = [new.optimizer.get_slot(v, "m") for v in new.trainable_variables]
  old_slots = [old.optimizer.get_slot(v, "m") for v in old.trainable_variables]
  assert not any(np.allclose(a.numpy(), b.numpy()) for a, b in zip(slots, old_slots)
                 if np.any(b.numpy()))


def test_changed_embedding_config_is_refused_with_the_difference(tmp_path):
  config = resolved(model_type="unified", embedding_budget=4800)
  _export(_trained_model(config), tmp_path / "prod")
  bigger = config.replace(embedding_budget=9600)
  new = model_lib.build_model(bigger, model_lib.embedding_spec(bigger))
  with pytest.raises(warm_start.WarmStartError,
                     match=r"table unified_0: 300 rows x 8 -> 600 rows x 8.*warm_start: false"):
    warm_start.warm_start(new, str(tmp_path / "prod"))


def test_model_without_config_is_refused(tmp_path):
  config = resolved(model_type="hash", embedding_budget=4800)
  tf.saved_model.save(_trained_model(config), str(tmp_path / "foreign"))
  new = model_lib.build_model(config, model_lib.embedding_spec(config))
  with pytest.raises(warm_start.WarmStartError, match="was not exported by this trainer"):
    warm_start.warm_start(new, str(tmp_path / "foreign"))
