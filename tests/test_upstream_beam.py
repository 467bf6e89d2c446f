"""uet_upstream/beam.py: pinned to its Beam release; the cheaper state-cache weights give the
same sizes for data and the same results."""

import inspect

import apache_beam as beam
from apache_beam.runners.worker import statecache
from apache_beam.testing import util as beam_testing
import numpy as np

from uet_upstream import beam as upstream_beam, pins


def test_beam_is_the_release_the_replacement_was_checked_against():
  assert beam.__version__ == pins.BEAM, (
      f"Beam {beam.__version__} is installed; uet_upstream/beam.py reproduces "
      f"statecache.get_deep_size of Beam {pins.BEAM}. Compare it with that release, re-run "
      "bench/upstream.py, then update pins.BEAM (or drop the replacement)")


def test_the_private_weighing_functions_are_still_there():
  for name in ("_size_func", "_get_referents_func", "_filter_func"):
    assert callable(getattr(statecache, name, None)), (
        f"Beam's private statecache.{name} moved; uet_upstream/beam.py passes it to objsize")
  # The function replaced weighs with objsize and these three, as the replacement does.
  source = inspect.getsource(statecache.get_deep_size)
  for name in ("objsize.get_deep_size", "_size_func", "_get_referents_func", "_filter_func"):
    assert name in source, f"statecache.get_deep_size no longer calls {name}"


def test_data_values_weigh_the_same():
  values = [[1.5] * 1000, {"a": np.zeros(100), "b": [b"x" * 50] * 20}, ("k", 3, None),
            np.arange(10_000, dtype=np.float32)]
  for value in values:
    assert upstream_beam.get_deep_size(value) == statecache.get_deep_size(value)


def test_installed_for_the_block_only_and_a_side_input_pipeline_is_unchanged():
  original = statecache.get_deep_size
  with upstream_beam.module_globals_not_excluded() as installed:
    assert installed
    assert statecache.get_deep_size is upstream_beam.get_deep_size
    with beam.Pipeline(argv=["--direct_running_mode=in_memory"]) as p:
      total = p | "Total" >> beam.Create([10])
      scaled = (p | beam.Create([1, 2, 3])
                | beam.Map(lambda x, t: x * t, t=beam.pvalue.AsSingleton(total)))
      beam_testing.assert_that(scaled, beam_testing.equal_to([10, 20, 30]))
  assert statecache.get_deep_size is original
