"""What a local run shows while it runs: a line on the terminal when each component starts
and when it ends (as ML Metadata records them), and the libraries' full log in a file
(`LogsToFile`: on the terminal too with `uet run --verbose`).
"""

import logging
import os
import re
import sys
import threading
import time
from typing import Dict, Optional, Set, TextIO

import absl.logging
import ml_metadata as mlmd

from pipeline import results
from pipeline import store as store_lib


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
    # True once SIGTERM arrived (the run sets its `cancel.Cancellation` here): TFX records
    # the stopped component as failed before the run marks it CANCELED, and the line must
    # say what happened.
    self.cancelled: object = False

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


class _LogFile(logging.FileHandler):
  """The run's log file; a full disk drops log lines instead of printing tracebacks."""

  def handleError(self, record: logging.LogRecord) -> None:
    if isinstance(sys.exc_info()[1], OSError):
      return
    super().handleError(record)


# This project's packages: warnings they log reach the terminal even when the libraries'
# log lines do not (`LogsToFile`).
_OUR_PACKAGES = ("components", "dataspec", "kubeflow", "pipeline", "tools", "trainer",
                 "uet_upstream")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _is_ours(record: logging.LogRecord) -> bool:
  """Whether `record` was logged by code of this project (its packages' files)."""
  path = os.path.abspath(record.pathname or "")
  return any(path.startswith(os.path.join(_ROOT, p) + os.sep) for p in _OUR_PACKAGES)


def _for_the_terminal(record: logging.LogRecord) -> bool:
  """Ours, and without a traceback: a failure's trace is for the log; the screen shows
  the failure's message (`PipelineRunError`)."""
  return _is_ours(record) and not record.exc_info


class LogsToFile:
  """While the pipeline runs, every library log line goes to `log_file`: absl's (TFX logs
  through it) at INFO and above, TensorFlow's and other libraries' (Apache Beam's) at their
  loggers' levels (WARNING unless set), and Python warnings (`logging.captureWarnings`).

  Quiet (the default), the terminal (standard error) gets only warnings and errors logged
  by this project's code, without tracebacks; what else appears there is what the caller writes itself (the
  progress lines, the result). TensorFlow's own stderr handler is detached meanwhile.
  `verbose=True` also sends everything written to the file to the terminal.

  TensorFlow's C++ logs bypass Python logging: `TF_CPP_MIN_LOG_LEVEL`
  (`pipeline.environment`) keeps them off by default. Child processes (nodes run beside,
  `parallel_runner`) write their output to the same file.
  """

  def __init__(self, log_file: str, verbose: bool = False):
    self._log_file = log_file
    self._verbose = verbose

  def __enter__(self) -> None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  (loaded by now)
    # TensorFlow adds a stderr handler to its logger when the logger is first asked for
    # (if the root logger has none then): make it happen now, so that it is detached below.
    tf.get_logger()
    os.makedirs(os.path.dirname(self._log_file), exist_ok=True)
    self._handler = _LogFile(self._log_file)
    self._handler.setFormatter(logging.Formatter(_FORMAT))
    self._terminal = logging.StreamHandler(sys.stderr)
    self._terminal.setFormatter(logging.Formatter(_FORMAT))
    if not self._verbose:
      self._terminal.setLevel(logging.WARNING)
      self._terminal.addFilter(_for_the_terminal)
    logging.captureWarnings(True)
    self._loggers = [logging.getLogger(), logging.getLogger("absl"),
                     logging.getLogger("tensorflow"), logging.getLogger("py.warnings")]
    self._saved = [(lg, lg.level, lg.propagate, list(lg.handlers)) for lg in self._loggers]
    self._verbosity = absl.logging.get_verbosity()
    # Through absl's verbosity, not the logger's level: TFX components re-apply the
    # verbosity to the logger while they run (Transform does).
    absl.logging.set_verbosity(absl.logging.INFO)
    for lg in self._loggers:
      if lg is not logging.getLogger():
        lg.propagate = False
      # Handlers writing to a terminal stream go (a file handler, a test's, stays).
      for h in list(lg.handlers):
        if (type(h) is logging.StreamHandler  # pylint: disable=unidiomatic-typecheck
            or isinstance(h, absl.logging.ABSLHandler)):
          lg.removeHandler(h)
      lg.addHandler(self._handler)
      lg.addHandler(self._terminal)

  def __exit__(self, *exc) -> None:
    absl.logging.set_verbosity(self._verbosity)
    logging.captureWarnings(False)
    for lg, level, propagate, handlers in self._saved:
      lg.removeHandler(self._handler)
      lg.removeHandler(self._terminal)
      for h in handlers:
        if h not in lg.handlers:
          lg.addHandler(h)
      lg.setLevel(level)
      lg.propagate = propagate
    self._handler.close()
