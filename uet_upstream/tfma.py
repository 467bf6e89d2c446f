"""TFMA, replaced for the duration of one evaluation: the same metrics, less time.

Two replacements, installed together by `fast_evaluation()` around the Evaluator executor
(`components/evaluator/executor.py`), on the TFMA release of `pins.TFMA` only. They patch
this process's modules, so they take effect where TFMA runs in-process (the DirectRunner's
in-memory mode, what `uet run` uses); remote Beam workers run TFMA's own code, with the
same results. What each saves is in bench/results/upstream.md (`bench/upstream.py`).

1. `metric_util.to_label_prediction_example_weight`: every metric combiner calls it for
   every (example, slice). For the inputs our models produce (labels and predictions keyed
   by model name, each a numeric array of one value; no example weights, sub-keys, class
   weights or output names) its result is fixed, and `to_label_prediction_example_weight`
   below returns it directly; every other call goes to TFMA's function unchanged.
   `tests/test_upstream_tfma.py` checks both give the same tuples. It relies on the private
   `metric_util._yield_fractional_labels` for labels other than 0 and 1.
2. `model_util.get_callable`: TFMA calls a signature that takes serialized examples with
   the batch as a positional argument (`model_util.ModelSignaturesDoFn`). A signature
   loaded from a SavedModel binds keyword arguments only, so for every batch TensorFlow
   first fails to bind, formats an error message that prints the whole batch, and retries
   through the flat signature. `get_callable` below hands out, for a signature with exactly
   one (named) input, a callable that passes a lone positional argument by that name.
"""

import contextlib
from typing import Any, Iterator

import numpy as np
import tensorflow_model_analysis
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.utils import model_util

from uet_upstream import pins

_NUMERIC = frozenset("biuf")
_ORIGINAL_LOOKUP = metric_util.to_label_prediction_example_weight
_ORIGINAL_GET_CALLABLE = model_util.get_callable


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


class KeywordCall:
  """`fn`, except that `fn(x)` is called as `fn(<its one input name>=x)`."""

  def __init__(self, fn: Any, name: str):
    self._fn = fn
    self._name = name

  def __call__(self, *args, **kwargs):
    if len(args) == 1 and not kwargs:
      return self._fn(**{self._name: args[0]})
    return self._fn(*args, **kwargs)

  def __getattr__(self, attr: str) -> Any:  # structured_input_signature, inputs, ...
    return getattr(self._fn, attr)


def keyword_call(fn: Any) -> Any:
  """`fn` wrapped as KeywordCall when it is a signature of one keyword input, else `fn`."""
  signature = getattr(fn, "structured_input_signature", None)
  if not signature:
    return fn
  args, kwargs = signature
  if args or len(kwargs) != 1:
    return fn
  return KeywordCall(fn, next(iter(kwargs)))


def get_callable(model: Any, signature_name=None, required: bool = True) -> Any:
  """TFMA's `model_util.get_callable`, with one-input signatures called by keyword."""
  fn = _ORIGINAL_GET_CALLABLE(model, signature_name, required)
  return None if fn is None else keyword_call(fn)


def fast_label_lookup() -> contextlib.AbstractContextManager:
  """Installs `to_label_prediction_example_weight` while the block runs; yields whether it
  did (the TFMA release)."""
  return pins.replaced(metric_util, "to_label_prediction_example_weight",
                       to_label_prediction_example_weight,
                       installed=tensorflow_model_analysis.__version__, checked=pins.TFMA)


def keyword_signature_calls() -> contextlib.AbstractContextManager:
  """Installs `get_callable` while the block runs; yields whether it did (TFMA release)."""
  return pins.replaced(model_util, "get_callable", get_callable,
                       installed=tensorflow_model_analysis.__version__, checked=pins.TFMA)


@contextlib.contextmanager
def fast_evaluation() -> Iterator[None]:
  """Both replacements while the block runs (one evaluation)."""
  with fast_label_lookup(), keyword_signature_calls():
    yield
