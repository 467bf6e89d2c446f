"""Serving speed of the exported model, in process: the candidate with its admission filter
on and off, against the hash baseline, in one invocation.

Builds the three models as the pipeline does: one real tf.Transform run of
`trainer.preprocessing.preprocessing_fn` over the dataset's rows (one Transform graph for
all, as in the pipeline, where both Trainers read the same Transform output), a short
training of each, then `trainer.export.export_serving_model` and `tf.saved_model.load`:
  * candidate, filter on: the pipeline's default candidate (budget rule, admission filter);
  * candidate, filter off: the same resolved layout with `admission_features=()` (the model
    reads no admission flags; the Transform graph still computes them, as in the pipeline);
  * hash baseline: the pipeline's default baseline.
Then times `serving_default` (serialized raw tf.Examples without the label in, probability
out): batch 1 latency (p50, p99) over `--requests` rows one at a time, and rows per second
at batch 256 and 4,096; the models alternate in rounds so that load from other processes
hits all alike. Prints a Markdown table and the ratio of each candidate's batch-1 p50 to the
baseline's; `--out` also writes it. Asserts nothing.

  .venv/bin/python bench/serving_latency.py [--dataset movielens] [--data-dir D] [--rows N]
      [--requests N] [--out bench/results/serving_latency.md]
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tensorflow_transform.beam as tft_beam  # noqa: E402
from tensorflow_transform.tf_metadata import metadata_io, schema_utils  # noqa: E402
from tfx.utils import io_utils  # noqa: E402
from tfx_bsl.tfxio import tf_example_record  # noqa: E402

from components.example_gen import executor  # noqa: E402
from dataspec import schema as schema_lib  # noqa: E402
from dataspec import spec as spec_lib  # noqa: E402
from pipeline import config as config_lib  # noqa: E402
from tools import columns  # noqa: E402
from trainer import export, features, model as model_lib, preprocessing  # noqa: E402

THROUGHPUT_BATCHES = (256, 4096)


def transform(spec, serialized: List[bytes], out_dir: str) -> tft.TFTransformOutput:
  """A real tf.Transform run of the pipeline's preprocessing_fn over `serialized`."""
  schema = (io_utils.SchemaReader().read(spec.schema) if spec.schema
            else schema_lib.derive(spec))
  feature_spec = schema_utils.schema_as_feature_spec(schema).feature_spec
  metadata = tft.DatasetMetadata.from_feature_spec(feature_spec)
  tfxio = tf_example_record.TFExampleBeamRecord(
      physical_format="inmem", schema=schema, telemetry_descriptors=["bench"])
  fn = lambda inputs: preprocessing.preprocessing_fn(  # noqa: E731
      inputs, {features.DATASET_KEY: spec.to_json()})
  with beam.Pipeline() as p, tft_beam.Context(temp_dir=os.path.join(out_dir, "tmp")):
    raw = p | beam.Create(serialized) | tfxio.BeamSource()
    _, transform_fn = ((raw, tfxio.TensorAdapterConfig())
                       | tft_beam.AnalyzeAndTransformDataset(fn, output_record_batches=False))
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
  metadata_io.write_metadata(metadata,
                             os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
  return tft.TFTransformOutput(out_dir)


def export_model(config, spec, tft_output, serialized, export_dir: str):
  """Trains one epoch on the transformed rows, exports, loads; returns `serving_default`."""
  transformed = tft_output.transform_features_layer()(
      tf.io.parse_example(tf.constant(serialized), tft_output.raw_feature_spec()))
  tf.keras.utils.set_random_seed(config.seed)
  sparse = [f.name for f in spec.features_of_kind("multivalent")]
  model = model_lib.build_model(config, model_lib.embedding_spec(config),
                                sparse_features=sparse)
  x = {k: transformed[k] if isinstance(transformed[k], tf.SparseTensor)
       else tf.reshape(transformed[k], [-1]) for k in model.input_names_and_dtypes}
  y = tf.cast(tf.reshape(transformed[features.LABEL], [-1]), tf.float32)
  model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=0)
  export.export_serving_model(model, tft_output, export_dir, spec)
  return tf.saved_model.load(export_dir).signatures["serving_default"]


def _machine() -> str:
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                          capture_output=True, text=True).stdout.strip()
  dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                         capture_output=True, text=True).stdout.strip()
  return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit "
          f"{commit}{' (with uncommitted changes)' if dirty else ''}, {os.cpu_count()} "
          f"cores (nproc), {platform.machine()}")


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="movielens", help="a preset or a spec file")
  parser.add_argument("--data-dir", default=None,
                      help="the dataset's data directory (MovieLens: ../shared/data/ml-100k)")
  parser.add_argument("--rows", type=int, default=20_000, help="rows to transform/train")
  parser.add_argument("--requests", type=int, default=2_000,
                      help="batch-1 requests timed per model")
  parser.add_argument("--rounds", type=int, default=5,
                      help="timed calls per model at each throughput batch size")
  parser.add_argument("--out", help="also write the Markdown result here")
  args = parser.parse_args(argv)
  spec = spec_lib.load(args.dataset)
  data_dir = args.data_dir
  if data_dir is None and spec.name == "movielens":
    data_dir = os.path.join(os.path.dirname(REPO), "shared", "data", "ml-100k")
  data_dir = columns.check_data_dir(spec, data_dir)
  serialized = executor.read_examples(spec, data_dir)[:args.rows]
  requests = []
  for row in serialized:
    example = tf.train.Example.FromString(row)
    del example.features.feature[spec.label.column]
    requests.append(example.SerializeToString())
  largest = max(THROUGHPUT_BATCHES)
  pool = (requests * (largest // len(requests) + 1))[:largest]

  # The pipeline's default candidate and baseline for this dataset, resolved.
  defaults = config_lib.from_mapping({"dataset": spec}, data_dir=data_dir,
                                     output_dir=tempfile.gettempdir())
  candidate = defaults.candidate
  configs = {
      "candidate, admission filter on": candidate,
      "candidate, admission filter off": dataclasses.replace(
          candidate, admission_features=(), id_dropout=0.0),
      "hash baseline": defaults.baseline,
  }
  models: Dict[str, object] = {}
  with tempfile.TemporaryDirectory() as tmp:
    tft_output = transform(spec, serialized, os.path.join(tmp, "transform"))
    for i, (name, config) in enumerate(configs.items()):
      models[name] = export_model(config, spec, tft_output, serialized,
                                  os.path.join(tmp, f"model{i}"))
    for serve in models.values():  # first calls trace and allocate
      for r in requests[:50]:
        serve(examples=tf.constant([r]))
      for b in THROUGHPUT_BATCHES:
        serve(examples=tf.constant(pool[:b]))
    latency = {name: [] for name in models}
    timed = requests[:args.requests]
    for start in range(0, len(timed), 100):
      for name, serve in models.items():
        for r in timed[start:start + 100]:
          batch = tf.constant([r])
          t0 = time.perf_counter()
          serve(examples=batch)["probability"].numpy()
          latency[name].append(time.perf_counter() - t0)
    throughput = {name: {b: [] for b in THROUGHPUT_BATCHES} for name in models}
    for _ in range(args.rounds):
      for b in THROUGHPUT_BATCHES:
        batch = tf.constant(pool[:b])
        for name, serve in models.items():
          t0 = time.perf_counter()
          serve(examples=batch)["probability"].numpy()
          throughput[name][b].append(b / (time.perf_counter() - t0))

  base = float(np.median(latency["hash baseline"]))
  lines = [
      f"Measured {_machine()}.",
      f"Command: `.venv/bin/python bench/serving_latency.py --dataset {args.dataset} "
      f"--rows {args.rows} --requests {args.requests} --rounds {args.rounds}`; dataset "
      f"{spec.name}, {len(serialized)} rows. The machine is shared with other jobs: compare "
      "the ratios within this run, not the times across runs.",
      "",
      "| model | batch 1 p50 (ms) | batch 1 p99 (ms) | p50 / baseline p50 | "
      + " | ".join(f"rows/s at {b:,} (median)" for b in THROUGHPUT_BATCHES) + " |",
      "|---|---:|---:|---:|" + "---:|" * len(THROUGHPUT_BATCHES),
  ]
  for name in models:
    t = np.array(latency[name])
    lines.append(
        f"| {name} | {1e3 * np.median(t):.3f} | {1e3 * np.percentile(t, 99):.3f} | "
        f"{np.median(t) / base:.2f} | "
        + " | ".join(f"{np.median(throughput[name][b]):,.0f}" for b in THROUGHPUT_BATCHES)
        + " |")
  text = "\n".join(lines) + "\n"
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write("# Serving speed of the exported model (bench/serving_latency.py)\n\n" + text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
