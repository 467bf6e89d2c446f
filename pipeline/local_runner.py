"""Runs `create_pipeline(config)` locally: LocalDagRunner, Beam DirectRunner, SQLite MLMD.

Shows each component as it starts and how long it took, then reads the outcome from ML
Metadata and writes it to OUTPUT/last_run.json.
"""

import json
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, TextIO

import absl.logging
from tfx import v1 as tfx

from pipeline import results
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


def _latest_run_id(metadata_path: str) -> Optional[str]:
  """The newest pipeline run before this one (to tell whether this one registered any)."""
  if not os.path.exists(metadata_path):
    return None
  try:
    return results.latest_run_id(results.open_store(metadata_path))
  except Exception:  # pylint: disable=broad-except
    return None  # unreadable metadata: the run itself will say so


def write_report(config: PipelineConfig, summary: Dict[str, Any], stream: TextIO) -> None:
  """Writes OUTPUT/report/<run id>/index.html; a failure to write it only warns.

  The report is an explanation of the run, never part of its outcome: whatever goes wrong
  here leaves the decision, the pushed model and the exit code as they are.
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
    PipelineRunError: a component failed (the summary is still written, with the error).
  """
  with output_lock(config.output_dir):
    pipeline = create_pipeline(config)
    pipeline.metadata_connection_config = (
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    log_file = log_file or os.path.join(
        config.output_dir, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))
    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    reporter = ProgressReporter(stream)
    file_handler = logging.FileHandler(log_file)
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
    previous_run_id = _latest_run_id(config.metadata_path)
    start = time.perf_counter()
    error: Optional[PipelineRunError] = None
    try:
      tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as e:  # the failing component is named, then the run stops
      error = PipelineRunError(reporter.current, e)
    elapsed = time.perf_counter() - start
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
    with open(tmp, "w") as f:
      json.dump(summary, f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(config.output_dir, SUMMARY_FILE))
    if summary.get("run_id") and summary["run_id"] != previous_run_id:
      write_report(config, summary, stream)
    else:
      stream.write("warning: no report: the run recorded no pipeline run in ML Metadata\n")
    if error:
      error.summary = summary
      raise error
    return summary
