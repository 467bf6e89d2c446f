"""Unified-embedding configurations at one budget: tables, dimension and chunk allocation.

Same protocol and code as `bench/quality.py` (its split, seeds and `run_config`); every
configuration is a `TrainingConfig` (num_tables, dim_per_table, chunks), so a winner can be
adopted through the config alone. The collisionless model is the reference to match.
Writes bench/results/unified_configs.{md,json}. Asserts nothing.

Two optional experiments patch the layer's internals for the duration of a run (the
product code is untouched):
  --salt-spread N   re-runs some configurations under N other hash-salt namespaces (one
                    run each): the 5-run std only varies initialization and shuffling, while
                    which values collide is fixed by the salts;
  --tableconfig-init  re-runs the tutorial configuration with TableConfig's default
                    initializer (truncated normal, stddev 1/sqrt(dim)), which TFRS'
                    UnifiedEmbedding gets, instead of Keras Embedding's uniform(-0.05, 0.05).

  .venv/bin/python bench/unified_configs.py [--data-dir D] [--runs N] [--budget N]
      [--only NAME ...] [--salt-spread N] [--tableconfig-init]
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Dict, Iterator, List, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import movielens_groups as groups  # noqa: E402  (bench/movielens_groups.py)
import quality  # noqa: E402  (bench/quality.py: split, runs, formatting)
from tools import columns  # noqa: E402
from trainer import embedding_layer, embeddings  # noqa: E402
from trainer.config import TUTORIAL_EMBEDDING_BUDGET, TrainingConfig  # noqa: E402

# The groups of the MovieLens preset's features (bench/movielens_groups.py): the item's and
# the user's ids ("item/user"), the user's open attributes ("attributes"), the closed
# domains ("closed": categorical and numeric features).
chunks = groups.chunks

# name -> (description, TrainingConfig changes). All at the same budget.
CONFIGS: Dict[str, Tuple[str, Dict]] = {
    "T2xD8 c2": ("tutorial: 2 tables x dim 8, 2 chunks each", {}),
    "T1xD16 c1": ("1 table x dim 16, 1 chunk each",
                  dict(num_tables=1, dim_per_table=16, default_chunks=1)),
    "T1xD8 c2": ("1 table x dim 8, 2 chunks each (same table)",
                 dict(num_tables=1, dim_per_table=8)),
    "T3xD8 c2": ("3 tables x dim 8, 2 chunks each", dict(num_tables=3)),
    "T4xD4 c4": ("4 tables x dim 4, 4 chunks each",
                 dict(num_tables=4, dim_per_table=4, default_chunks=4)),
    "T8xD2 c8": ("8 tables x dim 2, 8 chunks each",
                 dict(num_tables=8, dim_per_table=2, default_chunks=8)),
    "T2xD8 big3": ("2 tables x dim 8; item/user 3 chunks, attributes 2, closed 1",
                   dict(chunks=chunks(3, 2, 1))),
    "T2xD8 big4": ("2 tables x dim 8; item/user 4 chunks, attributes 2, closed 1",
                   dict(chunks=chunks(4, 2, 1))),
    "T4xD4 big6": ("4 tables x dim 4; item/user 6 chunks, attributes 4, closed 2",
                   dict(num_tables=4, dim_per_table=4, chunks=chunks(6, 4, 2))),
    "T4xD4 small1": ("4 tables x dim 4; 4 chunks each but closed 1",
                     dict(num_tables=4, dim_per_table=4, default_chunks=4,
                          chunks=groups.closed_chunks(1))),
    # One table: every lookup hashes into all the rows (tables only matter for sharding).
    "T2xD4 c4": ("2 tables x dim 4, 4 chunks each",
                 dict(num_tables=2, dim_per_table=4, default_chunks=4)),
    "T1xD4 c4": ("1 table x dim 4, 4 chunks each",
                 dict(num_tables=1, dim_per_table=4, default_chunks=4)),
    "T1xD2 c8": ("1 table x dim 2, 8 chunks each",
                 dict(num_tables=1, dim_per_table=2, default_chunks=8)),
    "T1xD8 big4": ("1 table x dim 8; item/user 4 chunks, attributes 2, closed 1",
                   dict(num_tables=1, chunks=chunks(4, 2, 1))),
    "T1xD4 big6": ("1 table x dim 4; item/user 6 chunks, attributes 4, closed 2",
                   dict(num_tables=1, dim_per_table=4, chunks=chunks(6, 4, 2))),
    # The pipeline's default: the budget rule (trainer.config.budget_rule_layout), with and
    # without its admission filter, and the filter on the earlier winner.
    "rule": ("budget rule: 1 table x dim 8, chunks by kind, role and domain size; admission "
             "filter", dict(layout="budget_rule")),
    "rule no-admission": ("budget rule's tables and chunks, without the admission filter",
                          dict(num_tables=1, default_chunks=1,
                               chunks=groups.rule_chunks(TUTORIAL_EMBEDDING_BUDGET))),
    "previous rule": ("the budget rule before it told ids by role: every id feature 4 "
                      "chunks, closed domains as now; admission filter",
                      dict(num_tables=1, default_chunks=1,
                           chunks=groups.previous_rule_chunks(TUTORIAL_EMBEDDING_BUDGET),
                           admission_features=groups.IDS)),
    "T1xD8 big4 admission": ("T1xD8 big4 with the admission filter",
                             dict(num_tables=1, chunks=chunks(4, 2, 1),
                                  admission_features=groups.IDS)),
}


# Configurations re-run under other salts by --salt-spread.
SALT_SPREAD_CONFIGS = ("T2xD8 c2", "T1xD8 c2", "T1xD8 big4", "rule", "previous rule")


@contextlib.contextmanager
def salt_namespace(namespace: str) -> Iterator[None]:
  """Hashes with salts derived from "namespace:feature" instead of the feature name."""
  original = embeddings.feature_salt
  item = groups.ITEM
  spec = embeddings.unified_spec({item: 1}, 1 << 20, 8, 1)
  probe = {item: tf.constant([b"1", b"2", b"3"])}
  before = embedding_layer.hashed_ids(spec, probe)[f"{item}/0"].numpy().tolist()
  embeddings.feature_salt = lambda feature, chunk=0: original(f"{namespace}:{feature}", chunk)
  after = embedding_layer.hashed_ids(spec, probe)[f"{item}/0"].numpy().tolist()
  if before == after:  # the lookups read the salts from somewhere else: nothing would vary
    embeddings.feature_salt = original
    raise RuntimeError("salt_namespace did not change the hashed ids; the lookups no longer "
                       "read trainer.embeddings.feature_salt")
  try:
    yield
  finally:
    embeddings.feature_salt = original


@contextlib.contextmanager
def tableconfig_default_initializer() -> Iterator[None]:
  """Tables get TableConfig's default initializer (what TFRS' UnifiedEmbedding uses)."""
  original = embedding_layer._TableConfig  # pylint: disable=protected-access

  def table_config(**kwargs):
    kwargs.pop("initializer", None)
    return original(**kwargs)
  embedding_layer._TableConfig = table_config  # pylint: disable=protected-access
  try:
    yield
  finally:
    embedding_layer._TableConfig = original  # pylint: disable=protected-access


def _quiet(*args, **kwargs):
  del args, kwargs


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", default=quality.DEFAULT_DATA_DIR)
  parser.add_argument("--runs", type=int, default=5)
  parser.add_argument("--budget", type=int, default=TUTORIAL_EMBEDDING_BUDGET)
  parser.add_argument("--only", nargs="*", help="configuration names to run")
  parser.add_argument("--salt-spread", type=int, default=0, metavar="N",
                      help=f"re-run {', '.join(SALT_SPREAD_CONFIGS)} (those of them in --only, "
                      "if given) and hash under N other salt namespaces (1 run each)")
  parser.add_argument("--tableconfig-init", action="store_true",
                      help="re-run the tutorial config and hash with TableConfig's default "
                      "initializer")
  parser.add_argument("--output-dir", default=quality.RESULTS_DIR)
  args = parser.parse_args(argv)

  started = time.perf_counter()
  split = quality.load_split(columns.check_data_dir(groups.SPEC, args.data_dir))
  reference = quality.run_config(
      split, groups.resolve(TrainingConfig(model_type="collisionless")), args.runs)
  ref_auc, _ = reference.mean_std(reference.aucs)
  results = {}
  for name, (description, changes) in CONFIGS.items():
    if args.only and name not in args.only:
      continue
    config = groups.resolve(TrainingConfig(model_type="unified",
                                           embedding_budget=args.budget, **changes))
    results[name] = (description, config,
                     quality.run_config(split, config, args.runs, name=name))

  print("")
  print(quality.model_line(reference))
  lines = [
      f"# Unified-embedding configurations at {args.budget:,} embedding parameters",
      "",
      "Generated by `bench/unified_configs.py`; protocol of `bench/quality.py`, "
      f"{args.runs} runs each. Reference: collisionless AUC {ref_auc:.4f} "
      f"({reference.params:,} params).",
      "",
      "| config | description | MLP input dim | params | AUC (mean +- std) | "
      "vs collisionless | LogLoss | train examples/s (median) |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for name, (description, config, runs) in results.items():
    auc, auc_std = runs.mean_std(runs.aucs)
    loss, loss_std = runs.mean_std(runs.loglosses)
    dims = sum(config.chunks_per_feature.values()) * config.dim_per_table
    print(f"{quality.model_line(runs)}  input dim {dims}  vs collisionless "
          f"{auc - ref_auc:+.4f}  [{description}]")
    lines.append(f"| {name} | {description} | {dims} | {runs.params:,} | "
                 f"{auc:.4f} +- {auc_std:.4f} | {auc - ref_auc:+.4f} | "
                 f"{loss:.4f} +- {loss_std:.4f} | "
                 f"{statistics.median(runs.examples_per_second):,.0f} |")

  extra: Dict[str, Dict] = {}
  if args.salt_spread:
    lines += ["", f"## Spread across hash salts ({args.salt_spread} salt namespaces, 1 run "
              "each, seed 42)", "",
              "| config | AUC mean +- std across salts | per salt |", "|---|---|---|"]
    spread_configs = {n: CONFIGS[n][1] for n in SALT_SPREAD_CONFIGS
                      if not args.only or n in args.only}
    spread_configs["hash"] = {"model_type": "hash"}
    for name, changes in spread_configs.items():
      aucs: List[float] = []
      for i in range(args.salt_spread):
        with salt_namespace(f"salt{i}"):
          config = groups.resolve(TrainingConfig(**{"model_type": "unified",
                                                    "embedding_budget": args.budget,
                                                    **changes}))
          aucs.append(quality.run_config(split, config, 1, log=_quiet).aucs[0])
      extra.setdefault("salt_spread", {})[name] = aucs
      line = (f"salt spread {name}: AUC {np.mean(aucs):.4f} +- {np.std(aucs):.4f} over "
              f"{len(aucs)} salts: {', '.join(f'{a:.4f}' for a in aucs)}")
      print(line, flush=True)
      lines.append(f"| {name} | {np.mean(aucs):.4f} +- {np.std(aucs):.4f} | "
                   f"{', '.join(f'{a:.4f}' for a in aucs)} |")
  if args.tableconfig_init:
    lines += ["", f"## TableConfig's default initializer ({args.runs} runs)", "",
              "| config | AUC (mean +- std) |", "|---|---|"]
    for name, changes in (("T2xD8 c2", {}), ("hash", {"model_type": "hash"})):
      with tableconfig_default_initializer():
        config = groups.resolve(TrainingConfig(**{"model_type": "unified",
                                                  "embedding_budget": args.budget,
                                                  **changes}))
        runs = quality.run_config(split, config, args.runs, name=name, log=_quiet)
      extra.setdefault("tableconfig_init", {})[name] = runs.to_dict()
      auc, auc_std = runs.mean_std(runs.aucs)
      print(f"TableConfig default init {name}: AUC {auc:.4f} +- {auc_std:.4f} "
            f"({args.runs} runs)", flush=True)
      lines.append(f"| {name} | {auc:.4f} +- {auc_std:.4f} |")
  seconds = time.perf_counter() - started
  lines += ["", f"Wall time {seconds:.0f} s.", ""]
  os.makedirs(args.output_dir, exist_ok=True)
  with open(os.path.join(args.output_dir, "unified_configs.md"), "w") as f:
    f.write("\n".join(lines))
  with open(os.path.join(args.output_dir, "unified_configs.json"), "w") as f:
    json.dump({"budget": args.budget, "runs": args.runs,
               "collisionless": reference.to_dict(),
               "configs": {name: {"description": d, "config": c.to_dict(), **r.to_dict()}
                           for name, (d, c, r) in results.items()},
               **extra}, f, indent=2)
  print(f"wrote {args.output_dir}/unified_configs.md, unified_configs.json ({seconds:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
