"""Reads ExampleValidator's anomalies, checks drift, and decides whether the run may go on.

TFX 1.16's ExampleValidator records anomalies but never fails, so a pipeline would train on
data that broke its schema; nor does it compare a span with the previous one. The gate fails
the run before Transform instead, naming every anomaly: the schema anomalies ExampleValidator
found, plus distribution drift that TFDV's drift comparators find between this run's
statistics and those of the last run that passed the gate (Jensen-Shannon divergence on the
raw label column, L-infinity distance on the categorical features' columns; the dataset
spec names both).
"""

import copy
import dataclasses
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact, artifact_utils
from tfx.utils import io_utils

SCHEMA_DIFF_FILE = "SchemaDiff.pb"

# The anomaly kinds TFDV reports for a comparison with previous statistics.
_DRIFT_TYPES = frozenset([
    anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH,
])


class Anomaly(NamedTuple):
  split: str
  feature: str
  kind: str
  description: str


@dataclasses.dataclass(frozen=True)
class DriftThresholds:
  """When a span has drifted from the last validated one (TFDV drift comparators).

  Drift is measured on the label and on closed domains. Id features are left out: a new
  time window legitimately brings other users and items, and the L-infinity distance of an
  id feature only measures the share of its single busiest value.

  Attributes:
    label_js: Jensen-Shannon divergence of the label column's distribution above which the
      run stops.
    categorical_linf: L-infinity distance (largest change of one value's share) of each
      categorical column above which the run stops.
    js_columns: the columns compared by Jensen-Shannon divergence (the raw label).
    linf_columns: the columns compared by L-infinity distance (the categorical features').
  """
  label_js: float = 0.1
  categorical_linf: float = 0.3
  js_columns: Tuple[str, ...] = ()
  linf_columns: Tuple[str, ...] = ()


class DataValidationError(RuntimeError):
  """The data broke the schema or drifted; the message lists every anomaly."""


def _anomalies_from_proto(split: str, proto: anomalies_pb2.Anomalies,
                          keep: Optional[frozenset] = None) -> List[Anomaly]:
  """Anomaly tuples of one split's Anomalies proto; `keep` limits the reason types."""
  found = []
  infos = sorted(proto.anomaly_info.items())
  if proto.HasField("dataset_anomaly_info"):
    infos.append(("<dataset>", proto.dataset_anomaly_info))
  for feature, info in infos:
    reasons = [r for r in info.reason if keep is None or r.type in keep]
    if keep is not None and not reasons:
      continue
    kinds = [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in reasons] or ["UNKNOWN"]
    if keep is None:
      description = info.description or info.short_description
    else:  # only the kept reasons' text, not the feature's other anomalies
      description = " ".join(r.description or r.short_description for r in reasons)
    found.append(Anomaly(split, feature, ",".join(kinds), description))
  return found


def read_anomalies(anomalies_artifact: artifact.Artifact) -> List[Anomaly]:
  """Every anomaly in every split of an ExampleAnomalies artifact."""
  found = []
  for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
    path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split),
                        SCHEMA_DIFF_FILE)
    proto = anomalies_pb2.Anomalies()
    proto.ParseFromString(io_utils.read_bytes_file(path))
    found.extend(_anomalies_from_proto(split, proto))
  return found


def split_names(stats_artifact: Optional[artifact.Artifact]) -> List[str]:
  """The splits of a statistics artifact; [] for none."""
  if stats_artifact is None or not stats_artifact.split_names:
    return []
  return artifact_utils.decode_split_names(stats_artifact.split_names)


def load_split_statistics(stats_artifact: artifact.Artifact,
                          split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
  """One split's statistics from a StatisticsGen output."""
  return stats_artifact_utils.load_statistics(stats_artifact, split).proto()


def drift_schema(schema: schema_pb2.Schema, thresholds: DriftThresholds) -> schema_pb2.Schema:
  """`schema` with TFDV drift comparators on the drift features."""
  result = copy.deepcopy(schema)
  for feature in result.feature:
    if feature.name in thresholds.js_columns:
      feature.drift_comparator.jensen_shannon_divergence.threshold = thresholds.label_js
    elif feature.name in thresholds.linf_columns:
      feature.drift_comparator.infinity_norm.threshold = thresholds.categorical_linf
  return result


def drift_anomalies(statistics: artifact.Artifact, baseline: Optional[artifact.Artifact],
                    schema: schema_pb2.Schema, thresholds: DriftThresholds) -> List[Anomaly]:
  """Drift of each split of `statistics` against the same split of `baseline`.

  Args:
    statistics: this run's ExampleStatistics.
    baseline: statistics of the last run that passed the gate; None (nothing has passed
      yet) skips the check.
    schema: the raw schema (drift comparators are added to a copy).
    thresholds: the comparators' thresholds.

  Returns:
    One Anomaly per drifted feature and split; the split is named `<split> vs previous`.
  """
  previous_splits = set(split_names(baseline))
  if not previous_splits:
    return []
  schema = drift_schema(schema, thresholds)
  found = []
  for split in split_names(statistics):
    if split not in previous_splits:
      continue
    proto = tfdv.validate_statistics(
        load_split_statistics(statistics, split), schema, environment="TRAINING",
        previous_statistics=load_split_statistics(baseline, split))
    found.extend(_anomalies_from_proto(f"{split} vs previous", proto, keep=_DRIFT_TYPES))
  return found


def format_anomalies(anomalies: Sequence[Anomaly], baseline_uri: str = "") -> str:
  """The error message: what failed, every anomaly, and what to do about it."""
  lines = [f"Data validation failed: {len(anomalies)} anomal"
           f"{'y' if len(anomalies) == 1 else 'ies'} against the raw schema"
           f"{' and the last validated statistics' if baseline_uri else ''}. "
           "Fix the input data (or, if the change is intended, the schema), then re-run:"]
  for a in anomalies:
    lines.append(f"  - split={a.split} feature={a.feature} kind={a.kind}: {a.description}")
  if any(a.kind.startswith("COMPARATOR_") for a in anomalies):
    lines.append(
        f"Drift is measured against the statistics of the last run that passed this gate "
        f"({baseline_uri}). If the shift is real and intended, re-run once with a higher "
        "threshold (--drift-label-js / --drift-categorical-linf, or drift_label_js / "
        "drift_categorical_linf in the config; 1.0 disables); this span then becomes the "
        "baseline.")
  return "\n".join(lines)


def check(anomalies_artifact: artifact.Artifact,
          statistics: Optional[artifact.Artifact] = None,
          baseline: Optional[artifact.Artifact] = None,
          schema: Optional[schema_pb2.Schema] = None,
          thresholds: DriftThresholds = DriftThresholds()) -> None:
  """Raises DataValidationError listing schema anomalies and drift, if there are any.

  Args:
    anomalies_artifact: ExampleValidator's output.
    statistics: this run's statistics (for drift; None skips the drift check).
    baseline: the last validated statistics (None: no drift check).
    schema: the raw schema (needed with `statistics`).
    thresholds: drift thresholds.
  """
  anomalies = read_anomalies(anomalies_artifact)
  if statistics is not None and schema is not None:
    anomalies += drift_anomalies(statistics, baseline, schema, thresholds)
  if anomalies:
    raise DataValidationError(format_anomalies(
        anomalies, _baseline_source(baseline) if split_names(baseline) else ""))


def _baseline_source(baseline: artifact.Artifact) -> str:
  # A DriftBaseline output is a copy; name the statistics it copies.
  if baseline.has_custom_property("source_uri"):
    return baseline.get_string_custom_property("source_uri") or baseline.uri
  return baseline.uri
