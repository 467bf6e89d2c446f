"""Serving latency at batch 1: the pipeline's default candidate against the previous default.

Builds both the way the pipeline does: a real tf.Transform run over MovieLens-100K ratings
(`trainer.preprocessing.preprocessing_fn`; for the previous default the same function
without the admission flags, as Transform was before them), a short training, then
`trainer.export.export_serving_model`. Then times the exported `serving_default` signature
(serialized raw tf.Example in, probability out) one request at a time, the two models
alternating in rounds so that load from other processes hits both alike.

A third model, the rule's tables and chunks without the filter, splits the difference into
what the layout costs and what the filter costs. Prints the median and p90 latency per
model and the ratio of the default to the previous default. Asserts nothing.

  .venv/bin/python bench/serving_latency.py [--data-dir D] [--rows N] [--requests N]
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tensorflow_transform.beam as tft_beam  # noqa: E402
from tensorflow_transform.tf_metadata import metadata_io, schema_utils  # noqa: E402
from tfx.utils import io_utils  # noqa: E402

from components.example_gen import executor  # noqa: E402
from dataspec import spec as spec_lib  # noqa: E402
from schema import SCHEMA_FILE  # noqa: E402
from tools import columns  # noqa: E402
from trainer import export, features, model as model_lib, preprocessing  # noqa: E402
from trainer.config import TrainingConfig, budget_rule_layout  # noqa: E402


def previous_preprocessing_fn(inputs, custom_config=None):
  """Transform as it was before the admission filter (its outputs without the flags)."""
  return {k: v for k, v in preprocessing.preprocessing_fn(inputs, custom_config).items()
          if not k.endswith(features.ADMITTED_SUFFIX)}


def transform(rows, fn, out_dir: str) -> tft.TFTransformOutput:
  schema = io_utils.SchemaReader().read(SCHEMA_FILE)
  metadata = tft.DatasetMetadata.from_feature_spec(
      schema_utils.schema_as_feature_spec(schema).feature_spec)
  with beam.Pipeline() as p, tft_beam.Context(temp_dir=os.path.join(out_dir, "tmp")):
    _, transform_fn = ((p | beam.Create(rows), metadata)
                       | tft_beam.AnalyzeAndTransformDataset(fn, output_record_batches=False))
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
  # The raw schema beside it, as TFX's Transform writes it (the serving signature parses
  # raw examples with it).
  metadata_io.write_metadata(metadata,
                             os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
  return tft.TFTransformOutput(out_dir)


def export_model(config: TrainingConfig, tft_output, examples, export_dir: str):
  """Trains one epoch on the transformed examples and exports with both signatures."""
  transformed = tft_output.transform_features_layer()(
      tf.io.parse_example(examples, tft_output.raw_feature_spec()))
  tf.keras.utils.set_random_seed(config.seed)
  model = model_lib.build_model(config, model_lib.embedding_spec(config))
  x = {k: tf.reshape(transformed[k], [-1]) for k in model.input_names_and_dtypes}
  y = tf.cast(tf.reshape(transformed[features.LABEL], [-1]), tf.float32)
  model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=0)
  export.export_serving_model(model, tft_output, export_dir)
  return tf.saved_model.load(export_dir).signatures["serving_default"]


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir",
                      default=os.path.join(os.path.dirname(REPO), "shared", "data", "ml-100k"))
  parser.add_argument("--rows", type=int, default=20_000, help="ratings to transform/train")
  parser.add_argument("--requests", type=int, default=2_000, help="timed requests per model")
  args = parser.parse_args(argv)
  spec = spec_lib.load("movielens")
  data_dir = columns.check_data_dir(spec, args.data_dir)
  examples = [tf.train.Example.FromString(e)
              for e in executor.read_examples(spec, data_dir)[:args.rows]]
  rows = [{k: list(f.bytes_list.value) or list(f.int64_list.value)
           for k, f in e.features.feature.items()} for e in examples]
  serialized = tf.constant([e.SerializeToString() for e in examples])
  requests = []
  for e in examples[:args.requests]:
    del e.features.feature[features.RATING]
    requests.append(tf.constant([e.SerializeToString()]))

  models = {}
  with tempfile.TemporaryDirectory() as tmp:
    previous_tft = transform(rows, previous_preprocessing_fn, os.path.join(tmp, "t_prev"))
    current_tft = transform(rows, preprocessing.preprocessing_fn, os.path.join(tmp, "t_now"))
    models["previous default (tutorial layout, no admission)"] = export_model(
        TrainingConfig(), previous_tft, serialized, os.path.join(tmp, "m_prev"))
    # The rule's tables and chunks without the filter: what the layout alone costs.
    models["budget rule's layout, no admission"] = export_model(
        TrainingConfig(**{k: v for k, v in budget_rule_layout(24_000).items()
                          if k not in ("admission_features", "id_dropout")}),
        previous_tft, serialized, os.path.join(tmp, "m_layout"))
    models["default (budget rule, admission filter)"] = export_model(
        TrainingConfig(layout="budget_rule"), current_tft, serialized,
        os.path.join(tmp, "m_now"))
    for serve in models.values():  # warm up: first calls trace and allocate
      for r in requests[:50]:
        serve(examples=r)
    times = {name: [] for name in models}
    for start in range(0, len(requests), 100):
      for name, serve in models.items():
        for r in requests[start:start + 100]:
          t0 = time.perf_counter()
          serve(examples=r)["probability"].numpy()
          times[name].append(time.perf_counter() - t0)
  medians = {}
  for name, t in times.items():
    medians[name] = float(np.median(t))
    print(f"{name}: median {1e3 * np.median(t):.3f} ms, p90 "
          f"{1e3 * np.percentile(t, 90):.3f} ms over {len(t)} requests at batch 1")
  prev, _, now = medians.values()
  print(f"default / previous default (median): {now / prev:.3f} "
        f"(machine shared with other jobs: compare the ratio, not the times)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
