"""`create_pipeline(config)`: the one pipeline graph every runner uses.

Dataset files -> ExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator ->
ValidationGate -> Transform -> Trainer x2 (unified candidate, hash baseline) -> Evaluator
(candidate vs baseline) and ProductionEvaluator (candidate vs production) -> ServingCheck
(the candidate served from a fresh process) -> Pusher (only when all three blessed it).

It knows nothing about where it runs: the local runner adds a SQLite metadata store and
Beam's DirectRunner, the Kubeflow/Vertex runner compiles the same graph. What earlier runs
decided (the model in production, the last validated statistics) is read by components of
the graph (ProductionModel, DriftBaseline) from records the deciding executors wrote, not
by Resolvers: the Kubeflow V2 compiler cannot express those choices as metadata queries
(components/decisions.py).
"""

from typing import List, Sequence

import tensorflow_model_analysis as tfma
# Not `from tfx import v1`: its `extensions` load google-cloud-aiplatform, which the local
# runner never uses (tests/test_cli.py checks it stays unloaded; docs/measured.md, "Start-up").
from tfx import types
from tfx.components import ExampleValidator, StatisticsGen, Transform
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.experimental.conditionals.conditional import Cond
from tfx.dsl.input_resolution.strategies.span_range_strategy import SpanRangeStrategy
from tfx.dsl.placeholder import placeholder_base
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import pusher_pb2, range_config_pb2
from tfx.types import standard_artifacts

from components.example_gen.component import DatasetExampleGen, make_input_config
from components.atomic_pusher.component import AtomicPusher
from components.evaluator.component import Evaluator
from components.production_model.component import ProductionModel
from components.schema_gen import DatasetSchemaGen
from components.serving_check.component import ServingCheck
from components.trainer.component import Trainer
from components.validation_gate.component import DriftBaseline, ValidationGate
from pipeline import fingerprint, ids
from pipeline.config import EvaluationConfig, PipelineConfig
from trainer import features
from trainer.config import TrainingConfig

RUN_FN = "trainer.run_fn.run_fn"
PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"


def _overall_only(threshold: tfma.MetricThreshold) -> list:
  """The threshold on the overall slice only.

  TFMA applies `MetricConfig.threshold` to *every* slice, so the gender and age-bucket
  slices (a few hundred ratings each) would each have to clear the bar and noise in one
  small slice would block a better model.
  """
  return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                       threshold=threshold)]


def _gate_eval_config(evaluation: EvaluationConfig, baseline_name: str, min_change: float,
                      slice_features: List[str]) -> tfma.EvalConfig:
  """The candidate against one baseline model on the eval split.

  The candidate's AUC must be at least `evaluation.auc_floor` and at least `min_change`
  above the baseline's (absolute; negative allows that much regression). Without a baseline
  model TFX drops the change threshold and the floor alone decides. LogLoss and example
  counts are reported overall and sliced by `slice_features`.
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
          absolute={"value": min_change}))
  return tfma.EvalConfig(
      model_specs=[model_spec(ids.CANDIDATE_MODEL, False), model_spec(baseline_name, True)],
      slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[f])
                                            for f in slice_features],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name="ExampleCount"),
          tfma.MetricConfig(class_name="AUC", config='{"name": "auc"}',
                            per_slice_thresholds=_overall_only(auc_threshold)),
          tfma.MetricConfig(class_name="BinaryCrossentropy", config='{"name": "logloss"}'),
      ])])


def auc_thresholds(eval_config: tfma.EvalConfig) -> List[tfma.MetricThreshold]:
  """The thresholds of the AUC metric of an EvalConfig: on the overall slice, where
  `_gate_eval_config` puts them, and a plain `threshold` too. The messages are live: setting
  them edits `eval_config`."""
  thresholds = []
  for spec in eval_config.metrics_specs:
    for metric in spec.metrics:
      if metric.class_name != "AUC":
        continue
      if metric.HasField("threshold"):
        thresholds.append(metric.threshold)
      thresholds.extend(p.threshold for p in metric.per_slice_thresholds)
  return thresholds


def make_eval_config(evaluation: EvaluationConfig,
                     slice_features: Sequence[str] = ()) -> tfma.EvalConfig:
  """Gate 1, candidate vs hash baseline: clear the AUC floor and beat the baseline by
  `min_auc_gain`; metrics also sliced by each of `slice_features` (the dataset's slices)."""
  return _gate_eval_config(evaluation, ids.BASELINE_MODEL, evaluation.min_auc_gain,
                           list(slice_features))


def make_production_eval_config(evaluation: EvaluationConfig) -> tfma.EvalConfig:
  """Gate 2, candidate vs the model in production, on the new span: no regression beyond
  `max_auc_regression`. Without a production model (the first run) the AUC floor alone
  decides."""
  return _gate_eval_config(evaluation, ids.PRODUCTION_MODEL_NAME,
                           -evaluation.max_auc_regression, [])


def validated_statistics_dir(config: PipelineConfig) -> str:
  """Where the ValidationGate records the statistics it passes (a plain join: gs:// works)."""
  return f"{config.output_dir.rstrip('/')}/validated_statistics"


def transform_custom_config(config: PipelineConfig) -> dict:
  """The `custom_config` Transform running `PREPROCESSING_FN` takes: the dataset spec,
  whether to write vocabularies (for a collisionless model), and the code fingerprint."""
  return {"code_fingerprint": fingerprint.transform_fingerprint(),
          features.DATASET_KEY: features.dataset_config(config.dataset),
          features.VOCABULARIES_KEY: config.train_collisionless}


def trainer_custom_config(config: PipelineConfig, training: TrainingConfig) -> dict:
  """The `custom_config` a Trainer running `RUN_FN` takes: the model's training config,
  the dataset spec, and the code fingerprint (part of the cache key: an edit of trainer/
  re-runs the Trainers)."""
  return {
      "training": training.to_dict(),
      features.DATASET_KEY: features.dataset_config(config.dataset),
      "code_fingerprint": fingerprint.trainer_fingerprint(),
      "tpu": config.tpu,
  }


def _trainer(config: PipelineConfig, training: TrainingConfig, transform,
             component_id: str, base_model=None) -> Trainer:
  return Trainer(
      run_fn=RUN_FN,
      examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      base_model=base_model,
      custom_config=trainer_custom_config(config, training),
  ).with_id(component_id)


def create_pipeline(config: PipelineConfig) -> tfx_pipeline.Pipeline:
  """Builds the pipeline graph.

  Args:
    config: the run's configuration (paths may be local or gs://).

  Returns:
    A `tfx_pipeline.Pipeline` without a metadata connection; runners add theirs.
  """
  example_gen = DatasetExampleGen(
      input_base=config.data_dir,
      spec_json=features.dataset_config(config.dataset),
      input_config=make_input_config(config.span_pattern or config.dataset.source.path),
      max_bad_rows=config.max_bad_rows,
      quarantine_path=config.quarantine_path if config.max_bad_rows else "",
  ).with_id(ids.EXAMPLE_GEN)
  # The curated schema when the dataset has one, else the schema the spec implies.
  schema_gen = DatasetSchemaGen(
      dataset=features.dataset_config(config.dataset),
      curated_schema=config.curated_schema()).with_id(ids.SCHEMA_GEN)
  # With the schema, statistics follow its types: a categorical int label
  # (int_domain is_categorical) is counted per value, which the drift check compares.
  statistics_gen = StatisticsGen(
      examples=example_gen.outputs["examples"],
      schema=schema_gen.outputs["schema"]).with_id(ids.STATISTICS_GEN)
  example_validator = ExampleValidator(
      statistics=statistics_gen.outputs["statistics"],
      schema=schema_gen.outputs["schema"]).with_id(ids.EXAMPLE_VALIDATOR)
  # Drift baseline: the statistics of the last span that passed the gate (not this run's).
  validated_dir = validated_statistics_dir(config)
  drift_baseline = DriftBaseline(
      statistics=statistics_gen.outputs["statistics"],
      validated_dir=validated_dir,
  ).with_id(ids.DRIFT_BASELINE)
  gate = ValidationGate(
      anomalies=example_validator.outputs["anomalies"],
      statistics=statistics_gen.outputs["statistics"],
      schema=schema_gen.outputs["schema"],
      baseline_statistics=drift_baseline.outputs["baseline"],
      drift_label_js=float(config.drift_label_js),
      drift_categorical_linf=float(config.drift_categorical_linf),
      drift_js_columns=config.dataset.label.column,
      drift_linf_columns=",".join(
          f.column for f in config.dataset.features_of_kind("categorical")),
      validated_dir=validated_dir,
  ).with_id(ids.VALIDATION_GATE)

  components: List = [example_gen, statistics_gen, schema_gen, example_validator,
                      drift_baseline, gate]
  # Validation looks at the new span only; training reads a rolling window of spans.
  training_examples = example_gen.outputs["examples"]
  if config.window_spans > 1:
    # A channel by producer, not `example_gen.outputs`: an output channel resolves to what
    # ExampleGen produced in this run (one span). This one queries every run of the
    # pipeline; ordered after ExampleGen, it sees the span just ingested too.
    window = Resolver(
        strategy_class=SpanRangeStrategy,
        config={"range_config": range_config_pb2.RangeConfig(
            rolling_range=range_config_pb2.RollingRange(num_spans=config.window_spans))},
        examples=types.Channel(type=standard_artifacts.Examples,
                               producer_component_id=ids.EXAMPLE_GEN,
                               output_key="examples"),
    ).with_id(ids.SPAN_WINDOW)
    window.add_upstream_node(example_gen)
    components.append(window)
    training_examples = window.outputs["examples"]

  # The model in production: the newest pushed candidate not trained on the data ingested
  # now (so a re-run on the same data is a cache hit of this node and of all that follows).
  # The candidate warm-starts from it and must not regress against it.
  production = ProductionModel(
      examples=example_gen.outputs["examples"],
      serving_dir=config.serving_dir,
  ).with_id(ids.PRODUCTION_MODEL)
  components.append(production)

  transform = Transform(
      examples=training_examples,
      schema=schema_gen.outputs["schema"],
      preprocessing_fn=PREPROCESSING_FN,
      custom_config=transform_custom_config(config),
      # TFX's default also runs TFDV over the raw and the transformed data (pre/post-transform
      # statistics, schemas and anomalies): two more statistics passes nothing here reads
      # (StatisticsGen and the ValidationGate validate the data).
      disable_statistics=True,
  ).with_id(ids.TRANSFORM)
  # Nothing is transformed, trained or pushed from data that failed validation.
  transform.add_upstream_node(gate)

  candidate = _trainer(config, config.candidate, transform, ids.CANDIDATE_TRAINER,
                       base_model=production.outputs["model"] if config.warm_start else None)
  baseline = _trainer(config, config.baseline, transform, ids.BASELINE_TRAINER)
  components += [transform, candidate, baseline]
  if config.train_collisionless:
    components.append(_trainer(
        config, config.candidate.replace(model_type="collisionless"), transform,
        ids.COLLISIONLESS_TRAINER))

  evaluator = Evaluator(
      examples=example_gen.outputs["examples"],
      model=candidate.outputs["model"],
      baseline_model=baseline.outputs["model"],
      eval_config=make_eval_config(config.evaluation, config.dataset.slices),
  ).with_id(ids.EVALUATOR)
  components.append(evaluator)

  # Gate 1: beat the hash baseline. Gate 2: do not regress against production (without a
  # production model, on the first run, only its AUC floor applies). Push only after both.
  # Gate 2 always runs (an Evaluator skipped by a condition would leave the Pusher's
  # condition without a blessing to read, and TFX 1.16 then fails the Pusher instead of
  # skipping it); the Pusher runs only when both gates blessed the candidate.
  production_evaluator = Evaluator(
      examples=example_gen.outputs["examples"],
      model=candidate.outputs["model"],
      baseline_model=production.outputs["model"],
      eval_config=make_production_eval_config(config.evaluation),
  ).with_id(ids.PRODUCTION_EVALUATOR)
  both_gates = placeholder_base.logical_and(
      evaluator.outputs["blessing"].future()[0].custom_property("blessed") == 1,
      production_evaluator.outputs["blessing"].future()[0].custom_property("blessed") == 1)
  with Cond(both_gates):
    # Gate 3: the candidate, loaded in a fresh process, serves the Evaluator's scores for
    # real eval rows sent as TF Serving warm-up requests; its blessing holds the model with
    # those requests, which is what the Pusher pushes.
    serving_check = ServingCheck(
        model=candidate.outputs["model"],
        examples=example_gen.outputs["examples"],
        evaluation=evaluator.outputs["evaluation"],
        label_column=config.dataset.label.column,
        model_name=ids.CANDIDATE_MODEL,
    ).with_id(ids.SERVING_CHECK)
    # A pushed version directory is complete or absent, even if the run dies mid-push.
    pusher = AtomicPusher(
        model=candidate.outputs["model"],
        model_blessing=production_evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["blessing"],
        # Recorded with the push: the next run's ProductionModel skips a model trained on
        # the data it ingests.
        examples=training_examples,
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=config.serving_dir)),
    ).with_id(ids.PUSHER)
  components += [production_evaluator, serving_check, pusher]

  return tfx_pipeline.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      beam_pipeline_args=list(config.beam_args),
  )
