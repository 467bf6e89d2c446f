"""The executors that read the compiled pipeline's scalar runtime parameters.

A value given at run time must produce exactly the component configuration a local run with
that value in its config would have.
"""

import json
from unittest import mock

import pytest
import tensorflow_model_analysis as tfma
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import decisions
from kubeflow import executors
from kubeflow.options import VertexTrainingOptions
from pipeline.config import EvaluationConfig
from pipeline.pipeline import make_eval_config
from trainer.config import TrainingConfig


def _eval_props(**extra):
  return {"eval_config": proto_utils.proto_to_json(make_eval_config(EvaluationConfig())),
          "example_splits": "null", **extra}


def _parsed(props) -> tfma.EvalConfig:
  return proto_utils.json_to_proto(props["eval_config"], tfma.EvalConfig())


def _train_props(**extra):
  custom = {"training": TrainingConfig(model_type="unified").to_dict(),
            "code_fingerprint": "abc", "tpu": None}
  return {"custom_config": json.dumps(custom), "run_fn": "trainer.run_fn.run_fn", **extra}


def test_runtime_gain_and_floor_give_the_eval_config_of_that_config():
  props = executors.apply_evaluation_parameters(
      _eval_props(min_auc_gain=0.05, auc_floor=0.6))
  assert "min_auc_gain" not in props and "auc_floor" not in props
  assert props["example_splits"] == "null"
  assert _parsed(props) == make_eval_config(EvaluationConfig(min_auc_gain=0.05,
                                                             auc_floor=0.6))


def test_max_auc_regression_is_a_negative_change_threshold():
  props = executors.apply_evaluation_parameters(_eval_props(max_auc_regression=0.02))
  auc = [m for m in _parsed(props).metrics_specs[0].metrics if m.class_name == "AUC"][0]
  assert len(auc.per_slice_thresholds) == 1
  threshold = auc.per_slice_thresholds[0].threshold
  assert threshold.change_threshold.absolute.value == pytest.approx(-0.02)
  assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
  assert threshold.value_threshold.lower_bound.value == pytest.approx(0.70)


def test_thresholds_are_read_back_from_the_compiled_eval_config():
  config = EvaluationConfig(min_auc_gain=0.03, auc_floor=0.65)
  change, floor = executors.read_auc_thresholds(
      proto_utils.proto_to_json(make_eval_config(config)))
  assert (change, floor) == (pytest.approx(0.03), pytest.approx(0.65))


def test_without_runtime_values_the_eval_config_is_untouched():
  props = _eval_props()
  assert executors.apply_evaluation_parameters(props) == props


@pytest.mark.parametrize("extra, message", [
    ({"auc_floor": 1.5}, r"auc_floor must be in \[0, 1\]"),
    ({"min_auc_gain": float("inf")}, "min_auc_gain must be a finite number"),
    ({"min_auc_gain": 0.01, "max_auc_regression": 0.0}, "bind one of them"),
])
def test_bad_evaluation_values_fail(extra, message):
  with pytest.raises(ValueError, match=message):
    executors.apply_evaluation_parameters(_eval_props(**extra))


def test_eval_config_without_auc_threshold_fails_loudly():
  eval_config = tfma.EvalConfig(metrics_specs=[tfma.MetricsSpec(
      metrics=[tfma.MetricConfig(class_name="ExampleCount")])])
  with pytest.raises(ValueError, match="no AUC metric with a threshold"):
    executors.apply_evaluation_parameters(
        {"eval_config": proto_utils.proto_to_json(eval_config), "min_auc_gain": 0.1})


def test_runtime_epochs_reach_the_training_config():
  props = executors.apply_training_parameters(_train_props(epochs=7))
  assert "epochs" not in props
  custom = json.loads(props["custom_config"])
  assert custom["training"] == json.loads(json.dumps(
      TrainingConfig(model_type="unified", epochs=7).to_dict()))
  assert custom["code_fingerprint"] == "abc"
  assert executors.read_epochs(props["custom_config"]) == 7


@pytest.mark.parametrize("epochs", [0, -1, 2.5, "many"])
def test_bad_epochs_fail(epochs):
  with pytest.raises(ValueError, match="epochs must be a positive whole number"):
    executors.apply_training_parameters(_train_props(epochs=epochs))


def test_evaluator_executor_runs_the_stock_evaluator_with_the_runtime_values():
  blessing = standard_artifacts.ModelBlessing()
  nothing = standard_artifacts.Model()
  decisions.mark_empty(nothing, "nothing in production")
  with mock.patch("tfx.components.evaluator.executor.Executor.Do") as stock_do:
    executors.EvaluatorExecutor().Do(
        {"examples": [], "baseline_model": [nothing]}, {"blessing": [blessing]},
        _eval_props(min_auc_gain=0.2, auc_floor=0.5))
  (inputs, outputs, props), _ = stock_do.call_args
  # Nothing in production reaches TFX as no baseline (the AUC floor alone decides).
  assert inputs == {"examples": []} and outputs == {"blessing": [blessing]}
  assert _parsed(props) == make_eval_config(EvaluationConfig(min_auc_gain=0.2, auc_floor=0.5))


def test_trainer_executor_runs_the_stock_trainer_with_runtime_epochs():
  nothing = standard_artifacts.Model()
  decisions.mark_empty(nothing, "nothing in production")
  with mock.patch("tfx.components.trainer.executor.GenericExecutor.Do") as stock_do:
    executors.TrainerExecutor().Do({"base_model": [nothing]}, {}, _train_props(epochs=2))
  (inputs, _, props), _ = stock_do.call_args
  assert json.loads(props["custom_config"])["training"]["epochs"] == 2
  assert inputs == {}  # nothing in production: train from scratch


def test_vertex_trainer_launches_a_custom_job_on_the_accelerator_with_runtime_epochs():
  training = VertexTrainingOptions(project="proj", region="us-central1",
                                   machine_type="cloud-tpu", accelerator_type="TPU_V3",
                                   accelerator_count=8)
  props = _train_props(epochs=9)
  custom = json.loads(props["custom_config"])
  custom.update({"ai_platform_enable_vertex": True,
                 "ai_platform_vertex_region": "us-central1",
                 "ai_platform_training_args": training.job_args("img:1"),
                 "tpu": "local"})
  props["custom_config"] = json.dumps(custom)
  with mock.patch("tfx.extensions.google_cloud_ai_platform.runner.start_cloud_training") \
      as start:
    executors.VertexTrainerExecutor().Do({}, {}, props)
  (_, _, sent_props, executor_class_path, job_args, _, _, enable_vertex,
   region), _ = start.call_args
  # The custom job runs TFX's stock Trainer executor, i.e. trainer.run_fn on the TPU machine.
  assert executor_class_path == "tfx.components.trainer.executor.GenericExecutor"
  assert enable_vertex is True and region == "us-central1"
  assert job_args["project"] == "proj"
  pool = job_args["job_spec"]["worker_pool_specs"][0]
  assert pool["machine_spec"] == {"machine_type": "cloud-tpu", "accelerator_type": "TPU_V3",
                                  "accelerator_count": 8}
  assert pool["container_spec"] == {"image_uri": "img:1"}
  sent = json.loads(sent_props["custom_config"])
  assert sent["training"]["epochs"] == 9 and sent["tpu"] == "local"
  assert "epochs" not in sent_props
