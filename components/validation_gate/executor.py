"""Reads ExampleValidator's anomalies and decides whether the run may go on.

TFX 1.16's ExampleValidator records anomalies but never fails, so a pipeline would train on
data that broke its schema. The gate fails the run before Transform instead, naming every
anomaly.
"""

import os
from typing import List, NamedTuple

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact, artifact_utils
from tfx.utils import io_utils

SCHEMA_DIFF_FILE = "SchemaDiff.pb"


class Anomaly(NamedTuple):
  split: str
  feature: str
  kind: str
  description: str


class DataValidationError(RuntimeError):
  """The data broke the schema or drifted; the message lists every anomaly."""


def read_anomalies(anomalies_artifact: artifact.Artifact) -> List[Anomaly]:
  """Every anomaly in every split of an ExampleAnomalies artifact."""
  found = []
  for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
    path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split),
                        SCHEMA_DIFF_FILE)
    proto = anomalies_pb2.Anomalies()
    proto.ParseFromString(io_utils.read_bytes_file(path))
    for feature, info in sorted(proto.anomaly_info.items()):
      kinds = [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason] or ["UNKNOWN"]
      found.append(Anomaly(split, feature, ",".join(kinds),
                           info.description or info.short_description))
    if proto.HasField("dataset_anomaly_info"):
      info = proto.dataset_anomaly_info
      kinds = [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason] or ["UNKNOWN"]
      found.append(Anomaly(split, "<dataset>", ",".join(kinds),
                           info.description or info.short_description))
  return found


def format_anomalies(anomalies: List[Anomaly]) -> str:
  lines = [f"Data validation failed: {len(anomalies)} anomal"
           f"{'y' if len(anomalies) == 1 else 'ies'} against schema/schema.pbtxt. "
           "Fix the input data (or, if the change is intended, the schema), then re-run:"]
  for a in anomalies:
    lines.append(f"  - split={a.split} feature={a.feature} kind={a.kind}: {a.description}")
  return "\n".join(lines)


def check(anomalies_artifact: artifact.Artifact) -> None:
  """Raises DataValidationError listing the anomalies, if there are any."""
  anomalies = read_anomalies(anomalies_artifact)
  if anomalies:
    raise DataValidationError(format_anomalies(anomalies))
