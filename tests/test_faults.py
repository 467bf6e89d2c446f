"""Faults of an unattended pipeline: killed mid-run, run twice at once, a crippled candidate.

One output directory goes through: a real `uet run` process killed with SIGKILL while the
CandidateTrainer runs (a second `uet run` started meanwhile refuses, exit 3); the same command
again, which resumes from the cache and pushes exactly one model; then a candidate crippled to
one embedding row per table, which the Evaluator does not bless and the Pusher does not push.
(The atomic push itself, killed mid-copy, is tested in test_atomic_pusher.py.)
"""

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
from typing import List

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import ids, lock, progress
from pipeline.exit_codes import EXIT_LOCKED
from tests import runs
from tests.conftest import REPO, write_movielens_slice

pytestmark = pytest.mark.pipeline

UPSTREAM_OF_CANDIDATE = (
    ids.EXAMPLE_GEN, ids.STATISTICS_GEN, ids.SCHEMA_GEN,
    ids.EXAMPLE_VALIDATOR, ids.VALIDATION_GATE, ids.TRANSFORM,
    ids.BASELINE_TRAINER)


@dataclasses.dataclass
class Resumed:
  root: pathlib.Path
  data: pathlib.Path
  output: pathlib.Path
  config: str
  started: List[str]               # components the killed run had started, in order
  second_run: subprocess.CompletedProcess   # a `uet run` started while the first ran
  first_holder_pid: int
  after_kill: dict                 # what the output directory held right after the kill
  code: int
  stdout: str
  stderr: str
  summary: dict

  @property
  def serving(self) -> str:
    return str(self.output / "serving")


def _uet(*args) -> List[str]:
  return [runs.executable(), "run", *[str(a) for a in args]]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> Resumed:
  root = tmp_path_factory.mktemp("faults")
  data = write_movielens_slice(root / "ml", 3000, every=25)
  output = root / "out"
  config = runs.write_config(root / "config.json")
  args = ("--data-dir", data, "--output-dir", output, "--config", config)
  proc = subprocess.Popen(_uet(*args), cwd=REPO, env=runs.python_env(), text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  started, second = [], None
  try:
    for line in proc.stderr:
      match = progress.STARTED_LINE.match(line.strip())
      if not match:
        continue
      started.append(match.group(1))
      if second is None:
        # The first run is under way: a second one on the same output must refuse.
        second = subprocess.run(_uet(*args), cwd=REPO, env=runs.python_env(), text=True,
                                capture_output=True, timeout=600)
      if match.group(1) == ids.CANDIDATE_TRAINER:
        proc.send_signal(signal.SIGKILL)
        break
  finally:
    proc.kill()
    proc.wait()
    proc.stderr.close()
  assert started and started[-1] == ids.CANDIDATE_TRAINER, started
  after_kill = {
      "versions": runs.versions(str(output / "serving")),
      "summary_written": (output / "last_run.json").exists(),
      "candidate_states": [e.last_known_state for e in runs.executions_of(
          str(output), ids.CANDIDATE_TRAINER)],
  }
  code, stdout, stderr = runs.uet_run(args)
  assert code == 0, stderr
  summary = json.loads((output / "last_run.json").read_text())
  return Resumed(root, data, output, config, started, second, proc.pid, after_kill, code,
                 stdout, stderr, summary)


def test_a_second_run_on_the_same_output_refuses_while_the_first_runs(resumed):
  second = resumed.second_run
  assert second.returncode == EXIT_LOCKED, second.stderr
  assert (f"{resumed.output} is in use by uet run (pid {resumed.first_holder_pid}), which "
          "is writing there") in second.stderr
  assert "or use another output directory" in second.stderr
  assert "FAILED" not in second.stderr     # it refused; it did not start a pipeline


def test_a_run_refuses_before_touching_a_locked_output(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 100)
  output = tmp_path / "out"
  with lock.output_lock(str(output)):
    second = subprocess.run(_uet("--data-dir", data, "--output-dir", output), cwd=REPO,
                            env=runs.python_env(), text=True, capture_output=True,
                            timeout=600)
  assert second.returncode == EXIT_LOCKED, second.stderr
  assert f"is in use by uet run (pid {os.getpid()})" in second.stderr
  # Nothing written: no metadata store, no log, no dataset copy.
  assert os.listdir(output) == [lock.LOCK_FILE]


def test_the_killed_run_left_nothing_pushed_and_metadata_readable(resumed):
  assert resumed.after_kill["versions"] == []
  assert not resumed.after_kill["summary_written"]
  # Killed during the CandidateTrainer: it never completed (it may not even be registered).
  assert metadata_store_pb2.Execution.COMPLETE not in resumed.after_kill["candidate_states"]
  assert metadata_store_pb2.Execution.CACHED not in resumed.after_kill["candidate_states"]


def test_the_rerun_marks_what_the_killed_run_left_running_as_failed(resumed):
  left_running = [state for state in resumed.after_kill["candidate_states"]
                  if state in (metadata_store_pb2.Execution.NEW,
                               metadata_store_pb2.Execution.RUNNING)]
  killed = runs.executions_of(str(resumed.output), ids.CANDIDATE_TRAINER)[
      :len(resumed.after_kill["candidate_states"])]
  if left_running:
    assert (f"marked {len(left_running)} execution(s) an earlier run left running as FAILED"
            in resumed.stderr)
  assert all(e.last_known_state == metadata_store_pb2.Execution.FAILED for e in killed)
  store = runs.metadata_store(str(resumed.output))
  assert not [e for e in store.get_executions() if e.last_known_state in (
      metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)]


def test_the_rerun_resumes_from_the_cache_and_pushes_exactly_one_model(resumed):
  components = resumed.summary["components"]
  assert {c: components[c] for c in UPSTREAM_OF_CANDIDATE} == {
      c: "cached" for c in UPSTREAM_OF_CANDIDATE}
  assert components[ids.CANDIDATE_TRAINER] == "complete"
  assert components[ids.PUSHER] == "complete"
  assert resumed.summary["succeeded"] and resumed.summary["blessed"]
  pushed = resumed.summary["pushed_model_dir"]
  assert os.listdir(resumed.serving) == [os.path.basename(pushed)]
  assert runs.pushed_models(str(resumed.output)) == [pushed]
  assert os.path.isfile(os.path.join(pushed, "saved_model.pb"))


def test_a_crippled_candidate_is_not_blessed_and_not_pushed(resumed):
  before = runs.serving_snapshot(resumed.serving)
  # One embedding row per shared table (the tutorial's explicit layout: the budget rule's
  # admission filter alone costs more than 16 parameters): every id looks the same to the
  # model. Evaluated with the default thresholds.
  crippled = runs.write_config(resumed.root / "crippled.json", {
      "training": {"epochs": 1, "batch_size": 512},
      "candidate": {"layout": "explicit", "embedding_budget": 16}})
  code, stdout, stderr = runs.uet_run(["--data-dir", resumed.data, "--output-dir",
                                       resumed.output, "--config", crippled, "--cold-start"])
  assert code == 0, stderr
  summary = json.loads((resumed.output / "last_run.json").read_text())
  components = summary["components"]
  assert components[ids.CANDIDATE_TRAINER] == "complete"
  assert components[ids.BASELINE_TRAINER] == "cached"
  assert components[ids.EVALUATOR] == "complete"
  assert summary["blessed"] is False and summary["pushed_model_dir"] is None
  assert components.get(ids.PUSHER) != "complete"
  assert "blessed: no" in stdout and "pushed to: (not pushed)" in stdout
  # It is the model that fails, not just the AUC floor of a small slice: it does not beat
  # the same hash baseline by the required gain (the healthy candidate above did).
  assert summary["candidate_auc"] < summary["baseline_auc"] + 0.01
  assert resumed.summary["candidate_auc"] > resumed.summary["baseline_auc"] + 0.01
  assert runs.serving_snapshot(resumed.serving) == before
  assert runs.pushed_models(str(resumed.output)) == [resumed.summary["pushed_model_dir"]]
