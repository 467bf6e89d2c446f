"""Component ids and model names of `create_pipeline`'s graph.

Light on purpose (no TensorFlow, TFX or TFMA): the run summary, the report and the CLI look
components up by these without importing the module that builds the graph.
"""

# Stable component ids: runners, tests and the summary look components up by these.
EXAMPLE_GEN = "ExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
VALIDATION_GATE = "ValidationGate"
TRANSFORM = "Transform"
CANDIDATE_TRAINER = "CandidateTrainer"
BASELINE_TRAINER = "BaselineTrainer"
COLLISIONLESS_TRAINER = "CollisionlessTrainer"
EVALUATOR = "Evaluator"
PRODUCTION_EVALUATOR = "ProductionEvaluator"
SERVING_CHECK = "ServingCheck"
PUSHER = "Pusher"
SPAN_WINDOW = "SpanWindow"
PRODUCTION_MODEL = "ProductionModel"
DRIFT_BASELINE = "DriftBaseline"

# Model names in the Evaluators' EvalConfigs.
CANDIDATE_MODEL = "candidate"
BASELINE_MODEL = "baseline"
PRODUCTION_MODEL_NAME = "production"
