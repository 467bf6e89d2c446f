"""AtomicPusher: TFX's Pusher whose pushed version directory is complete or absent.

Same inputs, outputs and properties as `tfx.components.Pusher`; only the executor differs
(copy to a hidden staging directory, then rename into `<base>/<version>`).
"""

from tfx.components.pusher import component as pusher_component
from tfx.dsl.components.base import executor_spec

from components.atomic_pusher import executor


class AtomicPusher(pusher_component.Pusher):
  """A Pusher that never leaves a partial version directory behind."""

  # TFX 1.16 deprecates `custom_executor_spec` in favour of customizing the component.
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
