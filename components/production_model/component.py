"""ProductionModel: the model in production, an input of the candidate Trainer (warm start)
and of the production gate (ProductionEvaluator).

It is chosen from the push records (executor.py). "Nothing in production" is an output
marked empty, which `components/trainer` and `components/evaluator` read as no input.
"""

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
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
