"""Runs `create_pipeline(config)` locally: LocalDagRunner, Beam DirectRunner, SQLite MLMD.

Shows each component as it starts and finishes (`progress`), then reads the outcome from ML
Metadata and writes it to OUTPUT/last_run.json. A SIGTERM cancels the running component
(`cancel`), and a full disk is named as such. What comes before and after a run (the store
checks, the report, the last-good copy of the store) is the caller's: `uet run`
(tools/run_command.py), which also holds the output directory's lock.
"""

import contextlib
import dataclasses
import errno
import json
import os
import sys
import time
from typing import Any, Dict, Optional, TextIO

import absl.logging
from tfx.orchestration import metadata

from pipeline import cancel, disk, ids, parallel_runner, progress, results
from pipeline import store as store_lib
from pipeline import up_to_date
from pipeline.config import SUMMARY_FILE, PipelineConfig
from pipeline.pipeline import create_pipeline
from uet_upstream import tfx as upstream_tfx

# The SDK image of this Beam version: a dependency flag TFX recognizes
# (`uet_upstream.tfx.declares_beam_dependencies`). The DirectRunner chooses its own
# environment (this process, or subprocesses of this Python), so it never pulls or runs it.
_DIRECT_RUNNER_SDK_IMAGE = "--sdk_container_image=apache/beam_python3.10_sdk:2.59.0"
# Run beside the node this process runs, in a second process, when both are ready: each
# Evaluator runs TFMA's per-example Python in one thread, so two of them use both cores
# (pipeline/parallel_runner.py). Trainers and Transform use every core already.
RUN_BESIDE = (ids.EVALUATOR, ids.PRODUCTION_EVALUATOR)


def local_beam_args(beam_args) -> list:
  """`beam_args` plus, on the DirectRunner, a flag that skips TFX's tfx sdist build.

  Without one, every Beam component (ExampleGen, StatisticsGen, Transform, both Evaluators)
  first copies the installed tfx package and builds an sdist of it for remote workers, for
  nothing on the DirectRunner, which runs in this environment.
  """
  args = list(beam_args)
  runner = [a.split("=", 1)[1] for a in args if a.startswith("--runner=")]
  direct = not runner or runner[-1] in ("DirectRunner", "direct", "SwitchingDirectRunner")
  if direct and not upstream_tfx.declares_beam_dependencies(args):
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


def _mark_cancelled(metadata_path: str) -> None:
  """Marks the executions the cancelled run left unfinished (or failed) as CANCELED."""
  store = store_lib.open_readwrite(metadata_path)
  run_id = results.latest_run_id(store)
  if run_id:
    store_lib.cancel_unfinished(store, run_id)


def run(config: PipelineConfig, stream: Optional[TextIO] = None,
        log_file: Optional[str] = None, verbose: bool = False) -> Dict[str, Any]:
  """Runs the pipeline and returns (and saves) its summary.

  The caller holds the output directory's lock (`pipeline.lock.output_lock`) and has checked
  the metadata store (`metadata_backup.check_store`).

  Args:
    config: the run's configuration.
    stream: where progress lines go (default: standard error as it is at the call; a
      default bound at import would keep writing where stderr pointed back then).
    log_file: where TFX's full INFO log goes (default OUTPUT/logs/run-<time>.log).
    verbose: show the libraries' log lines and warnings on standard error too (by default
      only this project's warnings reach it; `progress.LogsToFile`).

  Returns:
    The summary dict written to OUTPUT/last_run.json.

  Raises:
    PipelineCancelled: SIGTERM stopped the run (the summary is still written).
    PipelineRunError: a component failed (the summary is still written, with the error).
  """
  stream = stream or sys.stderr
  given = config  # what `uet run` compares with the next run's (up_to_date)
  # Beam args are copied into the components when the pipeline is built, so they are
  # added to the config, not to the built pipeline.
  config = dataclasses.replace(config, beam_args=tuple(local_beam_args(config.beam_args)))
  pipeline = create_pipeline(config)
  pipeline.metadata_connection_config = (
      metadata.sqlite_metadata_connection_config(config.metadata_path))
  log_file = log_file or os.path.join(
      config.output_dir, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))
  start = time.perf_counter()
  error: Optional[BaseException] = None
  cancelled = cancel.Cancellation()
  with progress.LogsToFile(log_file, verbose=verbose):
    with progress.ProgressMonitor(config.metadata_path, config.pipeline_name,
                                  stream) as monitor:
      try:
        with cancel.cancel_on_sigterm() as cancelled:
          monitor.cancelled = cancelled
          parallel_runner.LocalDagRunner(beside=RUN_BESIDE, log_file=log_file,
                                         before_launch=cancelled.check).run(pipeline)
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
  _, component = results.run_status(summary["components"])
  run_error = None
  if error is not None and cancelled:
    run_error = PipelineCancelled(component, cancelled.signal_name)
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
  _write_summary(config, summary, stream)
  if run_error:
    run_error.summary = summary
    raise run_error
  return summary


def _write_summary(config: PipelineConfig, summary: Dict[str, Any], stream: TextIO) -> None:
  """Writes OUTPUT/last_run.json whole or not at all; a full disk only warns."""
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


def log_failure(error: BaseException) -> None:
  """Logs `error`'s traceback, chained causes included (TensorFlow's trace), to the run log.

  The screen shows only the error's message (`PipelineRunError`), so the traceback is
  logged here, while the run's library logs go to the log file alone.
  """
  absl.logging.error("The run stopped: %s: %s", type(error).__name__, error,
                     exc_info=(type(error), error, error.__traceback__))
