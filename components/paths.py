"""Where a path is: on this machine's filesystem, or in an object store (gs://, s3://, ...).

Light on purpose (no imports): the local runner, the compiled pipeline's checks and `uet
run-spec` all ask it.
"""


def is_local(path: str) -> bool:
  """Whether `path` is on this machine's filesystem (no URI scheme), where a directory
  rename is atomic and only processes here can read it."""
  return "://" not in path
