"""The ServingCheck's parts on real MovieLens rows: warm-up requests in TF Serving's format
without the label, and the comparison of served scores with the Evaluator's.

The check on a real trained model (passing, and failing on NaN and on a label-dependent
score, with the push blocked) is in tests/test_pipeline_e2e.py, on its pipeline run.
"""

import math

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components.serving_check import executor as serving_check
from tests import runs


@pytest.fixture
def rows(small_movielens):
  return [e.SerializeToString() for e in runs.raw_examples(
      str(small_movielens / "u.data"), str(small_movielens / "u.user"), 40)]


def test_warmup_requests_hold_the_rows_without_the_label_in_tf_servings_format(rows, tmp_path):
  logs = serving_check.warmup_requests(serving_check.without_label(rows, "rating"), "examples")
  path = str(tmp_path / "warmup")
  with tf.io.TFRecordWriter(path) as writer:
    for log in logs:
      writer.write(log.SerializeToString())
  parsed = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(path)]
  sizes = []
  for log in parsed:
    request = log.predict_log.request
    assert request.model_spec.signature_name == "serving_default"
    sent = tf.make_ndarray(request.inputs["examples"])
    sizes.append(len(sent))
    for got, row in zip(sent, rows):
      example, original = tf.train.Example.FromString(got), tf.train.Example.FromString(row)
      assert "rating" in original.features.feature
      del original.features.feature["rating"]
      assert example == original
  assert sizes == [1, 16, 40]  # 256 capped at the rows there are


def _served(batches, scores):
  return [{"signature": "serving_default", "batch": b,
           "outputs": {"probability": scores[:b]}} for b in batches]


def test_compare_accepts_scores_equal_to_the_evaluators_within_tolerance():
  rows = [b"a", b"b", b"c"]
  reference = {b"a": 0.25, b"b": 0.5, b"c": 0.75}
  result = serving_check.compare(_served([1, 3], [0.25, 0.5 + 5e-5, 0.75]), rows, reference)
  assert result["batch_sizes"] == [1, 3] and result["rows"] == 3
  assert result["max_abs_difference"] == pytest.approx(5e-5)
  assert (result["min_score"], result["max_score"]) == (0.25, 0.75)


@pytest.mark.parametrize("scores,message", [
    ([0.25, math.nan, 0.75], "row 1 scored nan, not a finite number"),
    ([0.25, math.inf, 0.75], "row 1 scored inf, not a finite number"),
    ([0.25, 0.5, 1.5], "row 2 scored 1.5, outside [0, 1]"),
    ([0.25, 0.6, 0.75], "row 1 served 0.600000 but the Evaluator's prediction is 0.500000"),
    ([0.25, 0.5], "2 scores for 3 rows"),
])
def test_compare_names_the_request_row_and_values_that_fail(scores, message):
  rows = [b"a", b"b", b"c"]
  reference = {b"a": 0.25, b"b": 0.5, b"c": 0.75}
  served = [{"signature": "serving_default", "batch": 3, "outputs": {"probability": scores}}]
  with pytest.raises(serving_check.ServingCheckError, match="the warm-up request of batch 3"):
    serving_check.compare(served, rows, reference)
  with pytest.raises(serving_check.ServingCheckError) as e:
    serving_check.compare(served, rows, reference)
  assert message in str(e.value)
