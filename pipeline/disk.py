"""A full disk: how to recognise one in an error, and what to tell the user.

Light on purpose (no TensorFlow): `uet run` and `uet run-spec` both use it, the second on the
text a task's process logged.
"""

import errno
import shutil
from typing import Optional

# What OSError, TensorFlow's file system and SQLite say when the device is full.
_MESSAGES = ("No space left on device", "database or disk is full", "Disk quota exceeded")


def is_full_text(text: str) -> bool:
  """Whether an error message (or a task's log) says the disk is full."""
  return any(message in text for message in _MESSAGES)


def is_full(error: Optional[BaseException]) -> bool:
  """Whether `error` (or what caused it) is a full disk: OS, TensorFlow or SQLite."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
      return True
    if is_full_text(str(error)):
      return True
    error = error.__cause__ or error.__context__
  return False


def nearly_full(directory: str, below: int = 1 << 20) -> bool:
  """Whether the device of `directory` has less than `below` bytes free (1 MiB): too little
  for any component's outputs, so a failure there is taken for a full disk."""
  try:
    return shutil.disk_usage(directory).free < below
  except OSError:
    return False


def hint(directory: str, elsewhere: str = "another --output-dir",
         then: str = "completed components are reused") -> str:
  """What to say when the disk is full: where, how much is free, what to do."""
  try:
    free = f"{shutil.disk_usage(directory).free // 1024} KiB free now"
  except OSError:
    free = "free space unknown"
  return (f"no space left on the device of {directory} ({free}). Free space (or use "
          f"{elsewhere}) and run again: {then}")
