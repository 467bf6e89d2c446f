"""Writes a run's report: collects (collect.py), draws (charts.py), renders the template.

The page is self-contained: inline CSS, charts as PNG data URIs, no script, and a
Content-Security-Policy that forbids fetching anything.
"""

import datetime
import json
import os
from typing import Any, Dict, Optional

import jinja2

from pipeline import config as config_lib
from tools.report import collect

REPORT_DIR = "report"
LATEST = "latest"
INDEX = "index.html"
SUMMARY = "summary.json"  # the run's last_run.json, kept beside its report


def default_pipeline_name() -> str:
  """The pipeline a report is about when ML Metadata holds several: the default dataset's."""
  from dataspec import spec as spec_lib  # pylint: disable=g-import-not-at-top
  return spec_lib.load(spec_lib.DEFAULT_PRESET).pipeline_name


def slice_order(report: collect.RunReport):
  """The slices of `report.metrics`: overall first, then by the dataset spec's slice
  features in the spec's order, then any other, each group by value."""
  features = list(report.slice_features)

  def key(name: str):
    if name == "overall":
      return (0, 0, "")
    feature = name.split("=", 1)[0]
    rank = features.index(feature) if feature in features else len(features)
    return (1, rank, name)
  return sorted(report.metrics, key=key)


def _environment() -> jinja2.Environment:
  env = jinja2.Environment(
      loader=jinja2.PackageLoader("tools.report", "templates"),
      autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
      lstrip_blocks=True)
  env.filters.update({
      "f4": lambda x: "n/a" if x is None else f"{x:.4f}",
      "g": lambda x: "n/a" if x is None else f"{x:g}",
      "s1": lambda x: "" if x is None else f"{x:.1f}",
      "count": lambda x: "" if x is None else f"{int(x):,}",
      "when": lambda t: t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else "n/a",
      "clock": lambda t: t.strftime("%H:%M:%S") if t else "",
  })
  return env


def _not_pushed_reason(report: collect.RunReport) -> str:
  failed = [g for g in report.gates if g.verdict == "failed"]
  if failed:
    return f"the gate \u201c{failed[0].name}\u201d failed"
  return "no gate failed, but nothing was pushed (see the components below)"


def render(report: collect.RunReport) -> str:
  """The HTML of a report (charts drawn here, embedded as data URIs)."""
  from tools.report import charts  # pylint: disable=g-import-not-at-top
  slices = slice_order(report)
  models = [m for m in collect.MODELS
            if any(m in report.metrics[s] for s in slices)] or list(collect.MODELS[:2])
  figures = {
      "auc": charts.metric_by_slice(report.metrics, "auc"),
      "logloss": charts.metric_by_slice(report.metrics, "logloss"),
      "histograms": {split: charts.histogram(bars, f"{report.label} ({split} split)")
                     for split, bars in report.label_histogram.items()},
      "drift": charts.drift(report.drift),
      "loss": charts.training_curves(report.training_curves, "epoch_loss"),
      "train_auc": charts.training_curves(report.training_curves, "epoch_auc"),
      "history": charts.history(report.history),
  }
  if report.succeeded and report.pushed:
    decision = f"pushed {report.lineage['pushed_version']}"
  elif report.succeeded:
    decision = "not pushed"
  else:
    decision = f"FAILED at {report.failed_component or 'an unknown step'}"
  tensorboard_dirs = [(model, report.lineage.get(f"{model}_model_run"))
                      for model in ("candidate", "baseline")
                      if report.lineage.get(f"{model}_model_run")]
  return _environment().get_template("report.html.j2").render(
      r=report, charts=figures, slices=slices, models=models, decision_line=decision,
      not_pushed_reason=_not_pushed_reason(report), tensorboard_dirs=tensorboard_dirs,
      generated=datetime.datetime.now(datetime.timezone.utc))


def _atomic_write(path: str, text: str) -> None:
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def _point_latest(report_root: str, directory_name: str) -> None:
  """OUTPUT/report/latest -> <run id>/ (a relative symlink, replaced atomically); where
  symlinks fail, a small file `latest` holding the directory name instead."""
  latest = os.path.join(report_root, LATEST)
  tmp = f"{latest}.tmp-{os.getpid()}"
  try:
    if os.path.lexists(tmp):
      os.remove(tmp)
    os.symlink(directory_name, tmp, target_is_directory=True)
    if os.path.isdir(latest) and not os.path.islink(latest):
      raise OSError(f"{latest} is a directory")
    os.replace(tmp, latest)
  except OSError:
    if os.path.lexists(tmp):
      os.remove(tmp)
    if os.path.islink(latest):
      os.remove(latest)
    if not os.path.isdir(latest):
      _atomic_write(latest, directory_name + "\n")


def _saved_summary(report_dir: str, output_dir: str, run_id: str) -> Dict[str, Any]:
  """The run's summary: kept beside its report, or last_run.json if that is this run's."""
  for path in (os.path.join(report_dir, SUMMARY),
               config_lib.output_path(output_dir, config_lib.SUMMARY_FILE)):
    if os.path.exists(path):
      with open(path) as f:
        saved = json.load(f)
      if saved.get("run_id") == run_id:
        return saved
  return {}


def write_report(output_dir: str, run_id: Optional[str] = None, *,
                 metadata_path: Optional[str] = None, pipeline_name: Optional[str] = None,
                 summary: Optional[Dict[str, Any]] = None) -> str:
  """Writes the report of one pipeline run and points OUTPUT/report/latest at it.

  Args:
    output_dir: the run's output directory (reports go to `<output_dir>/report/`).
    run_id: the pipeline run (a `pipeline_run` context name in ML Metadata, or its report
      directory name); None: the newest run.
    metadata_path: the SQLite ML Metadata file (default `<output_dir>/metadata.sqlite`).
    pipeline_name: the TFX pipeline name (default: the only pipeline in ML Metadata).
    summary: the run's `last_run.json` contents. It is kept beside the report, because the
      error text of a failed run is recorded nowhere else; None reuses the kept one.

  Returns:
    The path of the report's index.html.

  Raises:
    collect.RunNotFoundError: ML Metadata has no such run (or no runs at all).
  """
  from pipeline import store as store_lib  # pylint: disable=g-import-not-at-top
  metadata_path = metadata_path or config_lib.output_path(output_dir, config_lib.METADATA_FILE)
  if not os.path.exists(metadata_path):
    raise collect.RunNotFoundError(
        f"{metadata_path}: no ML Metadata (no run has written to {output_dir} yet)")
  store = store_lib.open_readonly(metadata_path)
  run_id = collect.resolve_run_id(store, run_id)
  if pipeline_name is None:
    names = collect.pipeline_names(store)
    pipeline_name = names[0] if len(names) == 1 else default_pipeline_name()
  report_root = os.path.join(output_dir, REPORT_DIR)
  name = collect.report_dir_name(run_id)
  report_dir = os.path.join(report_root, name)
  os.makedirs(report_dir, exist_ok=True)
  if summary is not None and summary.get("run_id") == run_id:
    _atomic_write(os.path.join(report_dir, SUMMARY),
                  json.dumps(summary, indent=2, sort_keys=True))
  else:
    summary = _saved_summary(report_dir, output_dir, run_id)
  report = collect.collect(store, pipeline_name, run_id, os.path.abspath(output_dir),
                           summary)
  path = os.path.join(report_dir, INDEX)
  _atomic_write(path, render(report))
  _point_latest(report_root, name)
  return path
