"""The Evaluator's executor: TFX's, with an empty `baseline_model` dropped from its inputs."""

from typing import Any, Dict, List

from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_component_specs

from components import decisions
from uet_upstream import tfma as upstream_tfma


class EvaluatorExecutor(evaluator_executor.Executor):
  """TFX's Evaluator executor; an empty `baseline_model` is no baseline (AUC floor only).

  TFMA runs with `uet_upstream.tfma.fast_label_lookup()`: the same metrics, less time.
  """

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    with upstream_tfma.fast_label_lookup():
      super().Do(decisions.drop_empty(input_dict, standard_component_specs.BASELINE_MODEL_KEY),
                 output_dict, exec_properties)
