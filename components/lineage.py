"""ML Metadata lineage lookups shared by the resolver strategies in components/."""

from typing import Iterable, List

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def producers(store: mlmd.MetadataStore, artifact_ids: Iterable[int]) -> List[int]:
  """Ids of the executions that output these artifacts."""
  return sorted({e.execution_id for e in store.get_events_by_artifact_ids(list(artifact_ids))
                 if e.type in OUTPUT_EVENTS})


def inputs(store: mlmd.MetadataStore, execution_ids: Iterable[int], key: str) -> List[int]:
  """Ids of the artifacts these executions read under input key `key`."""
  return sorted({e.artifact_id for e in store.get_events_by_execution_ids(list(execution_ids))
                 if e.type in INPUT_EVENTS and e.path.steps and e.path.steps[0].key == key})
