"""Executor of the DatasetExampleGen: the source a spec declares, as raw `tf.Example`s.

The base class resolves `input_config` (`{SPAN}` patterns and globs), splits the records by
hash (deterministic) and writes them; this executor turns the source files of one span into
serialized examples.

The launcher first scans the source (`source.scan`: every unit read and converted once,
with pyarrow), so a bad row fails the run, naming file, line and column, before any Beam
work, and quarantined rows are written with their reasons. Beam workers then take the units
(text blocks as byte ranges, Parquet row groups, TFRecord files), read and convert them
again and encode the examples with vectorized kernels (`encoder`), so memory stays flat at
any size. TFRecord files are read with TensorFlow and decoded with tfx_bsl.
"""

import functools
import io
import json
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, write_split
from tfx.components.example_gen import utils as example_gen_utils
from tfx.types import artifact_utils, standard_component_specs

from components.example_gen import encoder, source
from components.example_gen.reader import BadRow, DataError
from dataspec import spec as spec_lib

# Keys of the options in the component's `custom_config` (a Struct packed into an Any).
SPEC_KEY = "spec"
PATTERN_KEY = "pattern"
# Custom properties of the Examples artifact: bad rows quarantined, rows dropped for lack
# of a label (`label.missing: drop`).
QUARANTINED_ROWS_PROPERTY = "quarantined_rows"
DROPPED_ROWS_PROPERTY = "dropped_rows"
# tf.Examples per batch decoded from a TFRecord file.
RECORD_BATCH = 50_000
_GZIP_MAGIC = b"\x1f\x8b"


class _GFileStream(io.RawIOBase):
  """A read-only, seekable stream over `tf.io.gfile` that pyarrow (which needs `closed`,
  `seekable` and `readinto`) and Python's buffered readers can read from."""

  def __init__(self, path: str):
    super().__init__()
    self._f = tf.io.gfile.GFile(path, "rb")

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  def readinto(self, buffer) -> int:
    data = self._f.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)

  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    self._f.seek(offset, whence)
    return self._f.tell()

  def tell(self) -> int:
    return self._f.tell()

  def close(self) -> None:
    if not self.closed:
      self._f.close()
    super().close()


class GFileSystem:
  """`reader.LocalFileSystem`'s operations over tf.io.gfile: local paths and gs://."""

  def open(self, path: str):
    return io.BufferedReader(_GFileStream(path), buffer_size=1 << 20)

  def exists(self, path: str) -> bool:
    return tf.io.gfile.exists(path)

  def isdir(self, path: str) -> bool:
    return tf.io.gfile.isdir(path)

  def size(self, path: str) -> int:
    return tf.io.gfile.stat(path).length

  def glob(self, pattern: str) -> List[str]:
    return sorted(tf.io.gfile.glob(pattern))


def _example_text(record: bytes) -> str:
  """A tf.Example record on one line, for messages and the quarantine."""
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  try:
    return text_format.MessageToString(tf.train.Example.FromString(record), as_one_line=True)
  except Exception:  # pylint: disable=broad-except  (not a tf.Example: shown as bytes)
    return repr(record[:200])


def record_batches(path: str, batch_size: int = RECORD_BATCH
                   ) -> Iterator[Tuple[int, pa.RecordBatch, Callable[[int], str]]]:
  """The tf.Examples of a TFRecord file (gzipped or not), decoded by tfx_bsl in batches.

  Yields (the batch's first record number, from 1; the decoded batch, every feature a
  list column; record index -> its text). A batch whose records give one feature different
  types is decoded record by record, so each record is judged on its own.
  """
  from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top
  with tf.io.gfile.GFile(path, "rb") as f:
    compression = "GZIP" if f.read(2) == _GZIP_MAGIC else ""
  decoder = example_coder.ExamplesToRecordBatchDecoder()
  dataset = tf.data.TFRecordDataset(path, compression_type=compression).batch(batch_size)
  first = 1
  try:
    for records in dataset.as_numpy_iterator():
      records = list(records)
      try:
        batches = [(first, decoder.DecodeBatch(records), records)]
      except RuntimeError:   # a feature with different types in different records
        batches = [(first + i, _decode_one(decoder, r, path, first + i), [r])
                   for i, r in enumerate(records)]
      for number, batch, raw in batches:
        yield number, batch, lambda i, raw=raw: _example_text(raw[i])
      first += len(records)
  except tf.errors.DataLossError as e:
    raise DataError(f"{path}: record {first} onwards: not a readable TFRecord file "
                    f"({e.message.splitlines()[0]}); write TFRecords of tf.Example, gzipped "
                    "or not") from None


def _decode_one(decoder, record: bytes, path: str, number: int) -> pa.RecordBatch:
  try:
    return decoder.DecodeBatch([record])
  except RuntimeError as e:
    raise DataError(f"{path}: record {number}: not a tf.Example ({e}); write TFRecords of "
                    "tf.Example") from None


def ingest_for(spec: spec_lib.DatasetSpec, input_base: str, pattern: str,
               span_pattern: Optional[str] = None, span: Optional[int] = None,
               now: Optional[int] = None) -> source.Ingest:
  """An `Ingest` that reads through tf.io.gfile (and TFRecord files with TensorFlow)."""
  return source.Ingest(spec, input_base, pattern, fs=GFileSystem(),
                       span_pattern=span_pattern, span=span, now=now,
                       record_batches=record_batches)


def write_quarantine(quarantine_path: str, bad_rows: List[BadRow]) -> None:
  """Writes the quarantined rows as TSV (file, line, reason, row). Rewritten by every
  ingest, even with nothing to quarantine: never a stale list."""
  tf.io.gfile.makedirs(os.path.dirname(quarantine_path))
  with tf.io.gfile.GFile(quarantine_path, "w") as f:
    f.write("file\tline\treason\trow\n")
    for row in bad_rows:
      fields = (row.path, str(row.line), row.reason, row.text)
      f.write("\t".join(x.replace("\t", " ").replace("\n", " ") for x in fields) + "\n")


def read_examples(spec: spec_lib.DatasetSpec, input_base: str,
                  pattern: Optional[str] = None, max_bad_rows: int = 0,
                  quarantine_path: str = "", bad_rows: Optional[List[BadRow]] = None,
                  span_pattern: Optional[str] = None, span: Optional[int] = None,
                  now: Optional[int] = None) -> List[bytes]:
  """The serialized examples of a source, in file order, in this process (tests, tools).

  Args:
    spec: the dataset spec.
    input_base: the data directory.
    pattern: the source files (default the spec's `source.path`), `{SPAN}` resolved.
    max_bad_rows: bad rows to quarantine before failing (0: fail on the first).
    quarantine_path: where quarantined rows are written (TSV with the reason per row).
    bad_rows: a list that receives the quarantined rows.
    span_pattern: the `{SPAN}` pattern of a span feed (for the timestamp bounds).
    span: the span read.
    now: the time of ingestion (default: the clock).

  Raises:
    DataError: naming the file, the line (or row) and the column.
  """
  ingest = ingest_for(spec, input_base, pattern or spec.source.path, span_pattern, span, now)
  scanned = source.scan(ingest, max_bad_rows)
  if bad_rows is not None:
    bad_rows.extend(scanned.bad)
  if quarantine_path:
    write_quarantine(quarantine_path, scanned.bad)
  return [example for unit in scanned.units for converted in ingest.convert(unit)
          for example in encoder.serialize_examples(converted.table)]


def options_from_exec_properties(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
  """The options carried in the component's `custom_config` (a JSON-encoded Struct)."""
  raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
  if not raw:
    return {}
  config = json.loads(raw) if isinstance(raw, str) else raw
  # CustomConfig{custom_config: Any(Struct)} in JSON: {"customConfig": {"@type": .., "value": {..}}}
  packed = config.get("customConfig") or config.get("custom_config") or {}
  return dict(packed.get("value", {}))


class _EncodeUnit(beam.DoFn):
  """A unit of the source (text block, row group, TFRecord file) -> serialized tf.Examples."""

  def __init__(self, ingest: source.Ingest):
    self._ingest = ingest

  def process(self, unit: source.Unit):
    for converted in self._ingest.convert(unit):
      yield from encoder.serialize_examples(converted.table)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _SourceToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                     split_pattern: str, counts: Optional[Dict[str, int]] = None
                     ) -> beam.pvalue.PCollection:
  """Reads the source files of one span (the resolved split pattern) into serialized
  tf.Examples.

  The launcher scans them first, so a bad file fails before any Beam work and the
  quarantine is complete; `counts` receives the numbers of quarantined and dropped rows.
  """
  options = options_from_exec_properties(exec_properties)
  spec = spec_lib.from_json(options[SPEC_KEY])
  input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
  span_pattern = options.get(PATTERN_KEY) or None
  span = exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME)
  ingest = ingest_for(spec, input_base, split_pattern, span_pattern,
                      int(span) if span is not None else None)
  max_bad_rows = int(options.get("max_bad_rows", 0))
  quarantine_path = options.get("quarantine_path", "")
  scanned = source.scan(ingest, max_bad_rows)
  if scanned.bad:
    logging.warning("Quarantined %d bad rows of %s (limit %d)%s", len(scanned.bad),
                    split_pattern, max_bad_rows,
                    f"; see {quarantine_path}" if quarantine_path else "")
  if scanned.dropped:
    logging.warning("Dropped %d rows of %s without a label (label.missing: drop)",
                    scanned.dropped, split_pattern)
  if quarantine_path:
    write_quarantine(quarantine_path, scanned.bad)
  if counts is not None:
    counts[QUARANTINED_ROWS_PROPERTY] = len(scanned.bad)
    counts[DROPPED_ROWS_PROPERTY] = scanned.dropped
  logging.info("Converting %d rows of %s in %d units", scanned.rows, split_pattern,
               len(scanned.units))
  return (pipeline
          # Reshuffled when there are several, so parallel workers share them.
          | "Units" >> beam.Create(scanned.units, reshuffle=len(scanned.units) > 1)
          | "ReadConvertEncode" >> beam.ParDo(_EncodeUnit(ingest)))


@beam.ptransform_fn
@beam.typehints.with_input_types(bytes)
def _WriteSplitInOrder(examples: beam.pvalue.PCollection, split_uri: str) -> beam.pvalue.PDone:
  """TFX's `write_split.WriteSplit` (same files, same names) without its `Reshuffle`.

  On the local DirectRunner that Reshuffle holds every example of the split in memory
  and then writes them in the order they came, so it neither shuffles nor bounds memory.
  The Trainer shuffles its input over all of it (`trainer/train.py`), on every runner.
  """
  return examples | "Write" >> beam.io.WriteToTFRecord(
      os.path.join(split_uri, write_split.DEFAULT_FILE_NAME), file_name_suffix=".gz")


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """TFX ExampleGen executor for the sources a dataset spec declares.

  Records how many bad rows it quarantined (`quarantined_rows`) and how many rows it
  dropped for lack of a label (`dropped_rows`) as custom properties of the Examples
  artifact, so the run summary can report them (cached runs included). Writes each split
  in file order (`_WriteSplitInOrder`).
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._counts: Dict[str, int] = {}
    self._examples: List[types.Artifact] = []

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return functools.partial(_SourceToExample, counts=self._counts)

  def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                             exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """Generates and writes the splits; returns none for the base class to write again."""
    splits = super().GenerateExamplesByBeam(pipeline, exec_properties)
    for name, examples in splits.items():
      uri = artifact_utils.get_split_uri(self._examples, name)
      _ = examples | f"WriteSplit[{name}]" >> _WriteSplitInOrder(uri)
    return {}

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Writes the train/eval examples, then the counts on the artifact."""
    self._counts.clear()
    self._examples = output_dict[standard_component_specs.EXAMPLES_KEY]
    super().Do(input_dict, output_dict, exec_properties)
    for examples in self._examples:
      examples.set_int_custom_property(QUARANTINED_ROWS_PROPERTY,
                                       self._counts.get(QUARANTINED_ROWS_PROPERTY, 0))
      examples.set_int_custom_property(DROPPED_ROWS_PROPERTY,
                                       self._counts.get(DROPPED_ROWS_PROPERTY, 0))
