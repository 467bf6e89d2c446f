"""TFMA, replaced for the duration of one evaluation: the same metrics, less time.

`metric_util.to_label_prediction_example_weight`: every metric combiner calls it for every
(example, slice). For the inputs our models produce (labels and predictions keyed by model
name, each a numeric array of one value; no example weights, sub-keys, class weights or
output names) its result is fixed, and `to_label_prediction_example_weight` below returns it
directly; every other call goes to TFMA's function unchanged. `tests/test_upstream_tfma.py`
checks both give the same tuples. It relies on the private
`metric_util._yield_fractional_labels` for labels other than 0 and 1.

`fast_label_lookup()` installs it around the Evaluator executor
(`components/evaluator/executor.py`), on the TFMA release of `pins.TFMA` only. It patches
this process's module, so it takes effect where TFMA runs in-process (the DirectRunner's
in-memory mode, what `uet run` uses); remote Beam workers run TFMA's own code, with the same
results. What it saves is in bench/results/upstream.md (`bench/upstream.py`).
"""

import contextlib

import numpy as np
import tensorflow_model_analysis
from tensorflow_model_analysis.metrics import metric_util

from uet_upstream import pins

_NUMERIC = frozenset("biuf")
_ORIGINAL_LOOKUP = metric_util.to_label_prediction_example_weight


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
    return _ORIGINAL_LOOKUP(inputs, eval_config=eval_config, model_name=model_name,
                            output_name=output_name, sub_key=sub_key,
                            aggregation_type=aggregation_type, class_weights=class_weights,
                            example_weighted=example_weighted,
                            fractional_labels=fractional_labels, flatten=flatten,
                            squeeze=squeeze, allow_none=allow_none,
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
  whose weight is 0: a binary label keeps one part.
  """
  value = label[0]
  if value == 0:
    return [(np.array([0], dtype=label.dtype), prediction, weight * (1 - label))]
  if value == 1:
    return [(np.array([1], dtype=label.dtype), prediction, weight * label)]
  # Private in TFMA: the split of a fractional label, exactly as TFMA does it.
  return list(metric_util._yield_fractional_labels(label, prediction, weight))  # pylint: disable=protected-access


def fast_label_lookup() -> contextlib.AbstractContextManager:
  """Installs `to_label_prediction_example_weight` while the block runs; yields whether it
  did (the TFMA release)."""
  return pins.replaced(metric_util, "to_label_prediction_example_weight",
                       to_label_prediction_example_weight,
                       installed=tensorflow_model_analysis.__version__, checked=pins.TFMA)
