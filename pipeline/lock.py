"""One `uet run` per output directory: an exclusive, non-blocking `flock` on OUTPUT/.uet.lock.

Two runs on one output directory would both write its SQLite metadata store, its serving
directory and its dataset copy. The second refuses at once instead. The lock is the kernel's,
so it disappears with the process that held it, however that process ended (even SIGKILL):
a crashed run never leaves a stale lock behind.

Light on purpose (no TensorFlow): the entry points (`uet run`, `uet simulate`) take it once,
before anything else; the local runner assumes its caller holds it.
"""

import contextlib
import fcntl
import os
from typing import Iterator

LOCK_FILE = ".uet.lock"


class RunLockedError(RuntimeError):
  """Another `uet run` holds the output directory."""


@contextlib.contextmanager
def output_lock(output_dir: str, holder: str = "uet run") -> Iterator[None]:
  """Holds the output directory's lock for the duration of the block.

  Args:
    output_dir: the run's output directory (created if missing).
    holder: what holds it, as a refused run will be told (the command).

  Raises:
    RunLockedError: another process (or another block of this one) holds it; the message
      names the holder.
  """
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(output_dir, LOCK_FILE)
  with open(path, "a+") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holding = f.read().strip() or "another process"
      raise RunLockedError(
          f"{output_dir} is in use by {holding}, which is writing there. Wait for it to "
          "finish, or use another output directory") from None
    f.seek(0)
    f.truncate()
    f.write(f"{holder} (pid {os.getpid()})")
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
