"""The run report without a pipeline run: the no-network check itself, the report's
Content-Security-Policy, `latest`, and that a report failure never changes a run."""

import io
import os
import re
import subprocess
import sys

import pytest

from tests import browser, runs

CHROMIUM = browser.find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
    "scripts/setup.sh installs it when run as root with apt available)")
TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "tools", "report", "templates",
                        "report.html.j2")
FETCHING_PAGE = """<!DOCTYPE html><html><head>{head}</head><body><p>hello</p>
<img src="http://198.51.100.7/chart.png">
<link rel="stylesheet" href="https://cdn.example.com/viewer.css"></body></html>"""


def _report_csp() -> str:
  with open(TEMPLATE) as f:
    return re.search(r'<meta http-equiv="Content-Security-Policy"[^>]*>', f.read()).group(0)


@needs_chromium
def test_the_network_check_sees_every_request_a_page_makes(tmp_path):
  page = tmp_path / "fetching.html"
  page.write_text(FETCHING_PAGE.format(head=""))
  dom, requests = browser.render(CHROMIUM, str(page), str(tmp_path / "chromium"))
  assert "hello" in dom
  # The proxy points at a closed port: these were attempted, and nothing left the machine.
  assert requests == ["http://198.51.100.7/chart.png", "https://cdn.example.com/viewer.css"]


@needs_chromium
def test_the_reports_content_security_policy_blocks_any_fetch(tmp_path):
  # Even if a template edit ever added an external image or stylesheet, the page's own
  # policy would stop the request before it is made.
  page = tmp_path / "fetching.html"
  page.write_text(FETCHING_PAGE.format(head=_report_csp()))
  dom, requests = browser.render(CHROMIUM, str(page), str(tmp_path / "chromium"))
  assert "hello" in dom
  assert requests == []


def test_a_report_failure_warns_and_leaves_the_run_alone(tmp_path, monkeypatch):
  from pipeline import config as config_lib  # pylint: disable=g-import-not-at-top
  import tools.report  # pylint: disable=g-import-not-at-top
  from tools import run_command  # pylint: disable=g-import-not-at-top

  def broken(*args, **kwargs):
    raise RuntimeError("disk full")
  monkeypatch.setattr(tools.report, "write_report", broken)
  config = config_lib.from_mapping({}, data_dir=str(tmp_path), output_dir=str(tmp_path))
  stream = io.StringIO()
  run_command.write_report(config, {"run_id": "r1"}, stream)  # does not raise
  assert ("warning: the run report could not be written (RuntimeError: disk full); the "
          "run's outcome is unaffected; retry with `uet report --output-dir "
          f"{tmp_path}`") in stream.getvalue()


def test_latest_is_a_relative_symlink_or_else_a_file_naming_the_run(tmp_path, monkeypatch):
  from tools.report import writer  # pylint: disable=g-import-not-at-top
  (tmp_path / "run-1").mkdir()
  (tmp_path / "run-2").mkdir()
  writer._point_latest(str(tmp_path), "run-1")  # pylint: disable=protected-access
  assert os.readlink(tmp_path / "latest") == "run-1"
  writer._point_latest(str(tmp_path), "run-2")  # pylint: disable=protected-access
  assert os.readlink(tmp_path / "latest") == "run-2"

  def no_symlinks(*args, **kwargs):
    raise OSError("symlinks not supported")
  monkeypatch.setattr(os, "symlink", no_symlinks)
  writer._point_latest(str(tmp_path), "run-1")  # pylint: disable=protected-access
  assert not os.path.islink(tmp_path / "latest")
  assert (tmp_path / "latest").read_text() == "run-1\n"


def test_runs_and_report_without_metadata_are_usage_errors_before_tensorflow(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  for argv, message in ((["runs", "--output-dir", str(tmp_path)], "uet runs: error: "),
                        (["report", "--output-dir", str(tmp_path)], "uet report: error: ")):
    code = ("import sys, json\nfrom tools import cli\n"
            f"rc = cli.main({argv!r})\n"
            "print(json.dumps([rc, sorted(sys.modules)]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=runs.python_env())
    rc, modules = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rc == 2, proc.stderr
    assert message + f"{tmp_path}/metadata.sqlite: no ML Metadata" in proc.stderr
    assert "tensorflow" not in modules


def test_the_environments_tensorboard_starts():
  # The README opens the Trainers' summaries with .venv/bin/tensorboard; TensorBoard 2.16
  # needs pkg_resources, so the lock must keep a setuptools that ships it.
  tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
  proc = subprocess.run([tensorboard, "--version_tb"], capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip().startswith("2.16")


def _taxi_report(**fields):
  # pylint: disable=g-import-not-at-top
  from dataspec import spec as spec_lib
  from tools.report import collect
  # pylint: enable=g-import-not-at-top
  taxi = spec_lib.load("taxi")
  values = dict(
      run_id="uet-taxi-run", pipeline_name=taxi.pipeline_name, output_dir="/out",
      started=None, succeeded=True, failed_component=None, error=None, components=[],
      gates=[], pushed=False, pushed_destination=None,
      metrics={"trip_start_hour=9": {"candidate": {"auc": 0.61, "example_count": 40}},
               "overall": {"candidate": {"auc": 0.66, "example_count": 300}},
               "trip_start_hour=10": {"candidate": {"auc": 0.62, "example_count": 50}}},
      statistics={"train": [collect.FeatureStats("big_tipper", "INT", 290, 0, None, [], 0.4,
                                                 0.0, 1.0)]},
      label_histogram={"train": [(0.0, 0.5, 170.0), (0.5, 1.0, 120.0)]},
      anomalies=[], drift=[], drift_baseline=None, history=[],
      lineage={"span": None, "training_spans": [], "warm_started_from": None,
               "warm_start_version": None, "pushed_version": None, "candidate_model": None},
      training_curves={}, summary={}, dataset=taxi, quarantined_rows=3, dropped_rows=7)
  values.update(fields)
  return collect.RunReport(**values)


def test_the_data_and_slice_tables_come_from_the_dataset_spec():
  from tools.report import writer  # pylint: disable=g-import-not-at-top
  report = _taxi_report()
  html = writer.render(report)
  text = browser.page_text(html)
  # The label as the spec names it, its rule, and what ingestion set aside.
  assert "label big_tipper : big_tipper is 0/1; rows without one are quarantined" in text
  assert 'id="quarantined-rows">3<' in html and 'id="dropped-rows">7<' in html
  assert 'alt="big_tipper histogram (train)"' in html
  assert "Sliced by the dataset spec's slices: trip_start_hour" in text
  # Overall first, then the spec's slice feature.
  assert writer.slice_order(report) == ["overall", "trip_start_hour=10", "trip_start_hour=9"]
  # No MovieLens word on a taxi run's page.
  for word in ("rating", "movie", "gender", "zip"):
    assert word not in text.lower()
