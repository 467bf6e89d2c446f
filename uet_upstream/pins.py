"""The upstream releases the touchpoints of this package were checked against.

A runtime replacement (`replaced`) takes effect only on its checked release; on any other
the upstream code runs unchanged. `tests/test_upstream_*.py` fail, naming each touchpoint to
re-check, as soon as an installed release differs from the one here.
"""

import contextlib
from typing import Any, Iterator

TFX = "1.16.0"
TFMA = "0.47.1"
TF_KERAS = "2.16.0"
KFP_PIPELINE_SPEC = "0.2.2"


@contextlib.contextmanager
def replaced(module: Any, name: str, replacement: Any, *, installed: str,
             checked: str) -> Iterator[bool]:
  """`module.<name>` is `replacement` while the block runs, if the `installed` release is
  the `checked` one; yields whether it was replaced. The original comes back after."""
  if installed != checked:
    yield False
    return
  original = getattr(module, name)
  setattr(module, name, replacement)
  try:
    yield True
  finally:
    setattr(module, name, original)
