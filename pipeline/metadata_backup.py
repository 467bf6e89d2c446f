"""ML Metadata's SQLite store: a health check, a last-good copy, and `uet restore-metadata`.

A full disk or a crash in the middle of a copy can leave `OUTPUT/metadata.sqlite` truncated.
TFX then fails deep inside ML Metadata (`database disk image is malformed`). Instead:

* before a run, `check_store` runs SQLite's `quick_check` and, if the store is unusable,
  raises `MetadataStoreError` naming the file and the two ways out;
* after every successful run, `save_last_good` copies the store with SQLite's online backup
  API to `OUTPUT/metadata.last-good.sqlite` (a consistent snapshot, written beside and
  renamed into place, so the copy itself is never half-written);
* `uet restore-metadata` puts that copy back (the damaged store is kept aside);
* with no store at all, `start_fresh_if_missing` moves the artifacts of the lost store
  (`OUTPUT/tfx/`) aside so the new store's executions never write into directories that
  belonged to the old one; the run then retrains from scratch. Pushed models are never
  touched: the Pusher only ever adds a version newer than every one in `OUTPUT/serving/`.

Light on purpose (sqlite3 only, no TensorFlow): `uet restore-metadata` is quick.
"""

import argparse
import os
import sqlite3
import sys
import time
from typing import List, Optional

from pipeline.exit_codes import EXIT_LOCKED, EXIT_OK, EXIT_USAGE

LAST_GOOD_FILE = "metadata.last-good.sqlite"
# What SQLite may keep beside a database file; moved together with it.
_SIDE_FILES = ("-journal", "-wal", "-shm")


class MetadataStoreError(RuntimeError):
  """The ML Metadata store cannot be read; the message names the file and what to do."""


def last_good_path(metadata_path: str) -> str:
  """Where the last-good copy of `metadata_path` is kept (beside it)."""
  return os.path.join(os.path.dirname(metadata_path), LAST_GOOD_FILE)


def problem(path: str) -> Optional[str]:
  """None when `path` is a readable SQLite database, else what SQLite says is wrong."""
  try:
    # Read-only, and immutable=0 so a hot journal is noticed rather than ignored.
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
      rows = connection.execute("PRAGMA quick_check").fetchall()
      tables = {r[0] for r in connection.execute(
          "SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
      connection.close()
  except sqlite3.DatabaseError as e:
    return str(e)
  if rows != [("ok",)]:
    return "; ".join(str(r[0]) for r in rows[:3])
  if tables and "Artifact" not in tables:
    return "a SQLite database, but not an ML Metadata store (no Artifact table)"
  return None


def describe(metadata_path: str, reason: str) -> str:
  """The message for an unusable store: which file, what is wrong, the ways out."""
  output_dir = os.path.dirname(metadata_path) or "."
  backup = last_good_path(metadata_path)
  lines = [f"{metadata_path}: the ML Metadata store is unreadable ({reason}). This is what "
           "a full disk or a crash mid-copy leaves."]
  move = (f"move it aside (mv {metadata_path} {metadata_path}.bad); the next run starts a new "
          "store and retrains from scratch")
  if os.path.exists(backup) and problem(backup) is None:
    saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(backup)))
    lines.append(f"  - restore the copy saved after the last successful run ({saved}): "
                 f"uet restore-metadata --output-dir {output_dir}")
    lines.append(f"  - or {move}")
  else:
    lines.append(f"  - no last-good copy exists yet: {move}")
  lines.append(f"The models already pushed to {os.path.join(output_dir, 'serving')} are kept "
               "either way; a new push only adds a newer version.")
  return "\n".join(lines)


def check_store(metadata_path: str) -> None:
  """Raises MetadataStoreError when `metadata_path` exists but is not a usable store.

  Args:
    metadata_path: the SQLite file of ML Metadata (a missing file is fine: a new store).
  """
  if not os.path.exists(metadata_path):
    return
  reason = problem(metadata_path)
  if reason:
    raise MetadataStoreError(describe(metadata_path, reason))


def _copy(source: str, destination: str) -> None:
  """SQLite online backup of `source` to `destination`, renamed into place when complete."""
  tmp = f"{destination}.tmp-{os.getpid()}"
  if os.path.exists(tmp):
    os.remove(tmp)
  src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
  try:
    dst = sqlite3.connect(tmp)
    try:
      src.backup(dst)
    finally:
      dst.close()
  except BaseException as e:
    if os.path.exists(tmp):
      os.remove(tmp)
    if isinstance(e, sqlite3.Error):
      # E.g. "database or disk is full": SQLite's errors are not OSErrors; callers catch
      # one type, and the earlier copy at `destination` is untouched.
      raise MetadataStoreError(f"could not copy {source} to {destination}: {e}") from e
    raise
  finally:
    src.close()
  reason = problem(tmp)
  if reason:
    os.remove(tmp)
    raise MetadataStoreError(f"the copy of {source} is unreadable ({reason})")
  os.replace(tmp, destination)


def save_last_good(metadata_path: str) -> str:
  """Copies the store (after a successful run) to its last-good file; returns that path.

  Raises:
    MetadataStoreError: SQLite could not copy it (e.g. the disk is full), or the copy does not
      read back; the earlier last-good copy is kept.
    OSError: the copy could not be renamed into place.
  """
  destination = last_good_path(metadata_path)
  _copy(metadata_path, destination)
  return destination


def _move_aside(path: str, suffix: str) -> Optional[str]:
  """Renames `path` (and SQLite's side files) to `path.<suffix>`; None when absent."""
  if not os.path.exists(path):
    return None
  target = f"{path}.{suffix}"
  os.replace(path, target)
  for side in _SIDE_FILES:
    if os.path.exists(path + side):
      os.replace(path + side, target + side)
  return target


def missing_artifacts(metadata_path: str, output_dir: str) -> List[str]:
  """URIs under `output_dir` that the store records but that no longer exist."""
  connection = sqlite3.connect(f"file:{metadata_path}?mode=ro", uri=True)
  try:
    uris = [r[0] for r in connection.execute("SELECT uri FROM Artifact") if r[0]]
  finally:
    connection.close()
  root = os.path.realpath(output_dir) + os.sep
  return [u for u in uris
          if os.path.realpath(u).startswith(root) and not os.path.exists(u)]


def restore(metadata_path: str) -> str:
  """Puts the last-good copy back in place of the store; returns where the old one went.

  Args:
    metadata_path: the store to replace (damaged, or missing).

  Returns:
    The path the replaced store was moved to ("" when there was none).

  Raises:
    MetadataStoreError: no usable last-good copy, or it refers to artifacts that are gone
      (a run on a new store has moved them aside since).
  """
  backup = last_good_path(metadata_path)
  if not os.path.exists(backup):
    raise MetadataStoreError(
        f"{backup}: no last-good copy (one is saved after every successful run). Move "
        f"{metadata_path} aside instead; the next run starts a new store and retrains from "
        "scratch")
  reason = problem(backup)
  if reason:
    raise MetadataStoreError(f"{backup}: the last-good copy is unreadable too ({reason}). "
                             f"Move {metadata_path} aside; the next run retrains from scratch")
  output_dir = os.path.dirname(metadata_path) or "."
  gone = missing_artifacts(backup, output_dir)
  if gone:
    raise MetadataStoreError(
        f"{backup}: the last-good copy refers to {len(gone)} artifact(s) that no longer exist "
        f"(e.g. {gone[0]}); a run on a new store has replaced them. Keep the current store")
  moved = _move_aside(metadata_path, time.strftime("damaged-%Y%m%d-%H%M%S")) or ""
  _copy(backup, metadata_path)
  return moved


def start_fresh_if_missing(metadata_path: str, pipeline_root: str) -> Optional[str]:
  """Before a run with no store: moves the lost store's artifacts aside.

  Without its store, `OUTPUT/tfx/` is a set of orphans, and a new store numbers its
  executions from 1 again: its outputs would land in the old directories (and a failed
  execution's clean-up would delete them). Moving them aside keeps them for inspection and
  lets the run retrain from scratch in clean directories.

  Returns:
    Where the old pipeline root went, or None when nothing had to move.
  """
  if os.path.exists(metadata_path) or not os.path.isdir(pipeline_root):
    return None
  if not os.listdir(pipeline_root):
    return None
  return _move_aside(pipeline_root, time.strftime("orphaned-%Y%m%d-%H%M%S"))


def add_parser(sub) -> None:
  """Declares `uet restore-metadata`."""
  p = sub.add_parser(
      "restore-metadata", help="put back the copy of ML Metadata saved after the last "
      "successful run", description="Replaces OUTPUT/metadata.sqlite (damaged, e.g. by a full "
      "disk) with OUTPUT/metadata.last-good.sqlite; the damaged file is kept as "
      "metadata.sqlite.damaged-<time>.")
  p.add_argument("--output-dir", default="output", help="the run's output directory "
                 "(default: ./output)")
  p.set_defaults(func=cmd_restore)


def cmd_restore(args: argparse.Namespace) -> int:
  """`uet restore-metadata`: under the output lock, restore the last-good store."""
  from pipeline import config as config_lib, lock  # pylint: disable=g-import-not-at-top
  output_dir = os.path.abspath(args.output_dir)
  metadata_path = config_lib.output_path(output_dir, config_lib.METADATA_FILE)
  try:
    with lock.output_lock(output_dir):
      moved = restore(metadata_path)
  except lock.RunLockedError as e:
    print(f"uet restore-metadata: error: {e}", file=sys.stderr)
    return EXIT_LOCKED
  except MetadataStoreError as e:
    print(f"uet restore-metadata: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  print(f"restored {metadata_path} from {last_good_path(metadata_path)}"
        + (f"; the replaced store is kept as {moved}" if moved else ""))
  print("the next `uet run` resumes from the last successful run (unchanged components are "
        "cached)")
  return EXIT_OK
