"""Access to a run's ML Metadata store (SQLite), the one source of run status: read-only for
readers, read-write for the run's own corrections of execution states.

Light on purpose: ml_metadata only, no TensorFlow.
"""

import os
from typing import Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata_backup


def open_readonly(metadata_path: str) -> mlmd.MetadataStore:
  """A read-only connection to the SQLite ML Metadata store at `metadata_path`.

  Raises:
    metadata_backup.MetadataStoreError: the file is damaged; the message names it and says
      how to restore the last-good copy or start afresh.
  """
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  try:
    return mlmd.MetadataStore(config)
  except RuntimeError as e:  # MLMD reports SQLite errors as RuntimeError
    # SQLite's own reason reads better than MLMD's (which quotes the failing statement).
    reason = metadata_backup.problem(metadata_path) or str(e).splitlines()[0][:200]
    raise metadata_backup.MetadataStoreError(
        metadata_backup.describe(metadata_path, reason)) from e


def open_readwrite(metadata_path: str) -> mlmd.MetadataStore:
  """A read-write connection to an existing SQLite ML Metadata store (the caller holds the
  output lock)."""
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
  return mlmd.MetadataStore(config)


def set_state(store: mlmd.MetadataStore, executions, state: int,
              note: Optional[str] = None) -> None:
  """Records `state` (and a `uet_note`) on `executions` in one write."""
  for execution in executions:
    execution.last_known_state = state
    if note:
      execution.custom_properties["uet_note"].string_value = note
  if executions:
    store.put_executions(executions)


def cancel_unfinished(store: mlmd.MetadataStore, run_id: str,
                      node_context: Optional[str] = None) -> None:
  """Marks the executions of pipeline run `run_id` left unfinished (or failed) as CANCELED:
  all of them, or those of the node context named `node_context` ("pipeline.node")."""
  run = store.get_context_by_type_and_name("pipeline_run", run_id)
  if run is None:
    return
  executions = store.get_executions_by_context(run.id)
  if node_context is not None:
    node = store.get_context_by_type_and_name("node", node_context)
    if node is None:
      return
    in_node = {e.id for e in store.get_executions_by_context(node.id)}
    executions = [e for e in executions if e.id in in_node]
  unfinished = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING,
                metadata_store_pb2.Execution.FAILED)
  set_state(store, [e for e in executions if e.last_known_state in unfinished],
            metadata_store_pb2.Execution.CANCELED)


ABANDONED_NOTE = ("abandoned: its run ended without recording an outcome (killed, or the disk "
                  "was too full to write it)")


def mark_abandoned(metadata_path: str) -> int:
  """Marks the executions earlier runs left NEW or RUNNING as FAILED; returns how many.

  The caller holds the output lock, so no other run is live: such an execution belongs to a
  run that was killed (SIGKILL) or could not record its failure (a full disk). TFX never
  resumes it (a new run has a new pipeline-run context), but left as it is, ML Metadata and
  the run history would show it running forever.
  """
  if not os.path.exists(metadata_path):
    return 0
  store = open_readwrite(metadata_path)
  active = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)
  executions = [e for e in store.get_executions() if e.last_known_state in active]
  set_state(store, executions, metadata_store_pb2.Execution.FAILED, note=ABANDONED_NOTE)
  return len(executions)
