"""SpecSchemaGen: the raw schema derived from the dataset spec, for a spec without a
curated one (`dataspec.schema.derive`). Its output is a Schema artifact like
ImportSchemaGen's, so everything downstream is the same either way."""

import os

from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from dataspec import schema as schema_lib
from dataspec import spec as spec_lib

SCHEMA_FILE_NAME = "schema.pbtxt"  # ImportSchemaGen's name for the file in its artifact


@component
def SpecSchemaGen(
    dataset: Parameter[str],
    schema: OutputArtifact[standard_artifacts.Schema],
) -> None:
  """Writes the raw schema `dataset` (a spec's JSON) implies.

  Args:
    dataset: `DatasetSpec.to_json()`.
    schema: the output Schema artifact (`<uri>/schema.pbtxt`).
  """
  io_utils.write_pbtxt_file(os.path.join(schema.uri, SCHEMA_FILE_NAME),
                            schema_lib.derive(spec_lib.from_json(dataset)))
