"""End to end: the real pipeline on a slice of MovieLens-100K with LocalDagRunner.

Asserts on ML Metadata, scores raw tf.Examples through the pushed model, re-runs to see every
component cached, and shows that a candidate that cannot clear the bar is not pushed while the
earlier pushed model stays.
"""

import json
import os

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
    ids.PRODUCTION_EVALUATOR, ids.PUSHER, ids.DRIFT_BASELINE,
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
  assert os.listdir(config.serving_dir) == [os.path.basename(first["pushed_model_dir"])]
