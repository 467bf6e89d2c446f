"""Parses MovieLens-100K files (`u.data` ratings joined with `u.user` demographics).

Pure Python and independent of Beam, so every error can name the file and line. A
malformed row raises `MovieLensFormatError` by default; with `max_bad_rows` > 0 such rows are
quarantined (kept with their reason) until the limit is passed. This is the row path:
clean files take the faster batch path (`batch_reader`, the same rules vectorized), and a
file that path does not accept in full is read here, for the exact file:line.

Value-level rules that the schema owns (a rating of 6, an unknown occupation) are *not*
checked here: those rows parse into examples and the validation gate reports them.
"""

import dataclasses
import os
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

RATINGS_FILE = "u.data"
USERS_FILE = "u.user"


class MovieLensFormatError(ValueError):
  """A MovieLens file is missing or malformed; the message says where and what to fix."""


class User(NamedTuple):
  age: int
  gender: str
  occupation: str
  zip_code: str


class Rating(NamedTuple):
  user_id: str
  movie_id: str
  rating: int
  timestamp: int


@dataclasses.dataclass
class BadRow:
  """A quarantined ratings row."""
  path: str
  line_number: int
  reason: str
  text: str


def _lines(path: str) -> Iterator[Tuple[int, str]]:
  """(1-based line number, decoded line) for every non-empty line; names bad UTF-8."""
  # tf.io.gfile: the same code reads local paths and gs:// (Vertex, Dataflow).
  from tensorflow.io import gfile  # pylint: disable=g-import-not-at-top
  if not gfile.exists(path) or gfile.isdir(path):
    raise MovieLensFormatError(
        f"{path}: file not found. A MovieLens directory needs {RATINGS_FILE} (ratings) and "
        f"{USERS_FILE} (users); pass the directory that holds both.")
  with gfile.GFile(path, "rb") as f:
    for number, raw in enumerate(iter(f.readline, b""), start=1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        yield number, MovieLensFormatError(
            f"{path}:{number}: not valid UTF-8 (byte {raw[e.start:e.start + 1]!r} at column "
            f"{e.start + 1}); re-encode the file as UTF-8")
        continue
      line = line.rstrip("\r\n")
      if line.strip():
        yield number, line


def _int(value: str, what: str, where: str) -> int:
  try:
    return int(value)
  except ValueError:
    raise MovieLensFormatError(f"{where}: {what} {value!r} is not an integer") from None


def read_users(path: str) -> Dict[str, User]:
  """Reads `u.user` (`user_id|age|gender|occupation|zip`). Any malformed line is fatal."""
  users: Dict[str, User] = {}
  for number, line in _lines(path):
    where = f"{path}:{number}"
    if isinstance(line, Exception):
      raise line
    fields = line.split("|")
    if len(fields) != 5:
      raise MovieLensFormatError(
          f"{where}: expected 5 '|'-separated fields (user_id|age|gender|occupation|zip), "
          f"found {len(fields)}: {line!r}")
    user_id, age, gender, occupation, zip_code = (x.strip() for x in fields)
    if not user_id:
      raise MovieLensFormatError(f"{where}: empty user_id")
    if user_id in users:
      raise MovieLensFormatError(f"{where}: user_id {user_id!r} appears twice")
    users[user_id] = User(_int(age, "age", where), gender, occupation, zip_code)
  if not users:
    raise MovieLensFormatError(f"{path}: no users; the file is empty")
  return users


def read_ratings(path: str, users: Dict[str, User], max_bad_rows: int = 0,
                 bad_rows: Optional[List[BadRow]] = None,
                 timestamp_bounds=None) -> Iterator[Tuple[Rating, User]]:
  """Yields (rating, user) for each line of `u.data` (`user\\titem\\trating\\ttimestamp`).

  Args:
    path: the ratings file.
    users: `read_users` of the matching user file.
    max_bad_rows: how many malformed rows to quarantine before failing; 0 fails on the first.
    bad_rows: a list that receives the quarantined rows.
    timestamp_bounds: a `timestamps.TimestampBounds`; ratings dated outside it are
      malformed rows (None accepts every timestamp).

  Raises:
    MovieLensFormatError: the file is missing or empty, or it has more malformed rows than
      `max_bad_rows` (the message names the first offending line).
  """
  quarantined = bad_rows if bad_rows is not None else []
  count = 0
  for number, line in _lines(path):
    where = f"{path}:{number}"
    try:
      if isinstance(line, Exception):
        raise line
      fields = line.split("\t")
      if len(fields) != 4:
        raise MovieLensFormatError(
            f"{where}: expected 4 tab-separated fields (user_id, movie_id, rating, "
            f"timestamp), found {len(fields)}: {line!r}")
      user_id, movie_id, rating, timestamp = (x.strip() for x in fields)
      if not user_id or not movie_id:
        raise MovieLensFormatError(f"{where}: empty user_id or movie_id: {line!r}")
      record = Rating(user_id, movie_id, _int(rating, "rating", where),
                      _int(timestamp, "timestamp", where))
      check_timestamp(record.timestamp, timestamp_bounds, where)
      user = users.get(user_id)
      if user is None:
        raise MovieLensFormatError(
            f"{where}: user_id {user_id!r} is not in {USERS_FILE}; add the user's "
            "demographics or drop the rating")
    except MovieLensFormatError as e:
      if len(quarantined) >= max_bad_rows:
        if max_bad_rows:
          raise MovieLensFormatError(
              f"{e} (more than --max-bad-rows={max_bad_rows} malformed rows)") from None
        raise
      text = line if isinstance(line, str) else "<undecodable>"
      quarantined.append(BadRow(path, number, str(e), text))
      continue
    count += 1
    yield record, user
  if count == 0:
    raise MovieLensFormatError(f"{path}: no valid ratings; the file is empty")


def check_timestamp(timestamp: int, bounds, where: str) -> None:
  """Raises MovieLensFormatError naming `where` when `timestamp` is outside `bounds`.

  The rules (after ingestion, before the feed's first span) live in `timestamps`.
  """
  from components.movielens_example_gen import timestamps  # pylint: disable=g-import-not-at-top
  problem = timestamps.timestamp_problem(timestamp, bounds)
  if problem:
    raise MovieLensFormatError(f"{where}: {problem}")


def user_file_for(ratings_path: str, input_base: str) -> str:
  """The user file beside the ratings file, else the one at the input root.

  A span directory (`span-3/u.data`) may carry its own `u.user` or share the root's.
  """
  from tensorflow.io import gfile  # pylint: disable=g-import-not-at-top
  beside = os.path.join(os.path.dirname(ratings_path), USERS_FILE)
  if gfile.exists(beside):
    return beside
  return os.path.join(input_base, USERS_FILE)
