"""Chicago Taxi, one split, side by side: unified, hash, collisionless and TFX's own taxi model.

The data is the `taxi` preset's (the Chicago Taxi sample inside the TFX wheel, 15,002 trips).
The split is the ExampleGen's own: each row is serialized as the ExampleGen writes it and
goes to train when sha256 of the bytes falls in 8 of 10 buckets (`tools.simulate.
_split_is_train`), so every model here trains and is scored on exactly the rows `uet run
--dataset taxi` would give it.

Models:

  * unified, hash: the pipeline's candidate and baseline configs for the preset (same
    embedding budget), built and trained by the Trainer's own code
    (`tools.simulate.train_reference`: `trainer.model.build_model`, Keras fit, the unseen-id
    defaults), on the preset's model inputs (`tools.columns.model_inputs`: Transform's
    definitions, numeric quantile boundaries from the train split, admission flags from
    the train split's ids);
  * collisionless: the candidate's config with one exact row per value of the train
    split's vocabularies (out-of-vocabulary row for the rest);
  * TFX template: the taxi template's model exactly as published in the installed wheel
    (`tfx/experimental/templates/taxi/models`: its `features.py` lists, its
    `preprocessing.preprocessing_fn` run by tf.Transform's analyzers over the train split,
    its `keras_model.model._build_keras_model` with `constants.py`'s hidden units and
    learning rate, and the template pipeline's 1,000 training steps of batch 40, on
    tf.data shuffled as TFXIO's dataset factory does);
  * TFX taxi example: the same template code path with the full feature lists of the
    wheel's Chicago Taxi example (`examples/chicago_taxi_pipeline/
    taxi_utils_native_keras.py`: its `preprocessing_fn` and wide-and-deep
    `_build_keras_model`, 1,000 steps of batch 40 as its pipeline trains it), since the
    template's own `features.py` keeps only three features.

Every model is scored by the same AUC (10,000 thresholds, as TFMA) on the eval split, over
several seeds (the seed sets the initialization and the shuffle; the split and the
tf.Transform analysis are fixed). Parameter counts are all weights of the Keras model
(trainable and not); for the hashed models also the embedding parameters the budget counts
(tables plus the admission filter, which Transform holds).

  .venv/bin/python bench/taxi_compare.py [--seeds 42 43 44] [--results DIR] [--report-only]

Writes bench/results/taxi_compare.{md,json}. Prints numbers; asserts nothing.
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, Dict, List, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from components.example_gen import encoder  # noqa: E402
from dataspec import spec as spec_lib  # noqa: E402
from pipeline import config as config_lib  # noqa: E402
from tools import columns as columns_lib  # noqa: E402
from tools import simulate  # noqa: E402
from trainer import admission  # noqa: E402

RESULTS_DIR = os.path.join(REPO, "bench", "results")
TEMPLATE = "tfx.experimental.templates.taxi"
EXAMPLE = "tfx.examples.chicago_taxi_pipeline.taxi_utils_native_keras"
# The template pipeline's TrainArgs (pipeline/configs.py TRAIN_NUM_STEPS); the example's
# pipeline (taxi_pipeline_native_keras.py) trains the same 1,000 steps.
TEMPLATE_TRAIN_STEPS = 1000
# TFXIO's TensorFlowDatasetOptions default shuffle buffer, used by the template's _input_fn.
TFXIO_SHUFFLE_BUFFER = 10_000
EXAMPLE_TRAIN_BATCH = 40  # taxi_utils_native_keras._TRAIN_BATCH_SIZE


# ---------------------------------------------------------------------------------------
# The data and the split.

def load(spec) -> Dict[str, Any]:
  """The preset's rows, the ExampleGen's train mask, and the raw CSV columns in file order.

  Raises:
    SystemExit: the ExampleGen's reader dropped or reordered rows, so the CSV's rows (the
      template reads columns the spec leaves out) cannot be matched to the split.
  """
  import pyarrow.csv as pa_csv  # pylint: disable=g-import-not-at-top
  data_dir = columns_lib.check_data_dir(spec, spec_lib.resolve_data_dir(spec, None))
  table = columns_lib.read_table(spec, data_dir)
  is_train = np.array([simulate._split_is_train(e)  # pylint: disable=protected-access
                       for e in encoder.serialize_examples(table)])
  raw = columns_lib.to_numpy(table)
  path = os.path.join(data_dir, spec.source.path)
  csv = pa_csv.read_csv(path)
  time_column = spec.time.column
  if csv.num_rows != table.num_rows or not np.array_equal(
      csv.column(time_column).to_numpy(), raw[time_column]):
    raise SystemExit(f"{path}: the ExampleGen read {table.num_rows} rows, the CSV has "
                     f"{csv.num_rows} (or a different order); the template's columns cannot "
                     "be matched to the split")
  return {"raw": raw, "is_train": is_train, "csv": csv, "path": path, "data_dir": data_dir}


def select(columns: Dict[str, Any], mask: np.ndarray) -> Dict[str, Any]:
  return {k: v[mask] for k, v in columns.items()}


# ---------------------------------------------------------------------------------------
# The product's models.

def product_models(spec, data, seeds: Sequence[int], log=print) -> List[Dict[str, Any]]:
  """Unified, hash and collisionless: the pipeline's configs, the Trainer's builders."""
  config = config_lib.from_mapping({"dataset": spec}, data_dir=data["data_dir"],
                                   output_dir=tempfile.mkdtemp(prefix="taxi-compare-"))
  mask = data["is_train"]
  train_raw, eval_raw = select(data["raw"], mask), select(data["raw"], ~mask)
  train_x, train_y, boundaries = columns_lib.model_inputs(spec, train_raw)
  eval_x, eval_y, _ = columns_lib.model_inputs(spec, eval_raw, boundaries)
  vocab = {f: sorted({v.decode() for v in values}) for f, values in train_x.items()}
  results = []
  for name, training, model_type in (("unified", config.candidate, "unified"),
                                     ("hash", config.baseline, "hash"),
                                     ("collisionless", config.candidate, "collisionless")):
    flags = () if model_type == "collisionless" else training.admission_features
    tx = admission.admitted_columns(train_x, train_x, flags)
    ex = admission.admitted_columns(eval_x, train_x, flags)
    aucs, params, start = [], None, time.perf_counter()
    for seed in seeds:
      model = simulate.train_reference(training.replace(seed=seed), model_type, tx, train_y,
                                       vocab if model_type == "collisionless" else None)
      aucs.append(simulate.auc(eval_y, simulate.predict(model, ex)))
      params = {"all_weights": int(model.count_params()),
                "embedding_parameters": int(model.embedding_parameters)}
      log(f"  {name} seed {seed}: AUC {aucs[-1]:.4f}", flush=True)
      tf.keras.backend.clear_session()
    described = training.replace(model_type=model_type)
    results.append({
        "model": name, "aucs": aucs, **params,
        "seconds": time.perf_counter() - start,
        "setup": (f"{model_type}, layers {list(described.layer_sizes)}, "
                  f"{described.epochs} epochs of batch {described.batch_size}, "
                  f"Adam {described.learning_rate}, dim {described.embedding_dim}" +
                  (f", budget {described.embedding_budget:,}" if model_type != "collisionless"
                   else ", vocabularies of the train split") +
                  (f", admission {list(flags)}" if flags else "")),
    })
  results[0]["label_positive_share_eval"] = float(eval_y.mean())
  return results, train_y, eval_y


# ---------------------------------------------------------------------------------------
# TFX's taxi models, from the installed wheel.

class TaxiModule:
  """One TFX taxi model definition: its preprocessing_fn, feature lists and Keras builder."""

  def __init__(self, name: str, preprocessing_fn: Callable, build: Callable[[], Any],
               label_key: str, raw_keys: Sequence[str], train_batch: int, origin: str,
               network: str):
    self.name = name
    self.network = network
    self.preprocessing_fn = preprocessing_fn
    self.build = build
    self.label_key = label_key  # transformed label name
    self.raw_keys = list(raw_keys)
    self.train_batch = train_batch
    self.origin = origin


def template_module() -> TaxiModule:
  """The taxi template as published: features.py, preprocessing.py, keras_model/."""
  features = importlib.import_module(f"{TEMPLATE}.models.features")
  preprocessing = importlib.import_module(f"{TEMPLATE}.models.preprocessing")
  model = importlib.import_module(f"{TEMPLATE}.models.keras_model.model")
  constants = importlib.import_module(f"{TEMPLATE}.models.keras_model.constants")
  keys = (features.DENSE_FLOAT_FEATURE_KEYS + features.BUCKET_FEATURE_KEYS +
          features.CATEGORICAL_FEATURE_KEYS + features.VOCAB_FEATURE_KEYS +
          [features.LABEL_KEY, features.FARE_KEY])
  return TaxiModule(
      "tfx template", preprocessing.preprocessing_fn,
      lambda: model._build_keras_model(hidden_units=constants.HIDDEN_UNITS,  # pylint: disable=protected-access
                                       learning_rate=constants.LEARNING_RATE),
      features.transformed_name(features.LABEL_KEY), sorted(set(keys)),
      constants.TRAIN_BATCH_SIZE, f"{TEMPLATE}.models",
      f"deep Dense {constants.HIDDEN_UNITS} (no activation, as published) over the "
      f"z-scored dense features, wide one-hot of the bucket, categorical and vocabulary "
      f"features, one sigmoid unit over both; Adam {constants.LEARNING_RATE}")


def example_module() -> TaxiModule:
  """The wheel's Chicago Taxi example (native Keras): the template's code with all features."""
  m = importlib.import_module(EXAMPLE)
  keys = (m._DENSE_FLOAT_FEATURE_KEYS + m._BUCKET_FEATURE_KEYS +  # pylint: disable=protected-access
          m._CATEGORICAL_FEATURE_KEYS + m._VOCAB_FEATURE_KEYS +  # pylint: disable=protected-access
          [m._LABEL_KEY, m._FARE_KEY])  # pylint: disable=protected-access
  # Its run_fn: hidden units max(2, int(100 * 0.7**i)) for 4 layers, default Adam.
  hidden = [max(2, int(100 * 0.7 ** i)) for i in range(4)]
  return TaxiModule("tfx taxi example", m.preprocessing_fn,
                    lambda: m._build_keras_model(hidden_units=hidden),  # pylint: disable=protected-access
                    m._transformed_name(m._LABEL_KEY), sorted(set(keys)),  # pylint: disable=protected-access
                    EXAMPLE_TRAIN_BATCH, EXAMPLE,
                    f"deep Dense {hidden} (no activation, as published) over the z-scored "
                    "dense features, wide one-hot of the bucket, vocabulary and first three "
                    "categorical features, one sigmoid unit over both; Adam 0.001")


def _raw_feature_spec(csv, keys: Sequence[str]) -> Dict[str, Any]:
  """What CsvExampleGen + SchemaGen give preprocessing_fn: each column typed from the CSV
  (integers int64, floats float32, text bytes), as VarLenFeature, so a gap is an absent
  value that the template's `_fill_in_missing` fills with 0 or ''."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  out = {}
  for k in keys:
    t = csv.schema.field(k).type
    dtype = (tf.int64 if pa.types.is_integer(t) else
             tf.float32 if pa.types.is_floating(t) else tf.string)
    out[k] = tf.io.VarLenFeature(dtype)
  return out


def _examples(csv, keys: Sequence[str], rows: np.ndarray) -> List[bytes]:
  """Rows of the CSV as serialized tf.Examples of `keys` (a gap: the feature is absent)."""
  cols = {k: csv.column(k).to_pylist() for k in keys}
  out = []
  for i in np.flatnonzero(rows):
    feature = {}
    for k in keys:
      v = cols[k][i]
      if v is None:
        continue
      if isinstance(v, str):
        feature[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
      elif isinstance(v, int):
        feature[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
      else:
        feature[k] = tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
    out.append(tf.train.Example(features=tf.train.Features(feature=feature))
               .SerializeToString())
  return out


def tf_transform(module: TaxiModule, csv, is_train: np.ndarray, temp_dir: str):
  """Runs `module.preprocessing_fn` with tf.Transform: the analyzers over the train split
  (tft_beam.AnalyzeDataset on TFXIO's tf.Example reader, as the Transform component
  runs it), then the written transform graph (`transform_features_layer`, what the
  template's serving and `transform_features` signatures apply) on both splits.

  Returns:
    (train, eval) transformed columns: name -> [rows] array.
  """
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  import tensorflow_transform.beam as tft_beam  # pylint: disable=g-import-not-at-top
  from tensorflow_transform.tf_metadata import schema_utils  # pylint: disable=g-import-not-at-top
  from tfx_bsl.public import tfxio  # pylint: disable=g-import-not-at-top
  feature_spec = _raw_feature_spec(csv, module.raw_keys)
  schema = schema_utils.schema_from_feature_spec(feature_spec)
  train = _examples(csv, module.raw_keys, is_train)
  evals = _examples(csv, module.raw_keys, ~is_train)
  source = tfxio.TFExampleBeamRecord(physical_format="inmem", schema=schema,
                                     raw_record_column_name=None)
  output_dir = os.path.join(temp_dir, "transform_fn")
  with beam.Pipeline() as p, tft_beam.Context(temp_dir=os.path.join(temp_dir, "tmp")):
    batches = p | beam.Create(train) | source.BeamSource()
    transform_fn = ((batches, source.TensorAdapterConfig())
                    | tft_beam.AnalyzeDataset(module.preprocessing_fn))
    _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
  layer = tft.TFTransformOutput(output_dir).transform_features_layer()

  def transform(records: List[bytes]) -> Dict[str, np.ndarray]:
    parts = []
    for i in range(0, len(records), 4096):
      raw = tf.io.parse_example(tf.constant(records[i:i + 4096]), feature_spec)
      parts.append({k: v.numpy() for k, v in layer(raw).items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

  return transform(train), transform(evals)


def _model_inputs(model: tf.keras.Model, columns: Dict[str, np.ndarray]) -> Dict[str, Any]:
  """The transformed columns the Keras model takes, as [rows, 1] of each Input's dtype."""
  return {i.name: columns[i.name].reshape(-1, 1).astype(i.dtype.as_numpy_dtype)
          for i in model.inputs}


def template_models(modules: Sequence[TaxiModule], data, eval_y: np.ndarray,
                    seeds: Sequence[int], log=print) -> List[Dict[str, Any]]:
  """Each TFX taxi model: tf.Transform once, then one trained model per seed."""
  results = []
  for module in modules:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
      train_t, eval_t = tf_transform(module, data["csv"], data["is_train"], tmp)
    transform_seconds = time.perf_counter() - start
    label_agreement = float(np.mean(eval_t[module.label_key] == eval_y))
    aucs, params = [], None
    for seed in seeds:
      tf.keras.utils.set_random_seed(seed)
      model = module.build()
      x = _model_inputs(model, train_t)
      y = train_t[module.label_key].astype(np.float32)
      # TFXIO's tf_dataset_factory: shuffled (buffer 10,000), repeated, batched.
      ds = (tf.data.Dataset.from_tensor_slices((x, y)).repeat()
            .shuffle(TFXIO_SHUFFLE_BUFFER, seed=seed).batch(module.train_batch))
      model.fit(ds, steps_per_epoch=TEMPLATE_TRAIN_STEPS, epochs=1, verbose=0)
      scores = model.predict(_model_inputs(model, eval_t), batch_size=4096,
                             verbose=0).reshape(-1)
      aucs.append(simulate.auc(eval_y, scores))
      params = {"all_weights": int(model.count_params()),
                "trainable_weights": int(sum(np.prod(w.shape) for w in model.trainable_weights))}
      log(f"  {module.name} seed {seed}: AUC {aucs[-1]:.4f}", flush=True)
      tf.keras.backend.clear_session()
    results.append({
        "model": module.name, "aucs": aucs, **params,
        "seconds": time.perf_counter() - start, "transform_seconds": transform_seconds,
        "origin": module.origin, "raw_columns": module.raw_keys,
        "template_label_equals_preset_label_eval": label_agreement,
        "setup": (f"{module.network}; {TEMPLATE_TRAIN_STEPS} steps of batch "
                  f"{module.train_batch}; inputs {sorted(i.name for i in module.build().inputs)}"),
    })
    tf.keras.backend.clear_session()
  return results


# ---------------------------------------------------------------------------------------
# Report.

def summarize(r: Dict[str, Any]) -> Dict[str, Any]:
  a = np.asarray(r["aucs"])
  return {**r, "auc_mean": float(a.mean()), "auc_std": float(a.std()),
          "auc_min": float(a.min()), "auc_max": float(a.max())}


def _git(*args: str) -> str:
  return subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True).stdout.strip()


DIFFERENCES = [
    "Label: the template computes tips > 0.2 * fare in its preprocessing_fn; the preset "
    "reads the same rule precomputed in the CSV's `big_tipper` column. All models are "
    "scored against the preset's label; the JSON records on what share of eval rows the "
    "template's own label equals it (`template_label_equals_preset_label_eval`).",
    "Input: the raw rows go to tf.Transform as tf.Examples typed from the CSV (integers "
    "int64, floats float32, text bytes), every column a VarLenFeature (a gap is an absent "
    "value), through TFXIO's tf.Example source, instead of CsvExampleGen's output with a "
    "SchemaGen schema; the template's _fill_in_missing gives the same dense values either "
    "way. The rows and the split are the ExampleGen's.",
    "Training: 1,000 steps (TrainArgs of the template pipeline) on an in-memory tf.data "
    "pipeline shuffled with TFXIO's default 10,000 buffer, repeated and batched as the "
    "template's _input_fn asks; no MirroredStrategy (one CPU device either way), no "
    "TensorBoard callback, no per-epoch validation (it does not change the weights).",
    "Scoring: the Keras model on the transformed eval split (what its `transform_features` "
    "+ model signatures compute), AUC with 10,000 thresholds as TFMA's default, the same "
    "function for every model.",
    "Both TFX models are kept as published in what they compute: the deep part's Dense "
    "layers have no activation, and its Normalization layers are never adapted (identity; "
    "their mean, variance and count are counted among all weights).",
    "The wheel's taxi example (`taxi_utils_native_keras.py`) is the template's code with the "
    "full feature lists; as published its `_MAX_CATEGORICAL_FEATURE_VALUES` has 3 entries "
    "for 7 categorical keys, so its model one-hot encodes only the hour, day and month and "
    "ignores the census tracts and community areas it transforms; that is kept as is.",
]


def write(results: List[Dict[str, Any]], meta: Dict[str, Any], out_dir: str) -> str:
  rows = [summarize(r) for r in results]
  lines = [
      f"# Chicago Taxi: unified, hash, collisionless and TFX's taxi models, one split",
      "",
      f"Measured {meta['date']} on commit {meta['commit']} ({meta['machine']}), by",
      f"`{meta['command']}`.",
      "",
      f"Data: the `taxi` preset ({meta['rows']:,} trips, "
      f"`{meta['data'].split('site-packages/')[-1]}` in the installed wheel), split by the "
      f"ExampleGen's own rule (sha256 of the serialized example, 8/10 buckets train): "
      f"{meta['train_rows']:,} train, {meta['eval_rows']:,} eval "
      f"({meta['eval_positive_share']:.1%} positive). Seeds {meta['seeds']}; AUC on the eval "
      "split (10,000 thresholds), mean, population std and range over the seeds.",
      "",
      "| model | AUC mean | std | min | max | parameters (all weights) | embedding "
      "parameters (budget) | seconds (all seeds) |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    emb = f"{r['embedding_parameters']:,}" if "embedding_parameters" in r else "-"
    lines.append(f"| {r['model']} | {r['auc_mean']:.4f} | {r['auc_std']:.4f} | "
                 f"{r['auc_min']:.4f} | {r['auc_max']:.4f} | {r['all_weights']:,} | {emb} | "
                 f"{r['seconds']:.0f} |")
  lines += ["", "Setups:", ""]
  lines += [f"- **{r['model']}**: {r['setup']}" for r in rows]
  lines += ["", "Unified, hash and collisionless see what the pipeline's Trainers see "
            "(`tools.columns.model_inputs`: Transform's own definitions), except that the "
            "numeric quantile boundaries here are numpy's exact quantiles of the train split "
            "where Transform's are approximate (epsilon 0.01), and the models train on "
            "in-memory columns, not on Transform's TFRecords."]
  lines += ["", "What differs from the TFX template's own pipeline:", ""]
  lines += [f"- {d}" for d in DIFFERENCES]
  base = next(r for r in rows if r["model"] == "unified")
  lines += ["", "Difference of the mean AUC against unified: " + ", ".join(
      f"{r['model']} {r['auc_mean'] - base['auc_mean']:+.4f}" for r in rows if r is not base)
      + ".", "",
            "All weights: every weight of the Keras model, trainable or not (for unified, "
            "the unseen-id default vectors too). The admission filter's bits live in the "
            "Transform graph, not in the Keras model; the embedding-parameter column (what "
            "the budget counts) includes them."]
  agreement = [f"{r['model']} {r['template_label_equals_preset_label_eval']:.2%}"
               for r in rows if "template_label_equals_preset_label_eval" in r]
  lines += ["", "Template label = preset label on the eval rows: " + ", ".join(agreement) + "."]
  md = "\n".join(lines) + "\n"
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "taxi_compare.md"), "w") as f:
    f.write(md)
  with open(os.path.join(out_dir, "taxi_compare.json"), "w") as f:
    json.dump({"meta": meta, "models": rows}, f, indent=2)
  return md


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
  parser.add_argument("--results", default=RESULTS_DIR, help="where the .md/.json go")
  parser.add_argument("--report-only", action="store_true",
                      help="redraw taxi_compare.md from taxi_compare.json, train nothing")
  args = parser.parse_args()
  if args.report_only:
    with open(os.path.join(args.results, "taxi_compare.json")) as f:
      saved = json.load(f)
    print(write(saved["models"], saved["meta"], args.results))
    return
  spec = spec_lib.load("taxi")
  data = load(spec)
  product, _, eval_y = product_models(spec, data, args.seeds)
  tfx_models = template_models([template_module(), example_module()], data, eval_y,
                               args.seeds)
  meta = {
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "commit": _git("rev-parse", "--short", "HEAD"),
      "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
      "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.node()}",
      "command": "nice -n 10 .venv/bin/python bench/taxi_compare.py " +
                 " ".join(sys.argv[1:]),
      "data": data["path"], "rows": int(len(data["is_train"])),
      "train_rows": int(data["is_train"].sum()), "eval_rows": int((~data["is_train"]).sum()),
      "eval_positive_share": float(eval_y.mean()), "seeds": args.seeds,
      "tensorflow": tf.__version__,
  }
  print(write(product + tfx_models, meta, args.results))


if __name__ == "__main__":
  main()
