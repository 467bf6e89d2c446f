"""Executor of the MovieLens ExampleGen: ratings joined with users, as `tf.Example`s.

The base class resolves `input_config` (including `{SPAN}` patterns), splits the records by
hash (deterministic) and writes them; this executor only turns one ratings file into
serialized examples.

A clean file (checked in one streaming pass with pyarrow) is converted in blocks: each Beam
element is a byte range of the file, parsed with pyarrow, joined with the users and encoded
to tf.Examples with vectorized pyarrow kernels. A file with any malformed row is read row by row in the
launcher instead, which names file and line or quarantines the row.
"""

import functools
import json
import os
from typing import Any, Dict, List, Optional

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.example_gen import base_example_gen_executor
from tfx.types import artifact_utils, standard_component_specs

from components.movielens_example_gen import batch_reader, reader, timestamps
from uet_upstream import tfx as upstream_tfx

# Custom property of the Examples artifact: how many malformed rows were quarantined.
QUARANTINED_ROWS_PROPERTY = "quarantined_rows"


def to_example(rating: reader.Rating, user: reader.User) -> tf.train.Example:
  """One rating and its user's demographics as a tf.Example (the raw schema)."""
  def b(v: str):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8")]))

  def i(v: int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

  return tf.train.Example(features=tf.train.Features(feature={
      "user_id": b(rating.user_id),
      "movie_id": b(rating.movie_id),
      "rating": i(rating.rating),
      "timestamp": i(rating.timestamp),
      "user_age": i(user.age),
      "user_gender": b(user.gender),
      "user_occupation": b(user.occupation),
      "user_zip_code": b(user.zip_code),
  }))


# Raw columns of the batch path (batch_reader.join_users) -> feature names of the raw schema.
_FEATURE_OF_COLUMN = {
    "user_id": "user_id",
    "movie_id": "movie_id",
    "rating": "rating",
    "timestamp": "timestamp",
    "age": "user_age",
    "gender": "user_gender",
    "occupation": "user_occupation",
    "zip_code": "user_zip_code",
}


def encode_examples(joined) -> List[bytes]:
  """Serialized tf.Examples of `batch_reader.join_users` rows, byte-identical to
  `to_example(...).SerializeToString(deterministic=True)` (the split hashes these bytes)."""
  return batch_reader.serialize_examples(joined, _FEATURE_OF_COLUMN)


class _EncodeRange(beam.DoFn):
  """A byte range of a clean ratings file -> its serialized tf.Examples."""

  def __init__(self, ratings_path: str, users):
    self._ratings_path = ratings_path
    self._users = users

  def process(self, byte_range):
    start, end = byte_range
    ratings = batch_reader.read_ratings_range(self._ratings_path, start, end)
    yield from encode_examples(batch_reader.join_users(ratings, self._users))


def _write_quarantine(quarantine_path: str, bad_rows: List[reader.BadRow]) -> None:
  # Rewritten by every ingest, even with nothing to quarantine: never a stale list.
  tf.io.gfile.makedirs(os.path.dirname(quarantine_path))
  with tf.io.gfile.GFile(quarantine_path, "w") as f:
    f.write("file\tline\treason\trow\n")
    for row in bad_rows:
      f.write(f"{row.path}\t{row.line_number}\t{row.reason}\t{row.text}\n")


def options_from_exec_properties(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
  """Reader options carried in the component's `custom_config` (a JSON-encoded Struct)."""
  raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
  if not raw:
    return {}
  config = json.loads(raw) if isinstance(raw, str) else raw
  # CustomConfig{custom_config: Any(Struct)} in JSON form: {"customConfig": {"@type":.., "value": {...}}}
  packed = config.get("customConfig") or config.get("custom_config") or {}
  return dict(packed.get("value", {}))


def read_examples(ratings_path: str, input_base: str, max_bad_rows: int = 0,
                  quarantine_path: str = "",
                  bad_rows: Optional[List[reader.BadRow]] = None) -> List[bytes]:
  """Serialized examples of one ratings file; quarantines malformed rows if allowed.

  Args:
    ratings_path: the ratings file.
    input_base: the input root (where the user file is, unless one is beside the ratings).
    max_bad_rows: malformed rows to quarantine before failing (0: fail on the first).
    quarantine_path: where quarantined rows are written (TSV with the reason per row).
    bad_rows: a list that receives the quarantined rows (for the count on the artifact).

  Returns:
    The serialized tf.Examples of the valid rows.
  """
  users = reader.read_users(reader.user_file_for(ratings_path, input_base))
  # Ratings dated after now or before the feed's first span would bend every time window.
  bounds = timestamps.bounds_for(ratings_path, input_base)
  if batch_reader.scan_ratings(ratings_path, users, _timestamp_range(bounds)) is not None:
    if quarantine_path:
      _write_quarantine(quarantine_path, [])
    table = batch_reader.users_table(users)
    return [example
            for start, end in batch_reader.ratings_byte_ranges(ratings_path)
            for example in encode_examples(batch_reader.join_users(
                batch_reader.read_ratings_range(ratings_path, start, end), table))]
  return _read_examples_row_by_row(ratings_path, users, max_bad_rows, quarantine_path,
                                   bad_rows, bounds)


def _timestamp_range(bounds: Optional[timestamps.TimestampBounds]):
  """`bounds` as the batch path's (not_before, not_after)."""
  return (bounds.not_before, bounds.not_after) if bounds else (None, None)


def _read_examples_row_by_row(ratings_path: str, users: Dict[str, reader.User],
                              max_bad_rows: int, quarantine_path: str,
                              bad_rows: Optional[List[reader.BadRow]],
                              bounds: Optional[timestamps.TimestampBounds] = None
                              ) -> List[bytes]:
  """The row path of `read_examples`: exact file:line errors and quarantine."""
  # Deterministic serialization: the train/eval split hashes these bytes, and proto maps
  # (tf.Example features) otherwise serialize in an order that varies between runs.
  bad_rows = bad_rows if bad_rows is not None else []
  examples = [to_example(r, u).SerializeToString(deterministic=True)
              for r, u in reader.read_ratings(ratings_path, users, max_bad_rows, bad_rows,
                                              timestamp_bounds=bounds)]
  if bad_rows:
    logging.warning("Quarantined %d malformed rows of %s (limit %d)%s", len(bad_rows),
                    ratings_path, max_bad_rows,
                    f"; see {quarantine_path}" if quarantine_path else "")
  if quarantine_path:
    _write_quarantine(quarantine_path, bad_rows)
  return examples


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _MovieLensToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                        split_pattern: str,
                        bad_rows: Optional[List[reader.BadRow]] = None
                        ) -> beam.pvalue.PCollection:
  """Reads one ratings file (the resolved split pattern) into serialized tf.Examples.

  The launcher reads the users and checks the ratings in one streaming pass, so a bad file
  fails before any Beam work. A clean file becomes byte ranges that Beam workers parse and
  encode (memory stays flat at any size). Any malformed row sends the file to the row
  path, here in the launcher: it needs the line numbers for its error messages, and it
  collects the quarantined rows into `bad_rows`.
  """
  input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
  ratings_path = os.path.join(input_base, split_pattern)
  options = options_from_exec_properties(exec_properties)
  max_bad_rows = int(options.get("max_bad_rows", 0))
  quarantine_path = options.get("quarantine_path", "")
  users = reader.read_users(reader.user_file_for(ratings_path, input_base))
  bounds = timestamps.bounds_for(ratings_path, input_base)
  rows = batch_reader.scan_ratings(ratings_path, users, _timestamp_range(bounds))
  if rows is not None:
    if quarantine_path:
      _write_quarantine(quarantine_path, [])
    ranges = batch_reader.ratings_byte_ranges(ratings_path)
    logging.info("Converting %d ratings of %s in %d blocks", rows, ratings_path, len(ranges))
    return (pipeline
            # Reshuffled when there are several, so parallel workers share them.
            | "ByteRanges" >> beam.Create(ranges, reshuffle=len(ranges) > 1)
            | "ParseJoinEncode" >> beam.ParDo(_EncodeRange(ratings_path,
                                                           batch_reader.users_table(users))))
  examples = _read_examples_row_by_row(ratings_path, users, max_bad_rows, quarantine_path,
                                       bad_rows, bounds)
  logging.info("Read %d ratings from %s", len(examples), ratings_path)
  return pipeline | "CreateExamples" >> beam.Create(examples, reshuffle=False)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """TFX ExampleGen executor for MovieLens-layout directories.

  Records how many malformed rows it quarantined as the `quarantined_rows` custom property
  of the Examples artifact, so the run summary can report it (cached runs included).
  Writes each split in file order (`uet_upstream.tfx.write_split_in_order`).
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._bad_rows: List[reader.BadRow] = []
    self._examples: List[types.Artifact] = []

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return functools.partial(_MovieLensToExample, bad_rows=self._bad_rows)

  def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                             exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """Generates and writes the splits; returns none for the base class to write again."""
    splits = super().GenerateExamplesByBeam(pipeline, exec_properties)
    for name, examples in splits.items():
      uri = artifact_utils.get_split_uri(self._examples, name)
      _ = examples | f"WriteSplit[{name}]" >> upstream_tfx.write_split_in_order(uri)
    return {}

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Writes the train/eval examples, then the quarantine count on the artifact."""
    del self._bad_rows[:]
    self._examples = output_dict[standard_component_specs.EXAMPLES_KEY]
    super().Do(input_dict, output_dict, exec_properties)
    for examples in self._examples:
      examples.set_int_custom_property(QUARANTINED_ROWS_PROPERTY, len(self._bad_rows))
