"""Runs `create_pipeline(config)` locally: LocalDagRunner, Beam DirectRunner, SQLite MLMD.

Shows each component as it starts and how long it took, then reads the outcome from ML
Metadata and writes it to OUTPUT/last_run.json.

Faults of an unattended run are handled here: a damaged metadata store stops the run before
it starts (`metadata_backup`), a SIGTERM cancels the running component (`cancel_on_sigterm`),
a full disk is named as such, and every successful run leaves a last-good copy of the store.
"""

import contextlib
import errno
import json
import logging
import os
import signal
import shutil
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, TextIO

import absl.logging
from tfx import v1 as tfx

from pipeline import metadata_backup, results
from pipeline.config import PipelineConfig
# The lock lives in a light module so the CLI can take it before importing TensorFlow.
from pipeline.lock import LOCK_FILE, RunLockedError, output_lock  # pylint: disable=unused-import
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


class PipelineCancelled(PipelineRunError):
  """The run was cancelled (SIGTERM); `component` names the component it stopped."""

  def __init__(self, component: Optional[str], signal_name: str):
    super().__init__(component, RuntimeError(f"cancelled by {signal_name}"))
    self.signal_name = signal_name
    self.args = (f"cancelled by {signal_name}"
                 + (f" while {component} ran" if component else ""),)


class _Cancel(Exception):
  """Raised in the main thread by the SIGTERM handler.

  An Exception (not a BaseException) on purpose: TFX's launcher then records the running
  execution as failed and re-raises, exactly as for a component error.
  """


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[List[str]]:
  """While the block runs, SIGTERM stops the current component (raises in the main thread).

  Yields a list that receives the signal's name once one arrived. Further SIGTERMs while
  the run winds down are ignored (a scheduler's SIGKILL ends it if it takes too long).
  Outside the main thread (where Python cannot handle signals) this does nothing.
  """
  received: List[str] = []
  if threading.current_thread() is not threading.main_thread():
    yield received
    return

  def handler(signum, frame):  # pylint: disable=unused-argument
    if received:
      return
    received.append(signal.Signals(signum).name)
    raise _Cancel(f"cancelled by {received[0]}")

  previous = signal.signal(signal.SIGTERM, handler)
  try:
    yield received
  finally:
    signal.signal(signal.SIGTERM, previous)


def _mark_cancelled(metadata_path: str) -> None:
  """Marks the executions the cancelled run left unfinished (or failed) as CANCELED."""
  import ml_metadata as mlmd  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
  store = mlmd.MetadataStore(config)
  run_id = results.latest_run_id(store)
  if not run_id:
    return
  run = store.get_context_by_type_and_name("pipeline_run", run_id)
  unfinished = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING,
                metadata_store_pb2.Execution.FAILED)
  executions = [e for e in store.get_executions_by_context(run.id)
                if e.last_known_state in unfinished]
  for execution in executions:
    execution.last_known_state = metadata_store_pb2.Execution.CANCELED
  if executions:
    store.put_executions(executions)


def _is_disk_full(error: BaseException) -> bool:
  """Whether `error` (or what caused it) is a full disk: OS, TensorFlow or SQLite."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
      return True
    text = str(error)
    if "No space left on device" in text or "database or disk is full" in text:
      return True
    error = error.__cause__ or error.__context__
  return False


def disk_full_hint(output_dir: str) -> str:
  """What to say when the disk is full: where, how much is free, what to do."""
  try:
    free = f"{shutil.disk_usage(output_dir).free // 1024} KiB free now"
  except OSError:
    free = "free space unknown"
  return (f"no space left on the device of {output_dir} ({free}). Free space (or use "
          "another --output-dir) and run again: completed components are reused")


class _LogFile(logging.FileHandler):
  """The run's log file; a full disk drops log lines instead of printing tracebacks."""

  def handleError(self, record: logging.LogRecord) -> None:
    if isinstance(sys.exc_info()[1], OSError):
      return
    super().handleError(record)


class ProgressReporter(logging.Handler):
  """Turns LocalDagRunner's log records into one line per component start and finish."""

  def __init__(self, stream: TextIO):
    super().__init__(level=logging.INFO)
    self.stream = stream
    self.timings: Dict[str, float] = {}
    self.cached: List[str] = []
    self.current: Optional[str] = None
    self._started = 0.0
    self._run_start = time.perf_counter()

  def emit(self, record: logging.LogRecord) -> None:
    msg, args = record.msg, record.args
    if not isinstance(msg, str) or not args:
      return
    if msg == "Component %s is running.":
      self.current, self._started = str(args[0]), time.perf_counter()
      self._print(f"{self.current} ...")
    elif msg == "A cached execution %d is used." and self.current:
      self.cached.append(self.current)
    elif msg == "Component %s is finished." and str(args[0]) == self.current:
      seconds = time.perf_counter() - self._started
      self.timings[self.current] = seconds
      note = " (cached)" if self.current in self.cached else ""
      self._print(f"{self.current} done in {seconds:.1f}s{note}")
      self.current = None
    elif msg == "Skipping component %s.":
      self._print(f"{args[0]} skipped (condition not met)")

  def _print(self, text: str) -> None:
    elapsed = time.perf_counter() - self._run_start
    self.stream.write(f"[{elapsed:6.1f}s] {text}\n")
    self.stream.flush()


def run(config: PipelineConfig, stream: TextIO = sys.stderr,
        log_file: Optional[str] = None) -> Dict[str, Any]:
  """Runs the pipeline and returns (and saves) its summary.

  Args:
    config: the run's configuration.
    stream: where progress lines go.
    log_file: where TFX's full INFO log goes (default OUTPUT/logs/run-<time>.log).

  Returns:
    The summary dict written to OUTPUT/last_run.json.

  Raises:
    RunLockedError: another run holds the output directory.
    metadata_backup.MetadataStoreError: the metadata store is damaged (nothing ran).
    PipelineCancelled: SIGTERM stopped the run (the summary is still written).
    PipelineRunError: a component failed (the summary is still written, with the error).
  """
  with output_lock(config.output_dir):
    metadata_backup.check_store(config.metadata_path)
    moved = metadata_backup.start_fresh_if_missing(config.metadata_path,
                                                   config.pipeline_root)
    if moved:
      stream.write(f"no metadata store: starting a new one and retraining from scratch; the "
                   f"previous artifacts are kept in {moved}\n")
    pipeline = create_pipeline(config)
    pipeline.metadata_connection_config = (
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    log_file = log_file or os.path.join(
        config.output_dir, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))
    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    reporter = ProgressReporter(stream)
    file_handler = _LogFile(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    absl_logger = logging.getLogger("absl")
    tf_logger = logging.getLogger("tensorflow")
    saved = [(lg, lg.level, lg.propagate) for lg in (absl_logger, tf_logger)]
    saved_verbosity = absl.logging.get_verbosity()
    # Library logs go to the log file only; the terminal gets one line per component.
    # Through absl's verbosity, not the logger's level: TFX components re-apply the
    # verbosity to the logger while they run (Transform does).
    absl.logging.set_verbosity(absl.logging.INFO)
    for lg in (absl_logger, tf_logger):
      lg.propagate = False
      lg.addHandler(file_handler)
    absl_logger.addHandler(reporter)
    start = time.perf_counter()
    error: Optional[PipelineRunError] = None
    try:
      with cancel_on_sigterm() as cancelled:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as e:  # the failing component is named, then the run stops
      if cancelled:
        error = PipelineCancelled(reporter.current, cancelled[0])
      elif _is_disk_full(e):
        error = PipelineRunError(reporter.current, OSError(
            errno.ENOSPC, f"{disk_full_hint(config.output_dir)}. The error was: "
            f"{type(e).__name__}: {e}"))
      else:
        error = PipelineRunError(reporter.current, e)
    elapsed = time.perf_counter() - start
    if isinstance(error, PipelineCancelled):
      try:
        _mark_cancelled(config.metadata_path)
      except Exception as e:  # pylint: disable=broad-except
        # The component already stopped and is recorded as failed; only the label is lost.
        stream.write(f"warning: could not mark the cancelled executions in ML Metadata: "
                     f"{e}\n")
    try:
      summary = results.summarize(config.metadata_path, config.pipeline_name)
    finally:
      absl_logger.removeHandler(reporter)
      absl.logging.set_verbosity(saved_verbosity)
      for lg, level, propagate in saved:
        lg.removeHandler(file_handler)
        lg.setLevel(level)
        lg.propagate = propagate
      file_handler.close()
    summary.update({
        "succeeded": error is None,
        "cancelled": isinstance(error, PipelineCancelled),
        "error": str(error) if error else None,
        "failed_component": error.component if error else None,
        "seconds": round(elapsed, 1),
        "component_seconds": {k: round(v, 1) for k, v in reporter.timings.items()},
        "cached_components": sorted(set(reporter.cached)),
        "data_dir": config.data_dir,
        "output_dir": config.output_dir,
        "log_file": log_file,
        "config": config.to_dict(),
    })
    tmp = os.path.join(config.output_dir, SUMMARY_FILE + ".tmp")
    try:
      with open(tmp, "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
      os.replace(tmp, os.path.join(config.output_dir, SUMMARY_FILE))
    except OSError as e:
      if not _is_disk_full(e):
        raise
      stream.write(f"could not write {SUMMARY_FILE}: {disk_full_hint(config.output_dir)}\n")
    if error is None:
      # The copy `uet restore-metadata` puts back if the store is ever damaged.
      try:
        metadata_backup.save_last_good(config.metadata_path)
      except (OSError, metadata_backup.MetadataStoreError) as e:
        stream.write(f"warning: the last-good copy of {config.metadata_path} was not "
                     f"updated: {e}\n")
    if error:
      error.summary = summary
      raise error
    return summary
