"""DatasetSchemaGen: the raw schema of the run, from the dataset spec.

The curated schema (the spec's `schema` file) travels as text in the component's
properties, so every runner (local, Kubeflow, Vertex) imports the same contract without a
path that must exist inside a container, and an edit of the file is a new execution (not a
cache hit on the file's name). A spec without a curated schema gets the schema the spec
implies (`dataspec.schema.derive`). The output is a Schema artifact like ImportSchemaGen's.
"""

import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from dataspec import schema as schema_lib
from dataspec import spec as spec_lib

SCHEMA_FILE_NAME = "schema.pbtxt"  # ImportSchemaGen's name for the file in its artifact


@component
def DatasetSchemaGen(
    dataset: Parameter[str],
    curated_schema: Parameter[str],
    schema: OutputArtifact[standard_artifacts.Schema],
) -> None:
  """Writes the run's raw schema.

  Args:
    dataset: `DatasetSpec.to_json()`.
    curated_schema: the curated schema's pbtxt, or "" to derive it from `dataset`.
    schema: the output Schema artifact (`<uri>/schema.pbtxt`).
  """
  if curated_schema:
    proto = text_format.Parse(curated_schema, schema_pb2.Schema())
  else:
    proto = schema_lib.derive(spec_lib.from_json(dataset))
  io_utils.write_pbtxt_file(os.path.join(schema.uri, SCHEMA_FILE_NAME), proto)
