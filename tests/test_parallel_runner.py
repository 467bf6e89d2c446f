"""The local runner's second process: a node named to run beside runs at the same time as
the next node, in another process, with the same ML Metadata records; its failure fails the
run naming it; a failure beside it stops it and marks it CANCELED.

Real TFX pipelines of small components (tests/parallel_nodes.py) on SQLite ML Metadata.
"""

import errno
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline

from pipeline import parallel_runner, store as store_lib
from tests import parallel_nodes
from tests.conftest import REPO

COMPLETE = metadata_store_pb2.Execution.COMPLETE
FAILED = metadata_store_pb2.Execution.FAILED
CANCELED = metadata_store_pb2.Execution.CANCELED


def small_pipeline(root: pathlib.Path, a: dict, b: dict) -> tfx_pipeline.Pipeline:
  """Source -> A, B -> Join, on SQLite ML Metadata under `root`."""
  source = parallel_nodes.Source().with_id("Source")
  step_a = parallel_nodes.Step(source=source.outputs["out"], **a).with_id("A")
  step_b = parallel_nodes.Step(source=source.outputs["out"], **b).with_id("B")
  join = parallel_nodes.Join(a=step_a.outputs["out"], b=step_b.outputs["out"]).with_id("Join")
  return tfx_pipeline.Pipeline(
      pipeline_name="parallel", pipeline_root=str(root / "root"),
      components=[source, step_a, step_b, join], enable_cache=False,
      metadata_connection_config=metadata.sqlite_metadata_connection_config(
          str(root / "metadata.sqlite")))


def _states(root: pathlib.Path) -> dict:
  store = store_lib.open_readonly(str(root / "metadata.sqlite"))
  return {c.name.split(".", 1)[1]: [e.last_known_state
                                    for e in store.get_executions_by_context(c.id)]
          for c in store.get_contexts_by_type("node")}


def _pid(root: pathlib.Path, node: str) -> int:
  (value,) = (root / "root" / node / "out").glob("*/value")
  return int(value.read_text())


def _run(tmp_path, a, b, beside=("B",)):
  runner = parallel_runner.LocalDagRunner(beside=beside, log_file=str(tmp_path / "run.log"))
  runner.run(small_pipeline(tmp_path, a, b))


def test_a_node_beside_runs_at_the_same_time_in_another_process(tmp_path):
  # A waits for the file B writes and B for A's: only concurrent steps both finish.
  _run(tmp_path, a=dict(touch=str(tmp_path / "a"), wait_for=str(tmp_path / "b")),
       b=dict(touch=str(tmp_path / "b"), wait_for=str(tmp_path / "a")))
  assert _states(tmp_path) == {n: [COMPLETE] for n in ("Source", "A", "B", "Join")}
  assert _pid(tmp_path, "A") == _pid(tmp_path, "Source") == _pid(tmp_path, "Join") == os.getpid()
  assert _pid(tmp_path, "B") != os.getpid()
  assert "INFO:absl:" in (tmp_path / "run.log").read_text()  # the child's TFX log went there


def test_a_node_beside_a_quick_one_runs_here_after_it(tmp_path):
  # A ends long before START_BESIDE_AFTER_SECONDS (as a node found in TFX's cache does):
  # B is not worth a process that first spends seconds on imports.
  _run(tmp_path, a={}, b={})
  assert {_pid(tmp_path, n) for n in ("Source", "A", "B", "Join")} == {os.getpid()}
  assert _states(tmp_path) == {n: [COMPLETE] for n in ("Source", "A", "B", "Join")}


def test_a_node_that_cannot_start_beside_runs_here_after(tmp_path, monkeypatch, caplog):
  def no_process(*args):
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(parallel_runner, "_Child", no_process)
  # A runs long enough for B's start to be tried (and to fail).
  go = threading.Timer(parallel_runner.START_BESIDE_AFTER_SECONDS + 2, (tmp_path / "go").touch)
  go.start()
  _run(tmp_path, a=dict(wait_for=str(tmp_path / "go")), b={})
  assert "Component B could not start beside: [Errno 28] No space left" in caplog.text
  assert {_pid(tmp_path, n) for n in ("Source", "A", "B", "Join")} == {os.getpid()}
  assert _states(tmp_path) == {n: [COMPLETE] for n in ("Source", "A", "B", "Join")}


def test_without_nodes_beside_everything_runs_here_in_order(tmp_path):
  _run(tmp_path, a={}, b={}, beside=())
  assert {_pid(tmp_path, n) for n in ("Source", "A", "B", "Join")} == {os.getpid()}


def test_a_failure_beside_fails_the_run_naming_the_node(tmp_path):
  with pytest.raises(parallel_runner.NodeProcessError, match="^B: RuntimeError: step failed") \
      as raised:
    _run(tmp_path, a=dict(wait_for=str(tmp_path / "b")),
         b=dict(touch=str(tmp_path / "b"), fail=1))
  assert raised.value.node_id == "B"
  states = _states(tmp_path)
  assert states["A"] == [COMPLETE] and states["B"] == [FAILED]
  assert "Join" not in states  # nothing after a failure starts


def test_the_node_beside_is_stopped_when_the_node_here_fails(tmp_path):
  # B has started (it wrote b-started) and would wait two minutes for a file nobody writes.
  with pytest.raises(Exception, match="step failed as asked"):
    _run(tmp_path, a=dict(wait_for=str(tmp_path / "b-started"), fail=1),
         b=dict(touch=str(tmp_path / "b-started"), wait_for=str(tmp_path / "never")))
  states = _states(tmp_path)
  assert states["A"] == [FAILED]
  assert states["B"] == [CANCELED]
  assert "Join" not in states


def _start_run_process(tmp_path: pathlib.Path) -> subprocess.Popen:
  """A process running the pipeline under `uet run`'s SIGTERM handling; A and B both wait
  for a file nobody writes, after touching a-started and b-started."""
  script = (
      "import pathlib\n"
      "from pipeline import cancel\n"
      "from tests import test_parallel_runner as t\n"
      f"root = pathlib.Path({str(tmp_path)!r})\n"
      "with cancel.cancel_on_sigterm():\n"
      "  t._run(root, a=dict(touch=str(root / 'a-started'), wait_for=str(root / 'never')),\n"
      "         b=dict(touch=str(root / 'b-started'), wait_for=str(root / 'never')))\n")
  proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,  # pylint: disable=consider-using-with
                          env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  deadline = time.monotonic() + 120
  while not ((tmp_path / "a-started").exists() and (tmp_path / "b-started").exists()):
    assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
    assert time.monotonic() < deadline, "the two steps never ran at the same time"
    time.sleep(0.1)
  return proc


def _gone(pid: int, seconds: float = 30.0) -> bool:
  deadline = time.monotonic() + seconds
  while time.monotonic() < deadline:
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return True
    time.sleep(0.1)
  return False


def test_sigterm_stops_the_node_here_and_the_node_beside(tmp_path):
  proc = _start_run_process(tmp_path)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(60) != 0
  states = _states(tmp_path)
  assert states["A"] == [FAILED]      # TFX's record; `uet run` then marks the run CANCELED
  assert states["B"] == [CANCELED]
  assert "Join" not in states
  assert _gone(int((tmp_path / "b-started").read_text()))


def test_the_node_beside_stops_when_the_run_is_killed(tmp_path):
  proc = _start_run_process(tmp_path)
  proc.kill()  # SIGKILL: nothing in the run process gets to stop the child
  proc.wait(30)
  assert _gone(int((tmp_path / "b-started").read_text()))
  # The child's launcher recorded its own end; the next `uet run` marks what is left.
  assert _states(tmp_path)["B"] == [FAILED]
