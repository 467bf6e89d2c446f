"""ValidationGate: fails the run when ExampleValidator found anomalies or the data drifted.

Transform depends on this node, so no model is trained, evaluated or pushed from data that
broke the schema or drifted from the last validated span. The gate records the statistics
it passes; `DriftBaseline` (baseline.py) gives the next run the newest of them, so a span
that failed never becomes the baseline of the next one.
"""

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components import decisions
from components.validation_gate import baseline as baseline_lib
from components.validation_gate import executor


@component
def ValidationGate(
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    drift_label_js: Parameter[float],
    drift_categorical_linf: Parameter[float],
    drift_js_columns: Parameter[str],
    drift_linf_columns: Parameter[str],
    validated_dir: Parameter[str],
    baseline_statistics: InputArtifact[
        standard_artifacts.ExampleStatistics] = None,
) -> None:
  """Raises `DataValidationError` (listing split, feature, kind, description) on anomalies.

  Args:
    anomalies: ExampleValidator's anomalies of this run's span.
    statistics: StatisticsGen's statistics of this run's span.
    schema: the raw schema.
    drift_label_js: Jensen-Shannon divergence threshold on the label column.
    drift_categorical_linf: L-infinity threshold on the categorical columns.
    drift_js_columns: the label column (comma-separated columns).
    drift_linf_columns: the categorical features' columns (comma-separated).
    validated_dir: where the gate records the statistics it passes (DriftBaseline reads
      them in later runs).
    baseline_statistics: statistics of the last span that passed this gate; none, or one
      marked empty (the first run), skips the drift check.
  """
  if baseline_statistics is not None and decisions.is_empty(baseline_statistics):
    baseline_statistics = None
  raw_schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
  executor.check(anomalies, statistics=statistics, baseline=baseline_statistics,
                 schema=raw_schema,
                 thresholds=executor.DriftThresholds(
                     label_js=drift_label_js, categorical_linf=drift_categorical_linf,
                     js_columns=tuple(c for c in drift_js_columns.split(",") if c),
                     linf_columns=tuple(c for c in drift_linf_columns.split(",") if c)))
  baseline_lib.record_validated(validated_dir, statistics)


@component
def DriftBaseline(
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    validated_dir: Parameter[str],
    baseline: OutputArtifact[standard_artifacts.ExampleStatistics],
) -> None:
  """Copies the statistics of the last span that passed the gate into `baseline`.

  Args:
    statistics: this run's statistics (never its own baseline).
    validated_dir: where the gate records the statistics it passes.
    baseline: the newest of them other than `statistics`, or marked empty (none yet).
  """
  baseline_lib.write_baseline(statistics, validated_dir, baseline)
