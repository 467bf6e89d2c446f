"""Read-only access to a run's ML Metadata store (SQLite), the one source of run status.

Light on purpose: ml_metadata only, no TensorFlow.
"""

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2


def open_readonly(metadata_path: str) -> mlmd.MetadataStore:
  """A read-only connection to the SQLite ML Metadata store at `metadata_path`."""
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return mlmd.MetadataStore(config)
