"""SIGTERM cancels a local run: the component running stops, and no other starts.

`cancel_on_sigterm()` raises `Cancelled` in the main thread when SIGTERM arrives, and yields
a `Cancellation` whose `check()` the runner calls before it launches any node
(`parallel_runner.LocalDagRunner(before_launch=...)`). Both are needed: an exception raised
at an arbitrary point can be swallowed, inside a logging handler (`Handler.handleError`
prints it and carries on; TFX and Beam log constantly) or by a library's `except Exception`.
So the handler waits until the main thread is out of a logging call, and `check()` keeps the
next node from starting even when the exception itself was lost.
"""

import _thread
import contextlib
import logging
import signal
import threading
from typing import Iterator, Optional


class Cancelled(Exception):
  """Raised in the main thread by the SIGTERM handler, and by `Cancellation.check`.

  An Exception (not a BaseException) on purpose: TFX's launcher then records the running
  execution as failed and re-raises, exactly as for a component error.
  """


class Cancellation:
  """Whether SIGTERM arrived during the block (`signal_name` then names it)."""

  def __init__(self):
    self.signal_name: Optional[str] = None

  def __bool__(self) -> bool:
    return self.signal_name is not None

  def check(self) -> None:
    """Raises Cancelled once the signal arrived."""
    if self.signal_name is not None:
      raise Cancelled(f"cancelled by {self.signal_name}")


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[Cancellation]:
  """While the block runs, SIGTERM stops the current component (raises in the main thread).

  Yields the Cancellation that records the signal. Further SIGTERMs while the run winds
  down are ignored (a scheduler's SIGKILL ends it if it takes too long). Outside the main
  thread (where Python cannot handle signals) this does nothing.
  """
  cancellation = Cancellation()
  if threading.current_thread() is not threading.main_thread():
    yield cancellation
    return
  raised = []

  def handler(signum, frame):
    if cancellation.signal_name is None:
      cancellation.signal_name = signal.Signals(signum).name
    if raised:
      return
    if _in_logging_call(frame):
      # Raised here, logging would swallow it: signal the main thread again shortly.
      threading.Timer(0.01, _thread.interrupt_main, args=(signum,)).start()
      return
    raised.append(True)
    cancellation.check()

  previous = signal.signal(signal.SIGTERM, handler)
  try:
    yield cancellation
  finally:
    signal.signal(signal.SIGTERM, previous)


def _in_logging_call(frame) -> bool:
  """Whether `frame` runs inside a logging handler (where exceptions are swallowed)."""
  while frame is not None:
    if frame.f_code is logging.Handler.handle.__code__:
      return True
    frame = frame.f_back
  return False
