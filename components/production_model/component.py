"""ProductionModel, and the Trainer and Evaluator that accept "nothing in production".

The model in production is an input of the candidate Trainer (warm start) and of the
production gate (ProductionEvaluator). `ProductionModel` chooses it from the push records
(executor.py); these Trainer and Evaluator are TFX's with executors that read its "nothing
in production" output as no input.
"""

from tfx.components.evaluator import component as evaluator_component
from tfx.components.trainer import component as trainer_component
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components.production_model import executor


@component
def ProductionModel(
    examples: InputArtifact[standard_artifacts.Examples],
    serving_dir: Parameter[str],
    model: OutputArtifact[standard_artifacts.Model],
) -> None:
  """Copies the model in production into `model`, or marks `model` empty.

  Args:
    examples: the Examples this run ingests (ExampleGen's output).
    serving_dir: the Pusher's base directory.
    model: the newest pushed model not trained on `examples`.
  """
  executor.write_production_model([examples], serving_dir, model)


class Trainer(trainer_component.Trainer):
  """`tfx.components.Trainer`; an empty `base_model` means train from scratch."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.TrainerExecutor)


class Evaluator(evaluator_component.Evaluator):
  """`tfx.components.Evaluator`; an empty `baseline_model` means the thresholds' floors only."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.EvaluatorExecutor)
