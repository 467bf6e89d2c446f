"""TFX's Trainer, where a base model marked empty ("nothing in production") is no base model.

The candidate Trainer's `base_model` is the ProductionModel output
(`components/production_model`); on the first run, or a re-train on the same data, that
output is marked empty and the candidate trains from scratch, as with a Resolver that found
nothing.
"""

from tfx.components.trainer import component as trainer_component
from tfx.dsl.components.base import executor_spec

from components.trainer import executor


class Trainer(trainer_component.Trainer):
  """`tfx.components.Trainer`; an empty `base_model` means train from scratch."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.TrainerExecutor)
