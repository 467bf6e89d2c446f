"""DatasetExampleGen: a FileBasedExampleGen whose executor reads any dataset a spec declares.

Everything but the reading is TFX's own: span/version resolution of `{SPAN}` patterns and
globs in `input_config`, `range_config`, deterministic hash splitting by `output_config`,
caching on the input fingerprint. The spec travels as JSON in the component's
`custom_config`, so the local runner and a compiled Vertex pipeline read it alike, and a
changed spec changes the component's cache key.
"""

from typing import Any, Mapping, Optional

from google.protobuf import any_pb2, struct_pb2
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2

from components.example_gen import executor
from dataspec import spec as spec_lib

# The single input split; the output splits come from `output_config`.
INPUT_SPLIT = "source"


def make_input_config(pattern: str) -> example_gen_pb2.Input:
  """One input split: the source files (a file or a glob, relative to `input_base`; may
  contain `{SPAN}`); side tables are found beside them or at `input_base`."""
  return example_gen_pb2.Input(
      splits=[example_gen_pb2.Input.Split(name=INPUT_SPLIT, pattern=pattern)])


def make_output_config(train_buckets: int = 8, eval_buckets: int = 2) -> example_gen_pb2.Output:
  """train/eval by hash of the serialized example: deterministic, 80/20 by default."""
  return example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
      example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=train_buckets),
      example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
  ]))


def make_custom_config(options: Mapping[str, Any]) -> example_gen_pb2.CustomConfig:
  """Packs the executor's options (the spec, `max_bad_rows`, ...) into a CustomConfig."""
  struct = struct_pb2.Struct()
  struct.update(dict(options))
  packed = any_pb2.Any()
  packed.Pack(struct)
  return example_gen_pb2.CustomConfig(custom_config=packed)


class DatasetExampleGen(FileBasedExampleGen):
  """Reads the source a dataset spec declares (CSV, Parquet or TFRecord; side tables joined)
  into raw tf.Examples with exactly the spec's raw columns."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, input_base: str, spec_json: str,
               input_config: Optional[example_gen_pb2.Input] = None,
               output_config: Optional[example_gen_pb2.Output] = None,
               range_config: Optional[range_config_pb2.RangeConfig] = None,
               max_bad_rows: int = 0,
               quarantine_path: str = ""):
    """Args:
      input_base: the data directory.
      spec_json: the dataset spec, `DatasetSpec.to_json()`.
      input_config: where the source files are (default the spec's `source.path`;
        `{SPAN}` and globs allowed).
      output_config: output splits (default train/eval 80/20 by hash).
      range_config: which spans to read (TFX semantics; default the latest).
      max_bad_rows: bad rows to quarantine before failing (0: fail on the first).
      quarantine_path: where quarantined rows are written (TSV), when any.
    """
    spec = spec_lib.from_json(spec_json)
    input_config = input_config or make_input_config(spec.source.path)
    options = {executor.SPEC_KEY: spec_json, "max_bad_rows": int(max_bad_rows),
               "quarantine_path": quarantine_path,
               executor.PATTERN_KEY: input_config.splits[0].pattern}
    super().__init__(
        input_base=input_base,
        input_config=input_config,
        output_config=output_config or make_output_config(),
        custom_config=make_custom_config(options),
        range_config=range_config)
