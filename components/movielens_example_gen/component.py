"""MovieLensExampleGen: a FileBasedExampleGen whose executor reads MovieLens files.

Everything but the file format is TFX's own: span/version resolution of `{SPAN}` patterns in
`input_config`, `range_config`, deterministic hash splitting by `output_config`, caching on
the input fingerprint.
"""

from typing import Any, Mapping, Optional

from google.protobuf import any_pb2, struct_pb2
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2

from components.movielens_example_gen import executor, reader


def make_input_config(ratings_pattern: str = reader.RATINGS_FILE) -> example_gen_pb2.Input:
  """One input split: the ratings file (may contain `{SPAN}`); users are found beside it."""
  return example_gen_pb2.Input(
      splits=[example_gen_pb2.Input.Split(name="ratings", pattern=ratings_pattern)])


def make_output_config(train_buckets: int = 8, eval_buckets: int = 2) -> example_gen_pb2.Output:
  """train/eval by hash of the serialized example: deterministic, 80/20 by default."""
  return example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
      example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=train_buckets),
      example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
  ]))


def make_custom_config(options: Mapping[str, Any]) -> example_gen_pb2.CustomConfig:
  """Packs reader options (e.g. `max_bad_rows`) into ExampleGen's CustomConfig."""
  struct = struct_pb2.Struct()
  struct.update(dict(options))
  packed = any_pb2.Any()
  packed.Pack(struct)
  return example_gen_pb2.CustomConfig(custom_config=packed)


class MovieLensExampleGen(FileBasedExampleGen):
  """Reads a MovieLens-layout directory (`u.data` + `u.user`) into tf.Examples."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, input_base: str,
               input_config: Optional[example_gen_pb2.Input] = None,
               output_config: Optional[example_gen_pb2.Output] = None,
               range_config: Optional[range_config_pb2.RangeConfig] = None,
               max_bad_rows: int = 0,
               quarantine_path: str = ""):
    """Args:
      input_base: the directory holding the MovieLens files.
      input_config: where the ratings file is (default `u.data`; `{SPAN}` allowed).
      output_config: output splits (default train/eval 80/20 by hash).
      range_config: which spans to read (TFX semantics; default the latest).
      max_bad_rows: malformed ratings rows to quarantine before failing (0: fail fast).
      quarantine_path: where quarantined rows are written (TSV), when any.
    """
    options = {"max_bad_rows": int(max_bad_rows), "quarantine_path": quarantine_path}
    super().__init__(
        input_base=input_base,
        input_config=input_config or make_input_config(),
        output_config=output_config or make_output_config(),
        custom_config=make_custom_config(options),
        range_config=range_config)
