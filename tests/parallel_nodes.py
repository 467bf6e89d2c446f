"""Small TFX components for tests/test_parallel_runner.py (importable by the runner's child
process, which loads each component's executor by module path).

`Step` records its process id and waits for a file another step writes, so two steps that
must meet can only both finish if they run at the same time.
"""

import os
import time

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

WAIT_SECONDS = 120.0


@component
def Source(out: OutputArtifact[standard_artifacts.Examples]) -> None:
  with open(os.path.join(out.uri, "value"), "w") as f:
    f.write(str(os.getpid()))


@component
def Step(source: InputArtifact[standard_artifacts.Examples],
         out: OutputArtifact[standard_artifacts.Examples],
         touch: Parameter[str] = "", wait_for: Parameter[str] = "",
         fail: Parameter[int] = 0) -> None:
  """Writes its pid to its output and to `touch`, waits for `wait_for` to exist, then
  raises if `fail`."""
  del source
  with open(os.path.join(out.uri, "value"), "w") as f:
    f.write(str(os.getpid()))
  if touch:
    with open(touch, "w") as f:
      f.write(str(os.getpid()))
  deadline = time.time() + WAIT_SECONDS
  while wait_for and not os.path.exists(wait_for):
    if time.time() > deadline:
      raise TimeoutError(f"{wait_for} never appeared: the other step did not run meanwhile")
    time.sleep(0.1)
  if fail:
    raise RuntimeError("step failed as asked")


@component
def Join(a: InputArtifact[standard_artifacts.Examples],
         b: InputArtifact[standard_artifacts.Examples],
         out: OutputArtifact[standard_artifacts.Examples]) -> None:
  del a, b
  with open(os.path.join(out.uri, "value"), "w") as f:
    f.write(str(os.getpid()))
