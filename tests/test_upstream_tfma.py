"""uet_upstream/tfma.py: pinned to its TFMA release; the fast label/prediction lookup gives
exactly what TFMA's own function gives."""

import inspect
import itertools

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types, metric_util

from pipeline import pipeline as pipeline_lib
from pipeline.config import EvaluationConfig
from uet_upstream import pins, tfma as upstream_tfma


def _inputs(label, prediction, weight=None):
  return metric_types.StandardMetricInputs(
      {"labels": label, "predictions": prediction, "example_weights": weight})


def _same(a, b):
  a, b = list(a), list(b)
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert len(x) == len(y) == 3
    for u, v in zip(x, y):
      assert isinstance(u, np.ndarray) and isinstance(v, np.ndarray)
      assert u.dtype == v.dtype and u.shape == v.shape
      np.testing.assert_array_equal(u, v)


# What TFMA passes our Evaluators' combiners: one value per model, labels and predictions
# keyed by model name (two models) or bare (one model).
TWO = pipeline_lib.make_eval_config(EvaluationConfig())
ONE = tfma.EvalConfig(model_specs=[TWO.model_specs[0]])
CASES = []
for label, pred in itertools.product(
    (np.array([1]), np.array([0]), np.array([1.0], np.float32), np.array([0.25])),
    (np.array([0.9682908], np.float32), np.array([0.0], np.float32), np.array([1.0]))):
  CASES.append((TWO, "candidate", _inputs({"candidate": label, "baseline": 1 - label},
                                          {"candidate": pred, "baseline": 1 - pred})))
  CASES.append((TWO, "baseline", _inputs({"candidate": label, "baseline": label},
                                         {"candidate": pred, "baseline": pred})))
  CASES.append((ONE, "", _inputs(label, pred)))

KWARGS = [dict(flatten=None), dict(flatten=True, fractional_labels=True),
          dict(flatten=True), dict(flatten=False, fractional_labels=True)]


@pytest.mark.parametrize("kwargs", KWARGS)
def test_fast_path_matches_tfma(kwargs):
  for config, model, inputs in CASES:
    if kwargs.get("fractional_labels") and float(inputs.label[model] if model
                                                 else inputs.label) not in (0.0, 1.0):
      continue  # fractional labels are split in two; checked below
    _same(upstream_tfma.to_label_prediction_example_weight(
              inputs, eval_config=config, model_name=model, output_name="", sub_key=None,
              aggregation_type=None, class_weights=None, example_weighted=False, **kwargs),
          metric_util.to_label_prediction_example_weight(
              inputs, eval_config=config, model_name=model, output_name="", sub_key=None,
              aggregation_type=None, class_weights=None, example_weighted=False, **kwargs))


def test_fractional_label_split_matches_tfma():
  inputs = _inputs({"candidate": np.array([0.25]), "baseline": np.array([1])},
                   {"candidate": np.array([0.5], np.float32), "baseline": np.array([0.5])})
  kwargs = dict(eval_config=TWO, model_name="candidate", flatten=True, fractional_labels=True)
  _same(upstream_tfma.to_label_prediction_example_weight(inputs, **kwargs),
        metric_util.to_label_prediction_example_weight(inputs, **kwargs))


def test_everything_else_goes_to_tfma():
  weighted = _inputs({"candidate": np.array([1]), "baseline": np.array([1])},
                     {"candidate": np.array([0.7]), "baseline": np.array([0.6])},
                     {"candidate": np.array([2.0]), "baseline": np.array([3.0])})
  for inputs, kwargs in [
      (weighted, dict(example_weighted=True)),
      (weighted, dict(sub_key=metric_types.SubKey(class_id=0))),
      (_inputs({"candidate": np.array([1, 0]), "baseline": np.array([1, 0])},
               {"candidate": np.array([0.7, 0.2]), "baseline": np.array([0.6, 0.1])}), {}),
      (_inputs({"label": {"candidate": np.array([1])}, "candidate": np.array([0])},
               {"candidate": np.array([0.7]), "baseline": np.array([0.6])}), {}),
  ]:
    kwargs = dict(eval_config=TWO, model_name="candidate", **kwargs)
    _same(upstream_tfma.to_label_prediction_example_weight(inputs, **kwargs),
          metric_util.to_label_prediction_example_weight(inputs, **kwargs))


def test_installed_only_inside_the_block():
  original = metric_util.to_label_prediction_example_weight
  with upstream_tfma.fast_label_lookup() as installed:
    assert installed == (tfma.__version__ == pins.TFMA)
    if installed:
      assert (metric_util.to_label_prediction_example_weight
              is upstream_tfma.to_label_prediction_example_weight)
  assert metric_util.to_label_prediction_example_weight is original



def _parameters(fn) -> list:
  return list(inspect.signature(fn).parameters)


def test_tfma_is_the_release_the_replacement_was_checked_against():
  assert tfma.__version__ == pins.TFMA, (
      f"TFMA {tfma.__version__} is installed; uet_upstream/tfma.py reproduces functions of "
      f"TFMA {pins.TFMA}. Compare metric_util.to_label_prediction_example_weight and "
      "metric_util._yield_fractional_labels with that release, re-run bench/upstream.py, "
      "then update pins.TFMA (or drop the replacement)")


def test_to_label_prediction_example_weight_takes_the_arguments_the_replacement_takes():
  assert (_parameters(upstream_tfma._ORIGINAL_LOOKUP)  # pylint: disable=protected-access
          == _parameters(upstream_tfma.to_label_prediction_example_weight)), (
              "TFMA's metric_util.to_label_prediction_example_weight changed its arguments: "
              "uet_upstream/tfma.py's replacement no longer matches it")


def test_the_private_fractional_label_split_is_still_there():
  split = getattr(metric_util, "_yield_fractional_labels", None)
  assert split is not None and _parameters(split) == ["label", "prediction",
                                                      "example_weight"], (
      "TFMA's private metric_util._yield_fractional_labels moved or changed; "
      "uet_upstream/tfma.py (_fractional) calls it")
