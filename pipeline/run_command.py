"""`uet run`: the whole pipeline on this machine (LocalDagRunner, Beam DirectRunner).

Every usage error (flags, config file, data directory layout, a held lock) is reported
before TensorFlow or TFX load: they load only once the run is certain to start.
"""

import argparse
import os
import sys
from typing import Optional, Tuple

from dataspec import files
from dataspec import spec as spec_lib
from pipeline import config as config_lib, data, ids, lock, up_to_date
from pipeline.cli import (EXIT_CANCELLED, EXIT_FAILED, EXIT_LOCKED, EXIT_METADATA, EXIT_OK,
                          EXIT_USAGE)


def add_parser(sub) -> None:
  """Registers `uet run`."""
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
  p.set_defaults(func=run)


def plan_run(args: argparse.Namespace) -> Tuple[config_lib.PipelineConfig, bool, Optional[str]]:
  """The run's config from the config file and the flags, checked, without writing anything.

  Returns:
    (config, fetch, mirror): with `fetch`, the official MovieLens-100K is to be copied from
    `mirror` (or downloaded) into `config.data_dir` once the output directory is locked.

  Raises:
    ValueError: a bad flag or config value.
    dataspec.spec.SpecError: a --data-dir whose files do not match the dataset spec.
  """
  values = config_lib.load_file(args.config) if args.config else {}
  output_dir = os.path.abspath(args.output_dir or values.get("output_dir") or "output")
  data_dir = args.data_dir or values.get("data_dir")
  mirror = values.pop("mirror", None)
  mirror = args.mirror or mirror
  fetch = not data_dir
  if data_dir:
    found = files.check(spec_lib.load("movielens"), data_dir)
    data_dir = found.data_dir
    if found.spans and not values.get("span_pattern"):
      values["span_pattern"] = found.pattern
  else:
    data_dir = os.path.join(output_dir, "data", "ml-100k")
    if mirror and not os.path.isdir(mirror):
      raise data.DatasetError(f"--mirror {mirror}: not a directory")
  training, evaluation = config_lib.sections_with_flags(
      values, epochs=args.epochs, min_auc_gain=args.min_auc_gain, auc_floor=args.auc_floor)
  config = config_lib.from_mapping(
      values, data_dir=data_dir, output_dir=output_dir, training=training,
      evaluation=evaluation,
      beam_args=tuple(args.beam_arg) if args.beam_arg else None,
      enable_cache=False if args.no_cache else None,
      max_bad_rows=args.max_bad_rows, train_collisionless=args.collisionless,
      window_spans=args.window_spans,
      warm_start=False if args.cold_start else None,
      drift_rating_js=args.drift_rating_js,
      drift_categorical_linf=args.drift_categorical_linf)
  return config, fetch, mirror


def build_run_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
  """The PipelineConfig of `uet run` (config file, then flags), without fetching data."""
  return plan_run(args)[0]


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


def run(args: argparse.Namespace) -> int:
  """`uet run`: check the config, lock the output directory, fetch the data, run, report."""
  try:
    config, fetch, mirror = plan_run(args)
  except (ValueError, data.DatasetError) as e:
    print(f"uet run: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  # The lock comes before the dataset is fetched into OUTPUT/data and before TensorFlow
  # loads: a second run on the same directory refuses at once and touches nothing.
  try:
    with lock.output_lock(config.output_dir):
      if fetch:
        try:
          data.fetch_ml100k(config.data_dir, mirror=mirror)
        except data.DatasetError as e:
          print(f"uet run: error: {e}", file=sys.stderr)
          return EXIT_USAGE
      return _run_locked(config)
  except lock.RunLockedError as e:
    print(f"uet run: error: {e}", file=sys.stderr)
    return EXIT_LOCKED


def _run_locked(config: config_lib.PipelineConfig) -> int:
  print(f"uet run: data {config.data_dir} -> output {config.output_dir}", file=sys.stderr)
  from pipeline import metadata_backup  # pylint: disable=g-import-not-at-top  (sqlite3 only)
  try:
    # Before TensorFlow loads: a damaged store is reported at once.
    metadata_backup.check_store(config.metadata_path)
  except metadata_backup.MetadataStoreError as e:
    print(f"uet run: error: {e}", file=sys.stderr)
    return EXIT_METADATA
  moved = metadata_backup.start_fresh_if_missing(config.metadata_path, config.pipeline_root)
  if moved:
    print(f"uet run: no metadata store: starting a new one and retraining from scratch; the "
          f"previous artifacts are kept in {moved}", file=sys.stderr)
  previous = up_to_date.unchanged_since_last_run(config)
  if previous:
    print(f"uet run: nothing changed since the last run ({previous.get('run_id')}): the same "
          "data files, config, code, packages, ML Metadata and pushed models, so every "
          "component would be a cache hit. Nothing was run; its result follows. --no-cache "
          "runs everything again.", file=sys.stderr)
    print_summary(previous)
    return EXIT_OK
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top  (TensorFlow, TFX)
  try:
    summary = local_runner.run(config)
  except local_runner.metadata_backup.MetadataStoreError as e:
    print(f"uet run: error: {e}", file=sys.stderr)
    return EXIT_METADATA
  except local_runner.PipelineCancelled as e:
    print(f"\nuet run: CANCELLED: {e}; it was stopped and is recorded as CANCELED in ML "
          "Metadata", file=sys.stderr)
    print(f"nothing was pushed; the models already in {config.serving_dir} are untouched; "
          "the next run resumes from the completed components", file=sys.stderr)
    return EXIT_CANCELLED
  except local_runner.PipelineRunError as e:
    print(f"\nuet run: FAILED: {e}", file=sys.stderr)
    if e.summary:
      print_quarantine(e.summary, sys.stderr)
    if e.component != ids.PUSHER:
      print("nothing was pushed; the models already in "
            f"{config.serving_dir} are untouched", file=sys.stderr)
    print(f"full log: see {config.output_dir}/logs/; summary in {config.summary_path}",
          file=sys.stderr)
    return EXIT_FAILED
  print_summary(summary)
  return EXIT_OK
