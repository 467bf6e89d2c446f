"""The scheduled-retraining story through both runners: `uet run` (LocalDagRunner) and
`uet compile` + `uet run-spec` (the compiled Vertex PipelineJob, each task in its own
process). Both must reach the same decisions:

  span 1: validated, trained, pushed (nothing in production yet, no drift baseline);
  span 2: warm-starts from span 1's pushed model, is compared with it, pushed;
  span 3: drifted (all ratings 5): stopped at the ValidationGate, nothing pushed;
  span 4: clean; compared with span 2's statistics (not span 3's) and passes the gate; its
          candidate cannot clear min_auc_gain = 1, so the Pusher's condition is false, the
          Pusher is skipped and production stays byte for byte as it was.

Small data (thinned MovieLens spans, one epoch); still many minutes: marked `pipeline`.
"""

import os
import shutil

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from components.atomic_pusher import executor as pusher_executor
from components.example_gen import spans as spans_lib
from dataspec import spec as spec_lib
from kubeflow import run_spec
from pipeline import config as config_lib, ids, local_runner
from tests import runs
from tools import cli

pytestmark = pytest.mark.pipeline

SMALL = {"training": {"epochs": 1, "batch_size": 512},
         "evaluation": {"min_auc_gain": -1.0, "auc_floor": 0.0}}
IMPOSSIBLE_GAIN = 1.0  # no candidate beats the baseline by a whole unit of AUC
MOVIELENS = spec_lib.load("movielens")
SPAN_PATTERN = spans_lib.span_pattern(MOVIELENS)


@pytest.fixture(scope="module")
def all_spans(tmp_path_factory, ml100k):
  root = tmp_path_factory.mktemp("spans")
  spans_lib.write_time_spans(MOVIELENS, str(ml100k), str(root), num_spans=6)
  return root


def _add_span(all_spans, feed, number, every=12, drifted=False):
  """Period `number` arrives in `feed`: a thinned copy of real span `number`."""
  target = spans_lib.span_dir(str(feed), number)
  os.makedirs(target)
  lines = open(os.path.join(spans_lib.span_dir(str(all_spans), number), "u.data")).readlines()
  with open(os.path.join(target, "u.data"), "w") as f:
    for line in lines[::every]:
      user, movie, rating, stamp = line.rstrip("\n").split("\t")
      f.write("\t".join([user, movie, "5" if drifted else rating, stamp]) + "\n")


def _new_feed(all_spans, root):
  feed = root / "feed"
  feed.mkdir()
  shutil.copy(all_spans / "u.user", feed / "u.user")
  return feed


def _span_of(uri, history, key):
  """Which period's run produced the artifact at `uri` (periods count from 1)."""
  matches = [number for number, run in enumerate(history, 1) if run.get(key) == uri]
  assert len(matches) == 1, (uri, history)
  return matches[0]


def _decision(outputs, states, failed, serving_dir, history):
  """What a run decided, from its tasks' states and output artifacts (metadata, `_uri`);
  earlier periods are named by the URIs of their Examples and statistics in `history`."""
  production = outputs.get(ids.PRODUCTION_MODEL, {})
  baseline = outputs.get(ids.DRIFT_BASELINE, {})
  pushed = outputs.get(ids.PUSHER, {}).get("pushed", 0) == 1
  production_spans = []
  if production.get("production_dir"):
    record = pusher_executor.read_push_record(production["production_dir"])
    production_spans = [_span_of(uri, history, "examples") for uri in record["trained_on"]]
  drift_baseline_span = None
  if baseline and not baseline.get("uet_empty"):
    drift_baseline_span = _span_of(baseline["source_uri"], history, "statistics")
  history.append({
      "examples": outputs.get(ids.EXAMPLE_GEN, {}).get("_uri"),
      "statistics": outputs.get(ids.STATISTICS_GEN, {}).get("_uri")})
  return {
      "failed_at": failed,
      "production_spans": production_spans,
      "drift_baseline_span": drift_baseline_span,
      "pusher": states.get(ids.PUSHER, "not reached"),
      "pushed": pushed,
      "versions": len(runs.versions(serving_dir)),
  }


def _local_outputs(output_dir, ran):
  """node -> metadata of its newest execution's single output (as run-spec sees it), for the
  nodes in `ran` (this run's)."""
  store = runs.metadata_store(output_dir)
  result = {}
  for node, key in ((ids.EXAMPLE_GEN, "examples"),
                    (ids.STATISTICS_GEN, "statistics"),
                    (ids.PRODUCTION_MODEL, "model"),
                    (ids.DRIFT_BASELINE, "baseline"),
                    (ids.PUSHER, "pushed_model")):
    executions = runs.executions_of(output_dir, node)
    if not executions or node not in ran:
      continue
    events = [e for e in store.get_events_by_execution_ids([executions[-1].id])
              if e.path.steps and e.path.steps[0].key == key and e.type in (
                  metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
    if not events:
      continue
    artifact = store.get_artifacts_by_id([events[0].artifact_id])[0]
    values = {k: (v.string_value or v.int_value) for k, v in artifact.custom_properties.items()}
    values.update({k: v.int_value for k, v in artifact.properties.items()
                   if v.HasField("int_value")})
    values["_uri"] = artifact.uri
    result[node] = values
  return result


class LocalRuns:
  """`uet run` on a feed of spans."""

  def __init__(self, root, feed):
    self.history = []
    self.config = config_lib.from_mapping(
        SMALL, data_dir=str(feed), output_dir=str(root / "out"),
        span_pattern=SPAN_PATTERN)

  @property
  def serving_dir(self):
    return self.config.serving_dir

  def run(self, min_auc_gain=None):
    config = self.config
    if min_auc_gain is not None:
      config = config.replace(evaluation=config.evaluation.__class__(
          min_auc_gain=min_auc_gain, auc_floor=0.0))
    try:
      summary = local_runner.run(config)
    except local_runner.PipelineRunError as e:
      assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH" in str(e)
      summary = e.summary
    states = dict(summary["components"])
    if summary["succeeded"] and ids.PUSHER not in states:
      states[ids.PUSHER] = "skipped"  # no execution: its condition was false
    return _decision(_local_outputs(config.output_dir, summary["components"]), states,
                     summary.get("failed_component"), config.serving_dir, self.history)


class SpecRuns:
  """`uet compile` once, then `uet run-spec` per period."""

  def __init__(self, root, feed):
    self.history = []
    self.output_dir = str(root / "out")
    self.path = str(root / "pipeline.json")
    # The feed has no span yet when the pipeline is compiled: name the layout.
    config_file = runs.write_config(root / "config.json",
                                    dict(SMALL, span_pattern=SPAN_PATTERN))
    assert cli.main(["compile", "--target", "vertex", "--pipeline-root", self.output_dir,
                     "--data-dir", str(feed), "--config", config_file, "--image", "local",
                     "--output", self.path]) == 0

  @property
  def serving_dir(self):
    return os.path.join(self.output_dir, "serving")

  def run(self, min_auc_gain=None):
    overrides = {} if min_auc_gain is None else {"min_auc_gain": str(min_auc_gain)}
    try:
      result = run_spec.run(self.path, overrides=overrides)
      failed = None
    except run_spec.TaskFailed as e:
      assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH" in str(e)
      result, failed = e.result, e.task
    outputs = {}
    for task, artifacts in result.outputs.items():
      listing = next(iter(artifacts.values()), [])
      if listing:
        outputs[task] = dict(listing[0]["metadata"], _uri=listing[0]["uri"])
    return _decision(outputs, result.states, failed, self.serving_dir, self.history)


EXPECTED = [
    {"failed_at": None, "production_spans": [], "drift_baseline_span": None,
     "pusher": "complete", "pushed": True, "versions": 1},
    {"failed_at": None, "production_spans": [1], "drift_baseline_span": 1,
     "pusher": "complete", "pushed": True, "versions": 2},
    {"failed_at": ids.VALIDATION_GATE, "production_spans": [2],
     "drift_baseline_span": 2, "pusher": "not reached", "pushed": False, "versions": 2},
    {"failed_at": None, "production_spans": [2], "drift_baseline_span": 2,
     "pusher": "skipped", "pushed": False, "versions": 2},
]


def _story(runner, all_spans, feed):
  decisions = []
  for number in (1, 2, 3, 4):
    _add_span(all_spans, feed, number, drifted=(number == 3))
    before = runs.serving_snapshot(runner.serving_dir)
    decision = runner.run(min_auc_gain=IMPOSSIBLE_GAIN if number == 4 else None)
    if not decision["pushed"]:
      assert runs.serving_snapshot(runner.serving_dir) == before  # production untouched
    decisions.append(decision)
  return decisions


def test_both_runners_reach_the_same_decisions(tmp_path_factory, all_spans):
  local_root = tmp_path_factory.mktemp("local")
  local = _story(LocalRuns(local_root, _new_feed(all_spans, local_root)), all_spans,
                 local_root / "feed")
  spec_root = tmp_path_factory.mktemp("spec")
  spec = _story(SpecRuns(spec_root, _new_feed(all_spans, spec_root)), all_spans,
                spec_root / "feed")
  assert local == EXPECTED
  assert spec == local
  # What run-spec pushed serves: serving_default scores raw tf.Examples (no rating).
  newest = runs.versions(os.path.join(spec_root, "out", "serving"))[-1]
  loaded = tf.saved_model.load(os.path.join(spec_root, "out", "serving", newest))
  serialized = runs.serving_requests(
      os.path.join(spans_lib.span_dir(str(spec_root / "feed"), 4), "u.data"),
      str(spec_root / "feed" / "u.user"), 5)
  probability = loaded.signatures["serving_default"](
      examples=tf.constant(serialized))["probability"].numpy()
  assert probability.shape == (5,) and ((probability >= 0) & (probability <= 1)).all()
