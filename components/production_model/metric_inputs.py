"""A fast path for TFMA's per-example label/prediction lookup, used by our Evaluators.

Where the Evaluator's time goes (profiled on MovieLens-100K, 19,878 eval examples, candidate
and baseline, 3 slicings): TFMA feeds every (example, slice) to each metric combiner, and
each combiner first calls `metric_util.to_label_prediction_example_weight`: ~120,000
calls per model for AUC (calibration histogram) and LogLoss each. That generic function
(model/output/label-key lookups through `Mapping` isinstance checks, a class defined per
lookup, sub-keys, class weights, flattening) was ~40% of the Evaluator's profile.

For the inputs our models produce (labels and predictions keyed by model name, each a
numeric array of one value, no example weights, sub-keys, class weights or output names)
the result is fixed: this module returns it directly, and hands every other call to TFMA's
own function unchanged. `tests/test_metric_inputs.py` checks both give the same tuples.

`fast_label_lookup()` installs it for the duration of one evaluation, and only on the TFMA
version it was checked against. It patches this process's module, so it takes effect where
TFMA runs in-process (the DirectRunner's in-memory mode, what `uet run` uses); remote Beam
workers run TFMA's own code, with the same results.
"""

from typing import ContextManager

import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_util

from components import upstream_patch

# The TFMA release whose `to_label_prediction_example_weight` this reproduces.
CHECKED_TFMA_VERSION = "0.47.1"
_NUMERIC = frozenset("biuf")
_ORIGINAL = metric_util.to_label_prediction_example_weight


def _keys_free_of(d: dict, key: str) -> bool:
  """`d` has neither `key` nor keys prefixed `key/` (TFMA's get_by_keys would match them)."""
  if key in d:
    return False
  prefix = key + "/"
  return not any(isinstance(k, str) and k.startswith(prefix) for k in d)


def to_label_prediction_example_weight(inputs, eval_config=None, model_name="",
                                       output_name="", sub_key=None, aggregation_type=None,
                                       class_weights=None, example_weighted=False,
                                       fractional_labels=False, flatten=True, squeeze=True,
                                       allow_none=False, require_single_example_weight=False):
  """`metric_util.to_label_prediction_example_weight`, faster for one scalar per model.

  Returns an iterable of (label, prediction, example_weight) equal to what TFMA's function
  yields (same arrays, dtypes and shapes).
  """
  def original():
    return _ORIGINAL(inputs, eval_config=eval_config, model_name=model_name,
                     output_name=output_name, sub_key=sub_key,
                     aggregation_type=aggregation_type, class_weights=class_weights,
                     example_weighted=example_weighted, fractional_labels=fractional_labels,
                     flatten=flatten, squeeze=squeeze, allow_none=allow_none,
                     require_single_example_weight=require_single_example_weight)

  if (eval_config is None or output_name or sub_key is not None or aggregation_type is not None
      or class_weights or example_weighted or not squeeze):
    return original()
  specs = eval_config.model_specs
  label_key = None
  for spec in specs:
    if (spec.name if len(specs) > 1 else "") == model_name:
      label_key = spec.label_key
      break
  if label_key is None:
    return original()
  label = inputs.label
  prediction = inputs.prediction
  if type(label) is dict:  # pylint: disable=unidiomatic-typecheck
    if label_key and not _keys_free_of(label, label_key):
      return original()
    if model_name:
      if model_name not in label:
        return original()
      label = label[model_name]
  if model_name:
    if type(prediction) is not dict or model_name not in prediction:  # pylint: disable=unidiomatic-typecheck
      return original()
    prediction = prediction[model_name]
  if (type(label) is not np.ndarray or type(prediction) is not np.ndarray  # pylint: disable=unidiomatic-typecheck
      or label.shape != (1,) or prediction.shape != (1,)
      or label.dtype.kind not in _NUMERIC or prediction.dtype.kind not in _NUMERIC):
    return original()
  # TFMA: an unweighted example weighs float32 1.0; flattening rebuilds it as a float64 array.
  weight = np.array([1.0]) if flatten else np.array([1.0], dtype=np.float32)
  if fractional_labels:
    return _fractional(label, prediction, weight)
  return [(label, prediction, weight)]


def _fractional(label: np.ndarray, prediction: np.ndarray, weight: np.ndarray) -> list:
  """TFMA's `_yield_fractional_labels`, without its generic work for a 0 or 1 label.

  TFMA splits a label l into (0, weight * (1 - l)) and (1, weight * l) and drops a part
  whose weight is 0: a binary label keeps one part. The split was 8% of gate 1's profile at
  1M ratings (two numpy arrays, two products and two `isclose` per example and metric).
  """
  value = label[0]
  if value == 0:
    return [(np.array([0], dtype=label.dtype), prediction, weight * (1 - label))]
  if value == 1:
    return [(np.array([1], dtype=label.dtype), prediction, weight * label)]
  return list(metric_util._yield_fractional_labels(label, prediction, weight))  # pylint: disable=protected-access


def fast_label_lookup() -> ContextManager[bool]:
  """Installs the fast path while the block runs; yields whether it did (TFMA version)."""
  return upstream_patch.replaced(
      metric_util, "to_label_prediction_example_weight", to_label_prediction_example_weight,
      installed=tfma.__version__, checked=CHECKED_TFMA_VERSION)
