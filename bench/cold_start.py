"""Cold-start variants on the time-ordered replay, in process (minutes, not a pipeline per period).

The same periods as `uet simulate` (MovieLens-100K cut into N equal time windows; period t
trains on the train split of the newest `--window` spans up to t and is scored on all of
span t+1), but every model is trained in this process with the product's builder
(`trainer.model.build_model`) so that many variants fit in one run:

  * warm: the previous period's weights carried over (what the pipeline's warm start does),
    then trained on the window; cold: trained from scratch on the window;
  * admission filter: Transform's counting Bloom filter (`trainer.admission.build_filter`,
    the same cells and bits as the analyzer) built on the window's training ids; ids that do
    not pass get the model's learned per-feature default;
  * id dropout at several rates;
  * a learned gate on the id's count in the window (exact counts: an upper bound on what a
    count sketch of that size could give) mixing hashed embedding and default;
  * references: per-feature hash, collisionless with the vocabulary frozen at period 1 and
    re-fitted on every window.

Prints per-period AUCs and the pooled AUC over all periods (and over periods 3..N-1) per
variant; writes bench/results/cold_start.{md,json}. Asserts nothing.

  .venv/bin/python bench/cold_start.py [--data-dir D] [--spans 6] [--only NAME ...]
      [--seed S] [--no-cold] [--name FILE]
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import movielens_groups as groups  # noqa: E402  (bench/movielens_groups.py)
from components.example_gen import spans as spans_lib  # noqa: E402
from tools import columns, simulate  # noqa: E402
from trainer import admission, model as model_lib  # noqa: E402
from trainer.config import TUTORIAL_EMBEDDING_BUDGET, TrainingConfig  # noqa: E402

# The item's and the user's ids 4 chunks, the user's open attributes 2, the rest 1.
BIG4 = dict(num_tables=1, dim_per_table=8, default_chunks=1, chunks=groups.chunks(4, 2))
IDS = groups.IDS  # the item's and the user's ids and the user's open attributes
USER_IDS = tuple(f for f in IDS if f != groups.ITEM)

RULE = dict(layout="budget_rule")

# name -> (TrainingConfig changes, gate[, filter threshold]). All at the same budget.
VARIANTS = {
    "tutorial": (dict(), False),
    "big4": (BIG4, False),
    "big4 filter": (dict(BIG4, admission_features=IDS), False),
    "big4 filter drop0.05": (dict(BIG4, admission_features=IDS, id_dropout=0.05), False),
    "big4 filter drop0.2": (dict(BIG4, admission_features=IDS, id_dropout=0.2), False),
    "big4 filter-users drop0.2": (dict(BIG4, admission_features=USER_IDS, id_dropout=0.2),
                                  False),
    "big4 gate drop0.2": (dict(BIG4, admission_features=IDS, id_dropout=0.2), True),
    "big4 filter thr3": (dict(BIG4, admission_features=IDS), False, 3),
    "rule": (RULE, False),
    "rule, defaults left at zero": (RULE, False),
    "rule, warm at the full learning rate": (dict(RULE, warm_start_lr_scale=1.0), False),
    "previous rule": (dict(num_tables=1, dim_per_table=8, default_chunks=1,
                           chunks=groups.previous_rule_chunks(TUTORIAL_EMBEDDING_BUDGET),
                           admission_features=IDS), False),
}
# Variants whose defaults stay as training left them (zero without id dropout), as before
# the Trainer set them to the mean of the window's rarer ids.
UNFITTED_DEFAULTS = ("rule, defaults left at zero",)
# "previous rule": the budget rule's chunks before it told the item and the user's open
# attributes apart from the other open vocabularies (every id feature 4 chunks).
REFERENCES = ("hash", "collisionless_frozen", "collisionless_refit")


class GatedModel(model_lib.RankingModel):
  """Bench-only: embedding = g(count) * hashed + (1 - g(count)) * default, g learned.

  g = sigmoid(a_f * log1p(count) + b_f) per feature; `count` is the id's count in the
  training window (input `<feature>_count`), set to 0 at rate id_dropout in training.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.gate = {f: self.add_weight(name=f"{f}_gate", shape=[2],
                                    initializer=tf.keras.initializers.Constant([1.0, 0.0]))
                 for f in self.admission_features}

  def call(self, inputs, training=None):
    embedded = dict(zip(self.spec.feature_names, self.embedding(inputs, training=training)))
    for f in self.admission_features:
      count = tf.cast(tf.reshape(inputs[f"{f}_count"], [-1]), tf.float32)
      if training:
        count = tf.where(tf.random.uniform(tf.shape(count)) < self.id_dropout, 0.0, count)
      g = tf.sigmoid(self.gate[f][0] * tf.math.log1p(count) + self.gate[f][1])[:, None]
      default = self.unseen_default.defaults[f][None, :]
      embedded[f] = g * embedded[f] + (1 - g) * default
    x = tf.concat([embedded[f] for f in self.spec.feature_names], axis=-1)
    for layer in self.hidden:
      x = layer(x)
    return self.logit(x)


def build(config: TrainingConfig, gate: bool, vocabularies=None):
  spec = model_lib.embedding_spec(config, vocabularies)
  if not gate:
    return model_lib.build_model(config, spec)
  model = GatedModel(spec, config.layer_sizes, admission_features=config.admission_features,
                     id_dropout=config.id_dropout)
  model.compile(optimizer=tf.keras.optimizers.legacy.Adam(config.learning_rate),
                loss=tf.keras.losses.BinaryCrossentropy())
  return model


def with_admission(feats: Dict[str, np.ndarray], train_feats: Dict[str, np.ndarray],
                   config: TrainingConfig, threshold: int) -> Dict[str, np.ndarray]:
  """Adds `<f>_admitted` (the product's Bloom filter of the training ids) and `<f>_count`."""
  out = admission.admitted_columns(feats, train_feats, config.admission_features, threshold)
  for f in config.admission_features:
    values, counts = np.unique(train_feats[f], return_counts=True)
    lookup = dict(zip(values, counts))
    out[f"{f}_count"] = np.array([lookup.get(v, 0) for v in feats[f]], np.float32)
  return out


def fit(model, feats, label, config: TrainingConfig, fit_defaults: bool = True) -> None:
  tf.keras.utils.set_random_seed(config.seed)
  ds = tf.data.Dataset.from_tensor_slices((feats, label)).shuffle(
      len(label), seed=config.seed, reshuffle_each_iteration=False).batch(
          config.batch_size).cache()
  model.fit(ds, epochs=config.epochs, verbose=0)
  if fit_defaults:  # what the Trainer does after fitting (trainer/train.py)
    model.fit_unseen_defaults(ds)


def predict(model, feats) -> np.ndarray:
  return model.predict(tf.data.Dataset.from_tensor_slices(feats).batch(8192),
                       verbose=0).reshape(-1)


def pooled(labels: List[np.ndarray], scores: List[np.ndarray]) -> Optional[float]:
  """One AUC over all the periods' predictions (None without periods: fewer spans)."""
  if not labels:
    return None
  return simulate.auc(np.concatenate(labels), np.concatenate(scores))


def _cell(auc: Optional[float]) -> str:
  return "n/a" if auc is None else f"{auc:.4f}"


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir",
                      default=os.path.join(os.path.dirname(REPO), "shared", "data", "ml-100k"))
  parser.add_argument("--spans", type=int, default=6)
  parser.add_argument("--window", type=int, default=2)
  parser.add_argument("--only", nargs="*", help="variant names to run (references always)")
  parser.add_argument("--no-cold", action="store_true", help="warm variants only")
  parser.add_argument("--seed", type=int, default=42, help="seed of every model (42)")
  parser.add_argument("--output-dir", default=os.path.join(REPO, "bench", "results"))
  parser.add_argument("--name", default="cold_start",
                      help="file name of the results, without .md/.json (cold_start)")
  args = parser.parse_args(argv)
  started = time.perf_counter()
  tmp = tempfile.mkdtemp(prefix="cold_start_")
  spec = groups.SPEC
  all_spans = spans_lib.write_time_spans(spec, columns.check_data_dir(spec, args.data_dir),
                                         os.path.join(tmp, "spans"), num_spans=args.spans)
  loaded = [simulate.load_span(spec, s.path) for s in all_spans]
  frozen_vocab = {f: sorted({v.decode() for v in values})
                  for f, values in loaded[0]["features"].items()}
  variants = {n: v for n, v in VARIANTS.items() if not args.only or n in args.only}
  keys = list(REFERENCES)
  for name in variants:
    keys += [f"{name} warm"] + ([] if args.no_cold else [f"{name} cold"])
  scores: Dict[str, List[np.ndarray]] = {k: [] for k in keys}
  labels: List[np.ndarray] = []
  previous: Dict[str, List[np.ndarray]] = {}
  base = TrainingConfig(seed=args.seed)
  for t in range(1, len(all_spans)):
    feats, label = simulate._concat(loaded[max(0, t - args.window):t], train_only=True)
    nxt = loaded[t]
    labels.append(nxt["label"])
    refit_vocab = {f: sorted({v.decode() for v in feats[f]}) for f in feats}
    for key, model_type, vocab in (("hash", "hash", None),
                                   ("collisionless_frozen", "collisionless", frozen_vocab),
                                   ("collisionless_refit", "collisionless", refit_vocab)):
      config = groups.resolve(base.replace(model_type=model_type))
      tf.keras.utils.set_random_seed(config.seed)
      model = build(config, False, vocab)
      fit(model, feats, label, config)
      scores[key].append(predict(model, nxt["features"]))
      tf.keras.backend.clear_session()
    for name, (changes, gate, *threshold) in variants.items():
      config = groups.resolve(base.replace(**changes))
      threshold = threshold[0] if threshold else admission.FILTER_THRESHOLD
      train_x = with_admission(feats, feats, config, threshold)
      next_x = with_admission(nxt["features"], feats, config, threshold)
      for mode in ("warm",) + (() if args.no_cold else ("cold",)):
        warm = mode == "warm" and name in previous
        # A warm start fine-tunes at `warm_start_lr_scale` times the rate, as the Trainer does.
        run_config = config.for_warm_start() if warm else config
        tf.keras.utils.set_random_seed(config.seed)
        model = build(run_config, gate)
        model(model.empty_inputs(1) | {f"{f}_count": tf.zeros([1])
                                        for f in config.admission_features})
        if warm:
          model.set_weights(previous[name])
        fit(model, train_x, label, run_config, fit_defaults=name not in UNFITTED_DEFAULTS)
        if mode == "warm":
          previous[name] = model.get_weights()
        scores[f"{name} {mode}"].append(predict(model, next_x))
        tf.keras.backend.clear_session()
    print(f"period {t}: " + ", ".join(f"{k} {simulate.auc(nxt['label'], v[-1]):.4f}"
                                      for k, v in scores.items()), flush=True)

  periods = len(labels)
  lines = ["# Cold-start variants on the time-ordered replay (in process)", "",
           f"Generated by `bench/cold_start.py`: MovieLens-100K in {args.spans} time spans, "
           f"window {args.window}, defaults of `TrainingConfig` otherwise; AUC on the next "
           "period. Pooled: all periods' predictions in one AUC.", "",
           "| model | " + " | ".join(f"period {t}" for t in range(1, periods + 1)) +
           " | pooled | pooled 3+ |", "|---" * (periods + 3) + "|"]
  result = {}
  for k, v in scores.items():
    per = [simulate.auc(labels[i], v[i]) for i in range(periods)]
    result[k] = {"per_period": per, "pooled": pooled(labels, v),
                 "pooled_3plus": pooled(labels[2:], v[2:])}
    lines.append(f"| {k} | " + " | ".join(f"{a:.4f}" for a in per) +
                 f" | {_cell(result[k]['pooled'])} | {_cell(result[k]['pooled_3plus'])} |")
    print(lines[-1])
  seconds = time.perf_counter() - started
  lines += ["", f"Wall time {seconds:.0f} s (machine shared with other jobs).", ""]
  os.makedirs(args.output_dir, exist_ok=True)
  with open(os.path.join(args.output_dir, f"{args.name}.md"), "w") as f:
    f.write("\n".join(lines))
  with open(os.path.join(args.output_dir, f"{args.name}.json"), "w") as f:
    json.dump({"spans": args.spans, "window": args.window, "seconds": seconds,
               "seed": args.seed,
               "variants": {n: {"config": groups.resolve(base.replace(**v[0])).to_dict(), "gate": v[1],
                                "threshold": v[2] if len(v) > 2 else 1}
                            for n, v in variants.items()},
               "auc": result}, f, indent=2)
  print(f"wrote {args.output_dir}/{args.name}.md ({seconds:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
