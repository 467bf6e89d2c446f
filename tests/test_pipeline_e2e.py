"""End to end: the real pipeline on a slice of MovieLens-100K with LocalDagRunner.

Asserts on ML Metadata, scores raw tf.Examples through the pushed model, replays its TF
Serving warm-up requests, re-runs to see every component cached, and shows that a candidate
that cannot clear the bar, or does not serve the Evaluator's scores from a fresh process, is
not pushed while the earlier pushed model stays.
"""

import io
import json
import os
import shutil

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from pipeline import config as config_lib, local_runner
from pipeline import ids
from pipeline import store as store_lib
from tests import runs
from tests.conftest import write_movielens_slice

pytestmark = pytest.mark.pipeline


ALL_COMPONENTS = {
    ids.EXAMPLE_GEN, ids.STATISTICS_GEN, ids.SCHEMA_GEN,
    ids.EXAMPLE_VALIDATOR, ids.VALIDATION_GATE, ids.TRANSFORM,
    ids.CANDIDATE_TRAINER, ids.BASELINE_TRAINER, ids.EVALUATOR,
    ids.PRODUCTION_EVALUATOR, ids.SERVING_CHECK, ids.PUSHER, ids.DRIFT_BASELINE,
    ids.PRODUCTION_MODEL,
}


def _config(data_dir, output_dir, **evaluation):
  return config_lib.from_mapping(
      {"training": {"epochs": 2, "batch_size": 512},
       "evaluation": evaluation or {"min_auc_gain": -1.0, "auc_floor": 0.0}},
      data_dir=str(data_dir), output_dir=str(output_dir))


def _store(config):
  return store_lib.open_readonly(config.metadata_path)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("e2e")
  data = write_movielens_slice(root / "ml", 4000, every=25)
  config = _config(data, root / "out")
  summary = local_runner.run(config)
  return config, summary


def test_first_run_executes_every_component_and_pushes(first_run):
  config, summary = first_run
  assert summary["succeeded"]
  assert summary["components"] == {c: "complete" for c in ALL_COMPONENTS}
  assert summary["blessed"] is True
  assert 0.0 < summary["candidate_auc"] < 1.0 and 0.0 < summary["baseline_auc"] < 1.0
  pushed = summary["pushed_model_dir"]
  assert pushed and os.path.dirname(pushed) == config.serving_dir
  assert os.listdir(config.serving_dir) == [os.path.basename(pushed)]
  with open(os.path.join(config.output_dir, "last_run.json")) as f:
    saved = json.load(f)
  for key in ("candidate_auc", "baseline_auc", "blessed", "pushed_model_dir"):
    assert saved[key] == summary[key]
  # Sliced LogLoss for both models, by gender and by age bucket.
  slices = summary["sliced_metrics"]
  assert {"user_gender=M", "user_gender=F"} <= set(slices)
  assert any(name.startswith("user_age_bucket=") for name in slices)
  assert "logloss" in slices["user_gender=F"]["candidate"]
  assert "logloss" in slices["user_gender=F"]["baseline"]


def test_metadata_records_the_run(first_run):
  config, summary = first_run
  store = _store(config)
  executions = store.get_executions()
  assert all(e.last_known_state == metadata_store_pb2.Execution.COMPLETE for e in executions)
  # One execution per component; the model in production and the drift baseline are
  # components too (the same graph compiles for Vertex), not resolvers.
  assert summary["resolvers"] == []
  assert len(executions) == len(ALL_COMPONENTS)
  pushed = [a for a in store.get_artifacts_by_type("PushedModel")]
  assert len(pushed) == 1 and pushed[0].custom_properties["pushed"].int_value == 1
  models = store.get_artifacts_by_type("Model")
  # Candidate, baseline, and ProductionModel's output marked empty (nothing in production).
  assert len(models) == 3
  assert sum("uet_empty" in m.custom_properties for m in models) == 1


def test_pushed_model_scores_raw_examples_without_rating(first_run):
  config, summary = first_run
  loaded = tf.saved_model.load(summary["pushed_model_dir"])
  serialized = runs.serving_requests(os.path.join(config.data_dir, "u.data"),
                                    os.path.join(config.data_dir, "u.user"), 7)
  scores = loaded.signatures["serving_default"](examples=tf.constant(serialized))
  probability = scores["probability"].numpy()
  assert probability.shape == (7,)
  assert ((probability >= 0.0) & (probability <= 1.0)).all()


def test_pushed_model_carries_warmup_requests_it_answers(first_run):
  """TF Serving's warm-up file: PredictRequests for serving_default of real eval rows
  without the label, batches 1, 16 and 256; each request's inputs, fed to the pushed model,
  give one score in [0, 1] per row."""
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  config, summary = first_run
  pushed = summary["pushed_model_dir"]
  warmup = os.path.join(pushed, "assets.extra", "tf_serving_warmup_requests")
  logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(warmup)]
  loaded = tf.saved_model.load(pushed)
  label = config.dataset.label.column
  batches = []
  for log in logs:
    request = log.predict_log.request
    assert request.model_spec.signature_name == "serving_default"
    [(key, tensor)] = request.inputs.items()
    rows = tf.make_ndarray(tensor)
    for row in rows:
      example = tf.train.Example.FromString(row)
      assert label not in example.features.feature
      assert len(example.features.feature) > 1
    scores = loaded.signatures["serving_default"](**{key: tf.constant(rows)})
    probability = scores["probability"].numpy()
    assert probability.shape == (len(rows),)
    assert ((probability >= 0.0) & (probability <= 1.0)).all()
    batches.append(len(rows))
  assert batches == [1, 16, 256]
  gate = summary["serving_gate"]
  assert gate["blessed"] and gate["failure"] is None
  assert gate["batch_sizes"] == [1, 16, 256] and gate["rows"] == 256
  assert gate["max_abs_difference"] <= gate["tolerance"]
  # The report shows it as the third gate, passed, with the numbers checked.
  from tools.report import collect  # pylint: disable=g-import-not-at-top
  report = collect.collect(_store(config), config.pipeline_name, summary["run_id"],
                           config.output_dir, summary)
  [serving] = [g for g in report.gates if g.name == collect.SERVING_GATE]
  assert serving.verdict == "passed" and all(c.passed for c in serving.checks)
  assert serving.checks[-1].value == gate["max_abs_difference"]
  # The push record and the rest of the model are the Trainer's.
  assert os.path.exists(os.path.join(pushed, "assets.extra", "uet_push.json"))


def test_second_run_is_fully_cached_then_a_worse_candidate_is_not_pushed(first_run):
  config, first = first_run
  again = local_runner.run(config)
  assert again["components"] == {c: "cached" for c in ALL_COMPONENTS}
  assert set(again["cached_components"]) == ALL_COMPONENTS
  assert again["pushed_model_dir"] == first["pushed_model_dir"]

  # A bar no candidate can clear: the Evaluator re-runs, does not bless, the Pusher is
  # skipped, and the model pushed before stays where it was.
  strict = config.replace(evaluation=config_lib.EvaluationConfig(min_auc_gain=1.0))
  result = local_runner.run(strict)
  assert result["succeeded"] and result["blessed"] is False
  assert result["pushed_model_dir"] is None
  assert result["components"][ids.EVALUATOR] == "complete"
  assert result["components"][ids.CANDIDATE_TRAINER] == "cached"
  assert "failed" not in result["components"].values()
  assert ids.PUSHER not in result["components"]
  assert ids.SERVING_CHECK not in result["components"]
  assert os.listdir(config.serving_dir) == [os.path.basename(first["pushed_model_dir"])]


def _artifact(cls, mlmd_artifact):
  artifact = cls()
  artifact.set_mlmd_artifact(mlmd_artifact)
  return artifact


def _faulty_model(candidate_dir: str, destination: str, fault: str, label: str,
                  label_kind: str) -> str:
  """The candidate with a `serving_default` that returns NaN, or that reads the label when
  a row carries it (a train/serve skew: requests carry no label, the Evaluator's rows do)."""
  loaded = tf.saved_model.load(candidate_dir)
  serve = loaded.signatures["serving_default"]
  dtype = {"int64_list": tf.int64, "float_list": tf.float32, "bytes_list": tf.string}[label_kind]

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def faulty(examples):
    probability = serve(examples=examples)["probability"]
    if fault == "nan":
      return {"probability": probability * float("nan")}
    has_label = tf.io.parse_example(examples, {label: tf.io.VarLenFeature(dtype)})[label]
    present = tf.cast(tf.math.bincount(tf.cast(has_label.indices[:, 0], tf.int32),
                                       minlength=tf.size(examples)) > 0, tf.float32)
    return {"probability": probability * (1.0 - 0.5 * present)}

  module = tf.Module()
  module.candidate = loaded
  path = os.path.join(destination, "Format-Serving")
  tf.saved_model.save(module, path, signatures={
      "serving_default": faulty,
      "transform_features": loaded.signatures["transform_features"]})
  return destination


@pytest.mark.parametrize("fault,failure", [
    ("nan", "not a finite number"),
    ("label_skew", "but the Evaluator's prediction is"),
])
def test_a_model_that_does_not_serve_the_evaluators_scores_is_not_pushed(
    first_run, tmp_path, fault, failure):
  from tfx.proto import pusher_pb2  # pylint: disable=g-import-not-at-top
  from tfx.types import standard_artifacts, standard_component_specs  # pylint: disable=g-import-not-at-top
  from tfx.utils import proto_utils  # pylint: disable=g-import-not-at-top
  from components.atomic_pusher import executor as pusher  # pylint: disable=g-import-not-at-top
  from components.serving_check import executor as serving_check  # pylint: disable=g-import-not-at-top
  from pipeline import results  # pylint: disable=g-import-not-at-top
  from tools import run_command  # pylint: disable=g-import-not-at-top
  from tools.report import collect  # pylint: disable=g-import-not-at-top
  config, summary = first_run
  nodes = results.node_runs(_store(config), config.pipeline_name, summary["run_id"])
  examples = _artifact(standard_artifacts.Examples,
                       nodes[ids.EXAMPLE_GEN].outputs["examples"][0])
  evaluation = _artifact(standard_artifacts.ModelEvaluation,
                         nodes[ids.EVALUATOR].outputs["evaluation"][0])
  row = tf.train.Example.FromString(serving_check.read_rows(examples, n=1)[0])
  label = config.dataset.label.column
  label_kind = row.features.feature[label].WhichOneof("kind")
  model = standard_artifacts.Model()
  model.uri = _faulty_model(summary["candidate_model_dir"], str(tmp_path / "model"), fault,
                            label, label_kind)
  blessing = standard_artifacts.InfraBlessing()
  blessing.uri = str(tmp_path / "blessing")

  serving_check.check(model, examples, evaluation, label, ids.CANDIDATE_MODEL, blessing)
  assert blessing.get_int_custom_property("blessed") == 0
  assert failure in blessing.get_string_custom_property("failure")
  assert serving_check.read_result(blessing.uri)["failure"].startswith(
      "the warm-up request of batch")
  # The run's result and its report show it as its own gate, with what failed.
  node = results.NodeRun(0, "complete", {"blessing": [blessing.mlmd_artifact]})
  gate = results.serving_gate({ids.SERVING_CHECK: node})
  assert gate["blessed"] is False and failure in gate["failure"]
  out = io.StringIO()
  run_command.print_summary(dict(summary, serving_gate=gate, blessed=False,
                                 pushed_model_dir=None), out)
  assert f"serving check: FAILED, not pushed: {gate['failure']}" in out.getvalue()
  report_gate = collect._serving_gate(node)  # pylint: disable=protected-access
  assert (report_gate.name, report_gate.verdict) == (collect.SERVING_GATE, "failed")
  assert report_gate.messages == [f"Not pushed: {gate['failure']}"]
  # The Pusher, given both model gates' blessings and this one, pushes nothing, and the
  # version pushed before stays as it was.
  serving = tmp_path / "serving"
  earlier = serving / os.path.basename(summary["pushed_model_dir"])
  shutil.copytree(summary["pushed_model_dir"], earlier)
  before = runs.serving_snapshot(str(serving))
  model_blessing = standard_artifacts.ModelBlessing()
  model_blessing.uri = str(tmp_path / "model_blessing")
  model_blessing.set_int_custom_property("blessed", 1)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed")
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(serving)))
  pusher.Executor().Do(
      {standard_component_specs.MODEL_KEY: [model],
       standard_component_specs.MODEL_BLESSING_KEY: [model_blessing],
       standard_component_specs.INFRA_BLESSING_KEY: [blessing]},
      {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
      {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)})
  assert pushed.get_int_custom_property("pushed") == 0
  assert runs.serving_snapshot(str(serving)) == before
