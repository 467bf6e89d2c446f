"""uet_upstream/keras.py: pinned to its tf-keras release; a model's checkpoint children are
what the warm start needs (its layers' weights, and the optimizer apart)."""

import importlib.metadata

import tensorflow as tf

from uet_upstream import keras as upstream_keras, pins


def test_tf_keras_is_the_release_the_touchpoint_was_checked_against():
  version = importlib.metadata.version("tf-keras")
  assert version == pins.TF_KERAS, (
      f"tf-keras {version} is installed; uet_upstream/keras.py calls the private "
      f"Trackable._trackable_children of {pins.TF_KERAS}. Re-run this file and "
      "tests/test_warm_start.py, then update pins.TF_KERAS")


def test_checkpoint_children_hold_the_weights_and_the_optimizer_apart(tmp_path):
  model = tf.keras.Sequential([tf.keras.layers.Dense(2, input_shape=(3,))])
  model.compile(optimizer="adam", loss="mse")
  model.fit(tf.zeros((4, 3)), tf.zeros((4, 2)), epochs=1, verbose=0)
  children = upstream_keras.checkpoint_children(model)
  assert "optimizer" in children
  weights = tf.train.Checkpoint(**{n: c for n, c in children.items() if n != "optimizer"})
  path = weights.write(str(tmp_path / "weights"))
  names = {name for name, _ in tf.train.list_variables(path)}
  assert any("kernel" in name for name in names)
  assert not any("optimizer" in name for name in names)
