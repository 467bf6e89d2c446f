"""Runs `create_pipeline(config)` locally: LocalDagRunner, Beam DirectRunner, SQLite MLMD.

Shows each component as it starts and finishes, as ML Metadata records it, then reads the
outcome from ML Metadata and writes it to OUTPUT/last_run.json. The caller holds the output
directory's lock (`pipeline.lock.output_lock`).

Faults of an unattended run are handled here: a damaged metadata store stops the run before
it starts (`metadata_backup`), a SIGTERM cancels the running component (`cancel_on_sigterm`),
a full disk is named as such, and every successful run leaves a last-good copy of the store.
"""

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import _thread
import signal
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Set, TextIO

import absl.logging
import ml_metadata as mlmd
from tfx.orchestration import metadata

from pipeline import beam_state_cache, disk, metadata_backup, parallel_runner, results
from pipeline import store as store_lib
from pipeline import up_to_date
from pipeline.config import SUMMARY_FILE, PipelineConfig
from pipeline.pipeline import EVALUATOR, PRODUCTION_EVALUATOR, create_pipeline

# Beam flags by which TFX sees that a pipeline's Python dependencies are taken care of.
# Without one, every Beam component (ExampleGen, StatisticsGen, Transform, both
# Evaluators) first copies the installed tfx package and builds an sdist of it for remote
# workers: 5-10 s each, for nothing on the DirectRunner, which runs in this environment.
_DEPENDENCY_FLAGS = ("--extra_package", "--extra_packages", "--setup_file",
                     "--requirements_file", "--sdk_container_image",
                     "--worker_harness_container_image")
# The SDK image of this Beam version. The DirectRunner chooses its own environment (this
# process, or subprocesses of this Python), so it never pulls or runs it.
_DIRECT_RUNNER_SDK_IMAGE = "--sdk_container_image=apache/beam_python3.10_sdk:2.59.0"


def local_beam_args(beam_args) -> list:
  """`beam_args` plus, on the DirectRunner, a flag that skips TFX's tfx sdist build."""
  args = list(beam_args)
  runner = [a.split("=", 1)[1] for a in args if a.startswith("--runner=")]
  direct = not runner or runner[-1] in ("DirectRunner", "direct", "SwitchingDirectRunner")
  if direct and not any(a.split("=", 1)[0] in _DEPENDENCY_FLAGS for a in args):
    args.append(_DIRECT_RUNNER_SDK_IMAGE)
  return args


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


# What the runner logs just before it launches a component (TFX's record).
LAUNCH_RECORD = parallel_runner.LAUNCH_RECORD
# Run beside the node this process runs, in a second process, when both are ready: each
# Evaluator runs TFMA's per-example Python in one thread, so two of them use both cores
# (pipeline/parallel_runner.py). Trainers and Transform use every core already.
RUN_BESIDE = (EVALUATOR, PRODUCTION_EVALUATOR)


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[List[str]]:
  """While the block runs, SIGTERM stops the current component (raises in the main thread).

  Yields a list that receives the signal's name once one arrived. Further SIGTERMs while
  the run winds down are ignored (a scheduler's SIGKILL ends it if it takes too long).
  Outside the main thread (where Python cannot handle signals) this does nothing.

  An exception raised at an arbitrary point can be swallowed: inside a logging handler
  (`Handler.handleError` prints it and carries on; TFX and Beam log constantly), or by a
  library's `except Exception`. So the handler waits until the main thread is out of a
  logging call, and no component starts after the signal (the check sits on TFX's
  "Component X is running." record, a Logger filter, whose exceptions reach the caller).
  """
  received: List[str] = []
  if threading.current_thread() is not threading.main_thread():
    yield received
    return
  raised: List[bool] = []

  def handler(signum, frame):  # pylint: disable=unused-argument
    if not received:
      received.append(signal.Signals(signum).name)
    if raised:
      return
    if _in_logging_call(frame):
      # Raised here, logging would swallow it: signal the main thread again shortly.
      threading.Timer(0.01, _thread.interrupt_main, args=(signum,)).start()
      return
    raised.append(True)
    raise _Cancel(f"cancelled by {received[0]}")

  def no_component_starts_after_the_signal(record: logging.LogRecord) -> bool:
    if received and record.msg == LAUNCH_RECORD:
      raise _Cancel(f"cancelled by {received[0]}")
    return True

  absl_logger = logging.getLogger("absl")
  previous = signal.signal(signal.SIGTERM, handler)
  absl_logger.addFilter(no_component_starts_after_the_signal)
  try:
    yield received
  finally:
    absl_logger.removeFilter(no_component_starts_after_the_signal)
    signal.signal(signal.SIGTERM, previous)


def _in_logging_call(frame) -> bool:
  """Whether `frame` runs inside a logging handler (where exceptions are swallowed)."""
  while frame is not None:
    if frame.f_code is logging.Handler.handle.__code__:
      return True
    frame = frame.f_back
  return False


ABANDONED_NOTE = ("abandoned: its run ended without recording an outcome (killed, or the disk "
                  "was too full to write it)")


def mark_abandoned(metadata_path: str) -> int:
  """Marks the executions earlier runs left NEW or RUNNING as FAILED; returns how many.

  The caller holds the output lock, so no other run is live: such an execution belongs to a
  run that was killed (SIGKILL) or could not record its failure (a full disk). TFX never
  resumes it (a new run has a new pipeline-run context), but left as it is, ML Metadata and
  the run history would show it running forever.
  """
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  if not os.path.exists(metadata_path):
    return 0
  store = store_lib.open_readwrite(metadata_path)
  active = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)
  executions = [e for e in store.get_executions() if e.last_known_state in active]
  store_lib.set_state(store, executions, metadata_store_pb2.Execution.FAILED,
                      note=ABANDONED_NOTE)
  return len(executions)


def _mark_cancelled(metadata_path: str) -> None:
  """Marks the executions the cancelled run left unfinished (or failed) as CANCELED."""
  store = store_lib.open_readwrite(metadata_path)
  run_id = results.latest_run_id(store)
  if run_id:
    store_lib.cancel_unfinished(store, run_id)


class _LogFile(logging.FileHandler):
  """The run's log file; a full disk drops log lines instead of printing tracebacks."""

  def handleError(self, record: logging.LogRecord) -> None:
    if isinstance(sys.exc_info()[1], OSError):
      return
    super().handleError(record)


# The progress line printed when a component starts, "[  12.3s] Transform ..." (the fault
# tests and bench/scale.py read the component's name from it).
STARTED_LINE = re.compile(r"^\[\s*[0-9.]+s\] (\S+) \.\.\.$")


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
    # Set by the run once SIGTERM arrived: TFX records the stopped component as failed
    # before the run marks it CANCELED, and the line must say what happened.
    self.cancelled: List[str] = []

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
      if state == "failed" and self.cancelled:
        state = "canceled"
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


def _latest_run_id(metadata_path: str) -> Optional[str]:
  """The newest pipeline run before this one (to tell whether this one registered any)."""
  if not os.path.exists(metadata_path):
    return None
  try:
    return results.latest_run_id(store_lib.open_readonly(metadata_path))
  except Exception:  # pylint: disable=broad-except
    return None  # unreadable metadata: the run itself will say so


def write_report(config: PipelineConfig, summary: Dict[str, Any], stream: TextIO) -> None:
  """Writes OUTPUT/report/<run id>/index.html (tools.report); a failure only warns.

  The report explains the run and is never part of its outcome: whatever goes wrong here
  leaves the decision, the pushed model and the exit code as they are.
  """
  try:
    from tools import report  # pylint: disable=g-import-not-at-top
    path = report.write_report(config.output_dir, summary["run_id"],
                               metadata_path=config.metadata_path,
                               pipeline_name=config.pipeline_name, summary=summary)
    stream.write(f"report: {path}\n")
  except Exception as e:  # pylint: disable=broad-except
    stream.write(f"warning: the run report could not be written ({type(e).__name__}: {e}); "
                 f"the run's outcome is unaffected; retry with `uet report --output-dir "
                 f"{config.output_dir}`\n")
  stream.flush()


def run(config: PipelineConfig, stream: Optional[TextIO] = None,
        log_file: Optional[str] = None) -> Dict[str, Any]:
  """Runs the pipeline and returns (and saves) its summary.

  The caller holds the output directory's lock (`pipeline.lock.output_lock`).

  Args:
    config: the run's configuration.
    stream: where progress lines go (default: standard error as it is at the call; a
      default bound at import would keep writing where stderr pointed back then).
    log_file: where TFX's full INFO log goes (default OUTPUT/logs/run-<time>.log).

  Returns:
    The summary dict written to OUTPUT/last_run.json.

  Raises:
    metadata_backup.MetadataStoreError: the metadata store is damaged (nothing ran).
    PipelineCancelled: SIGTERM stopped the run (the summary is still written).
    PipelineRunError: a component failed (the summary is still written, with the error).
  """
  stream = stream or sys.stderr
  given = config  # what `uet run` compares with the next run's (up_to_date)
  # Beam args are copied into the components when the pipeline is built, so they are
  # added to the config, not to the built pipeline.
  config = dataclasses.replace(config, beam_args=tuple(local_beam_args(config.beam_args)))
  metadata_backup.check_store(config.metadata_path)
  moved = metadata_backup.start_fresh_if_missing(config.metadata_path, config.pipeline_root)
  if moved:
    stream.write(f"no metadata store: starting a new one and retraining from scratch; the "
                 f"previous artifacts are kept in {moved}\n")
  abandoned = mark_abandoned(config.metadata_path)
  if abandoned:
    stream.write(f"marked {abandoned} execution(s) an earlier run left running as FAILED "
                 "(that run was killed, or its disk was full)\n")
  pipeline = create_pipeline(config)
  pipeline.metadata_connection_config = (
      metadata.sqlite_metadata_connection_config(config.metadata_path))
  log_file = log_file or os.path.join(
      config.output_dir, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))
  previous_run_id = _latest_run_id(config.metadata_path)
  start = time.perf_counter()
  error: Optional[BaseException] = None
  cancelled: List[str] = []
  with _LogsToFile(log_file):
    with ProgressMonitor(config.metadata_path, config.pipeline_name, stream) as monitor:
      try:
        with cancel_on_sigterm() as cancelled, \
            beam_state_cache.module_globals_not_excluded():
          monitor.cancelled = cancelled
          parallel_runner.LocalDagRunner(beside=RUN_BESIDE, log_file=log_file).run(
              pipeline)
      except Exception as e:  # the failing component is named below, then the run stops
        error = e
        log_failure(e)
      if error is not None and cancelled:
        # Before the monitor's last poll, so that the stopped component shows as CANCELED.
        try:
          _mark_cancelled(config.metadata_path)
        except Exception as e:  # pylint: disable=broad-except
          # The component already stopped and is recorded as failed; only the label is lost.
          stream.write(f"warning: could not mark the cancelled executions in ML Metadata: "
                       f"{e}\n")
  elapsed = time.perf_counter() - start
  summary = results.summarize(config.metadata_path, config.pipeline_name)
  # The node that stopped the run: failed, cancelled, or (when a full disk kept ML Metadata
  # from recording its failure) still marked running.
  stopped = [node for state in ("failed", "canceled", "running")
             for node, s in summary["components"].items() if s == state]
  component = stopped[0] if stopped else None
  run_error = None
  if error is not None and cancelled:
    run_error = PipelineCancelled(component, cancelled[0])
  elif error is not None and disk.is_full(error):
    run_error = PipelineRunError(component, OSError(
        errno.ENOSPC, f"{disk.hint(config.output_dir)}. The error was: "
        f"{type(error).__name__}: {error}"))
  elif error is not None:
    run_error = PipelineRunError(component, error)
  if not error:
    # A node without an execution in a completed run was skipped by its condition.
    for node in pipeline.components:
      if node.id not in summary["components"] and node.id not in summary["resolvers"]:
        stream.write(f"{node.id} skipped (condition not met)\n")
  summary.update({
      "succeeded": error is None,
      "cancelled": isinstance(run_error, PipelineCancelled),
      "error": str(run_error) if run_error else None,
      "failed_component": run_error.component if run_error else None,
      "seconds": round(elapsed, 1),
      "data_dir": config.data_dir,
      "output_dir": config.output_dir,
      "log_file": log_file,
      "config": config.to_dict(),
      # Last, once ML Metadata holds the run: the next `uet run` that finds the same key
      # has nothing to do (pipeline/up_to_date.py).
      up_to_date.KEY_FIELD: up_to_date.run_key(given) if error is None else None,
  })
  tmp = config.summary_path + ".tmp"
  try:
    with open(tmp, "w") as f:
      json.dump(summary, f, indent=2, sort_keys=True)
    os.replace(tmp, config.summary_path)
  except OSError as e:
    if not disk.is_full(e):
      raise
    with contextlib.suppress(OSError):
      os.remove(tmp)
    stream.write(f"could not write {SUMMARY_FILE}: {disk.hint(config.output_dir)}\n")
  if summary.get("run_id") and summary["run_id"] != previous_run_id:
    write_report(config, summary, stream)
  else:
    stream.write("warning: no report: this run recorded no pipeline run in ML Metadata\n")
  if not run_error:
    # The copy `uet restore-metadata` puts back if the store is ever damaged.
    try:
      metadata_backup.save_last_good(config.metadata_path)
    except (OSError, metadata_backup.MetadataStoreError) as e:
      stream.write(f"warning: the last-good copy of {config.metadata_path} was not "
                   f"updated: {e}\n")
      if disk.is_full(e):
        stream.write(f"  {disk.hint(config.output_dir, then='the next successful run saves it')}\n")
  if run_error:
    run_error.summary = summary
    raise run_error
  return summary


def log_failure(error: BaseException) -> None:
  """Logs `error`'s traceback, chained causes included (TensorFlow's trace), to the run log.

  The screen shows only the error's message (`PipelineRunError`), so the traceback is
  logged here, while the run's library logs go to the log file alone.
  """
  absl.logging.error("The run stopped: %s: %s", type(error).__name__, error,
                     exc_info=(type(error), error, error.__traceback__))


class _LogsToFile:
  """Library logs (absl, TensorFlow) go to `log_file` only while the pipeline runs; the
  terminal gets the progress lines."""

  def __init__(self, log_file: str):
    self._log_file = log_file

  def __enter__(self) -> None:
    os.makedirs(os.path.dirname(self._log_file), exist_ok=True)
    self._handler = _LogFile(self._log_file)
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
