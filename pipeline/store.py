"""Access to a run's ML Metadata store (SQLite), the one source of run status: read-only for
readers, read-write for the run's own corrections of execution states.

Light on purpose: ml_metadata only, no TensorFlow.
"""

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
