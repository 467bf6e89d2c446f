"""`create_pipeline(config)`: the one pipeline graph every runner uses.

MovieLens files -> ExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator ->
ValidationGate -> Transform -> Trainer x2 (unified candidate, hash baseline) -> Evaluator
(candidate vs baseline) -> Pusher (only when blessed).

It knows nothing about where it runs: the local runner adds a SQLite metadata store and
Beam's DirectRunner, the Kubeflow/Vertex runner compiles the same graph.
"""

from typing import List, Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.types import channel

from components.movielens_example_gen.component import MovieLensExampleGen
from components.validation_gate.component import ValidationGate
from pipeline import fingerprint
from pipeline.config import EvaluationConfig, PipelineConfig
from trainer import features
from trainer.config import TrainingConfig

RUN_FN = "trainer.run_fn.run_fn"
PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"

# Stable component ids: runners, tests and the summary look components up by these.
EXAMPLE_GEN = "MovieLensExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "ImportSchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
VALIDATION_GATE = "ValidationGate"
TRANSFORM = "Transform"
CANDIDATE_TRAINER = "CandidateTrainer"
BASELINE_TRAINER = "BaselineTrainer"
COLLISIONLESS_TRAINER = "CollisionlessTrainer"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

CANDIDATE_MODEL = "candidate"
BASELINE_MODEL = "baseline"


def make_eval_config(evaluation: EvaluationConfig) -> tfma.EvalConfig:
  """Candidate vs baseline on the eval split: AUC must clear a floor and beat the baseline.

  LogLoss and example counts are reported overall and sliced by gender and age bucket.
  """
  def model_spec(name: str, is_baseline: bool) -> tfma.ModelSpec:
    return tfma.ModelSpec(
        name=name, signature_name="serving_default", label_key=features.LABEL,
        preprocessing_function_names=["transform_features"], is_baseline=is_baseline)

  auc_threshold = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(
          lower_bound={"value": evaluation.auc_floor}),
      change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.MetricDirection.HIGHER_IS_BETTER,
          absolute={"value": evaluation.min_auc_gain}))
  return tfma.EvalConfig(
      model_specs=[model_spec(CANDIDATE_MODEL, False), model_spec(BASELINE_MODEL, True)],
      slicing_specs=[
          tfma.SlicingSpec(),
          tfma.SlicingSpec(feature_keys=[features.USER_GENDER]),
          tfma.SlicingSpec(feature_keys=[features.USER_AGE_BUCKET]),
      ],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name="ExampleCount"),
          tfma.MetricConfig(class_name="AUC", config='{"name": "auc"}',
                            threshold=auc_threshold),
          tfma.MetricConfig(class_name="BinaryCrossentropy", config='{"name": "logloss"}'),
      ])])


def _trainer(config: PipelineConfig, training: TrainingConfig, transform,
             component_id: str) -> tfx.components.Trainer:
  return tfx.components.Trainer(
      run_fn=RUN_FN,
      examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      custom_config={
          "training": training.to_dict(),
          # Part of the cache key: an edit of trainer/ re-runs the Trainers.
          "code_fingerprint": fingerprint.trainer_fingerprint(),
          "tpu": config.tpu,
      },
  ).with_id(component_id)


def create_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
  """Builds the pipeline graph.

  Args:
    config: the run's configuration (paths may be local or gs://).

  Returns:
    A `tfx.dsl.Pipeline` without a metadata connection; runners add theirs.
  """
  example_gen = MovieLensExampleGen(
      input_base=config.data_dir, max_bad_rows=config.max_bad_rows,
      quarantine_path=config.quarantine_path if config.max_bad_rows else "",
  ).with_id(EXAMPLE_GEN)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs["examples"]).with_id(STATISTICS_GEN)
  schema_gen = tfx.components.ImportSchemaGen(
      schema_file=config.schema_file).with_id(SCHEMA_GEN)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs["statistics"],
      schema=schema_gen.outputs["schema"]).with_id(EXAMPLE_VALIDATOR)
  gate = ValidationGate(
      anomalies=example_validator.outputs["anomalies"]).with_id(VALIDATION_GATE)

  transform = tfx.components.Transform(
      examples=example_gen.outputs["examples"],
      schema=schema_gen.outputs["schema"],
      preprocessing_fn=PREPROCESSING_FN,
      custom_config={"code_fingerprint": fingerprint.transform_fingerprint()},
  ).with_id(TRANSFORM)
  # Nothing is transformed, trained or pushed from data that failed validation.
  transform.add_upstream_node(gate)

  candidate = _trainer(config, config.candidate, transform, CANDIDATE_TRAINER)
  baseline = _trainer(config, config.baseline, transform, BASELINE_TRAINER)
  components: List = [example_gen, statistics_gen, schema_gen, example_validator, gate,
                      transform, candidate, baseline]
  if config.train_collisionless:
    components.append(_trainer(
        config, config.candidate.replace(model_type="collisionless"), transform,
        COLLISIONLESS_TRAINER))

  evaluator = tfx.components.Evaluator(
      examples=example_gen.outputs["examples"],
      model=candidate.outputs["model"],
      baseline_model=baseline.outputs["model"],
      eval_config=make_eval_config(config.evaluation),
  ).with_id(EVALUATOR)
  components.append(evaluator)

  with tfx.dsl.Cond(evaluator.outputs["blessing"].future()[0]
                    .custom_property("blessed") == 1):
    pusher = tfx.components.Pusher(
        model=candidate.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.serving_dir)),
    ).with_id(PUSHER)
  components.append(pusher)

  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      beam_pipeline_args=list(config.beam_args),
  )
