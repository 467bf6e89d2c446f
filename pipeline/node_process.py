"""One node of a compiled pipeline, launched in this process: `parallel_runner`'s child.

  python -m pipeline.node_process PIPELINE_IR NODE_ID RESULT_JSON PARENT_PID [LOG_FILE]

Launches the node as TFX's LocalDagRunner would (same launcher and ML Metadata records),
under the same SIGTERM handling as `uet run` (TFX records the stopped execution as failed).
On failure it writes {"error", "disk_full"} to RESULT_JSON and exits 1. It stops by itself
when the parent process is gone.
"""

import json
import os
import signal
import sys
import threading
import time

from pipeline import environment


def _stop_with_parent(parent_pid: int) -> None:
  """SIGTERM to this process once the parent died (also by SIGKILL)."""
  def watch() -> None:
    while os.getppid() == parent_pid:
      time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
  threading.Thread(target=watch, name="uet-parent-watch", daemon=True).start()


def main(argv) -> int:
  environment.configure()  # before anything imports TensorFlow
  request, node_id, result_path, parent_pid = argv[1:5]
  log_file = argv[5] if len(argv) > 5 else None
  _stop_with_parent(int(parent_pid))
  # pylint: disable=g-import-not-at-top
  import absl.logging
  from tfx.proto.orchestration import pipeline_pb2

  from pipeline import cancel, disk
  from uet_upstream import tfx as upstream_tfx
  # pylint: enable=g-import-not-at-top
  absl.logging.set_verbosity(absl.logging.INFO)
  pipeline = pipeline_pb2.Pipeline()
  with open(request, "rb") as f:
    pipeline.ParseFromString(f.read())
  node = next(n.pipeline_node for n in pipeline.nodes
              if n.pipeline_node.node_info.id == node_id)
  try:
    with cancel.cancel_on_sigterm():
      upstream_tfx.launch(pipeline, node)
  except Exception as e:  # pylint: disable=broad-except
    absl.logging.exception("Component %s failed in a child process (log: %s)", node_id,
                           log_file)
    try:
      with open(result_path, "w") as f:
        json.dump({"error": f"{type(e).__name__}: {e}", "disk_full": disk.is_full(e)}, f)
    except OSError:
      pass  # the parent reports the exit code alone
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
