"""ValidationGate: fails the run when ExampleValidator found anomalies or the data drifted.

Transform depends on this node, so no model is trained, evaluated or pushed from data that
broke the schema or drifted from the last validated span. The drift baseline is resolved by
`strategy.ValidatedStatisticsStrategy`: the newest statistics that passed this gate, so a
span that failed never becomes the baseline of the next one.
"""

from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components.validation_gate import executor


@component
def ValidationGate(
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    drift_rating_js: Parameter[float],
    drift_categorical_linf: Parameter[float],
    baseline_statistics: InputArtifact[
        standard_artifacts.ExampleStatistics] = None,
) -> None:
  """Raises `DataValidationError` (listing split, feature, kind, description) on anomalies.

  Args:
    anomalies: ExampleValidator's anomalies of this run's span.
    statistics: StatisticsGen's statistics of this run's span.
    schema: the curated raw schema.
    drift_rating_js: Jensen-Shannon divergence threshold on `rating`.
    drift_categorical_linf: L-infinity threshold on the categorical demographics.
    baseline_statistics: statistics of the last span that passed this gate; none (the first
      run) skips the drift check.
  """
  raw_schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
  executor.check(anomalies, statistics=statistics, baseline=baseline_statistics,
                 schema=raw_schema,
                 thresholds=executor.DriftThresholds(rating_js=drift_rating_js,
                                                     categorical_linf=drift_categorical_linf))
