"""SIGTERM stops a local run even where an exception raised at that moment would be lost.

`cancel_on_sigterm` raises in the main thread. Two places would swallow that exception: a
logging handler (TFX and Beam log constantly; `Handler.handleError` prints and carries on)
and a library's `except Exception`. A CI run of the fault suite failed the way a cancelled
run that carried on to the end would make it fail: the next run, with the disk filled when
Transform started, succeeded from cache and only then hit the full disk.
"""

import logging
import os
import signal
import time

import pytest

from pipeline import local_runner


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
    with pytest.raises(local_runner._Cancel, match="cancelled by SIGTERM"):  # pylint: disable=protected-access
      with local_runner.cancel_on_sigterm() as received:
        logger.warning("a record")            # the signal lands in here
        _wait()                               # raised here, once logging returned
    assert received == ["SIGTERM"]
  finally:
    logger.removeHandler(handler)


def test_a_swallowed_cancel_still_keeps_the_next_component_from_starting():
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.INFO)
  try:
    with pytest.raises(local_runner._Cancel, match="cancelled by SIGTERM"):  # pylint: disable=protected-access
      with local_runner.cancel_on_sigterm() as received:
        try:
          os.kill(os.getpid(), signal.SIGTERM)
          _wait()
        except Exception:  # pylint: disable=broad-except
          pass                                # a library that swallows it
        assert received == ["SIGTERM"]
        absl_logger.info("Component %s is finished.", "Transform")     # not a launch: fine
        absl_logger.info(local_runner.LAUNCH_RECORD, "BaselineTrainer")
        pytest.fail("the next component was launched after SIGTERM")
  finally:
    absl_logger.setLevel(level)


def test_outside_the_block_sigterm_is_what_it_was():
  before = signal.getsignal(signal.SIGTERM)
  filters = list(logging.getLogger("absl").filters)
  with local_runner.cancel_on_sigterm():
    assert signal.getsignal(signal.SIGTERM) is not before
  assert signal.getsignal(signal.SIGTERM) is before
  assert logging.getLogger("absl").filters == filters
