"""The raw schema a dataset spec implies, and its refinement by statistics (`uet schema`).

`derive(spec)` needs no data: every raw column with its type, whether it must be present
(`missing: error`, the label, the time), single- or multi-valued, and the label's absence
from serving requests. The pipeline uses it when the spec names no curated schema.

`refine(schema, statistics, spec)` adds what statistics show, for a person to review and
freeze (`uet schema`): the value domains of categorical features, so that a value never
seen before is an anomaly. Id features keep no domain: new users and items are expected.
"""

from typing import List, Tuple

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


# The most values a categorical feature's domain takes from statistics (`refine`).
MAX_DOMAIN_VALUES = 1000


def refine(schema: schema_pb2.Schema, statistics, spec: spec_lib.DatasetSpec,
           max_values: int = MAX_DOMAIN_VALUES) -> Tuple[schema_pb2.Schema, List[str]]:
  """`schema` (from `derive`) with the value domain of each categorical column, as the
  statistics show it (every value, when there are at most `max_values`).

  Args:
    schema: the derived schema.
    statistics: a DatasetFeatureStatistics (one dataset of TFDV's statistics), computed
      with at least `max_values` top values per feature.
    spec: the dataset spec.
    max_values: the most values a domain takes.

  Returns:
    (the refined schema, notes for the reader: columns left without a domain and why).
  """
  result = schema_pb2.Schema()
  result.CopyFrom(schema)
  categorical = {f.column for f in spec.features_of_kind("categorical")}
  by_name = {".".join(f.path.step) or f.name: f for f in statistics.features}
  notes = []
  for feature in result.feature:
    if feature.name not in categorical or feature.type != schema_pb2.BYTES:
      continue
    stats = by_name.get(feature.name)
    if stats is None or not stats.HasField("string_stats"):
      notes.append(f"{feature.name}: no statistics; no domain")
      continue
    values = sorted(v.value for v in stats.string_stats.top_values)
    if stats.string_stats.unique > max_values or len(values) < stats.string_stats.unique:
      notes.append(f"{feature.name}: {stats.string_stats.unique} distinct values, more than "
                   f"{max_values}: no domain (an open vocabulary is kind id)")
      continue
    domain = result.string_domain.add(name=feature.name)
    domain.value.extend(values)
    feature.domain = feature.name
  return result, notes


def to_text(schema: schema_pb2.Schema, header: str = "") -> str:
  """The schema as pbtxt, after `header` lines written as comments."""
  comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
  return comments + text_format.MessageToString(schema)
