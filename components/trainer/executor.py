"""The Trainer's executor: TFX's, with an empty `base_model` dropped from its inputs."""

from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.types import standard_component_specs

from components import decisions


class TrainerExecutor(trainer_executor.GenericExecutor):
  """TFX's Trainer executor; an empty `base_model` (nothing in production) is no base model."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    super().Do(decisions.drop_empty(input_dict, standard_component_specs.BASE_MODEL_KEY),
               output_dict, exec_properties)
