"""`uet run`: the whole pipeline on this machine (LocalDagRunner, Beam DirectRunner).

Every usage error (flags, config file, data directory layout, a held lock) is reported
before TensorFlow or TFX load: they load only once the run is certain to start.

Around the run itself (`pipeline.local_runner`) this command owns what comes before it,
under the output directory's lock (a damaged metadata store stops it, a lost store's
artifacts move aside, a run with nothing to do stops early, executions an earlier run left
running are marked abandoned), and what follows it: the run report (`tools.report`; a
failure only warns) and, after a success, a last-good copy of the store
(`pipeline.metadata_backup`).
"""

import argparse
import os
import sys
from typing import Any, Dict, Optional, TextIO, Tuple

from dataspec import files
from dataspec import spec as spec_lib
from pipeline import config as config_lib, data, ids, lock, up_to_date
from pipeline.exit_codes import (EXIT_CANCELLED, EXIT_FAILED, EXIT_LOCKED, EXIT_METADATA,
                                  EXIT_OK, EXIT_USAGE)


def add_parser(sub) -> None:
  """Registers `uet run`."""
  p = sub.add_parser("run", help="run the whole pipeline locally (Beam DirectRunner)",
                     description="Ingest, validate, transform, train the unified candidate "
                     "and the hash baseline, evaluate, and push the candidate if blessed.")
  p.add_argument("--dataset", help="the dataset: a preset (movielens, taxi, wide) or a dataset "
                 "spec file (.yaml/.json); default: movielens")
  p.add_argument("--data-dir", help="the directory the dataset spec's paths are relative to; "
                 "default: the spec's data_dir, or for movielens the official "
                 "MovieLens-100K release, verified by MD5")
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
  p.add_argument("--max-bad-rows", type=int, help="quarantine up to N malformed rows "
                 "(to OUTPUT/quarantine.tsv) instead of failing on the first")
  p.add_argument("--drift-label-js", type=float, help="stop when the Jensen-Shannon "
                 "divergence of the label column from the last validated span exceeds this "
                 "(default 0.1; 1 disables)")
  p.add_argument("--drift-categorical-linf", type=float, help="stop when the L-infinity "
                 "distance of a categorical feature from the last validated span exceeds "
                 "this (default 0.3; 1 disables)")
  p.add_argument("--collisionless", action="store_true", default=None,
                 help="also train the collisionless reference model")
  p.add_argument("--window-spans", type=int, help="with a spans directory: train on the "
                 "newest K spans (default 1: the newest only)")
  p.add_argument("--cold-start", action="store_true", default=None,
                 help="train the candidate from scratch instead of warm-starting from the "
                 "model in production")
  p.add_argument("--no-cache", action="store_true", help="re-run every component")
  p.add_argument("--verbose", action="store_true",
                 help="show TensorFlow's, Beam's and TFX's log lines and warnings on the "
                 "terminal too (they always go to OUTPUT/logs/; TensorFlow's C++ logs follow "
                 "TF_CPP_MIN_LOG_LEVEL)")
  p.set_defaults(func=run)


def plan_run(args: argparse.Namespace) -> Tuple[config_lib.PipelineConfig, bool, Optional[str]]:
  """The run's config from the config file and the flags, checked, without writing anything.

  Returns:
    (config, fetch, mirror): with `fetch`, the default dataset's official release
    (MovieLens-100K) is to be copied from `mirror` (or downloaded) into `config.data_dir`
    once the output directory is locked.

  Raises:
    ValueError: a bad flag, config value or dataset spec (`SpecError`), or a --data-dir
      whose files do not match the dataset spec.
    data.DatasetError: the default dataset's download or mirror is unusable.
  """
  values = config_lib.load_file(args.config) if args.config else {}
  output_dir = os.path.abspath(args.output_dir or values.get("output_dir") or "output")
  dataset = spec_lib.load(args.dataset or values.get("dataset"))
  values["dataset"] = dataset
  data_dir = (args.data_dir or values.get("data_dir")
              or spec_lib.resolve_data_dir(dataset, None))
  mirror = values.pop("mirror", None)
  mirror = args.mirror or mirror
  # The default preset's official release is fetched (and checksummed) when no directory
  # is given; any other dataset needs one, from the flag, the config or the spec.
  fetch = not data_dir and dataset.origin == spec_lib.preset_path(spec_lib.DEFAULT_PRESET)
  if not data_dir and not fetch:
    raise data.DatasetError(f"dataset {dataset.name} ({dataset.origin}) names no data "
                            "directory (source.data_dir): pass --data-dir")
  if data_dir:
    found = files.check(dataset, data_dir)
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
      drift_label_js=args.drift_label_js,
      drift_categorical_linf=args.drift_categorical_linf)
  return config, fetch, mirror


def print_quarantine(summary, stream=None) -> None:
  """Says how many malformed rows were quarantined, and where they are, and how many rows
  the label's `missing: drop` rule dropped, if any were."""
  stream = stream or sys.stdout
  count = summary.get("quarantined_rows") or 0
  if count:
    limit = (summary.get("config") or {}).get("max_bad_rows")
    print(f"quarantined: {count} malformed row{'s' if count != 1 else ''} "
          f"(--max-bad-rows {limit}), each with its reason, in "
          f"{config_lib.output_path(summary['output_dir'], config_lib.QUARANTINE_FILE)}",
          file=stream)
  dropped = summary.get("dropped_rows") or 0
  if dropped:
    label = ((summary.get("config") or {}).get("dataset") or {}).get("label") or {}
    print(f"dropped: {dropped} row{'s' if dropped != 1 else ''} without a label "
          f"(label column {label.get('column', '?')!r}, missing: drop in the dataset spec)",
          file=stream)


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
  serving = summary.get("serving_gate")
  if serving and serving["blessed"]:
    print(f"serving check: passed (rows {serving['rows']}, batches "
          f"{serving['batch_sizes']}: served scores in [{fmt(serving['min_score'])}, "
          f"{fmt(serving['max_score'])}], at most {serving['max_abs_difference']:.2g} from "
          f"the Evaluator's; tolerance {serving['tolerance']:g})", file=stream)
  elif serving:
    print(f"serving check: FAILED, not pushed: {serving['failure']}", file=stream)
  if summary.get("warm_started_from"):
    print(f"candidate warm-started from: {summary['warm_started_from']}", file=stream)
  print(f"blessed: {'yes' if summary['blessed'] else 'no'}", file=stream)
  print(f"pushed to: {summary['pushed_model_dir'] or '(not pushed)'}", file=stream)
  print_quarantine(summary, stream)
  print(f"wall time: {summary['seconds']}s; summary: "
        f"{config_lib.output_path(summary['output_dir'], config_lib.SUMMARY_FILE)}",
        file=stream)


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
      return _run_locked(config, verbose=bool(getattr(args, "verbose", False)))
  except lock.RunLockedError as e:
    print(f"uet run: error: {e}", file=sys.stderr)
    return EXIT_LOCKED


def _run_locked(config: config_lib.PipelineConfig, verbose: bool = False) -> int:
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
    summary = run_pipeline(config, verbose=verbose)
  except metadata_backup.MetadataStoreError as e:  # the store was damaged during the run
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


def run_pipeline(config: config_lib.PipelineConfig,
                 stream: Optional[TextIO] = None, verbose: bool = False) -> Dict[str, Any]:
  """One run of the pipeline, as `uet run` and `uet simulate` make it.

  Marks what earlier runs left running as abandoned, runs the pipeline
  (`pipeline.local_runner.run`), then writes the run's report and, after a success, the
  last-good copy of the metadata store. The caller holds the output directory's lock and
  has checked the store (`metadata_backup.check_store`).

  Args:
    config: the run's configuration.
    stream: where progress lines and warnings go (default: standard error).
    verbose: libraries' log lines on standard error too (`local_runner.run`).

  Returns:
    The run's summary (OUTPUT/last_run.json).

  Raises:
    local_runner.PipelineCancelled: SIGTERM stopped the run (its report is written).
    local_runner.PipelineRunError: a component failed (its report is written).
    metadata_backup.MetadataStoreError: the store became unreadable during the run.
  """
  # pylint: disable=g-import-not-at-top  (TensorFlow, TFX)
  from pipeline import local_runner, store as store_lib
  # pylint: enable=g-import-not-at-top
  stream = stream or sys.stderr
  abandoned = store_lib.mark_abandoned(config.metadata_path)
  if abandoned:
    stream.write(f"marked {abandoned} execution(s) an earlier run left running as FAILED "
                 "(that run was killed, or its disk was full)\n")
  previous_run_id = _latest_run_id(config.metadata_path)
  try:
    summary = local_runner.run(config, stream, verbose=verbose)
  except local_runner.PipelineRunError as e:
    _after_run(config, e.summary, previous_run_id, stream)
    raise
  _after_run(config, summary, previous_run_id, stream)
  return summary


def _latest_run_id(metadata_path: str) -> Optional[str]:
  """The newest pipeline run in the store (to tell whether the next one registered any)."""
  # pylint: disable=g-import-not-at-top
  from pipeline import results, store as store_lib
  # pylint: enable=g-import-not-at-top
  if not os.path.exists(metadata_path):
    return None
  try:
    return results.latest_run_id(store_lib.open_readonly(metadata_path))
  except Exception:  # pylint: disable=broad-except
    return None  # unreadable metadata: the run itself will say so


def _after_run(config: config_lib.PipelineConfig, summary: Dict[str, Any],
               previous_run_id: Optional[str], stream: TextIO) -> None:
  """The run's report; after a success, the last-good copy of the store."""
  from pipeline import disk, metadata_backup  # pylint: disable=g-import-not-at-top
  if summary.get("run_id") and summary["run_id"] != previous_run_id:
    write_report(config, summary, stream)
  else:
    stream.write("warning: no report: this run recorded no pipeline run in ML Metadata\n")
  if not summary.get("succeeded"):
    return
  # The copy `uet restore-metadata` puts back if the store is ever damaged.
  try:
    metadata_backup.save_last_good(config.metadata_path)
  except (OSError, metadata_backup.MetadataStoreError) as e:
    stream.write(f"warning: the last-good copy of {config.metadata_path} was not "
                 f"updated: {e}\n")
    if disk.is_full(e):
      stream.write(f"  {disk.hint(config.output_dir, then='the next successful run saves it')}\n")


def write_report(config: config_lib.PipelineConfig, summary: Dict[str, Any],
                 stream: TextIO) -> None:
  """Writes OUTPUT/report/<run id>/index.html (tools.report); a failure only warns.

  The report explains the run and is never part of its outcome: whatever goes wrong here
  leaves the decision, the pushed model and the exit code as they are.
  """
  try:
    from tools import report  # pylint: disable=g-import-not-at-top
    path = report.write_report(config.output_dir, summary["run_id"],
                               metadata_path=config.metadata_path,
                               pipeline_name=config.pipeline_name, summary=summary)
    stream.write(f"report: {path}\n")
  except Exception as e:  # pylint: disable=broad-except
    stream.write(f"warning: the run report could not be written ({type(e).__name__}: {e}); "
                 f"the run's outcome is unaffected; retry with `uet report --output-dir "
                 f"{config.output_dir}`\n")
  stream.flush()
