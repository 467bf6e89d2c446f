"""`uet`: the command line of the product.

  uet run [--data-dir D] [--output-dir O] [--config FILE] [--beam-arg ARG ...]
"""

import argparse
import json
import os
import sys
import warnings
from typing import List, Optional

# Before anything imports TensorFlow: Keras 2 for TFRS/TFT/TFMA, and quiet C++ logs (TF 2.16
# prints "Unable to register cuDNN factory" errors at import on every machine; set
# TF_CPP_MIN_LOG_LEVEL=0 to see all of TensorFlow's C++ logging).
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Google client libraries warn about Python 3.10 on import; TFX 1.16 requires it.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\..*")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3


def _add_run_parser(sub) -> None:
  p = sub.add_parser("run", help="run the whole pipeline locally (Beam DirectRunner)",
                     description="Ingest, validate, transform, train the unified candidate "
                     "and the hash baseline, evaluate, and push the candidate if blessed.")
  p.add_argument("--data-dir", help="a MovieLens-100K-layout directory (u.data, u.user); "
                 "default: the official MovieLens-100K release, verified by MD5")
  p.add_argument("--mirror", help="local copy of the official ml-100k files to use instead "
                 "of downloading from GroupLens (ignored with --data-dir)")
  p.add_argument("--output-dir", help="where artifacts, metadata and pushed models go "
                 "(default: ./output)")
  p.add_argument("--config", help="JSON config file (keys of PipelineConfig; see README)")
  p.add_argument("--beam-arg", action="append", default=None, metavar="ARG",
                 help="a Beam pipeline argument, e.g. --beam-arg=--direct_num_workers=2 "
                 "(repeatable; replaces the defaults)")
  p.add_argument("--epochs", type=int, help="training epochs of both models")
  p.add_argument("--min-auc-gain", type=float, help="AUC the candidate must gain over the "
                 "baseline to be pushed (default 0.01)")
  p.add_argument("--auc-floor", type=float, help="minimum candidate AUC (default 0.70)")
  p.add_argument("--max-bad-rows", type=int, help="quarantine up to N malformed ratings rows "
                 "(to OUTPUT/quarantine.tsv) instead of failing on the first")
  p.add_argument("--drift-rating-js", type=float, help="stop when the Jensen-Shannon "
                 "divergence of `rating` from the last validated span exceeds this "
                 "(default 0.1; 1 disables)")
  p.add_argument("--drift-categorical-linf", type=float, help="stop when the L-infinity "
                 "distance of user_gender or user_occupation from the last validated span "
                 "exceeds this (default 0.3; 1 disables)")
  p.add_argument("--collisionless", action="store_true", default=None,
                 help="also train the collisionless reference model")
  p.add_argument("--window-spans", type=int, help="with a spans directory: train on the "
                 "newest K spans (default 1: the newest only)")
  p.add_argument("--cold-start", action="store_true", default=None,
                 help="train the candidate from scratch instead of warm-starting from the "
                 "model in production")
  p.add_argument("--no-cache", action="store_true", help="re-run every component")


def _add_spans_parser(sub) -> None:
  p = sub.add_parser("spans", help="cut a ratings file into time-window spans (span-N/u.data)",
                     description="Writes OUT/u.user and OUT/span-1/u.data, span-2/..., in "
                     "time order; `uet run --data-dir OUT` then ingests the newest span.")
  p.add_argument("--data-dir", required=True, help="a MovieLens directory (u.data, u.user)")
  p.add_argument("--out", required=True, help="directory to write (replaced)")
  group = p.add_mutually_exclusive_group(required=True)
  group.add_argument("--spans", type=int, help="N windows of equal duration")
  group.add_argument("--span-days", type=float, help="windows of this many days")
  p.set_defaults(func=cmd_spans)


def cmd_spans(args: argparse.Namespace) -> int:
  from components.movielens_example_gen import spans  # pylint: disable=g-import-not-at-top
  try:
    written = spans.write_time_spans(args.data_dir, args.out, num_spans=args.spans,
                                     span_days=args.span_days)
  except (ValueError, OSError) as e:
    print(f"uet spans: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  import datetime  # pylint: disable=g-import-not-at-top
  for s in written:
    start = datetime.datetime.utcfromtimestamp(s.start).strftime("%Y-%m-%d")
    end = datetime.datetime.utcfromtimestamp(s.end).strftime("%Y-%m-%d")
    print(f"span {s.number}: {start} .. {end}  {s.num_ratings:6d} ratings  {s.path}")
  return EXIT_OK


def build_run_config(args: argparse.Namespace):
  """The PipelineConfig of `uet run`: config file, then flags; resolves the dataset."""
  from pipeline import config as config_lib, data  # pylint: disable=g-import-not-at-top
  values = config_lib.load_file(args.config) if args.config else {}
  output_dir = os.path.abspath(args.output_dir or values.get("output_dir") or "output")
  data_dir = args.data_dir or values.get("data_dir")
  if data_dir:
    data_dir = data.check_movielens_dir(data_dir)
  else:
    mirror = args.mirror or values.pop("mirror", None)
    data_dir = data.fetch_ml100k(os.path.join(output_dir, "data", "ml-100k"), mirror=mirror)
  values.pop("mirror", None)
  from components.movielens_example_gen import spans  # pylint: disable=g-import-not-at-top
  if spans.list_spans(data_dir) and not values.get("span_pattern"):
    values["span_pattern"] = spans.SPAN_PATTERN
  training, evaluation = config_lib.sections_with_flags(
      values, epochs=args.epochs, min_auc_gain=args.min_auc_gain, auc_floor=args.auc_floor)
  return config_lib.from_mapping(
      values, data_dir=data_dir, output_dir=output_dir, training=training,
      evaluation=evaluation,
      beam_args=tuple(args.beam_arg) if args.beam_arg else None,
      enable_cache=False if args.no_cache else None,
      max_bad_rows=args.max_bad_rows, train_collisionless=args.collisionless,
      window_spans=args.window_spans,
      warm_start=False if args.cold_start else None,
      drift_rating_js=args.drift_rating_js,
      drift_categorical_linf=args.drift_categorical_linf)


def run_output_dir(args: argparse.Namespace) -> str:
  """The output directory `uet run` will use (flag, else config file, else ./output)."""
  from pipeline import config as config_lib  # pylint: disable=g-import-not-at-top
  values = config_lib.load_file(args.config) if args.config else {}
  return os.path.abspath(args.output_dir or values.get("output_dir") or "output")


def print_quarantine(summary, stream=None) -> None:
  """Says how many malformed rows were quarantined, and where they are, if any were."""
  stream = stream or sys.stdout
  count = summary.get("quarantined_rows") or 0
  if count:
    limit = (summary.get("config") or {}).get("max_bad_rows")
    print(f"quarantined: {count} malformed ratings row{'s' if count != 1 else ''} "
          f"(--max-bad-rows {limit}), each with its reason, in "
          f"{os.path.join(summary['output_dir'], 'quarantine.tsv')}", file=stream)


def print_summary(summary, stream=None) -> None:
  stream = stream or sys.stdout  # resolved at call time, so redirection works
  def fmt(x):
    return "n/a" if x is None else f"{x:.4f}"
  print("", file=stream)
  print(f"candidate (unified) AUC: {fmt(summary['candidate_auc'])}  "
        f"LogLoss: {fmt(summary['candidate_logloss'])}", file=stream)
  print(f"baseline  (hash)    AUC: {fmt(summary['baseline_auc'])}  "
        f"LogLoss: {fmt(summary['baseline_logloss'])}", file=stream)
  gate = summary.get("production_gate")
  if gate and gate.get("production_auc") is not None:
    print(f"production (current) AUC: {fmt(gate['production_auc'])}  (candidate "
          f"{fmt(gate['candidate_auc'])} on the same data; gate "
          f"{'passed' if gate['blessed'] else 'FAILED'})", file=stream)
  elif gate:
    print("production gate: no comparison (no pushed model was trained on data older than "
          "this run's; e.g. the first run, or a re-train on the same data); AUC floor only",
          file=stream)
  if summary.get("warm_started_from"):
    print(f"candidate warm-started from: {summary['warm_started_from']}", file=stream)
  print(f"blessed: {'yes' if summary['blessed'] else 'no'}", file=stream)
  print(f"pushed to: {summary['pushed_model_dir'] or '(not pushed)'}", file=stream)
  print_quarantine(summary, stream)
  print(f"wall time: {summary['seconds']}s; summary: "
        f"{os.path.join(summary['output_dir'], 'last_run.json')}", file=stream)


def cmd_run(args: argparse.Namespace) -> int:
  """`uet run`: lock the output directory, resolve the dataset and config, run, report."""
  from pipeline import lock  # pylint: disable=g-import-not-at-top
  try:
    output_dir = run_output_dir(args)
  except ValueError as e:
    print(f"uet run: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  # The lock comes first, before TensorFlow loads and before the dataset is fetched into
  # OUTPUT/data: a second run on the same directory refuses at once and touches nothing.
  try:
    with lock.output_lock(output_dir):
      return _run_locked(args)
  except lock.RunLockedError as e:
    print(f"uet run: error: {e}", file=sys.stderr)
    return EXIT_LOCKED


def _run_locked(args: argparse.Namespace) -> int:
  from pipeline import data, local_runner  # pylint: disable=g-import-not-at-top
  from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  try:
    config = build_run_config(args)
  except (ValueError, data.DatasetError) as e:
    print(f"uet run: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  print(f"uet run: data {config.data_dir} -> output {config.output_dir}", file=sys.stderr)
  try:
    summary = local_runner.run(config)
  except local_runner.PipelineRunError as e:
    print(f"\nuet run: FAILED: {e}", file=sys.stderr)
    if e.summary:
      print_quarantine(e.summary, sys.stderr)
    if e.component != pipeline_lib.PUSHER:
      print("nothing was pushed; the models already in "
            f"{config.serving_dir} are untouched", file=sys.stderr)
    print(f"full log: see {config.output_dir}/logs/; summary in "
          f"{config.output_dir}/last_run.json", file=sys.stderr)
    return EXIT_FAILED
  print_summary(summary)
  return EXIT_OK


# Other subcommands live beside the code they drive. Each module has
# `add_parser(subparsers)` (which sets `func` via set_defaults) and is imported lazily here
# only to declare its flags; heavy imports happen inside the command function.
SUBCOMMAND_MODULES = (
    "kubeflow.cli",          # uet compile, uet schedule
    "trainer.collisions",    # uet collisions
    "pipeline.simulate",     # uet simulate
    "tools.report.cli",      # uet runs, uet report
)


def main(argv: Optional[List[str]] = None) -> int:
  import importlib  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog="uet", description="Unified-embedding recommender pipeline on TFX.")
  sub = parser.add_subparsers(dest="command", required=True)
  _add_run_parser(sub)
  _add_spans_parser(sub)
  for name in SUBCOMMAND_MODULES:
    try:
      module = importlib.import_module(name)
    except ModuleNotFoundError as e:
      if e.name != name:
        raise
      continue
    module.add_parser(sub)
  args = parser.parse_args(argv)
  if args.command == "run":
    return cmd_run(args)
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
