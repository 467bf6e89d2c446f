"""Executors that read the compiled pipeline's scalar runtime parameters.

TFX 1.16 compiles a `RuntimeParameter` only where a whole execution property is one: it can
stand for all of `eval_config` or all of a Trainer's `custom_config` (a JSON string), never
for one number inside them (a proto or dict holding a RuntimeParameter does not compile). To
make `min_auc_gain`, `max_auc_regression`, `auc_floor` and `epochs` first-class pipeline
parameters, the compiler
adds each as an execution property of its own and swaps in these subclasses of the stock
executors; each writes the value into `eval_config` / `custom_config` and then runs the
stock code unchanged. The local runner never uses them.
"""

import json
import math
from typing import Any, Dict, List, Optional, Tuple

import tensorflow_model_analysis as tfma
from tfx import types
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer_executor
from tfx.types import standard_component_specs
from tfx.utils import json_utils, proto_utils

from components import decisions
from components.evaluator import executor as evaluator_executors
from components.trainer import executor as trainer_executors
from pipeline import pipeline as pipeline_lib

# Execution property keys; each is bound to the runtime parameter of the same name.
MIN_AUC_GAIN_KEY = "min_auc_gain"  # AUC change threshold (absolute) = +value
MAX_AUC_REGRESSION_KEY = "max_auc_regression"  # AUC change threshold (absolute) = -value
AUC_FLOOR_KEY = "auc_floor"  # AUC value threshold, lower bound
EPOCHS_KEY = "epochs"

_EVAL_CONFIG_KEY = standard_component_specs.EVAL_CONFIG_KEY
_CUSTOM_CONFIG_KEY = standard_component_specs.CUSTOM_CONFIG_KEY
_BASE_MODEL_KEY = standard_component_specs.BASE_MODEL_KEY


def _auc_thresholds(eval_config: tfma.EvalConfig) -> List[tfma.MetricThreshold]:
  """`pipeline.auc_thresholds`, which must find at least one."""
  thresholds = pipeline_lib.auc_thresholds(eval_config)
  if not thresholds:
    raise ValueError("eval_config has no AUC metric with a threshold, so the AUC runtime "
                     "parameters have nothing to set; see make_eval_config in "
                     "pipeline/pipeline.py")
  return thresholds


def read_auc_thresholds(eval_config_json: str) -> Tuple[float, float]:
  """(absolute AUC change threshold, AUC floor) of a JSON-encoded EvalConfig.

  Raises:
    ValueError: the config has no AUC threshold with both a change and a value bound.
  """
  eval_config = proto_utils.json_to_proto(eval_config_json, tfma.EvalConfig())
  threshold = _auc_thresholds(eval_config)[0]
  if not (threshold.HasField("change_threshold") and threshold.HasField("value_threshold")):
    raise ValueError("the AUC threshold of eval_config needs both a change threshold "
                     "(min_auc_gain / max_auc_regression) and a value threshold (auc_floor)")
  return (threshold.change_threshold.absolute.value,
          threshold.value_threshold.lower_bound.value)


def apply_evaluation_parameters(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
  """Writes `min_auc_gain` / `max_auc_regression` / `auc_floor` into the AUC threshold of
  `eval_config`.

  Args:
    exec_properties: an Evaluator's execution properties, possibly with those keys.

  Returns:
    A copy without the keys and with `eval_config` updated (unchanged if none is present).

  Raises:
    ValueError: a value is not a finite number (the floor must lie in [0, 1]), both change
      keys are given, or the EvalConfig has no AUC change/value threshold to update.
  """
  props = dict(exec_properties)
  values = {key: props.pop(key, None)
            for key in (MIN_AUC_GAIN_KEY, MAX_AUC_REGRESSION_KEY, AUC_FLOOR_KEY)}
  if all(v is None for v in values.values()):
    return props
  for key, value in values.items():
    if value is not None:
      values[key] = float(value)
      if not math.isfinite(values[key]):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
  gain, regression, floor = (values[MIN_AUC_GAIN_KEY], values[MAX_AUC_REGRESSION_KEY],
                             values[AUC_FLOOR_KEY])
  if gain is not None and regression is not None:
    raise ValueError(f"{MIN_AUC_GAIN_KEY} and {MAX_AUC_REGRESSION_KEY} both set the AUC change "
                     "threshold of one Evaluator; bind one of them")
  change = gain if gain is not None else (None if regression is None else -regression)
  if floor is not None and not 0.0 <= floor <= 1.0:
    raise ValueError(f"{AUC_FLOOR_KEY} must be in [0, 1], got {floor}")
  eval_config = proto_utils.json_to_proto(props[_EVAL_CONFIG_KEY], tfma.EvalConfig())
  for threshold in _auc_thresholds(eval_config):
    if change is not None:
      if not threshold.HasField("change_threshold"):
        raise ValueError("the AUC threshold of eval_config has no change threshold to set "
                         f"{MIN_AUC_GAIN_KEY}/{MAX_AUC_REGRESSION_KEY} on")
      threshold.change_threshold.absolute.value = change
    if floor is not None:
      if not threshold.HasField("value_threshold"):
        raise ValueError("the AUC threshold of eval_config has no value threshold to set "
                         f"{AUC_FLOOR_KEY} on")
      threshold.value_threshold.lower_bound.value = floor
  props[_EVAL_CONFIG_KEY] = proto_utils.proto_to_json(eval_config)
  return props


def read_epochs(custom_config_json: Optional[str]) -> int:
  """The `training.epochs` of a Trainer's JSON-encoded custom_config."""
  custom = json.loads(custom_config_json or "null") or {}
  try:
    return int(custom["training"]["epochs"])
  except (KeyError, TypeError):
    raise ValueError("the Trainer's custom_config has no training.epochs; see _trainer in "
                     "pipeline/pipeline.py") from None


def apply_training_parameters(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
  """Writes `epochs` into `custom_config["training"]` of a Trainer.

  Args:
    exec_properties: the Trainer's execution properties, possibly with `epochs`.

  Returns:
    A copy without `epochs` and with `custom_config` updated (unchanged if absent).

  Raises:
    ValueError: `epochs` is not a positive whole number, or custom_config has no training
      section.
  """
  props = dict(exec_properties)
  epochs = props.pop(EPOCHS_KEY, None)
  if epochs is None:
    return props
  try:
    value = float(epochs)
  except (TypeError, ValueError):
    value = math.nan
  if not value.is_integer() or value <= 0:
    raise ValueError(f"epochs must be a positive whole number, got {epochs!r}")
  custom = json_utils.loads(props.get(_CUSTOM_CONFIG_KEY) or "null") or {}
  if not isinstance(custom.get("training"), dict):
    raise ValueError("the Trainer's custom_config has no training section to set epochs in")
  custom["training"]["epochs"] = int(value)
  props[_CUSTOM_CONFIG_KEY] = json_utils.dumps(custom)
  return props


class EvaluatorExecutor(evaluator_executors.EvaluatorExecutor):
  """The pipeline's Evaluator executor, with its AUC thresholds from runtime parameters."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    super().Do(input_dict, output_dict, apply_evaluation_parameters(exec_properties))


class TrainerExecutor(trainer_executors.TrainerExecutor):
  """The pipeline's Trainer executor (trains in the component's container), with runtime
  `epochs`."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    super().Do(input_dict, output_dict, apply_training_parameters(exec_properties))


class VertexTrainerExecutor(vertex_trainer_executor.GenericExecutor):
  """The executor of `tfx.extensions.google_cloud_ai_platform.Trainer`, with runtime `epochs`.

  It launches a Vertex AI custom job (the machine and accelerators of
  `custom_config["ai_platform_training_args"]`) that runs the stock Trainer executor, so
  `trainer.run_fn.run_fn` and its TPU/GPU strategy selection run on that machine. `epochs`
  is written into custom_config before the job is built, so the job trains for it.
  """

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    # As components.trainer.executor.TrainerExecutor: nothing in production, no base model.
    super().Do(decisions.drop_empty(input_dict, _BASE_MODEL_KEY), output_dict,
               apply_training_parameters(exec_properties))
