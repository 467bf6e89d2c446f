"""TFX's LocalDagRunner, with chosen nodes run beside the others in a second process.

TFX 1.16's LocalDagRunner launches one node after another. On 2 cores that leaves one idle
while a node that works in one thread runs (each Evaluator runs TFMA's per-example Python
in one thread), where Kubeflow and Vertex run independent nodes side by side
(docs/measured.md has what it saves).

`LocalDagRunner(beside=...)` runs the graph exactly as TFX's does (same launcher, same
ML Metadata records, same topological order in this process; `uet_upstream.tfx`), except
for the nodes named in `beside`: when this process launches a node and a later node of
`beside` has all its upstream nodes finished, that node starts in a child process (`python
-m pipeline.node_process`) once the node here has run for START_BESIDE_AFTER_SECONDS. At
most one child runs at a time; a node that needs the child's outputs waits for it. A node
here that ends sooner (found in TFX's cache) leaves the other to run here after it.

`before_launch`, if given, is called before any node is launched, here or in the child; what
it raises stops the run there (`pipeline.cancel`: no node starts once SIGTERM arrived).

Faults:
- a node failing in the child fails the run, naming that node, once this process's own
  node has finished (the child's execution is recorded FAILED by TFX's launcher, in the
  child);
- a node failing here (or SIGTERM) stops the child: it gets SIGTERM, TFX records its
  execution as failed, and it is marked CANCELED (it did not cause the failure);
- the child stops by itself when this process dies (SIGKILL included); the next run marks
  what it left running as abandoned (`pipeline.store.mark_abandoned`).
"""

import errno
import json
import os
import subprocess
import sys
import tempfile
import threading
from typing import Callable, Collection, List, Optional, Set

from absl import logging as absl_logging
from tfx.proto.orchestration import pipeline_pb2

from pipeline import store as store_lib
from uet_upstream import tfx as upstream_tfx

# How long a stopped child may take to record its failure before it is killed.
STOP_SECONDS = 30.0
# A node beside starts once the node here has run this long: a child process costs a few
# seconds of imports, more than a node found in TFX's cache takes (a re-run finds every
# node cached; then both run here, one after the other).
START_BESIDE_AFTER_SECONDS = 3.0


class NodeProcessError(RuntimeError):
  """A node run in a child process failed; `node_id` names it."""

  def __init__(self, node_id: str, message: str):
    super().__init__(f"{node_id}: {message}")
    self.node_id = node_id


class _Child:
  """One node launched in a child process."""

  def __init__(self, node_id: str, ir: pipeline_pb2.Pipeline, log_file: Optional[str]):
    self.node_id = node_id
    self._dir = tempfile.mkdtemp(prefix="uet-node-")
    self.request = os.path.join(self._dir, "pipeline.pb")
    self.result = os.path.join(self._dir, "result.json")
    with open(self.request, "wb") as f:
      f.write(ir.SerializeToString())
    # The child's library logs (and TensorFlow's native ones) go where this run's go.
    self._log = open(log_file, "ab") if log_file else subprocess.DEVNULL  # pylint: disable=consider-using-with
    self.stopped = False
    self.process = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", "pipeline.node_process", self.request, node_id, self.result,
         str(os.getpid())] + ([log_file] if log_file else []),
        stdout=self._log, stderr=self._log)

  def wait(self) -> Optional[NodeProcessError]:
    """Waits for the child; returns its failure, if it failed and was not stopped."""
    code = self.process.wait()
    result = {}
    if code != 0:
      try:
        with open(self.result) as f:
          result = json.load(f)
      except (OSError, ValueError):
        result = {"error": f"the process ended with exit code {code} without a report"}
    self._close()
    if code == 0 or self.stopped:
      return None
    error = NodeProcessError(self.node_id, result["error"])
    if result.get("disk_full"):
      # `disk.is_full` reads the cause.
      error.__cause__ = OSError(errno.ENOSPC, result["error"])
    return error

  def stop(self) -> bool:
    """SIGTERM (TFX records the execution as failed), SIGKILL after STOP_SECONDS.

    Returns whether the child was still running (a child that ended by itself keeps the
    outcome it recorded)."""
    self.stopped = True
    running = self.process.poll() is None
    if running:
      self.process.terminate()
      try:
        self.process.wait(STOP_SECONDS)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    self._close()
    return running

  def _close(self) -> None:
    if self._log is not subprocess.DEVNULL and not self._log.closed:
      self._log.close()
    for path in (self.request, self.result):
      if os.path.exists(path):
        os.remove(path)
    if os.path.isdir(self._dir):
      os.rmdir(self._dir)


class _StartLater:
  """Starts `node_id` in a child process after `seconds`, unless `settle()` came first."""

  def __init__(self, seconds: float, node_id: Optional[str], pipeline: pipeline_pb2.Pipeline,
               log_file: Optional[str], before_launch: Callable[[], None]):
    self.child: Optional[_Child] = None
    self._lock = threading.Lock()
    self._settled = False
    self._timer = None
    self._before_launch = before_launch
    if node_id is not None:
      self._timer = threading.Timer(seconds, self._start, args=(node_id, pipeline, log_file))
      self._timer.daemon = True
      self._timer.start()

  def _start(self, node_id: str, pipeline: pipeline_pb2.Pipeline,
             log_file: Optional[str]) -> None:
    with self._lock:
      if self._settled:
        return
      try:
        self._before_launch()
      except Exception:  # pylint: disable=broad-except
        return  # the run is stopping (SIGTERM): nothing new starts
      absl_logging.info(upstream_tfx.LAUNCH_RECORD, node_id)
      try:
        self.child = _Child(node_id, pipeline, log_file)
      except Exception as e:  # pylint: disable=broad-except
        # A full disk, say: the node then runs here, after the one running.
        absl_logging.warning("Component %s could not start beside: %s", node_id, e)
        return
      absl_logging.info("Component %s runs in a child process, beside the one running.",
                        node_id)

  def settle(self) -> Optional[_Child]:
    """Cancels the start if it has not happened; returns the child if it has."""
    with self._lock:
      self._settled = True
      if self._timer is not None:
        self._timer.cancel()
      return self.child


def _mark_cancelled(pipeline: pipeline_pb2.Pipeline, node_id: str) -> None:
  """Marks `node_id`'s unfinished or failed executions of this run CANCELED."""
  with upstream_tfx.metadata_connection(pipeline) as m:
    store_lib.cancel_unfinished(m.store, upstream_tfx.run_id(pipeline),
                                node_context=f"{pipeline.pipeline_info.id}.{node_id}")


def _nothing() -> None:
  """The default `before_launch`: every node may start."""


class LocalDagRunner(upstream_tfx.NodeByNodeRunner):
  """TFX's LocalDagRunner that runs the nodes in `beside` in a child process when another
  node is ready to run at the same time."""

  def __init__(self, beside: Collection[str] = (), log_file: Optional[str] = None,
               before_launch: Callable[[], None] = _nothing):
    super().__init__()
    self._beside = frozenset(beside)
    self._log_file = log_file
    self._before_launch = before_launch

  def run_nodes(self, pipeline: pipeline_pb2.Pipeline) -> None:
    nodes = [n.pipeline_node for n in pipeline.nodes]
    done: Set[str] = set()
    launched_beside: Set[str] = set()
    child: Optional[_Child] = None

    def join() -> None:
      """Waits for the child; raises its failure."""
      nonlocal child
      if child is not None:
        error = child.wait()
        done.add(child.node_id)
        child = None
        if error:
          raise error

    try:
      for i, node in enumerate(nodes):
        node_id = node.node_info.id
        if node_id in launched_beside:
          continue
        if child is not None and child.node_id in node.upstream_nodes:
          join()
        if upstream_tfx.is_skipped(node):
          absl_logging.info(upstream_tfx.SKIP_RECORD, node_id)
          done.add(node_id)
          continue
        self._before_launch()
        absl_logging.info(upstream_tfx.LAUNCH_RECORD, node_id)
        later = _StartLater(START_BESIDE_AFTER_SECONDS,
                            self._ready_beside(nodes[i + 1:], done) if child is None else None,
                            pipeline, self._log_file, self._before_launch)
        try:
          upstream_tfx.launch(pipeline, node)
        finally:
          started = later.settle()
          if started is not None:
            child = started
            launched_beside.add(child.node_id)
        absl_logging.info(upstream_tfx.FINISH_RECORD, node_id)
        done.add(node_id)
      join()
    except BaseException:
      if child is not None and child.stop():
        try:
          _mark_cancelled(pipeline, child.node_id)
        except Exception as e:  # pylint: disable=broad-except
          # A full disk, say: the child's execution stays FAILED; the run's error stands.
          absl_logging.warning("could not mark %s CANCELED: %s", child.node_id, e)
      raise

  def _ready_beside(self, later: List[pipeline_pb2.PipelineNode],
                    done: Set[str]) -> Optional[str]:
    """The first node of `later` that may run beside and whose upstream nodes are done."""
    for node in later:
      if (node.node_info.id in self._beside and not upstream_tfx.is_skipped(node)
          and set(node.upstream_nodes) <= done):
        return node.node_info.id
    return None
