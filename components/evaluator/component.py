"""TFX's Evaluator, where a baseline model marked empty ("nothing in production") is no
baseline.

The production gate's `baseline_model` is the ProductionModel output
(`components/production_model`); when that output is marked empty the gate applies its
thresholds' floors only, as with a Resolver that found nothing.
"""

from tfx.components.evaluator import component as evaluator_component
from tfx.dsl.components.base import executor_spec

from components.evaluator import executor


class Evaluator(evaluator_component.Evaluator):
  """`tfx.components.Evaluator`; an empty `baseline_model` means the thresholds' floors only."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.EvaluatorExecutor)
