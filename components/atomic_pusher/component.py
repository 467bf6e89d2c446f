"""AtomicPusher: TFX's Pusher whose pushed version directory is complete or absent.

The inputs, outputs and properties of `tfx.components.Pusher`, plus `examples`: the Examples
the model was trained on, recorded in the version directory (`executor.PUSH_RECORD`) so that
later runs know which model is in production and what it was trained on
(`components/production_model`). The executor copies to a hidden staging directory, then
renames it into `<base>/<version>`.
"""

from typing import Optional

from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import component_spec, standard_artifacts, standard_component_specs

from components.atomic_pusher import executor


class AtomicPusherSpec(standard_component_specs.PusherSpec):
  """PusherSpec with the Examples the model was trained on."""

  INPUTS = {
      **standard_component_specs.PusherSpec.INPUTS,
      executor.EXAMPLES_KEY: component_spec.ChannelParameter(
          type=standard_artifacts.Examples, optional=True),
  }


class AtomicPusher(pusher_component.Pusher):
  """A Pusher that never leaves a partial version directory behind and records its push."""

  SPEC_CLASS = AtomicPusherSpec
  # TFX 1.16 deprecates `custom_executor_spec` in favour of customizing the component.
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model: types.BaseChannel,
               model_blessing: Optional[types.BaseChannel] = None,
               push_destination: Optional[pusher_pb2.PushDestination] = None,
               examples: Optional[types.BaseChannel] = None,
               infra_blessing: Optional[types.BaseChannel] = None):
    """Args:
      model: the model to push (the candidate Trainer's output).
      model_blessing: the blessing that must be positive for a push.
      push_destination: a filesystem destination (local or gs://).
      examples: the Examples the model was trained on (recorded with the push).
      infra_blessing: an InfraBlessing that must be positive for a push; when it holds a
        model (the model with its TF Serving warm-up requests), that copy is pushed.
    """
    spec = AtomicPusherSpec(
        model=model, model_blessing=model_blessing, infra_blessing=infra_blessing,
        push_destination=push_destination,
        examples=examples, custom_config="null",
        pushed_model=types.Channel(type=standard_artifacts.PushedModel))
    base_component.BaseComponent.__init__(self, spec=spec)
