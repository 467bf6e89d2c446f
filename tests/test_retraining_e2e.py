"""Scheduled retraining on spans with the real pipeline: ingest the newest span, cache hits
when nothing is new, warm start from production, and the production gate."""

import os
import shutil

import pytest

from components.example_gen import spans as spans_lib
from dataspec import spec as spec_lib
from pipeline import config as config_lib, local_runner
from pipeline import ids
from tools import simulate

pytestmark = pytest.mark.pipeline
MOVIELENS = spec_lib.load("movielens")


def _feed_span(all_spans_dir, feed, number, every=10):
  """Period `number` arrives: a thinned copy of the real span (keeps the test fast)."""
  target = spans_lib.span_dir(str(feed), number)
  os.makedirs(target)
  lines = open(os.path.join(spans_lib.span_dir(str(all_spans_dir), number), "u.data")).readlines()
  with open(os.path.join(target, "u.data"), "w") as f:
    f.writelines(lines[::every])


@pytest.fixture(scope="module")
def schedule(tmp_path_factory, ml100k):
  root = tmp_path_factory.mktemp("retrain")
  spans_lib.write_time_spans(MOVIELENS, str(ml100k), str(root / "all"), num_spans=6)
  feed = root / "feed"
  feed.mkdir()
  shutil.copy(root / "all" / "u.user", feed / "u.user")
  config = config_lib.from_mapping(
      {"training": {"epochs": 2, "batch_size": 512},
       "evaluation": {"min_auc_gain": -1.0, "auc_floor": 0.0}},
      data_dir=str(feed), output_dir=str(root / "out"),
      span_pattern=spans_lib.span_pattern(MOVIELENS), window_spans=2)
  return root, feed, config


def _same_file(dir_a, dir_b, name):
  with open(os.path.join(dir_a, name), "rb") as a, open(os.path.join(dir_b, name), "rb") as b:
    return a.read() == b.read()


def _versions(config):
  return sorted(os.listdir(config.serving_dir)) if os.path.isdir(config.serving_dir) else []


def test_schedule_of_spans(schedule):
  root, feed, config = schedule

  # Period 1: the first span; nothing in production yet.
  _feed_span(root / "all", feed, 1)
  first = local_runner.run(config)
  assert first["blessed"] and first["pushed_model_dir"]
  assert first["warm_started_from"] is None
  # Nothing in production: the floor alone decides gate 2. Both gates score the same
  # candidate on the same eval split, so they report the same AUC.
  assert first["production_gate"] == {"blessed": True, "candidate_auc": pytest.approx(
      first["candidate_auc"], abs=1e-6), "production_auc": None}
  assert 0.5 < first["candidate_auc"] < 1.0
  assert len(_versions(config)) == 1

  # No new span: no work, no new push.
  again = local_runner.run(config)
  assert set(again["components"].values()) == {"cached"}
  assert len(_versions(config)) == 1

  # Period 2 arrives, but the candidate cannot beat production by the (impossible) margin:
  # the production gate blocks it and the model in production stays.
  _feed_span(root / "all", feed, 2)
  strict = config.replace(evaluation=config_lib.EvaluationConfig(
      min_auc_gain=-1.0, auc_floor=0.0, max_auc_regression=-1.0))
  blocked = local_runner.run(strict)
  assert blocked["succeeded"]
  assert blocked["components"][ids.EXAMPLE_GEN] == "complete"  # new span ingested
  # Trained on the window of 2 spans, not on the newest span alone: span 1's training rows
  # plus span 2's (ExampleGen's own split rule, as `uet simulate` applies it).
  span2_train = int(simulate.load_span(MOVIELENS,
                                      spans_lib.span_dir(str(feed), 2))["is_train"].sum())
  assert blocked["candidate_train_examples"] == first["candidate_train_examples"] + span2_train
  # Warm-started from the model in production: ProductionModel's copy of span 1's push,
  # fine-tuned at half the learning rate of the first, cold run.
  assert blocked["candidate_learning_rate"] == pytest.approx(
      first["candidate_learning_rate"] * config.candidate.warm_start_lr_scale)
  assert config.candidate.warm_start_lr_scale < 1.0
  assert _same_file(blocked["warm_started_from"], first["pushed_model_dir"], "saved_model.pb")
  gate = blocked["production_gate"]
  assert gate["blessed"] is False and gate["production_auc"] is not None
  assert blocked["blessed"] is False and blocked["pushed_model_dir"] is None
  assert ids.PUSHER not in blocked["components"]
  assert len(_versions(config)) == 1

  # Same period with the normal gate: warm-started from production, compared against it,
  # pushed as a second version beside the first (both kept, in order).
  second = local_runner.run(config)
  assert second["components"][ids.CANDIDATE_TRAINER] == "cached"
  assert second["components"][ids.PRODUCTION_EVALUATOR] == "complete"
  assert second["production_gate"]["blessed"] is True
  assert second["pushed_model_dir"]
  versions = _versions(config)
  assert len(versions) == 2 and os.path.basename(second["pushed_model_dir"]) == versions[-1]
  assert os.path.basename(first["pushed_model_dir"]) == versions[0]

  # And again nothing new: every component is a cache hit, nothing is pushed.
  idle = local_runner.run(config)
  assert set(idle["components"].values()) == {"cached"}
  assert _versions(config) == versions
