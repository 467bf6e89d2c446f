"""SIGTERM stops a local run even where an exception raised at that moment would be lost.

`cancel.cancel_on_sigterm` raises in the main thread. Two places would swallow that
exception: a logging handler (TFX and Beam log constantly; `Handler.handleError` prints and
carries on) and a library's `except Exception`. Either way the run must stop: no component
may start after the signal.
"""

import logging
import os
import signal
import time

import pytest

from pipeline import cancel, parallel_runner
from tests import test_parallel_runner


class _SignalWhileWriting:
  """A log stream that receives SIGTERM in the middle of a write, as the run's log file may.

  logging.StreamHandler (like the run's FileHandler) catches what its write raises and
  hands it to `handleError`, which prints it and carries on.
  """

  def write(self, text: str) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:   # the handler runs here, between bytecodes
      pass

  def flush(self) -> None:
    pass


def _wait(seconds: float = 2.0) -> None:
  deadline = time.monotonic() + seconds
  while time.monotonic() < deadline:
    time.sleep(0.01)


def test_a_signal_that_arrives_inside_a_logging_handler_still_cancels():
  logger = logging.getLogger("uet.test_cancel")
  handler = logging.StreamHandler(_SignalWhileWriting())
  logger.addHandler(handler)
  try:
    with pytest.raises(cancel.Cancelled, match="cancelled by SIGTERM"):
      with cancel.cancel_on_sigterm() as received:
        logger.warning("a record")            # the signal lands in here
        _wait()                               # raised here, once logging returned
    assert received.signal_name == "SIGTERM"
  finally:
    logger.removeHandler(handler)


def test_a_swallowed_cancel_still_keeps_the_next_component_from_starting(tmp_path):
  launched = []
  with pytest.raises(cancel.Cancelled, match="cancelled by SIGTERM"):
    with cancel.cancel_on_sigterm() as received:
      try:
        os.kill(os.getpid(), signal.SIGTERM)
        _wait()
      except Exception:  # pylint: disable=broad-except
        pass                                  # a library that swallows it
      assert received.signal_name == "SIGTERM"

      def check_then_record():
        received.check()
        launched.append(1)
      # The runner asks before it launches any node: none starts.
      parallel_runner.LocalDagRunner(before_launch=check_then_record).run(
          test_parallel_runner.small_pipeline(tmp_path, a={}, b={}))
      pytest.fail("the next component was launched after SIGTERM")
  assert not launched
  assert not (tmp_path / "metadata.sqlite").exists()  # no node registered an execution


def test_outside_the_block_sigterm_is_what_it_was():
  before = signal.getsignal(signal.SIGTERM)
  filters = list(logging.getLogger("absl").filters)
  with cancel.cancel_on_sigterm():
    assert signal.getsignal(signal.SIGTERM) is not before
  assert signal.getsignal(signal.SIGTERM) is before
  assert logging.getLogger("absl").filters == filters
