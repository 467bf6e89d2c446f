"""The drift baseline of the ValidationGate: the statistics of the last span that passed it.

"The latest statistics" would not do: after a bad span fails the gate, its statistics are
the newest, and the corrected span that follows would be compared with the bad one and fail
too. And taking this run's own statistics would compare a span with itself. This strategy
returns the newest StatisticsGen output that

  * was an input of a successful (complete or cached) ValidationGate execution, and
  * is not the statistics being validated now,

so new data is compared with the last good span, and a re-run on the same data (the same,
cached statistics) resolves the same baseline as before: every input of the gate is
unchanged and it stays a cache hit. Lineage is read from ML Metadata.
"""

from typing import Dict, List, Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.common import resolver

from components import lineage

# Input (and output) keys of the Resolver that uses this strategy.
STATISTICS_KEY = "statistics"  # every StatisticsGen output of the pipeline -> the baseline
CURRENT_KEY = "current"        # this run's statistics (passed through)
# The gate's input key its statistics arrive under.
GATE_STATISTICS_KEY = "statistics"

_PASSED = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


def validated_statistics_ids(store: mlmd.MetadataStore, gate_context: str) -> List[int]:
  """Ids of the statistics artifacts that passed the gate whose node context is named so."""
  context = store.get_context_by_type_and_name("node", gate_context)
  if context is None:
    return []
  passed = [e.id for e in store.get_executions_by_context(context.id)
            if e.last_known_state in _PASSED]
  if not passed:
    return []
  return lineage.inputs(store, passed, GATE_STATISTICS_KEY)


class ValidatedStatisticsStrategy(resolver.ResolverStrategy):
  """Newest statistics that passed the ValidationGate and are not this run's."""

  def __init__(self, gate_context: str):
    """Args:
      gate_context: the ML Metadata node context of the gate, `<pipeline name>.<node id>`.
    """
    self._gate_context = gate_context

  def resolve_artifacts(
      self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
  ) -> Optional[Dict[str, List[types.Artifact]]]:
    """Returns {statistics: [baseline] or [] (nothing validated yet), current: unchanged}."""
    current = list(input_dict.get(CURRENT_KEY, []))
    result = {STATISTICS_KEY: [], CURRENT_KEY: current}
    validated = set(validated_statistics_ids(store, self._gate_context))
    validated -= {a.id for a in current}
    candidates = [a for a in input_dict.get(STATISTICS_KEY, []) if a.id in validated]
    if candidates:
      result[STATISTICS_KEY] = [max(candidates, key=lambda a: a.id)]
    return result
