"""TFMA's signature calls by keyword: the same outputs, without TensorFlow's failed bind."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.eager.polymorphic_function import concrete_function
from tensorflow_model_analysis.utils import model_util

from components.production_model import signature_calls


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
  """A SavedModel with a one-input signature (serialized examples, as ours) and a
  two-input one."""
  module = tf.Module()

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def one(serialized):
    return {"length": tf.strings.length(serialized)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                tf.TensorSpec([None], tf.float32, name="b")])
  def two(a, b):
    return {"sum": a + b}

  path = str(tmp_path_factory.mktemp("model"))
  tf.saved_model.save(module, path, signatures={"serving_default": one, "pair": two})
  return tf.saved_model.load(path)


@pytest.fixture
def flat_calls(monkeypatch):
  """Counts calls through the flat signature (TensorFlow's fallback after a failed bind)."""
  calls = []
  original = concrete_function.ConcreteFunction._call_with_flat_signature  # pylint: disable=protected-access

  def counting(self, args, kwargs):
    calls.append(1)
    return original(self, args, kwargs)
  monkeypatch.setattr(concrete_function.ConcreteFunction, "_call_with_flat_signature", counting)
  return calls


BATCH = tf.constant([b"a", b"bcd", b""])


def test_tfmas_positional_call_falls_back_without_the_fix(loaded, flat_calls):
  fn = model_util.get_callable(loaded, "serving_default")
  assert fn(BATCH)["length"].numpy().tolist() == [1, 3, 0]
  assert flat_calls  # bound by keyword only: the positional call failed, then fell back


def test_with_the_fix_a_positional_call_binds_by_keyword(loaded, flat_calls):
  with signature_calls.keyword_signature_calls() as installed:
    assert installed
    fn = model_util.get_callable(loaded, "serving_default")
    assert fn(BATCH)["length"].numpy().tolist() == [1, 3, 0]
    assert fn(examples=BATCH)["length"].numpy().tolist() == [1, 3, 0]
    # What TFMA reads off a signature before calling it is still there.
    assert fn.structured_input_signature == (
        loaded.signatures["serving_default"].structured_input_signature)
  assert not flat_calls
  assert model_util.get_callable is signature_calls._ORIGINAL  # pylint: disable=protected-access


def test_other_signatures_are_handed_out_unchanged(loaded):
  with signature_calls.keyword_signature_calls():
    pair = model_util.get_callable(loaded, "pair")
    assert pair is loaded.signatures["pair"]
    out = pair(a=tf.constant([1.0]), b=tf.constant([2.0]))
    np.testing.assert_allclose(out["sum"].numpy(), [3.0])
