"""The local runner's cheaper state-cache weights: same sizes for data, same results."""

import apache_beam as beam
from apache_beam.runners.worker import statecache
from apache_beam.testing import util as beam_testing
import numpy as np

from pipeline import beam_state_cache


def test_data_values_weigh_the_same():
  values = [[1.5] * 1000, {"a": np.zeros(100), "b": [b"x" * 50] * 20}, ("k", 3, None),
            np.arange(10_000, dtype=np.float32)]
  for value in values:
    assert beam_state_cache.get_deep_size(value) == beam_state_cache._ORIGINAL(value)  # pylint: disable=protected-access


def test_installed_for_the_block_only_and_a_side_input_pipeline_is_unchanged():
  with beam_state_cache.module_globals_not_excluded() as installed:
    assert installed
    assert statecache.get_deep_size is beam_state_cache.get_deep_size
    with beam.Pipeline(argv=["--direct_running_mode=in_memory"]) as p:
      total = p | "Total" >> beam.Create([10])
      scaled = (p | beam.Create([1, 2, 3])
                | beam.Map(lambda x, t: x * t, t=beam.pvalue.AsSingleton(total)))
      beam_testing.assert_that(scaled, beam_testing.equal_to([10, 20, 30]))
  assert statecache.get_deep_size is beam_state_cache._ORIGINAL  # pylint: disable=protected-access
