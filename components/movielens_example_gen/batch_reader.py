"""The batch path of the MovieLens reader: pyarrow, a block at a time, for clean files.

`scan_ratings` checks a whole ratings file in one streaming pass with pyarrow's CSV reader
and the row path's rules, vectorized (`check_ratings_batch`). A file it accepts is then cut
into byte ranges (`ratings_byte_ranges`) that are parsed (`read_ratings_range`), joined
with the users (`join_users`) and serialized (`serialize_examples`) independently, so a
Beam worker can take each range and memory stays flat at any size.

It never reports an error itself: whatever it does not accept in full (a malformed row, a
missing file) goes to the row path, `reader.read_ratings`, which names file and line or
quarantines the row. Its checks are there to decide "clean or not", so they may be
stricter than the row path (whitespace around an id sends the file to the row path, which
strips it), never looser.
"""

import io
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from absl import logging
from pyarrow import csv as pa_csv

from components.movielens_example_gen import reader


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


def users_table(users: Dict[str, reader.User]) -> pa.Table:
  """`read_users` as columns (user_id, age, gender, occupation, zip_code), for the join."""
  return pa.table({
      "user_id": pa.array(list(users), pa.string()),
      "age": pa.array([u.age for u in users.values()], pa.int64()),
      "gender": pa.array([u.gender for u in users.values()], pa.string()),
      "occupation": pa.array([u.occupation for u in users.values()], pa.string()),
      "zip_code": pa.array([u.zip_code for u in users.values()], pa.string()),
  })


def check_ratings_batch(batch, user_ids: pa.Array,
                        timestamp_range: Tuple[Optional[int], Optional[int]] = (None, None)
                        ) -> Optional[str]:
  """The row path's per-row rules, vectorized: None if every row of `batch` passes.

  Returns a short description of the first rule that fails (for the log); the row path
  then finds and names the line. Field count, integer and UTF-8 rules are enforced by the
  CSV reader itself. A rule added to `read_ratings` needs its twin here, or clean-looking
  files would skip it.

  Args:
    batch: a pyarrow RecordBatch or Table of RATING_COLUMNS.
    user_ids: the ids of the user file.
    timestamp_range: (not_before, not_after), inclusive, either None for unbounded:
      timestamps outside it are left to the row path.
  """
  for name in ("user_id", "movie_id"):
    column = batch.column(name)
    if not pc.all(pc.greater(pc.utf8_length(column), 0)).as_py():
      return f"empty {name}"
    # The row path strips whitespace around fields; such rows take the row path.
    if not pc.all(pc.equal(pc.utf8_trim_whitespace(column), column)).as_py():
      return f"whitespace around a {name}"
  if not pc.all(pc.is_in(batch.column("user_id"), value_set=user_ids)).as_py():
    return f"a user_id that is not in {reader.USERS_FILE}"
  not_before, not_after = timestamp_range
  if batch.num_rows and (not_before is not None or not_after is not None):
    lowest, highest = (v.as_py() for v in pc.min_max(batch.column("timestamp")).values())
    if not_before is not None and lowest < not_before:
      return f"a timestamp before {not_before}"
    if not_after is not None and highest > not_after:
      return f"a timestamp after {not_after}"
  return None


def scan_ratings(path: str, users: Dict[str, reader.User],
                 timestamp_range: Tuple[Optional[int], Optional[int]] = (None, None)
                 ) -> Optional[int]:
  """Checks a ratings file with the batch path; streams it, so memory stays flat.

  Args:
    path: the ratings file.
    users: `reader.read_users` of the matching user file.
    timestamp_range: see `check_ratings_batch`.

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
      for batch in pa_csv.open_csv(_GFileStream(f), read_options=read_options,
                                   parse_options=parse_options,
                                   convert_options=convert_options):
        problem = check_ratings_batch(batch, user_ids, timestamp_range)
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


# ---------------------------------------------------------------------------------------
# tf.Example serialization of whole columns: protobuf's wire format built with pyarrow
# string kernels and numpy, no per-row Python. tfx_bsl's RecordBatchToExamplesEncoder is
# as fast, but writes the features in hash-map order; the split hashes these bytes, so
# they must equal `SerializeToString(deterministic=True)` (features sorted by name).

_EMPTY = pa.scalar(b"", pa.large_binary())


def _varints(values: np.ndarray) -> pa.LargeBinaryArray:
  """Protobuf varints of int64 values (a negative one as 10 bytes, two's complement)."""
  u = np.asarray(values).astype(np.int64).view(np.uint64)
  n = len(u)
  nbytes = np.ones(n, np.int64)
  rest = u >> np.uint64(7)
  while rest.any():
    nbytes += rest > 0
    rest >>= np.uint64(7)
  offsets = np.zeros(n + 1, np.int64)
  np.cumsum(nbytes, out=offsets[1:])
  buf = np.zeros(int(offsets[-1]), np.uint8)
  for j in range(int(nbytes.max(initial=1))):
    rows = np.nonzero(nbytes > j)[0]
    byte = ((u[rows] >> np.uint64(7 * j)) & np.uint64(0x7F)).astype(np.uint8)
    byte |= np.where(nbytes[rows] > j + 1, 0x80, 0).astype(np.uint8)
    buf[offsets[rows] + j] = byte
  return pa.LargeBinaryArray.from_buffers(
      pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf)])


def _field(tag: bytes, payload: pa.LargeBinaryArray) -> pa.LargeBinaryArray:
  """Element-wise `tag + varint(len(payload)) + payload`: a length-delimited field."""
  lengths = pc.binary_length(payload).to_numpy(zero_copy_only=False)
  return pc.binary_join_element_wise(pa.scalar(tag, pa.large_binary()), _varints(lengths),
                                     payload, _EMPTY)


def serialize_examples(table: pa.Table, feature_of_column: Mapping[str, str]) -> List[bytes]:
  """One serialized tf.Example per row: string columns as bytes_list, integer columns as
  int64_list, named by `feature_of_column`; byte-identical to
  `tf.train.Example.SerializeToString(deterministic=True)`."""
  entries = []
  for column, feature in sorted(feature_of_column.items(), key=lambda kv: kv[1]):
    values = table.column(column).combine_chunks()
    if pa.types.is_string(values.type) or pa.types.is_binary(values.type):
      # Feature{bytes_list (1): BytesList{value (1)}}
      value = _field(b"\n", _field(b"\n", values.cast(pa.large_binary())))
    else:
      # Feature{int64_list (3): Int64List{value (1), packed}}
      value = _field(b"\x1a", _field(b"\n", _varints(values.to_numpy())))
    name = feature.encode("utf-8")
    # Features.feature map entry: key (1), value (2).
    key = pa.scalar(b"\n" + _varints(np.array([len(name)]))[0].as_py() + name,
                    pa.large_binary())
    entries.append(_field(b"\n", pc.binary_join_element_wise(key, _field(b"\x12", value),
                                                             _EMPTY)))
  # Example{features (1): Features{the entries, each a `feature` (1) map field}}
  return _field(b"\n", pc.binary_join_element_wise(*entries, _EMPTY)).to_pylist()
