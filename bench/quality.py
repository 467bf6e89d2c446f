"""Quality and speed of the three embeddings on MovieLens-100K, with the tutorial's protocol.

Protocol (TFRS "Unified Embedding Tables"): ratings >= 3 are positives; a random 80/20
split (shuffle of 100,000 with seed 42, take 80,000 / the next 20,000); 5 epochs, batch
8192, Adam 0.01, MLP [128, 64], dimension 16; N independent runs per model (seeds 42, 43,
...). Vocabularies of the collisionless model come from the full data, like the tutorial's.

Everything trains through the product's own code: `trainer.model.embedding_spec` /
`build_model` and `trainer.train.fit`; the features come from Transform's
`transform_features` applied to the raw files. The throughput section also runs the
Trainer's real input pipeline (`trainer.train.make_dataset` over gzipped TFRecords of
transformed examples) in this fresh process, before anything else has warmed it up.

Prints one line per model (`<name>: AUC <mean> +- <std> ...`), the budget sweep (0.25x to
2x the tutorial's 24,000 embedding parameters, hash vs unified) and examples/s; writes
bench/results/quality.{md,png,json}. Asserts nothing.

  .venv/bin/python bench/quality.py [--data-dir D] [--runs N] [--sweep-runs N] [--quick]
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
# The benchmarks' default data: MovieLens-100K in ../shared beside the checkout.
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(REPO), "shared", "data", "ml-100k")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dataspec import spec as spec_lib  # noqa: E402
from tools import columns as columns_lib  # noqa: E402
from trainer import admission, features, model as model_lib, train  # noqa: E402
from trainer.config import TUTORIAL_EMBEDDING_BUDGET, TrainingConfig  # noqa: E402

# name -> the TrainingConfig changes of that model. "unified" is the pipeline's default
# candidate (the budget rule); "unified (tutorial)" the tutorial's layout, one key away.
MODELS = {
    "collisionless": dict(model_type="collisionless"),
    "hash": dict(model_type="hash"),
    "unified": dict(model_type="unified", layout="budget_rule"),
    "unified (tutorial)": dict(model_type="unified", layout="explicit"),
}
SWEEP_MULTIPLES = (0.25, 0.5, 1.0, 2.0)
SPLIT_SEED = 42
TRAIN_SIZE, TEST_SIZE = 80_000, 20_000
EVAL_BATCH = 4096  # the tutorial's test batch
RESULTS_DIR = os.path.join(REPO, "bench", "results")


@dataclasses.dataclass
class Split:
  """The tutorial's train/test split as in-memory columns, plus full-data vocabularies."""
  train: Dict[str, np.ndarray]
  train_labels: np.ndarray
  test: Dict[str, np.ndarray]
  test_labels: np.ndarray
  vocabularies: Dict[str, List[str]]


@dataclasses.dataclass
class Runs:
  """Results of N runs of one configuration."""
  name: str
  params: int  # embeddings, admission filter and default vectors (the embedding budget)
  aucs: List[float]
  loglosses: List[float]
  examples_per_second: List[float]
  parameters: Dict[str, int] = dataclasses.field(default_factory=dict)  # parameter_counts

  def mean_std(self, values: Sequence[float]):
    """Mean and population standard deviation (the tutorial's np.std)."""
    return float(np.mean(values)), float(np.std(values))

  def to_dict(self) -> Dict[str, Any]:
    """Raw numbers and their summary, for the JSON file."""
    auc, auc_std = self.mean_std(self.aucs)
    loss, loss_std = self.mean_std(self.loglosses)
    return {**dataclasses.asdict(self), "auc_mean": auc, "auc_std": auc_std,
            "logloss_mean": loss, "logloss_std": loss_std}


def load_split(data_dir: str) -> Split:
  """Reads the raw files and splits them like the tutorial (fixed-seed shuffle, 80/20).

  Args:
    data_dir: a MovieLens-100K directory.

  Returns:
    The split.
  """
  columns, labels = columns_lib.model_features(spec_lib.load("movielens"), data_dir)
  if len(labels) < TRAIN_SIZE + TEST_SIZE:
    raise SystemExit(f"{data_dir} has {len(labels)} ratings; the protocol needs "
                     f"{TRAIN_SIZE + TEST_SIZE:,} (MovieLens-100K)")
  tf.random.set_seed(SPLIT_SEED)
  shuffled = tf.data.Dataset.from_tensor_slices((columns, labels)).shuffle(
      100_000, seed=SPLIT_SEED, reshuffle_each_iteration=False)

  def materialize(ds):
    x, y = next(iter(ds.batch(TRAIN_SIZE + TEST_SIZE)))
    return {k: v.numpy() for k, v in x.items()}, y.numpy()

  train_x, train_y = materialize(shuffled.take(TRAIN_SIZE))
  test_x, test_y = materialize(shuffled.skip(TRAIN_SIZE).take(TEST_SIZE))
  return Split(train_x, train_y, test_x, test_y, columns_lib.vocabularies(columns))


def with_admission(split: Split, config: TrainingConfig) -> Split:
  """The split with Transform's admission flags for `config.admission_features` added: a
  filter of the train split's ids (what Transform analyzes), applied to both splits."""
  if not config.admission_features:
    return split
  return dataclasses.replace(
      split,
      train=admission.admitted_columns(split.train, split.train, config.admission_features),
      test=admission.admitted_columns(split.test, split.train, config.admission_features))


def train_dataset(split: Split, batch_size: int, seed: int) -> tf.data.Dataset:
  """The tutorial's `train.shuffle(100_000).batch(8192).cache()` (one shuffle, cached)."""
  return (tf.data.Dataset.from_tensor_slices((split.train, split.train_labels))
          .shuffle(100_000, seed=seed, reshuffle_each_iteration=False)
          .batch(batch_size).cache())


def test_dataset(split: Split) -> tf.data.Dataset:
  """The tutorial's `test.batch(4096).cache()`."""
  return (tf.data.Dataset.from_tensor_slices((split.test, split.test_labels))
          .batch(EVAL_BATCH).cache())


def run_config(split: Split, config: TrainingConfig, runs: int, name: Optional[str] = None,
               spec=None, log=print) -> Runs:
  """Trains `runs` fresh models of one configuration with the product's code.

  Args:
    split: the data.
    config: the training configuration (its `seed` is the first run's seed).
    runs: number of independent runs (seeds config.seed, config.seed + 1, ...).
    name: label for the results (default: the model type).
    spec: embedding spec to use instead of `model.embedding_spec(config, vocabularies)`.
    log: progress printer.

  Returns:
    The runs' AUCs, LogLosses and training examples/s.
  """
  spec = spec or model_lib.embedding_spec(config, split.vocabularies)
  split = with_admission(split, config)
  result = Runs(name or config.model_type,
                spec.num_parameters + config.admission_parameters, [], [], [],
                model_lib.parameter_counts(config, spec))
  eval_ds = test_dataset(split)
  for run in range(runs):
    seed = config.seed + run
    tf.keras.utils.set_random_seed(seed)
    model = model_lib.build_model(config, spec)
    metrics = train.fit(model, train_dataset(split, config.batch_size, seed), config, eval_ds)
    result.aucs.append(metrics["eval_auc"])
    result.loglosses.append(metrics["eval_logloss"])
    result.examples_per_second.append(metrics["examples_per_second"])
    log(f"  {result.name} run {run + 1}/{runs}: AUC {metrics['eval_auc']:.4f} "
        f"LogLoss {metrics['eval_logloss']:.4f} ({metrics['examples_per_second']:,.0f} "
        "examples/s)", flush=True)
    tf.keras.backend.clear_session()
  return result


def write_transformed_tfrecords(split: Split, directory: str, shards: int = 2) -> List[str]:
  """Writes the train split as Transform does: gzipped TFRecords of transformed tf.Examples
  (with the admission flags when the split carries them)."""
  flags = [k for k in split.train if k.endswith(features.ADMITTED_SUFFIX)]
  names = [k for k in split.train if k not in flags]
  paths = [os.path.join(directory, f"transformed_examples-{i:05d}-of-{shards:05d}.gz")
           for i in range(shards)]
  writers = [tf.io.TFRecordWriter(p, options="GZIP") for p in paths]
  for i in range(len(split.train_labels)):
    feature = {f: tf.train.Feature(bytes_list=tf.train.BytesList(value=[split.train[f][i]]))
               for f in names}
    for k in flags:
      feature[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(split.train[k][i])]))
    feature[features.LABEL] = tf.train.Feature(
        int64_list=tf.train.Int64List(value=[int(split.train_labels[i])]))
    writers[i % shards].write(tf.train.Example(
        features=tf.train.Features(feature=feature)).SerializeToString())
  for w in writers:
    w.close()
  return paths


def trainer_throughput(split: Split, config: TrainingConfig) -> Dict[str, float]:
  """examples/s of the Trainer's own input pipeline and training loop (unified model).

  Runs `train.make_dataset` (as `run_fn` calls it) over gzipped TFRecords, then
  `train.fit`, and reports: the input pipeline alone (read + decompress + parse, one pass,
  no cache), the training loop (`fit`'s examples/s over the epochs), and the Trainer end to
  end (epochs * examples / wall time of parsing, caching, tracing and training).
  """
  split = with_admission(split, config)
  feature_spec = {f: tf.io.FixedLenFeature([], tf.string) for f in split.train
                  if not f.endswith(features.ADMITTED_SUFFIX)}
  feature_spec.update({admission.admitted_name(f): tf.io.FixedLenFeature([], tf.int64)
                       for f in config.admission_features})
  feature_spec[features.LABEL] = tf.io.FixedLenFeature([], tf.int64)
  with tempfile.TemporaryDirectory() as tmp:
    pattern = os.path.join(tmp, "transformed_examples-*.gz")
    write_transformed_tfrecords(split, tmp)

    ds = train.make_dataset([pattern], feature_spec, config.batch_size,
                            config.shuffle_buffer, config.seed, cache=False,
                            scratch_dir=os.path.join(tmp, "shuffle-count"))
    start = time.perf_counter()
    n = train.count_examples(ds)
    input_eps = n / (time.perf_counter() - start)

    tf.keras.utils.set_random_seed(config.seed)
    start = time.perf_counter()
    ds = train.make_dataset([pattern], feature_spec, config.batch_size,
                            config.shuffle_buffer, config.seed,
                            scratch_dir=os.path.join(tmp, "shuffle-train"))
    model = model_lib.build_model(config, model_lib.embedding_spec(config))
    metrics = train.fit(model, ds, config)
    end_to_end = config.epochs * metrics["train_examples"] / (time.perf_counter() - start)
  tf.keras.backend.clear_session()
  return {"examples": n, "input_pipeline_examples_per_second": input_eps,
          "training_loop_examples_per_second": metrics["examples_per_second"],
          "trainer_end_to_end_examples_per_second": end_to_end}


def model_line(r: Runs) -> str:
  """`<name>: AUC <mean> +- <std>  LogLoss <mean> +- <std>  embedding params N (k runs)`."""
  auc, auc_std = r.mean_std(r.aucs)
  loss, loss_std = r.mean_std(r.loglosses)
  return (f"{r.name}: AUC {auc:.4f} +- {auc_std:.4f}  LogLoss {loss:.4f} +- {loss_std:.4f}  "
          f"embedding params {r.params:,} ({len(r.aucs)} runs)")


def sweep_rows(sweep: Dict[int, Dict[str, Runs]]) -> List[List[str]]:
  """Rows of the sweep table: budget, hash and unified AUC, their gap."""
  rows = []
  for budget in sorted(sweep):
    h, u = sweep[budget]["hash"], sweep[budget]["unified"]
    (ha, hs), (ua, us) = h.mean_std(h.aucs), u.mean_std(u.aucs)
    rows.append([f"{budget:,} ({budget / TUTORIAL_EMBEDDING_BUDGET:g}x)",
                 f"{ha:.4f} +- {hs:.4f}", f"{ua:.4f} +- {us:.4f}", f"{ua - ha:+.4f}"])
  return rows


def plot(path: str, sweep: Dict[int, Dict[str, Runs]], collisionless: Runs) -> None:
  """AUC against embedding parameters: hash and unified over the sweep, collisionless."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(7, 4.5))
  budgets = sorted(sweep)
  for name, color, marker in (("unified", "tab:blue", "o"), ("hash", "tab:orange", "s")):
    means = [sweep[b][name].mean_std(sweep[b][name].aucs) for b in budgets]
    ax.errorbar([sweep[b][name].params for b in budgets], [m for m, _ in means],
                yerr=[s for _, s in means], color=color, marker=marker, capsize=3,
                label=f"{name} (same budget)")
  c_mean, c_std = collisionless.mean_std(collisionless.aucs)
  ax.errorbar([collisionless.params], [c_mean], yerr=[c_std], color="tab:green", marker="*",
              markersize=12, linestyle="none", capsize=3,
              label=f"collisionless ({collisionless.params:,} params)")
  ax.axhline(c_mean, color="tab:green", linestyle=":", linewidth=1)
  ax.axvline(TUTORIAL_EMBEDDING_BUDGET, color="gray", linestyle="--", linewidth=1)
  ax.text(TUTORIAL_EMBEDDING_BUDGET, ax.get_ylim()[1], " tutorial budget", color="gray",
          va="top", fontsize=8)
  ax.set_xscale("log")
  ax.set_xticks([sweep[b]["unified"].params for b in budgets])
  ax.get_xaxis().set_major_formatter(
      matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
  ax.minorticks_off()
  ax.set_xlabel("embedding parameters")
  ax.set_ylabel("test AUC (mean +- std)")
  runs = len(next(iter(sweep.values()))["unified"].aucs)
  ax.set_title(f"MovieLens-100K, rating >= 3: AUC vs embedding size "
               f"({runs} run{'s' if runs > 1 else ''} per point)")
  ax.grid(True, alpha=0.3)
  ax.legend(loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def markdown(models: Dict[str, Runs], sweep: Dict[int, Dict[str, Runs]],
             throughput: Dict[str, float], args: argparse.Namespace, seconds: float) -> str:
  """The report written to quality.md."""
  lines = [
      "# Embedding quality on MovieLens-100K",
      "",
      "Generated by `bench/quality.py` (do not edit by hand). Protocol of the TFRS "
      "\"Unified Embedding Tables\" tutorial: label rating >= 3; random 80/20 split "
      f"(shuffle seed {SPLIT_SEED}); {args.epochs} epochs, batch 8192, Adam 0.01, MLP "
      "[128, 64], dimension 16; runs with seeds 42, 43, ...; trained with "
      "`trainer.model.build_model` + `trainer.train.fit`.",
      "",
      "| model | AUC (mean +- std) | LogLoss (mean +- std) | embedding params | "
      "MLP params | total params | runs |",
      "|---|---|---|---|---|---|---|",
  ]
  for r in models.values():
    (a, as_), (l, ls) = r.mean_std(r.aucs), r.mean_std(r.loglosses)
    lines.append(f"| {r.name} | {a:.4f} +- {as_:.4f} | {l:.4f} +- {ls:.4f} | "
                 f"{r.params:,} | {r.parameters['mlp']:,} | {r.parameters['total']:,} | "
                 f"{len(r.aucs)} |")
  c = models["collisionless"]
  u = models["unified"]
  lines += [
      "",
      "`unified` is the pipeline's default candidate (layout `budget_rule`, "
      "`trainer.config.budget_rule_layout`, with its admission filter, whose bytes are "
      "counted in its parameters); `unified (tutorial)` the tutorial's layout "
      "(`layout: explicit`). "
      f"Unified uses {u.params / c.params:.0%} of the collisionless model's embedding "
      f"parameters and {u.parameters['total'] / c.parameters['total']:.0%} of its total "
      "(the MLP reads every chunk, so its input width follows the layout). The std varies the initialization and shuffle seeds only: which values "
      "collide is fixed by the hash salts (`bench/unified_configs.py --salt-spread N` "
      "measures the spread across salts).",
      "",
      "## Budget sweep (hash and unified at exactly the same parameter count)",
      "",
      "![AUC against embedding parameters](quality.png)",
      "",
      "| embedding params | hash AUC | unified AUC | unified - hash |",
      "|---|---|---|---|",
  ]
  lines += [f"| {' | '.join(row)} |" for row in sweep_rows(sweep)]
  lines += [
      "",
      "## Training speed (unified model, "
      f"{platform.machine()}, {os.cpu_count()} CPU cores)",
      "",
      "| what | examples/s |",
      "|---|---|",
      f"| Trainer input pipeline alone (`make_dataset` over gzipped TFRecords: read, "
      f"decompress, parse; one pass) | {throughput['input_pipeline_examples_per_second']:,.0f} |",
      f"| Trainer training loop (`train.fit` on those batches, all epochs incl. tracing) | "
      f"{throughput['training_loop_examples_per_second']:,.0f} |",
      f"| Trainer end to end (parse + cache + trace + {args.epochs} epochs, fresh process) | "
      f"{throughput['trainer_end_to_end_examples_per_second']:,.0f} |",
      f"| in-memory training loop of the quality runs (`train.fit`, median of "
      f"{len(u.examples_per_second)}) | {statistics.median(u.examples_per_second):,.0f} |",
      "",
      f"TensorFlow {tf.__version__}; wall time of the benchmark {seconds:.0f} s.",
      "",
  ]
  return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                      help="MovieLens-100K directory (default ../shared/data/ml-100k)")
  parser.add_argument("--runs", type=int, default=5, help="runs per model (default 5)")
  parser.add_argument("--sweep-runs", type=int,
                      help="runs per sweep point (default: --runs)")
  parser.add_argument("--quick", action="store_true",
                      help="smoke run: 1 run per model and per sweep point")
  parser.add_argument("--epochs", type=int, default=5, help=argparse.SUPPRESS)
  parser.add_argument("--output-dir", default=RESULTS_DIR,
                      help="where quality.{md,png,json} go (default bench/results)")
  args = parser.parse_args(argv)
  if args.quick:
    args.runs, args.sweep_runs = 1, 1
  args.sweep_runs = args.sweep_runs or args.runs
  if args.runs < 1 or args.sweep_runs < 1:
    parser.error("--runs and --sweep-runs must be at least 1")
  try:
    data_dir = columns_lib.check_data_dir(spec_lib.load("movielens"), args.data_dir)
  except spec_lib.SpecError as e:
    parser.error(str(e))

  started = time.perf_counter()
  split = load_split(data_dir)
  base = TrainingConfig(epochs=args.epochs)
  print(f"MovieLens-100K at {data_dir}: {len(split.train_labels):,} train / "
        f"{len(split.test_labels):,} test examples; "
        + ", ".join(f"{f} {len(v):,}" for f, v in split.vocabularies.items()), flush=True)

  # First, in this fresh process (like a Trainer's): the Trainer's own input pipeline.
  throughput = trainer_throughput(split, base.replace(**MODELS["unified"]))

  models = {m: run_config(split, base.replace(**changes), args.runs, name=m)
            for m, changes in MODELS.items()}
  sweep: Dict[int, Dict[str, Runs]] = {}
  for multiple in SWEEP_MULTIPLES:
    budget = int(TUTORIAL_EMBEDDING_BUDGET * multiple)
    sweep[budget] = {}
    for m in ("hash", "unified"):
      if budget == TUTORIAL_EMBEDDING_BUDGET and args.sweep_runs == args.runs:
        sweep[budget][m] = models[m]  # the same configuration and seeds: reuse
      else:
        sweep[budget][m] = run_config(
            split, base.replace(**MODELS[m], embedding_budget=budget), args.sweep_runs, name=m)
  seconds = time.perf_counter() - started

  print("")
  for r in models.values():
    print(model_line(r))
  u = models["unified"]
  print(f"unified training (train.fit, in-memory batches): "
        f"{statistics.median(u.examples_per_second):,.0f} examples/s "
        f"(median of {len(u.examples_per_second)} runs)")
  print(f"Trainer input pipeline (make_dataset over gzipped TFRecords, one pass): "
        f"{throughput['input_pipeline_examples_per_second']:,.0f} examples/s")
  print(f"Trainer training loop (train.fit on make_dataset batches, unified): "
        f"{throughput['training_loop_examples_per_second']:,.0f} examples/s")
  print(f"Trainer end to end (parse + cache + trace + {args.epochs} epochs, fresh process): "
        f"{throughput['trainer_end_to_end_examples_per_second']:,.0f} examples/s")
  print(f"budget sweep (AUC mean +- std, {args.sweep_runs} runs per point):")
  print(f"  {'embedding params':<18}{'hash':<18}{'unified':<18}unified - hash")
  for row in sweep_rows(sweep):
    print(f"  {row[0]:<18}{row[1]:<18}{row[2]:<18}{row[3]}")

  os.makedirs(args.output_dir, exist_ok=True)
  plot(os.path.join(args.output_dir, "quality.png"), sweep, models["collisionless"])
  with open(os.path.join(args.output_dir, "quality.md"), "w") as f:
    f.write(markdown(models, sweep, throughput, args, seconds))
  with open(os.path.join(args.output_dir, "quality.json"), "w") as f:
    json.dump({
        "protocol": {"split_seed": SPLIT_SEED, "train": TRAIN_SIZE, "test": TEST_SIZE,
                     "epochs": args.epochs, "batch_size": base.batch_size,
                     "learning_rate": base.learning_rate,
                     "layer_sizes": list(base.layer_sizes), "embedding_dim": 16,
                     "runs": args.runs, "sweep_runs": args.sweep_runs,
                     "data_dir": data_dir},
        "models": {m: r.to_dict() for m, r in models.items()},
        "sweep": {str(b): {m: r.to_dict() for m, r in point.items()}
                  for b, point in sweep.items()},
        "throughput": throughput,
        "seconds": seconds,
        "tensorflow": tf.__version__,
    }, f, indent=2)
  print(f"wrote {args.output_dir}/quality.md, quality.png, quality.json "
        f"({seconds:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
