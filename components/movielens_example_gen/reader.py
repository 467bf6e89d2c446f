"""Parses MovieLens-100K files (`u.data` ratings joined with `u.user` demographics).

Two paths over the same rules. The batch path (`scan_ratings`, `read_ratings_range`,
`join_users`) parses the ratings file with pyarrow's CSV reader, a block at a time, and
checks each block with vectorized rules (`check_ratings_batch`); it is what a clean file
goes through, at millions of rows per second. The row path (`read_ratings`) is pure Python,
line by line, so every error can name the file and line: a file the batch path does not
accept in full is read again this way, which reports the first problem exactly (or
quarantines it). A malformed row raises `MovieLensFormatError` by default; with
`max_bad_rows` > 0 such rows are quarantined (kept with their reason) until the limit is
passed.

Value-level rules that the schema owns (a rating of 6, an unknown occupation) are *not*
checked here: those rows parse into examples and the validation gate reports them.
"""

import dataclasses
import io
import os
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

from absl import logging
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv

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
                 bad_rows: Optional[List[BadRow]] = None) -> Iterator[Tuple[Rating, User]]:
  """Yields (rating, user) for each line of `u.data` (`user\\titem\\trating\\ttimestamp`).

  Args:
    path: the ratings file.
    users: `read_users` of the matching user file.
    max_bad_rows: how many malformed rows to quarantine before failing; 0 fails on the first.
    bad_rows: a list that receives the quarantined rows.

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


def user_file_for(ratings_path: str, input_base: str) -> str:
  """The user file beside the ratings file, else the one at the input root.

  A span directory (`span-3/u.data`) may carry its own `u.user` or share the root's.
  """
  from tensorflow.io import gfile  # pylint: disable=g-import-not-at-top
  beside = os.path.join(os.path.dirname(ratings_path), USERS_FILE)
  if gfile.exists(beside):
    return beside
  return os.path.join(input_base, USERS_FILE)


# ---------------------------------------------------------------------------------------
# Batch path: pyarrow, a block at a time. It never reports an error itself: any block it
# cannot accept in full sends the whole file to the row path, which names file and line.

RATING_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
# Bytes per pyarrow block while scanning, and per Beam element while converting: big enough
# that per-block overhead vanishes, small enough that memory stays flat.
BLOCK_BYTES = 16 << 20


def _csv_options(block_size: int = BLOCK_BYTES):
  """pyarrow CSV options that accept exactly what the row path accepts (or less).

  No quoting or escaping (a quote is data, as with `str.split`); no null spellings (an
  empty or "NA" rating is malformed, not missing); strings must be UTF-8.
  """
  return (
      pa_csv.ReadOptions(column_names=list(RATING_COLUMNS), block_size=block_size),
      pa_csv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False,
                          newlines_in_values=False, ignore_empty_lines=True),
      pa_csv.ConvertOptions(
          column_types={"user_id": pa.string(), "movie_id": pa.string(),
                        "rating": pa.int64(), "timestamp": pa.int64()},
          null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
          check_utf8=True))


class _GFileStream(io.RawIOBase):
  """A read-only stream over `tf.io.gfile` (local or gs://) that pyarrow can read from."""

  def __init__(self, f):
    super().__init__()
    self._f = f

  def readable(self) -> bool:
    return True

  def readinto(self, buffer) -> int:
    data = self._f.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)


def users_table(users: Dict[str, User]) -> pa.Table:
  """`read_users` as columns (user_id, age, gender, occupation, zip_code), for the join."""
  return pa.table({
      "user_id": pa.array(list(users), pa.string()),
      "age": pa.array([u.age for u in users.values()], pa.int64()),
      "gender": pa.array([u.gender for u in users.values()], pa.string()),
      "occupation": pa.array([u.occupation for u in users.values()], pa.string()),
      "zip_code": pa.array([u.zip_code for u in users.values()], pa.string()),
  })


def check_ratings_batch(batch, user_ids: pa.Array) -> Optional[str]:
  """The row path's per-row rules, vectorized: None if every row of `batch` passes.

  Returns a short description of the first rule that fails (for the log); the row path
  then finds and names the line. Field count, integer and UTF-8 rules are enforced by the
  CSV reader itself. A rule added to `read_ratings` needs its twin here, or clean-looking
  files would skip it.
  """
  for name in ("user_id", "movie_id"):
    column = batch.column(name)
    if not pc.all(pc.greater(pc.utf8_length(column), 0)).as_py():
      return f"empty {name}"
    # The row path strips whitespace around fields; such rows take the row path.
    if not pc.all(pc.equal(pc.utf8_trim_whitespace(column), column)).as_py():
      return f"whitespace around a {name}"
  if not pc.all(pc.is_in(batch.column("user_id"), value_set=user_ids)).as_py():
    return f"a user_id that is not in {USERS_FILE}"
  return None


def scan_ratings(path: str, users: Dict[str, User]) -> Optional[int]:
  """Checks a ratings file with the batch path; streams it, so memory stays flat.

  Returns:
    The number of ratings if every row passes, else None (the caller then reads the file
    with `read_ratings`, which reports or quarantines exactly what is wrong). Also None for
    a missing or empty file, whose error the row path words.
  """
  from tensorflow.io import gfile  # pylint: disable=g-import-not-at-top
  if not gfile.exists(path) or gfile.isdir(path):
    return None
  user_ids = users_table(users).column("user_id").combine_chunks()
  rows = 0
  read_options, parse_options, convert_options = _csv_options()
  try:
    with gfile.GFile(path, "rb") as f:
      for batch in pa_csv.open_csv(_GFileStream(f), read_options=read_options, parse_options=parse_options,
                                   convert_options=convert_options):
        problem = check_ratings_batch(batch, user_ids)
        if problem:
          logging.info("%s: %s; reading it row by row for the exact line", path, problem)
          return None
        rows += batch.num_rows
  except (pa.ArrowInvalid, UnicodeDecodeError) as e:
    logging.info("%s: not accepted by the batch reader (%s); reading it row by row for "
                 "the exact line", path, str(e).splitlines()[0])
    return None
  return rows or None


def ratings_byte_ranges(path: str, block_bytes: int = BLOCK_BYTES) -> List[Tuple[int, int]]:
  """[start, end) byte ranges of about `block_bytes` that cover the file on line boundaries."""
  from tensorflow.io import gfile  # pylint: disable=g-import-not-at-top
  size = gfile.stat(path).length
  ranges, start = [], 0
  with gfile.GFile(path, "rb") as f:
    while start < size:
      end = start + block_bytes
      if end >= size:
        end = size
      else:
        f.seek(end)
        end += len(f.readline())  # to the end of the line that straddles the cut
      ranges.append((start, end))
      start = end
  return ranges


def read_ratings_range(path: str, start: int, end: int) -> pa.Table:
  """The ratings in bytes [start, end) of a file that `scan_ratings` accepted."""
  from tensorflow.io import gfile  # pylint: disable=g-import-not-at-top
  with gfile.GFile(path, "rb") as f:
    f.seek(start)
    data = f.read(end - start)
  read_options, parse_options, convert_options = _csv_options()
  return pa_csv.read_csv(pa.py_buffer(data), read_options=read_options,
                         parse_options=parse_options, convert_options=convert_options)


def join_users(ratings: pa.Table, users: pa.Table) -> pa.Table:
  """Ratings with their user's age, gender, occupation and zip code (every user known)."""
  index = pc.index_in(ratings.column("user_id"), value_set=users.column("user_id"))
  joined = {name: ratings.column(name) for name in RATING_COLUMNS}
  for name in ("age", "gender", "occupation", "zip_code"):
    joined[name] = users.column(name).take(index)
  return pa.table(joined)
