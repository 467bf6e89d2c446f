"""Beam: cheaper weights for the state cache of the in-process DirectRunner.

The SDK worker caches side inputs and state per bundle and weighs each value it caches
with `objsize.get_deep_size` (`apache_beam/runners/worker/statecache.py`). objsize first
adds the globals of every loaded module to its exclusion set, on every call: with
TensorFlow, TFX and TFMA loaded that costs milliseconds per call whatever the value's size.

`get_deep_size` below weighs values without that exclusion, with Beam's own (private)
size, referents and filter functions. Beam's filter still skips modules, classes and
functions, so what changes is only that an object a value shares with some module's
globals counts towards the value's weight: the cache may evict a little earlier, never
keep more than its budget. `module_globals_not_excluded()` installs it for one run, on the
Beam release of `pins.BEAM` only. What it saves is in bench/results/upstream.md.
"""

import contextlib

import apache_beam
from apache_beam.runners.worker import statecache
import objsize

from uet_upstream import pins


def get_deep_size(*objs) -> int:
  """`statecache.get_deep_size` without excluding every module's globals."""
  return objsize.get_deep_size(
      *objs,
      get_size_func=statecache._size_func,  # pylint: disable=protected-access
      get_referents_func=statecache._get_referents_func,  # pylint: disable=protected-access
      filter_func=statecache._filter_func,  # pylint: disable=protected-access
      exclude_modules_globals=False)


def module_globals_not_excluded() -> contextlib.AbstractContextManager:
  """Installs `get_deep_size` while the block runs; yields whether it did (Beam release)."""
  return pins.replaced(statecache, "get_deep_size", get_deep_size,
                       installed=apache_beam.__version__, checked=pins.BEAM)
