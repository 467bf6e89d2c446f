"""ValidationGate: fails the run when ExampleValidator found anomalies.

Transform depends on this node, so no model is trained, evaluated or pushed from data that
broke the schema.
"""

from tfx import v1 as tfx

from components.validation_gate import executor


@tfx.dsl.components.component
def ValidationGate(
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
) -> None:
  """Raises `DataValidationError` (listing split, feature, kind, description) on anomalies."""
  executor.check(anomalies)
