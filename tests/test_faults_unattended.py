"""Faults of an unattended schedule: a cancelled run, a full disk, a damaged metadata store.

One output directory, on a small tmpfs mounted for the test, goes through what a year of
scheduled runs may bring, in order:

1. a real `uet run` process gets SIGTERM while Transform runs: it stops, reports "cancelled"
   (exit 143), pushes nothing and leaves ML Metadata readable, with Transform CANCELED;
2. the disk fills up when Transform starts, 3. when the BaselineTrainer starts, 4. when the
   Pusher starts: each run fails with a message that says the disk is full and what to do,
   pushes nothing, leaves no partial version directory and ML Metadata readable; each next
   run (space freed) resumes from the components completed before;
5. with space freed, the run completes and pushes exactly one model;
6. the store is cut to its first 4 KiB: `uet run` stops at once (exit 4), naming the file and
   both ways out; 7. `uet restore-metadata` puts the last-good copy back and the next run is
   a cache hit; 8. with the store moved aside, the next run retrains from scratch and pushes a
   newer version; the pushed one stays byte for byte.

The disk fills at the moment the component starts (a logging hook on the "Component X is
running." record, which the local runner logs just before launching it), leaving 128 KiB:
enough for ML Metadata to register the execution, far less than what each phase writes on
this slice (measured: Transform 360 KiB, a Trainer 880 KiB, the Pusher 1.7 MiB).
"""

import dataclasses
import json
import logging
import os
import pathlib
import re
import signal
import subprocess
import time
from typing import Dict, List, Optional

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import ids, metadata_backup, progress
from pipeline.exit_codes import EXIT_CANCELLED, EXIT_FAILED, EXIT_METADATA, EXIT_OK
from tests import runs
from tests.conftest import REPO, write_movielens_slice
from uet_upstream import tfx as upstream_tfx

pytestmark = pytest.mark.pipeline

UPSTREAM_OF_TRANSFORM = (ids.EXAMPLE_GEN, ids.STATISTICS_GEN,
                         ids.SCHEMA_GEN, ids.EXAMPLE_VALIDATOR,
                         ids.VALIDATION_GATE)


@dataclasses.dataclass
class Outcome:
  """What one `uet run` left behind."""
  code: int
  stdout: str
  stderr: str
  summary: dict
  versions: List[str]
  staging: List[str]
  states: Dict[str, List[int]]     # node id -> execution states, oldest first
  store_problem: Optional[str]     # None: the store passes SQLite's quick_check


@dataclasses.dataclass
class Schedule:
  root: pathlib.Path
  output: pathlib.Path
  outcomes: Dict[str, Outcome]
  cancel_seconds: float            # SIGTERM to process exit
  serving_after_push: Dict[str, str]
  restore_stdout: str
  restore_code: int


class _FillWhenStarting(logging.Handler):
  """Fills the disk when LocalDagRunner launches `component` (its log record precedes the
  launch, in the same thread)."""

  def __init__(self, component: str, directory: pathlib.Path):
    super().__init__(level=logging.INFO)
    self.component, self.directory, self.filled = component, directory, False
    self.error: Optional[BaseException] = None

  def emit(self, record: logging.LogRecord) -> None:
    if (record.msg == upstream_tfx.LAUNCH_RECORD and record.args
        and str(record.args[0]) == self.component and not self.filled):
      try:
        runs.fill(self.directory)
        self.filled = True
      except Exception as e:  # pylint: disable=broad-except
        self.error = e  # logging would print and swallow it; _run raises it instead


def _states(output: pathlib.Path) -> Dict[str, List[int]]:
  nodes = {}
  store = runs.metadata_store(str(output))
  for context in store.get_contexts_by_type("node"):
    node = context.name.split(".", 1)[1]
    nodes[node] = [e.last_known_state for e in sorted(
        store.get_executions_by_context(context.id), key=lambda e: e.id)]
  return nodes


def _outcome(output: pathlib.Path, code: int, stdout: str, stderr: str) -> Outcome:
  summary_file = output / "last_run.json"
  serving = output / "serving"
  problem = metadata_backup.problem(str(output / "metadata.sqlite"))
  return Outcome(
      code, stdout, stderr,
      json.loads(summary_file.read_text()) if summary_file.exists() else {},
      runs.versions(str(serving)),
      [n for n in os.listdir(serving) if n.startswith(".staging-")] if serving.is_dir() else [],
      _states(output) if problem is None else {}, problem)


def _run(args, output: pathlib.Path, fill_at: Optional[str] = None) -> Outcome:
  hook = _FillWhenStarting(fill_at, output) if fill_at else None
  absl_logger = logging.getLogger("absl")
  if hook:
    absl_logger.addHandler(hook)
  try:
    code, stdout, stderr = runs.uet_run(args)
  finally:
    if hook:
      absl_logger.removeHandler(hook)
  if hook and hook.error:
    raise AssertionError(f"could not fill the disk when {fill_at} started") from hook.error
  if hook:
    assert hook.filled, f"{fill_at} never started:\n{stderr}"
  outcome = _outcome(output, code, stdout, stderr)
  runs.free(output)
  return outcome


def _cancel_during_transform(args, output: pathlib.Path) -> (Outcome, float):
  proc = subprocess.Popen([runs.executable(), "run", *[str(a) for a in args]], cwd=REPO,
                          env=runs.python_env(), text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
  lines = []
  try:
    for line in proc.stderr:
      lines.append(line)
      match = progress.STARTED_LINE.match(line.strip())
      if match and match.group(1) == ids.TRANSFORM:
        # Inside Transform's Beam pipeline: on this slice it takes a few seconds since it
        # writes no vocabularies (f23c046); 5 s after its start it had already finished.
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        break
    stdout, rest = proc.communicate(timeout=600)
    seconds = time.monotonic() - sent
  finally:
    proc.kill()
    proc.wait()
  return _outcome(output, proc.returncode, stdout, "".join(lines) + rest), seconds


@pytest.fixture(scope="module")
def schedule(tmp_path_factory) -> Schedule:
  root = tmp_path_factory.mktemp("unattended")
  output = root / "out"
  with runs.small_tmpfs(output):
    data = write_movielens_slice(root / "ml", 3000, every=25)
    config = runs.write_config(root / "config.json")
    args = ["--data-dir", data, "--output-dir", output, "--config", config]
    outcomes = {}
    outcomes["cancelled"], cancel_seconds = _cancel_during_transform(args, output)
    for phase, component in (("transform", ids.TRANSFORM),
                             ("training", ids.BASELINE_TRAINER),
                             ("push", ids.PUSHER)):
      outcomes[f"full during {phase}"] = _run(args, output, fill_at=component)
    outcomes["space freed"] = _run(args, output)
    serving_after_push = runs.serving_snapshot(str(output / "serving"))
    store = output / "metadata.sqlite"
    store.write_bytes(store.read_bytes()[:4096])
    outcomes["damaged store"] = _run(args, output)
    restore_code, restore_stdout, _ = _restore(output)
    outcomes["restored"] = _run(args, output)
    store.rename(output / "metadata.sqlite.bad")
    outcomes["no store"] = _run(args, output)
    # For the README: how long the cancelled run took to exit, what each failure printed.
    (root / "measured.json").write_text(json.dumps(
        {"cancel_seconds": cancel_seconds,
         "stderr": {k: o.stderr[-3000:] for k, o in outcomes.items()}}, indent=1))
    yield Schedule(root, output, outcomes, cancel_seconds, serving_after_push,
                   restore_stdout, restore_code)


def _restore(output: pathlib.Path):
  import contextlib  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  from tools import cli  # pylint: disable=g-import-not-at-top
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main(["restore-metadata", "--output-dir", str(output)])
  return code, out.getvalue(), err.getvalue()


def _assert_nothing_pushed_and_store_readable(outcome: Outcome) -> None:
  assert outcome.versions == [] and outcome.staging == []
  assert "pushed to:" not in outcome.stdout
  assert outcome.store_problem is None
  assert not outcome.summary.get("pushed_model_dir")


# --- 1. SIGTERM ---

def test_sigterm_cancels_the_running_component_and_reports_it(schedule):
  cancelled = schedule.outcomes["cancelled"]
  assert cancelled.code == EXIT_CANCELLED, cancelled.stderr
  assert (f"uet run: CANCELLED: cancelled by SIGTERM while {ids.TRANSFORM} ran; it "
          "was stopped and is recorded as CANCELED in ML Metadata") in cancelled.stderr
  assert "the next run resumes from the completed components" in cancelled.stderr
  assert "Traceback" not in cancelled.stderr
  assert re.search(rf"\] {ids.TRANSFORM} done in [0-9.]+s \(CANCELED\)",
                   cancelled.stderr), cancelled.stderr
  assert "(FAILED)" not in cancelled.stderr
  _assert_nothing_pushed_and_store_readable(cancelled)
  assert cancelled.states[ids.TRANSFORM] == [metadata_store_pb2.Execution.CANCELED]
  for node in UPSTREAM_OF_TRANSFORM:
    assert cancelled.states[node] == [metadata_store_pb2.Execution.COMPLETE], node
  assert metadata_store_pb2.Execution.RUNNING not in sum(cancelled.states.values(), [])
  assert cancelled.summary["cancelled"] is True
  assert cancelled.summary["failed_component"] == ids.TRANSFORM
  assert ids.BASELINE_TRAINER not in cancelled.states


def test_a_cancelled_run_releases_the_lock_and_the_next_resumes(schedule):
  # The next run (the disk-full one) took the lock and reused everything before Transform.
  after = schedule.outcomes["full during transform"]
  assert "is in use by" not in after.stderr
  components = after.summary["components"]
  assert {c: components[c] for c in UPSTREAM_OF_TRANSFORM} == {
      c: "cached" for c in UPSTREAM_OF_TRANSFORM}


# --- 2-4. A full disk ---

@pytest.mark.parametrize("phase, component", [
    ("transform", ids.TRANSFORM),
    ("training", ids.BASELINE_TRAINER),
    ("push", ids.PUSHER)])
def test_a_full_disk_fails_clearly_pushes_nothing_and_keeps_the_store(schedule, phase,
                                                                      component):
  full = schedule.outcomes[f"full during {phase}"]
  assert full.code == EXIT_FAILED, full.stderr
  assert (f"uet run: FAILED: component {component} failed: OSError: [Errno 28] no space left "
          f"on the device of {schedule.output} (") in full.stderr
  assert ("Free space (or use another --output-dir) and run again: completed components are "
          "reused") in full.stderr
  _assert_nothing_pushed_and_store_readable(full)
  # The failed component did not complete (ML Metadata marks it FAILED, or RUNNING when
  # the disk was too full to record the failure).
  assert full.states[component][-1] in (metadata_store_pb2.Execution.FAILED,
                                        metadata_store_pb2.Execution.RUNNING)


def test_after_a_full_disk_each_run_resumes_where_the_last_stopped(schedule):
  training = schedule.outcomes["full during training"].summary["components"]
  assert training[ids.TRANSFORM] == "complete"   # failed last time, done now
  push = schedule.outcomes["full during push"].summary["components"]
  assert push[ids.TRANSFORM] == "cached"
  assert push[ids.BASELINE_TRAINER] == "complete"
  assert push[ids.EVALUATOR] == "complete"


def test_with_space_freed_the_run_completes_and_pushes_once(schedule):
  freed = schedule.outcomes["space freed"]
  assert freed.code == EXIT_OK, freed.stderr
  components = freed.summary["components"]
  assert components[ids.PUSHER] == "complete"
  assert all(components[c] == "cached" for c in (
      *UPSTREAM_OF_TRANSFORM, ids.TRANSFORM, ids.BASELINE_TRAINER,
      ids.CANDIDATE_TRAINER, ids.EVALUATOR))
  assert len(freed.versions) == 1 and freed.staging == []
  assert freed.summary["pushed_model_dir"] == str(schedule.output / "serving" /
                                                  freed.versions[0])
  # Every successful run leaves the copy `uet restore-metadata` puts back.
  assert metadata_backup.problem(
      str(schedule.output / metadata_backup.LAST_GOOD_FILE)) is None


# --- 6-8. A damaged metadata store ---

def test_a_damaged_store_stops_the_run_naming_the_file_and_both_ways_out(schedule):
  damaged = schedule.outcomes["damaged store"]
  store = schedule.output / "metadata.sqlite"
  assert damaged.code == EXIT_METADATA, damaged.stderr
  assert (f"uet run: error: {store}: the ML Metadata store is unreadable (database disk "
          "image is malformed)") in damaged.stderr
  assert f"uet restore-metadata --output-dir {schedule.output}" in damaged.stderr
  assert f"mv {store} {store}.bad" in damaged.stderr
  assert "Traceback" not in damaged.stderr
  assert damaged.versions == schedule.outcomes["space freed"].versions


def test_restore_metadata_brings_back_the_last_good_store(schedule):
  assert schedule.restore_code == EXIT_OK
  assert "restored" in schedule.restore_stdout and ".damaged-" in schedule.restore_stdout
  restored = schedule.outcomes["restored"]
  assert restored.code == EXIT_OK, restored.stderr
  assert set(restored.summary["components"].values()) == {"cached"}
  assert restored.versions == schedule.outcomes["space freed"].versions


def test_without_a_store_the_run_retrains_from_scratch_and_keeps_pushed_models(schedule):
  fresh = schedule.outcomes["no store"]
  assert fresh.code == EXIT_OK, fresh.stderr
  assert "no metadata store: starting a new one and retraining from scratch" in fresh.stderr
  components = fresh.summary["components"]
  assert components[ids.TRANSFORM] == "complete"
  assert components[ids.CANDIDATE_TRAINER] == "complete"
  old = schedule.outcomes["space freed"].versions
  assert len(fresh.versions) == 2 and fresh.versions[0] == old[0]
  assert int(fresh.versions[1]) > int(old[0])
  snapshot = runs.serving_snapshot(str(schedule.output / "serving"))
  assert {k: v for k, v in snapshot.items() if k.startswith(f"{old[0]}/")} == \
      schedule.serving_after_push
  assert [p for p in os.listdir(schedule.output) if p.startswith("tfx.orphaned-")]
