"""The three embeddings under a protocol a reviewer can accept: choices on validation only,
numbers on an untouched test split, repeated over random splits and seeds, paired intervals.

For each of K random splits (split seeds 1..K) and S training seeds (42, 43, ...):

  * every row goes to train / validation / test (70 / 10 / 20 %) by a seeded SHA-256 hash
    of the row (its model features; a rating is unique per user and movie), so each split
    is another random partition and the test rows of a split are never used to choose;
  * each model is trained on the train split only, with the product's code
    (`trainer.model.build_model`, `trainer.train.fit`, the admission flags and rare-id
    defaults as in `bench/quality.py`); the collisionless model's vocabulary is the train
    split's (what Transform sees), and its unseen ids get the rare-id-mean
    out-of-vocabulary row (`RankingModel.fit_unseen_defaults`);
  * choices, made on the validation split's AUC, per split and seed: the candidate's item
    chunks (`--item-chunks`, the budget rule's `RULE_ITEM_CHUNKS` and its neighbours) and
    every model's epochs (`--epochs`: the model is evaluated on validation after the
    first count, then trained on to the second; the chosen state is kept);
  * the test split is evaluated once per model, with the chosen state; the pipeline's fixed
    default candidate (budget rule as committed, `--default-epochs`) is also scored on
    test, for reference: its constants were chosen on an earlier test split, so its
    numbers are not clean of selection.

Reports, per model, test AUC and LogLoss (mean, std) and every parameter
(`model.parameter_counts`); paired differences per split and seed (candidate minus
collisionless, candidate minus hash) with a 95% t interval; which split and seed made each
choice. Writes bench/results/protocol.{md,json}. Asserts nothing.

  .venv/bin/python bench/protocol.py [--splits 5] [--seeds 3] [--data-dir D]
      [--item-chunks 4,6,8] [--epochs 3,5]
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(REPO), "shared", "data", "ml-100k")

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any, Dict, List, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402

RESULTS_DIR = os.path.join(REPO, "bench", "results")
SHARES = (70, 10, 20)  # train / validation / test, percent of rows
FIRST_SEED = 42


def provenance() -> Dict[str, str]:
  """When, at which commit and on which machine a result was measured."""
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                          capture_output=True, check=False).stdout.strip()
  dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                         text=True, capture_output=True, check=False).stdout.strip()
  return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
          "commit": commit + (" (with uncommitted changes)" if dirty else ""),
          "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (nproc), "
                     f"{platform.system()} {platform.release()}"}


def split_rows(columns: Dict[str, np.ndarray], split_seed: int) -> np.ndarray:
  """0 (train), 1 (validation) or 2 (test) per row: a SHA-256 of the split seed and the
  row's values, in `SHARES`."""
  names = sorted(columns)
  n = len(columns[names[0]])
  bucket = np.empty(n, np.int64)
  prefix = f"split-{split_seed}".encode()
  for i in range(n):
    key = b"\x1f".join([prefix] + [bytes(columns[f][i]) for f in names])
    bucket[i] = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100
  return np.where(bucket < SHARES[0], 0, np.where(bucket < SHARES[0] + SHARES[1], 1, 2))


def t_interval(differences: Sequence[float], level: float = 0.95) -> Dict[str, float]:
  """Mean of paired differences with its two-sided t interval (n - 1 degrees of freedom)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  d = np.asarray(differences, np.float64)
  mean = float(d.mean())
  if len(d) < 2:
    return {"n": len(d), "mean": mean, "low": float("nan"), "high": float("nan"),
            "std": float("nan")}
  sem = float(d.std(ddof=1) / np.sqrt(len(d)))
  half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * sem)
  return {"n": len(d), "mean": mean, "std": float(d.std(ddof=1)), "low": mean - half,
          "high": mean + half}


def verdict(interval: Dict[str, float]) -> str:
  """What the interval supports."""
  if not np.isfinite(interval["low"]):
    return "one pair: no interval"
  if interval["low"] > 0:
    return "candidate better (interval excludes zero)"
  if interval["high"] < 0:
    return "candidate worse (interval excludes zero)"
  return "no significant difference"


class Unit:
  """One split and seed: trains every option, chooses on validation, scores test."""

  def __init__(self, quality, data, labels, spec, split_seed: int, seed: int, args):
    from tools import columns as columns_lib  # pylint: disable=g-import-not-at-top
    self.quality, self.args, self.spec = quality, args, spec
    self.split_seed, self.seed = split_seed, seed
    part = split_rows(data, split_seed)
    take = lambda mask: ({f: v[mask] for f, v in data.items()}, labels[mask])  # noqa: E731
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (take(part == k) for k in range(3))
    vocabularies = columns_lib.vocabularies(train_x)  # the train split's, as Transform's
    self.validation = quality.Split(train_x, train_y, val_x, val_y, vocabularies)
    self.test = quality.Split(train_x, train_y, test_x, test_y, vocabularies)
    self.sizes = {"train": int(len(train_y)), "validation": int(len(val_y)),
                  "test": int(len(test_y))}

  def run(self, name: str, options: Sequence[Tuple[str, Any]],
          also_test: Sequence[str] = ()) -> Dict[str, Any]:
    """Trains each option (a (label, config) pair) for the epoch counts of `--epochs`,
    scores validation after each, keeps the best state, scores test once with it (and
    with the states named in `also_test`)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from trainer import model as model_lib, train  # pylint: disable=g-import-not-at-top
    q = self.quality
    epochs = sorted(self.args.epochs)
    candidates, states = [], {}
    for label, option in options:
      tf.keras.utils.set_random_seed(self.seed)
      option = option.replace(seed=self.seed)
      spec = model_lib.embedding_spec(option, self.validation.vocabularies)
      model = model_lib.build_model(option, spec)
      validation = q.with_admission(self.validation, option)
      train_ds = q.train_dataset(validation, option.batch_size, self.seed)
      val_ds = q.test_dataset(validation)
      done = 0
      for e in epochs:
        metrics = train.fit(model, train_ds, option.replace(epochs=e - done), val_ds,
                            train_examples=len(validation.train_labels))
        done = e
        key = f"{label}, {e} epochs"
        states[key] = (option, model, model.get_weights())
        candidates.append({"option": key, "validation_auc": metrics["eval_auc"],
                           "validation_logloss": metrics["eval_logloss"],
                           "parameters": model_lib.parameter_counts(option, spec)})
    best = max(candidates, key=lambda c: c["validation_auc"])
    scored = {}
    for key in [best["option"], *[k for k in also_test if k != best["option"]]]:
      option, model, weights = states[key]
      test = q.with_admission(self.test, option)
      model.set_weights(weights)
      metrics = model.evaluate(q.test_dataset(test), return_dict=True, verbose=0)
      scored[key] = {"test_auc": float(metrics["auc"]), "test_logloss": float(metrics["logloss"])}
    result = {"model": name, "split_seed": self.split_seed, "seed": self.seed,
              "chosen": best["option"], "chosen_on": f"validation of split {self.split_seed}, "
              f"seed {self.seed}", "options": candidates,
              "parameters": best["parameters"], **scored[best["option"]]}
    result["test_by_option"] = scored
    print(f"  split {self.split_seed} seed {self.seed} {name}: chose {best['option']} "
          f"(validation AUC {best['validation_auc']:.4f}); test AUC {result['test_auc']:.4f}",
          flush=True)
    return result


def model_options(spec, args):
  """(name, [(option label, resolved config)], the default candidate's option label)."""
  from trainer import config as config_lib  # pylint: disable=g-import-not-at-top
  from trainer.config import TrainingConfig  # pylint: disable=g-import-not-at-top
  base = dict(embedding_budget=args.budget)
  candidate = config_lib.resolve(TrainingConfig(model_type="unified", layout="budget_rule",
                                                **base), spec)
  item = next(f.name for f in spec.features if f.role == "item")
  chunks = dict(candidate.chunks)
  default = f"item chunks {chunks[item]}"
  unified = [(f"item chunks {c}", candidate.replace(chunks=tuple(
      (f, c if f == item else n) for f, n in candidate.chunks))) for c in args.item_chunks]
  hash_config = config_lib.resolve(TrainingConfig(model_type="hash", **base), spec)
  collisionless = config_lib.resolve(TrainingConfig(
      model_type="collisionless", admission_features=spec.id_features, **base), spec)
  return ([("unified", unified), ("hash", [("hash", hash_config)]),
           ("collisionless", [("collisionless", collisionless)])],
          f"{default}, {args.default_epochs} epochs")


def summarize(units: List[Dict[str, Any]], default_key: str) -> Dict[str, Any]:
  """Per model test metrics and parameters; paired differences with intervals."""
  by_model: Dict[str, List[Dict[str, Any]]] = {}
  for u in units:
    by_model.setdefault(u["model"], []).append(u)
  models = {}
  for name, runs in by_model.items():
    aucs = [r["test_auc"] for r in runs]
    losses = [r["test_logloss"] for r in runs]
    totals = [r["parameters"]["total"] for r in runs]
    models[name] = {"runs": len(runs), "test_auc_mean": float(np.mean(aucs)),
                    "test_auc_std": float(np.std(aucs, ddof=1)) if len(runs) > 1 else None,
                    "test_logloss_mean": float(np.mean(losses)),
                    "parameters": runs[0]["parameters"],
                    "total_parameters_range": [int(min(totals)), int(max(totals))],
                    "choices": {c: sum(r["chosen"] == c for r in runs)
                                for c in sorted({r["chosen"] for r in runs})}}
  key = lambda r: (r["split_seed"], r["seed"])  # noqa: E731
  runs = {name: {key(r): r for r in rs} for name, rs in by_model.items()}
  pairs = sorted(runs.get("unified", {}))
  diffs = {}
  for other in ("collisionless", "hash"):
    if other not in runs:
      continue
    common = [k for k in pairs if k in runs[other]]
    d = [runs["unified"][k]["test_auc"] - runs[other][k]["test_auc"] for k in common]
    diffs[f"unified - {other}"] = paired(common, d)
    if common and all(default_key in runs["unified"][k]["test_by_option"] for k in common):
      dd = [runs["unified"][k]["test_by_option"][default_key]["test_auc"]
            - runs[other][k]["test_auc"] for k in common]
      diffs[f"default candidate - {other}"] = paired(common, dd)
  return {"models": models, "paired_test_auc_differences": diffs}


def paired(keys: Sequence[Tuple[int, int]], differences: Sequence[float]) -> Dict[str, Any]:
  """Paired differences, two ways. The seeds of one split share its test rows, so they are
  not independent draws: the verdict uses the interval over the splits' means (one
  difference per split, K - 1 degrees of freedom); the interval over every (split, seed)
  pair, which treats them as independent, is shown beside it."""
  by_split: Dict[int, List[float]] = {}
  for (split, _), d in zip(keys, differences):
    by_split.setdefault(split, []).append(d)
  split_means = [float(np.mean(v)) for _, v in sorted(by_split.items())]
  over_splits = t_interval(split_means)
  return {**over_splits, "verdict": verdict(over_splits), "split_means": split_means,
          "per_pair": list(differences), "pairs": [list(k) for k in keys],
          "over_pairs": t_interval(differences)}


def markdown(result: Dict[str, Any]) -> str:
  """The report written to protocol.md."""
  a = result["args"]
  lines = [
      "# Validation-chosen, test-reported quality on MovieLens-100K", "",
      f"Generated by `bench/protocol.py` (do not edit by hand) on {result['date']}, commit "
      f"{result['commit']}, {result['machine']}. Command: `{result['command']}`; "
      f"{result['seconds'] / 60:.0f} minutes."
      + (f" Summary recomputed from the units without training (`--summarize`) on "
         f"{result['summarized_at']['date']}, commit {result['summarized_at']['commit']}."
         if result.get("summarized_at") else ""), "",
      f"Protocol: {a['splits']} random splits (split seeds 1..{a['splits']}) x {a['seeds']} "
      f"training seeds ({FIRST_SEED}..{FIRST_SEED + a['seeds'] - 1}); rows to train / "
      f"validation / test {SHARES[0]} / {SHARES[1]} / {SHARES[2]} % by a seeded SHA-256 of "
      "the row; label rating >= 3; batch 8192, Adam 0.01, MLP [128, 64], embedding budget "
      f"{a['budget']:,}. Choices on validation only, per split and seed: the candidate's item "
      f"chunks among {a['item_chunks']} and every model's epochs among {a['epochs']}. Test "
      "evaluated once per model with the chosen state. Collisionless: the train split's "
      "vocabulary, unseen ids get the rare-id-mean out-of-vocabulary row.", "",
      "## Test AUC (chosen on validation)", "",
      "| model | runs | test AUC mean +- std | test LogLoss | embeddings | MLP | filter | "
      "defaults | total parameters | choices made (count) |",
      "|---|---|---|---|---|---|---|---|---|---|"]
  for name, m in result["models"].items():
    p = m["parameters"]
    lo, hi = m["total_parameters_range"]
    total = f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"
    std = f"{m['test_auc_std']:.4f}" if m["test_auc_std"] is not None else "n/a"
    lines.append(f"| {name} | {m['runs']} | {m['test_auc_mean']:.4f} +- {std} | "
                 f"{m['test_logloss_mean']:.4f} | {p['embeddings']:,} | {p['mlp']:,} | "
                 f"{p['admission_filter']:,} | {p['default_vectors']:,} | {total} | "
                 + "; ".join(f"{c}: {n}" for c, n in m["choices"].items()) + " |")
  lines += ["", "Parameters of the first run shown (the candidate's depend on its chosen item "
            "chunks, the collisionless model's on its split's vocabulary: total range).", "",
            "## Paired differences in test AUC (same split, same seed)", "",
            "The verdict uses the 95% t interval over the splits (each split's mean over its "
            "seeds: the seeds of a split share its test rows, so they are not independent); "
            "the interval over every (split, seed) pair treats them as independent and is shown "
            "for reference only.",
            "", "| difference | splits | mean | 95% t interval over splits | verdict | pairs | "
            "95% t interval over pairs | per split |", "|---|---|---|---|---|---|---|---|"]
  ci = lambda d: (f"[{d['low']:+.4f}, {d['high']:+.4f}]" if np.isfinite(d["low"])  # noqa: E731
                  else "n/a")
  for name, d in result["paired_test_auc_differences"].items():
    lines.append(f"| {name} | {d['n']} | {d['mean']:+.4f} | {ci(d)} | {d['verdict']} | "
                 f"{d['over_pairs']['n']} | {ci(d['over_pairs'])} | "
                 + ", ".join(f"{m:+.4f}" for m in d["split_means"]) + " |")
  lines += ["", "`default candidate` is the pipeline's committed budget-rule layout at "
            f"{a['default_epochs']} epochs, scored on the same test rows; its constants were "
            "chosen earlier on a test split of these data, so it is not clean of selection.", "",
            "## Which split made each choice", "",
            "| model | split seed | seed | chosen | on | validation AUC of each option | "
            "test AUC |", "|---|---|---|---|---|---|---|"]
  for u in result["units"]:
    opts = "; ".join(f"{o['option']}: {o['validation_auc']:.4f}" for o in u["options"])
    lines.append(f"| {u['model']} | {u['split_seed']} | {u['seed']} | {u['chosen']} | "
                 f"{u['chosen_on']} | {opts} | {u['test_auc']:.4f} |")
  return "\n".join(lines) + "\n"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
  p.add_argument("--splits", type=int, default=5, help="random splits (5)")
  p.add_argument("--seeds", type=int, default=3, help="training seeds per split (3)")
  p.add_argument("--first-split", type=int, default=1, help="first split seed (1)")
  p.add_argument("--item-chunks", default="4,6,8",
                 help="the candidate's item chunk counts to choose from (4,6,8)")
  p.add_argument("--epochs", default="3,5", help="epoch counts to choose from (3,5)")
  p.add_argument("--default-epochs", type=int, default=5,
                 help="the pipeline default's epochs (5); must be among --epochs")
  p.add_argument("--budget", type=int, default=24_000, help="embedding budget (24,000)")
  p.add_argument("--name", default="protocol", help="results file name (protocol)")
  p.add_argument("--summarize", action="store_true",
                 help="train nothing: recompute the summary of the units in "
                      "bench/results/NAME.json and rewrite NAME.{md,json}")
  args = p.parse_args()
  out = os.path.join(RESULTS_DIR, args.name)
  if args.summarize:
    with open(out + ".json") as f:
      result = json.load(f)
    from dataspec import spec as spec_lib  # pylint: disable=g-import-not-at-top
    _, default_key = model_options(spec_lib.load("movielens"),
                                   argparse.Namespace(**result["args"]))
    result.update(summarize(result["units"], default_key))
    result["summarized_at"] = provenance()
    write(out, result)
    print(markdown(result))
    return
  args.item_chunks = [int(x) for x in args.item_chunks.split(",")]
  args.epochs = sorted(int(x) for x in args.epochs.split(","))
  if args.default_epochs not in args.epochs:
    p.error("--default-epochs must be one of --epochs")

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bench import quality  # pylint: disable=g-import-not-at-top
  from dataspec import spec as spec_lib  # pylint: disable=g-import-not-at-top
  from tools import columns as columns_lib  # pylint: disable=g-import-not-at-top
  spec = spec_lib.load("movielens")
  data, labels = columns_lib.model_features(spec, args.data_dir)
  options, default_key = model_options(spec, args)
  if not any(default_key.startswith(label + ",") for _, opts in options for label, _ in opts):
    p.error(f"--item-chunks must include the budget rule's own ({default_key})")
  start = time.perf_counter()
  measured_at = provenance()  # the code that runs: later commits do not change it
  units, sizes = [], {}
  for split_seed in range(args.first_split, args.first_split + args.splits):
    for seed in range(FIRST_SEED, FIRST_SEED + args.seeds):
      tf.keras.backend.clear_session()
      unit = Unit(quality, data, labels, spec, split_seed, seed, args)
      sizes[split_seed] = unit.sizes
      for name, opts in options:
        units.append(unit.run(name, opts,
                              also_test=[default_key] if name == "unified" else ()))
      # Partial results after every unit: a long run that is stopped keeps what it did.
      result = {**measured_at, "command": "bench/protocol.py " + " ".join(sys.argv[1:]),
                "args": {**vars(args), "splits_done": len({u["split_seed"] for u in units})},
                "split_sizes": sizes, "seconds": time.perf_counter() - start,
                **summarize(units, default_key), "units": units}
      write(out, result)
  print(markdown(result))


def write(out: str, result: Dict[str, Any]) -> None:
  """`out`.json and `out`.md."""
  with open(out + ".json", "w") as f:
    json.dump(result, f, indent=1)
  with open(out + ".md", "w") as f:
    f.write(markdown(result))


if __name__ == "__main__":
  main()
