"""The compiled pipeline keeps `uet run`'s guarantees under bad input and faults.

The pipeline is compiled once for Vertex (`uet compile`) and run on this machine with
`uet run-spec`, each task in its own process as on Vertex. A first run on a good slice pushes
a model. Then, on the same pipeline root:

* every kind of bad input in `tests/bad_inputs.py` (the table `uet run` is held to in
  tests/test_bad_input.py) gets the same exit code and the same message, naming the file and
  line or the feature, from the same component;
* a second run on a root in use is refused (exit 3), as is a damaged run-spec store (exit 4);
* SIGTERM while Transform runs stops its process and reports "cancelled" (exit 143);
* a disk that fills up when Transform starts is named as such (exit 1), and with space freed
  the next run completes.

Every failure pushes nothing, leaves the models already pushed byte for byte and the run-spec
ML Metadata store readable. Real processes and the real pipeline: many minutes, marked
`pipeline`.
"""

import dataclasses
import io
import os
import pathlib
import re
import signal
import subprocess
import time
from typing import List

import pytest

from kubeflow import run_spec
from pipeline import lock, metadata_backup
from pipeline import ids
from pipeline.exit_codes import EXIT_CANCELLED, EXIT_FAILED, EXIT_LOCKED, EXIT_METADATA, EXIT_OK
from tests import bad_inputs, runs
from tests.conftest import REPO, write_movielens_slice

pytestmark = pytest.mark.pipeline

RUN_DIR = re.compile(r"artifacts under (\S+)")


@dataclasses.dataclass
class Compiled:
  root: pathlib.Path
  good: pathlib.Path        # the clean slice
  output: pathlib.Path      # the output directory compiled in (serving/, tfx/ under it)
  spec: pathlib.Path        # the PipelineJob `uet compile` wrote
  first_stderr: str

  @property
  def serving(self) -> str:
    return str(self.output / "serving")

  @property
  def pipeline_root(self) -> pathlib.Path:
    """Where the compiled pipeline keeps its runs and run-spec its store (OUTPUT/tfx)."""
    return pathlib.Path(run_spec.local_pipeline_root(run_spec.load(str(self.spec)), None))

  @property
  def store(self) -> pathlib.Path:
    return self.pipeline_root / run_spec.METADATA_FILE

  def argv(self, data: pathlib.Path, *extra) -> List[str]:
    return [runs.executable(), "run-spec", str(self.spec), "--parameter",
            f"data_dir={data}", *[str(a) for a in extra]]

  def run(self, data: pathlib.Path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(self.argv(data, *extra), cwd=REPO, env=runs.python_env(),
                          text=True, capture_output=True, timeout=1800)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Compiled:
  root = tmp_path_factory.mktemp("run_spec_failures")
  good = write_movielens_slice(root / "good", 3000, every=25)
  output = root / "out"
  config = runs.write_config(root / "config.json")
  spec = root / "pipeline.json"
  code, _, err = runs.uet(["compile", "--target", "vertex", "--pipeline-root", output,
                           "--data-dir", good, "--config", config, "--image", "local",
                           "--output", spec])
  assert code == EXIT_OK, err
  compiled = Compiled(root, good, output, spec, "")
  first = compiled.run(good)
  assert first.returncode == EXIT_OK, first.stderr
  compiled.first_stderr = first.stderr
  return compiled


def _assert_nothing_pushed(compiled: Compiled, before: dict, stderr: str,
                           store: pathlib.Path = None) -> None:
  assert "pushed to:" not in stderr
  assert runs.serving_snapshot(compiled.serving) == before
  assert metadata_backup.problem(str(store or compiled.store)) is None


def test_the_first_run_pushed_a_model(compiled):
  assert f"pushed to: {compiled.serving}/" in compiled.first_stderr
  assert len(runs.versions(compiled.serving)) == 1


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=lambda case: case.name)
def test_bad_input_stops_the_compiled_pipeline_as_it_stops_uet_run(compiled, case):
  data = bad_inputs.plant(compiled.good, compiled.root / case.name, case.ratings, case.users)
  before = runs.serving_snapshot(compiled.serving)
  done = compiled.run(data)
  assert done.returncode == case.exit_code, done.stderr
  if case.stops_at:
    assert f"uet run-spec: FAILED: task {case.stops_at} failed: " in done.stderr
    assert f"nothing after {case.stops_at} ran; nothing was pushed" in done.stderr
  else:
    assert "uet run-spec: error: " in done.stderr
    assert not RUN_DIR.search(done.stderr)  # refused before any task started
  for message in case.messages(data):
    assert message in done.stderr
  for message in case.never_says:
    assert message not in done.stderr
  _assert_nothing_pushed(compiled, before, done.stderr)


def test_a_run_on_a_pipeline_root_in_use_is_refused(compiled):
  before = runs.serving_snapshot(compiled.serving)
  with lock.output_lock(str(compiled.pipeline_root)):
    done = compiled.run(compiled.good)
  assert done.returncode == EXIT_LOCKED, done.stderr
  assert f"{compiled.pipeline_root} is in use by uet run (pid {os.getpid()})" in done.stderr
  assert not RUN_DIR.search(done.stderr)
  _assert_nothing_pushed(compiled, before, done.stderr)


def test_a_damaged_store_stops_the_run_naming_the_file_and_the_way_out(compiled):
  before = runs.serving_snapshot(compiled.serving)
  saved = compiled.store.read_bytes()
  compiled.store.write_bytes(saved[:4096])  # what a full disk or a crash mid-copy leaves
  try:
    done = compiled.run(compiled.good)
  finally:
    compiled.store.write_bytes(saved)
  assert done.returncode == EXIT_METADATA, done.stderr
  assert (f"uet run-spec: error: {compiled.store}: the run-spec ML Metadata store is "
          "unreadable (") in done.stderr
  assert f"Move it aside (mv {compiled.store} {compiled.store}.bad)" in done.stderr
  assert not RUN_DIR.search(done.stderr)
  _assert_nothing_pushed(compiled, before, done.stderr)


def _processes_in(directory: str) -> List[int]:
  """Pids of the processes whose working directory is `directory` (tasks run there)."""
  pids = []
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      if os.readlink(f"/proc/{pid}/cwd") == directory:
        pids.append(int(pid))
    except OSError:
      continue
  return pids


def test_sigterm_stops_the_running_task_and_reports_cancelled(compiled):
  before = runs.serving_snapshot(compiled.serving)
  proc = subprocess.Popen(compiled.argv(compiled.good), cwd=REPO, env=runs.python_env(),
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  lines = []
  try:
    for line in proc.stderr:
      lines.append(line)
      if line.strip() == f"{ids.TRANSFORM} ...":
        time.sleep(5)  # inside the Transform task's process (its Beam pipeline takes longer)
        proc.send_signal(signal.SIGTERM)
        break
    _, rest = proc.communicate(timeout=600)
  finally:
    proc.kill()
    proc.wait()
  stderr = "".join(lines) + rest
  assert proc.returncode == EXIT_CANCELLED, stderr
  assert ("uet run-spec: CANCELLED: cancelled by SIGTERM while Transform ran; its process "
          "was stopped") in stderr
  assert "nothing after it ran; nothing was pushed" in stderr
  assert f"{ids.TRANSFORM} done" not in stderr
  run_dir = RUN_DIR.search(stderr).group(1)
  assert _processes_in(run_dir) == []  # the task's process ended with the run
  _assert_nothing_pushed(compiled, before, stderr)
  with lock.output_lock(str(compiled.pipeline_root)):  # released: the next run can start
    pass


class _FillWhenStarting(io.StringIO):
  """The run's standard error; fills the disk when the run announces `task` (the line is
  printed just before the task's process starts)."""

  def __init__(self, task: str, directory: pathlib.Path):
    super().__init__()
    self.task, self.directory, self.filled = task, directory, False

  def write(self, text: str) -> int:
    if text == f"{self.task} ..." and not self.filled:
      runs.fill(self.directory)
      self.filled = True
    return super().write(text)


def test_a_full_disk_is_named_and_with_space_freed_the_next_run_completes(compiled):
  tmpfs = compiled.root / "small-disk"
  with runs.small_tmpfs(tmpfs):
    before = runs.serving_snapshot(compiled.serving)
    versions = runs.versions(compiled.serving)
    watch = _FillWhenStarting(ids.TRANSFORM, tmpfs)
    args = ["run-spec", compiled.spec, "--pipeline-root", tmpfs, "--parameter",
            f"data_dir={compiled.good}"]
    code, _, stderr = runs.uet(args, err=watch)
    assert watch.filled, stderr
    assert code == EXIT_FAILED, stderr
    assert f"uet run-spec: FAILED: task {ids.TRANSFORM} failed: " in stderr
    assert f"no space left on the device of {tmpfs} (" in stderr
    assert ("Free space (or use another --pipeline-root) and run again: every task runs "
            "again") in stderr
    _assert_nothing_pushed(compiled, before, stderr, tmpfs / run_spec.METADATA_FILE)
    runs.free(tmpfs)
    code, _, stderr = runs.uet(args)
    assert code == EXIT_OK, stderr
    # It ran to the end; whether it pushed is the gates' decision, at most one version.
    assert f"{ids.PUSHER} done" in stderr or "skipped" in stderr
    assert len(runs.versions(compiled.serving)) - len(versions) in (0, 1)
