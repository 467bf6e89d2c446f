"""ServingCheck: the candidate, loaded in a fresh process, answers TF Serving warm-up
requests built from real eval rows with the scores the Evaluator computed; only then is it
pushed, warm-up requests included.

TFX's InfraValidator does this with TF Serving in Docker or Kubernetes, which a local run
does not have; `executor.py` says what is checked. The output is an InfraBlessing as the
InfraValidator writes it, so TFX's Pusher (`components/atomic_pusher`) reads it as its
`infra_blessing`: it pushes only a blessed model, and pushes the blessing's copy of the
model, which carries `assets.extra/tf_serving_warmup_requests`.
"""

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.serving_check import executor


@component
def ServingCheck(
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
    label_column: Parameter[str],
    model_name: Parameter[str],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
) -> None:
  """Blesses `model` if it serves the Evaluator's scores from a fresh process.

  Args:
    model: the candidate Trainer's model.
    examples: the Examples the Evaluator read; rows of their eval split are sent.
    evaluation: the Evaluator's output; its EvalConfig says how it scored `model_name`.
    label_column: the dataset's label column, left out of the requests.
    model_name: the candidate's name in the Evaluator's EvalConfig.
    blessing: `blessed`, and the model with its warm-up requests when blessed.
  """
  executor.check(model, examples, evaluation, label_column, model_name, blessing)
