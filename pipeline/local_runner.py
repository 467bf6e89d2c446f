"""Runs `create_pipeline(config)` locally: LocalDagRunner, Beam DirectRunner, SQLite MLMD.

Shows each component as it starts and finishes, as ML Metadata records it, then reads the
outcome from ML Metadata and writes it to OUTPUT/last_run.json. The caller holds the output
directory's lock (`pipeline.lock.output_lock`).
"""

import json
import logging
import os
import sys
import threading
import time
from typing import Any, Dict, Optional, Set, TextIO

import absl.logging
import ml_metadata as mlmd
from tfx.orchestration import metadata
from tfx.orchestration.local import local_dag_runner

from pipeline import results, store as store_lib
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline

SUMMARY_FILE = "last_run.json"


class PipelineRunError(RuntimeError):
  """A component failed; `component` names it; `summary` is what OUTPUT/last_run.json says."""

  def __init__(self, component: Optional[str], cause: BaseException):
    self.component = component
    self.cause = cause
    self.summary: Dict[str, Any] = {}
    where = f"component {component} failed" if component else "the pipeline failed"
    super().__init__(f"{where}: {type(cause).__name__}: {cause}")


class ProgressMonitor:
  """Prints one line when a component starts and one when it ends, as ML Metadata says.

  ML Metadata is the one record of run status (the summary reads it too): a background
  thread polls the store, read-only, for executions registered after the run began.
  Resolver nodes only look artifacts up and are not shown.
  """

  def __init__(self, metadata_path: str, pipeline_name: str, stream: TextIO,
               interval: float = 0.5):
    self._path = metadata_path
    self._prefix = f"{pipeline_name}."
    self._stream = stream
    self._interval = interval
    self._start = time.perf_counter()
    self._first_id = self._max_execution_id()
    self._nodes: Dict[int, Optional[str]] = {}   # execution id -> node id (None: resolver)
    self._shown: Dict[int, Set[str]] = {}        # execution id -> states printed
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, name="uet-progress", daemon=True)

  def _max_execution_id(self) -> int:
    if not os.path.exists(self._path):
      return 0
    return max((e.id for e in store_lib.open_readonly(self._path).get_executions()), default=0)

  def __enter__(self) -> "ProgressMonitor":
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    self._thread.join()
    self.poll()  # the final states

  def _loop(self) -> None:
    while not self._stop.wait(self._interval):
      try:
        self.poll()
      except Exception:  # pylint: disable=broad-except
        # The writer may hold SQLite's lock mid-transaction; the next poll sees the state.
        pass

  def _node_id(self, store, execution, node_type: int) -> Optional[str]:
    if execution.id not in self._nodes:
      node = None
      for context in store.get_contexts_by_execution(execution.id):
        if context.type_id == node_type and context.name.startswith(self._prefix):
          node = context.name[len(self._prefix):]
      self._nodes[execution.id] = node
    return self._nodes[execution.id]

  def poll(self) -> None:
    """Prints what changed since the last poll."""
    if not os.path.exists(self._path):
      return
    store = store_lib.open_readonly(self._path)
    try:
      node_type = store.get_context_type("node").id
    except mlmd.errors.NotFoundError:
      return  # no component has registered yet
    resolver = results.resolver_type_id(store)
    for execution in sorted(store.get_executions(), key=lambda e: e.id):
      if execution.id <= self._first_id or execution.type_id == resolver:
        continue
      node = self._node_id(store, execution, node_type)
      if node is None:
        continue
      state = results.execution_state(execution)
      shown = self._shown.setdefault(execution.id, set())
      if "start" not in shown and state in ("new", "running"):
        shown.add("start")
        self._print(f"{node} ...")
      if state in ("complete", "cached", "failed", "canceled") and "end" not in shown:
        shown.add("end")
        seconds = (execution.last_update_time_since_epoch -
                   execution.create_time_since_epoch) / 1000.0
        note = {"complete": "", "cached": " (cached)"}.get(state, f" ({state.upper()})")
        self._print(f"{node} done in {seconds:.1f}s{note}")

  def _print(self, text: str) -> None:
    elapsed = time.perf_counter() - self._start
    self._stream.write(f"[{elapsed:6.1f}s] {text}\n")
    self._stream.flush()


def run(config: PipelineConfig, stream: TextIO = sys.stderr,
        log_file: Optional[str] = None) -> Dict[str, Any]:
  """Runs the pipeline and returns (and saves) its summary.

  The caller holds the output directory's lock (`pipeline.lock.output_lock`).

  Args:
    config: the run's configuration.
    stream: where progress lines go.
    log_file: where TFX's full INFO log goes (default OUTPUT/logs/run-<time>.log).

  Returns:
    The summary dict written to OUTPUT/last_run.json.

  Raises:
    PipelineRunError: a component failed (the summary is still written, with the error).
  """
  pipeline = create_pipeline(config)
  pipeline.metadata_connection_config = (
      metadata.sqlite_metadata_connection_config(config.metadata_path))
  log_file = log_file or os.path.join(
      config.output_dir, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))
  start = time.perf_counter()
  error: Optional[BaseException] = None
  with _LogsToFile(log_file):
    with ProgressMonitor(config.metadata_path, config.pipeline_name, stream):
      try:
        local_dag_runner.LocalDagRunner().run(pipeline)
      except Exception as e:  # the failing component is named below, then the run stops
        error = e
  elapsed = time.perf_counter() - start
  summary = results.summarize(config.metadata_path, config.pipeline_name)
  failed = [node for node, state in summary["components"].items() if state == "failed"]
  run_error = PipelineRunError(failed[0] if failed else None, error) if error else None
  if not error:
    # A node without an execution in a completed run was skipped by its condition.
    for node in pipeline.components:
      if node.id not in summary["components"] and node.id not in summary["resolvers"]:
        stream.write(f"{node.id} skipped (condition not met)\n")
  summary.update({
      "succeeded": error is None,
      "error": str(run_error) if run_error else None,
      "failed_component": run_error.component if run_error else None,
      "seconds": round(elapsed, 1),
      "data_dir": config.data_dir,
      "output_dir": config.output_dir,
      "log_file": log_file,
      "config": config.to_dict(),
  })
  tmp = os.path.join(config.output_dir, SUMMARY_FILE + ".tmp")
  with open(tmp, "w") as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  os.replace(tmp, os.path.join(config.output_dir, SUMMARY_FILE))
  if run_error:
    run_error.summary = summary
    raise run_error
  return summary


class _LogsToFile:
  """Library logs (absl, TensorFlow) go to `log_file` only while the pipeline runs; the
  terminal gets the progress lines."""

  def __init__(self, log_file: str):
    self._log_file = log_file

  def __enter__(self) -> None:
    os.makedirs(os.path.dirname(self._log_file), exist_ok=True)
    self._handler = logging.FileHandler(self._log_file)
    self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    self._loggers = [logging.getLogger("absl"), logging.getLogger("tensorflow")]
    self._saved = [(lg, lg.level, lg.propagate) for lg in self._loggers]
    self._verbosity = absl.logging.get_verbosity()
    # Through absl's verbosity, not the logger's level: TFX components re-apply the
    # verbosity to the logger while they run (Transform does).
    absl.logging.set_verbosity(absl.logging.INFO)
    for lg in self._loggers:
      lg.propagate = False
      lg.addHandler(self._handler)

  def __exit__(self, *exc) -> None:
    absl.logging.set_verbosity(self._verbosity)
    for lg, level, propagate in self._saved:
      lg.removeHandler(self._handler)
      lg.setLevel(level)
      lg.propagate = propagate
    self._handler.close()
