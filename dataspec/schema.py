"""The raw schema a dataset spec implies, and its refinement by statistics (`uet schema`).

`derive(spec)` needs no data: every raw column with its type, whether it must be present
(`missing: error`, the label, the time), single- or multi-valued, and the label's absence
from serving requests. The pipeline uses it when the spec names no curated schema.

`refine(schema, inferred, spec)` adds what statistics show, for a person to review and
freeze (`uet schema`): the value domains of categorical features (so that a value never
seen before is an anomaly) and the ranges of numeric ones. Id features keep no domain: new
users and items are expected.
"""

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from dataspec import spec as spec_lib

TRAINING, SERVING = "TRAINING", "SERVING"
_TYPES = {"string": schema_pb2.BYTES, "int": schema_pb2.INT, "float": schema_pb2.FLOAT}


def _required(spec: spec_lib.DatasetSpec, column: str) -> bool:
  if column == spec.label.column or (spec.time and column == spec.time.column):
    return True
  return all(f.missing == "error" for f in spec.features if f.column == column)


def _multivalent(spec: spec_lib.DatasetSpec, column: str) -> bool:
  return any(f.kind == "multivalent" for f in spec.features if f.column == column)


def derive(spec: spec_lib.DatasetSpec) -> schema_pb2.Schema:
  """The raw schema of `spec`'s columns, from the spec alone."""
  schema = schema_pb2.Schema()
  schema.default_environment.extend([TRAINING, SERVING])
  for column, column_type in spec.raw_columns.items():
    feature = schema.feature.add(name=column, type=_TYPES[column_type])
    if _multivalent(spec, column):
      feature.value_count.min = 1
    elif _required(spec, column):
      feature.presence.min_fraction = 1.0
      feature.presence.min_count = 1
      feature.shape.dim.add(size=1)
    else:
      feature.value_count.min = 1
      feature.value_count.max = 1
    if column == spec.label.column:
      feature.not_in_environment.append(SERVING)
      if spec.label.binary and column_type == "int":
        feature.int_domain.min = 0
        feature.int_domain.max = 1
        feature.int_domain.is_categorical = True
  return schema


def refine(schema: schema_pb2.Schema, inferred: schema_pb2.Schema,
           spec: spec_lib.DatasetSpec) -> schema_pb2.Schema:
  """`schema` (from `derive`) with the domains of `inferred` (TFDV's `infer_schema` of the
  statistics) for categorical and numeric columns; id and multivalent columns get none."""
  result = schema_pb2.Schema()
  result.CopyFrom(schema)
  by_name = {f.name: f for f in inferred.feature}
  domains = {d.name: d for d in inferred.string_domain}
  kinds = {}
  for f in spec.features:
    kinds.setdefault(f.column, set()).add(f.kind)
  for feature in result.feature:
    found = by_name.get(feature.name)
    column_kinds = kinds.get(feature.name, set())
    if found is None or not column_kinds or column_kinds - {"categorical", "numeric"}:
      continue
    if "categorical" in column_kinds and feature.type == schema_pb2.BYTES:
      values = None
      if found.HasField("domain") and found.domain in domains:
        values = domains[found.domain].value
      elif found.HasField("string_domain"):
        values = found.string_domain.value
      if values:
        domain = result.string_domain.add(name=feature.name)
        domain.value.extend(sorted(values))
        feature.domain = feature.name
  return result


def to_text(schema: schema_pb2.Schema, header: str = "") -> str:
  """The schema as pbtxt, after `header` lines written as comments."""
  comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
  return comments + text_format.MessageToString(schema)
