"""`uet runs` (the history of runs, from ML Metadata) and `uet report` (rebuild a report)."""

import argparse
import os
import sys

from pipeline import config as config_lib
from pipeline.exit_codes import EXIT_OK, EXIT_USAGE


def add_parser(sub) -> None:
  """Declares `uet runs` and `uet report` (heavy imports wait for the command to run)."""
  p = sub.add_parser("runs", help="list past runs from ML Metadata: time, span, decision, "
                     "AUCs, pushed version",
                     description="One line per pipeline run recorded in OUTPUT/metadata."
                     "sqlite, oldest first.")
  p.add_argument("--output-dir", default="output",
                 help="the output directory of `uet run` (default: ./output)")
  p.set_defaults(func=cmd_runs)
  p = sub.add_parser("report", help="(re)build a run's HTML report from ML Metadata and its "
                     "artifacts",
                     description="Writes OUTPUT/report/<run id>/index.html and points "
                     "OUTPUT/report/latest at it.")
  p.add_argument("--output-dir", default="output",
                 help="the output directory of `uet run` (default: ./output)")
  p.add_argument("--run", help="the run id, as `uet runs` lists it (default: the newest run)")
  p.set_defaults(func=cmd_report)


def _metadata(args: argparse.Namespace, command: str):
  """OUTPUT/metadata.sqlite, or None after saying there is none (before TensorFlow loads)."""
  metadata = config_lib.output_path(args.output_dir, config_lib.METADATA_FILE)
  if not os.path.exists(metadata):
    print(f"uet {command}: error: {metadata}: no ML Metadata; no `uet run` has written to "
          f"{args.output_dir} yet", file=sys.stderr)
    return None
  return metadata


def _fmt(x) -> str:
  return "" if x is None else f"{x:.4f}"


def cmd_runs(args: argparse.Namespace) -> int:
  """`uet runs`: one line per pipeline run."""
  metadata = _metadata(args, "runs")
  if metadata is None:
    return EXIT_USAGE
  from pipeline import store as store_lib  # pylint: disable=g-import-not-at-top
  from tools.report import collect, writer  # pylint: disable=g-import-not-at-top
  store = store_lib.open_readonly(metadata)
  names = collect.pipeline_names(store)
  pipeline_name = names[0] if len(names) == 1 else writer.default_pipeline_name()
  rows = collect.list_runs(store, pipeline_name)
  header = ("run", "started (UTC)", "span", "decision", "candidate AUC", "baseline AUC",
            "production AUC")
  table = [header] + [
      (r.run_id, r.started.strftime("%Y-%m-%d %H:%M:%S") if r.started else "",
       "" if r.span is None else str(r.span), r.decision, _fmt(r.candidate_auc),
       _fmt(r.baseline_auc), _fmt(r.production_auc)) for r in rows]
  widths = [max(len(row[i]) for row in table) for i in range(len(header))]
  for row in table:
    print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
  if not rows:
    print("(no runs recorded yet)")
  return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
  """`uet report`: rebuild one run's report."""
  if _metadata(args, "report") is None:
    return EXIT_USAGE
  from tools.report import collect, writer  # pylint: disable=g-import-not-at-top
  try:
    path = writer.write_report(args.output_dir, args.run)
  except collect.RunNotFoundError as e:
    print(f"uet report: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  print(path)
  return EXIT_OK
