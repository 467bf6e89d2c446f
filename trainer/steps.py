"""The Trainer's steps, each failing with one readable message.

A TensorFlow error raised while the Trainer reads, shuffles or fits its input carries the
whole graph trace in its message ("Graph execution error: Detected at node ... defined at
(most recent call last): File ..."), and the runner shows a component's error on the
screen. So `run_fn` runs each step inside `step(...)`, which turns any failure into a
`TrainerStepError` of two lines: the step, its input files and the cause's own message
(without the trace); then what to try. The original error stays chained as `__cause__`,
so the run log's traceback keeps TensorFlow's trace.
"""

import contextlib
import re
from typing import Iterator, Sequence

# Lines of a TensorFlow error message that are its trace or advice, not what went wrong.
_TRACE_LINES = ("Graph execution error:", "Detected at node", "Hint:")
# "{{function_node __wrapped__...}} " before, and " [Op:...] name: ..." or the node
# "[[{{node ...}}]]" after, the message of an error raised by an op.
_FUNCTION_NODE = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
_OP_SUFFIX = re.compile(r"\s*(\[\[\{\{node [^}]*\}\}\]\]|\[Op:[^\]]*\](\s*name:.*)?)\s*$")
# Files a message names (a split written on many workers has many shards).
SHOWN_FILES = 3


class TrainerStepError(RuntimeError):
  """A step of the Trainer failed; the message names the step, its input, the cause and
  what to try."""


def cause_line(error: BaseException) -> str:
  """`Type: message` of `error`, the message cut to its first line of substance.

  TensorFlow's op errors start with "Graph execution error:" and the Python trace of the
  op, which this drops: the line kept is the op's own message ("Output buffer ... too
  small", "truncated record at ...").
  """
  text = getattr(error, "message", None) or str(error)
  for line in text.splitlines():
    if not line.strip() or line[0].isspace() or line.startswith(_TRACE_LINES):
      continue  # blank, an indented trace line ("  File ..."), or TensorFlow's framing
    line = _OP_SUFFIX.sub("", _FUNCTION_NODE.sub("", line)).strip()
    if line:
      return f"{type(error).__name__}: {line}"
  return type(error).__name__


def describe_files(files: Sequence[str]) -> str:
  """`files`, comma-separated; beyond `SHOWN_FILES`, the first ones and how many more."""
  if not files:
    return "no files"
  shown = ", ".join(files[:SHOWN_FILES])
  more = len(files) - SHOWN_FILES
  return shown + (f" (and {more} more)" if more > 0 else "")


@contextlib.contextmanager
def step(name: str, files: Sequence[str], what_to_try: str) -> Iterator[None]:
  """Runs the block as the step `name` of the Trainer, on `files`.

  Args:
    name: what the step does, e.g. "counting the training examples".
    files: the step's input (or output) files or directories, named in the message.
    what_to_try: what the user can do about a failure of this step.

  Raises:
    TrainerStepError: the block raised; the message is two lines, the step, files and
      cause, then what to try; the block's error is its `__cause__`.
  """
  try:
    yield
  except TrainerStepError:
    raise  # a step inside this one already named itself
  except Exception as e:  # pylint: disable=broad-except
    raise TrainerStepError(f"{name} failed on {describe_files(files)}: {cause_line(e)}\n"
                           f"  Try: {what_to_try}") from e
