"""One place for our fixes of upstream functions: a replacement, for a block, on one release.

Each fix (`components/production_model/metric_inputs.py`, `signature_calls.py`,
`pipeline/beam_state_cache.py`) replaces one module attribute of TFMA or Beam for the
duration of one evaluation or run, and only on the release it was checked against: on any
other the upstream code runs unchanged.
"""

import contextlib
from typing import Any, Iterator


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
