"""The run report as a person sees it: two real `uet run`s, their pages in headless Chromium.

Span 1 of a small MovieLens slice is pushed; span 2, whose ratings are all 5, stops at the
ValidationGate on drift. Each run leaves OUTPUT/report/<run id>/index.html. The pages are
rendered by Debian's Chromium with every request logged: they must make no network request
and must show what last_run.json says (the candidate's AUC; where and why a run failed).
"""

import json
import os
import pathlib
import shutil

import pytest

from pipeline import ids
from tests import browser, runs
from tests.conftest import write_movielens_slice

pytestmark = pytest.mark.pipeline

CHROMIUM = browser.find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
    "scripts/setup.sh installs it when run as root with apt available)")


def _all_fives(src: pathlib.Path, dst: pathlib.Path) -> None:
  dst.mkdir(parents=True)
  lines = src.read_text().splitlines()
  (dst / "u.data").write_text("\n".join(
      "\t".join(f if i != 2 else "5" for i, f in enumerate(line.split("\t")))
      for line in lines) + "\n")


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
  """(output dir, last_run.json of the pushed run, last_run.json of the failed run)."""
  root = tmp_path_factory.mktemp("report")
  ratings = write_movielens_slice(root / "slice", 3000, every=25)
  feed = root / "feed"
  (feed / "span-1").mkdir(parents=True)
  shutil.copy(ratings / "u.user", feed / "u.user")
  shutil.copy(ratings / "u.data", feed / "span-1" / "u.data")
  output = root / "out"
  config = runs.write_config(root / "config.json")
  args = ["--data-dir", feed, "--output-dir", output, "--config", config]
  code, _, err = runs.uet_run(args)
  assert code == 0, err
  pushed = json.loads((output / "last_run.json").read_text())
  _all_fives(ratings / "u.data", feed / "span-2")
  code, _, err = runs.uet_run(args)
  assert code == 1, err
  failed = json.loads((output / "last_run.json").read_text())
  return output, pushed, failed


def _index(output: pathlib.Path, summary: dict) -> pathlib.Path:
  from tools.report import collect  # pylint: disable=g-import-not-at-top
  return output / "report" / collect.report_dir_name(summary["run_id"]) / "index.html"


def test_every_run_writes_its_report_and_latest_points_at_the_newest(reported):
  output, pushed, failed = reported
  assert pushed["succeeded"] and pushed["pushed_model_dir"]
  assert not failed["succeeded"] and failed["failed_component"] == ids.VALIDATION_GATE
  for summary in (pushed, failed):
    index = _index(output, summary)
    assert index.is_file()
    # The run's summary is kept beside its report: a failure's reason lives nowhere else.
    kept = json.loads((index.parent / "summary.json").read_text())
    assert kept["run_id"] == summary["run_id"] and kept["error"] == summary["error"]
  latest = output / "report" / "latest"
  assert (latest / "index.html").resolve() == _index(output, failed).resolve()


@needs_chromium
def test_the_pushed_runs_page_shows_its_numbers_and_makes_no_request(reported, tmp_path):
  output, pushed, _ = reported
  dom, requests = browser.render(CHROMIUM, str(_index(output, pushed)), str(tmp_path))
  assert requests == []
  text = browser.page_text(dom)
  # The candidate's AUC as last_run.json has it, in the headline table.
  assert f'id="candidate-auc">{pushed["candidate_auc"]:.4f}<' in dom
  assert f"Pushed version {os.path.basename(pushed['pushed_model_dir'])}" in text
  assert f"{pushed['baseline_auc']:.4f}" in text
  for heading in ("Beat the hash baseline: passed",
                  "No regression against production: skipped",
                  "Data validation: passed", "Ingested data", "Lineage", "Components",
                  "History", "Training (TensorBoard summaries)"):
    assert heading in text
  assert "span ingested 1" in text
  assert dom.count("data:image/png;base64,") >= 5  # AUC, LogLoss, 2 histograms, curves...


def test_the_first_runs_page_says_it_had_no_drift_baseline_and_nothing_in_production(
    reported):
  # The page as written (the browser tests render it too): span 1 is the first span, so
  # there is no earlier validated span to compare with and no model in production.
  output, pushed, _ = reported
  text = browser.page_text(_index(output, pushed).read_text())
  assert "span None" not in text and "Drift baseline: the statistics of" not in text
  assert "No drift check: no earlier span had passed the gate" in text
  assert "no span has passed this gate before: no drift baseline, not checked" in text
  # Gate 3 says it was skipped and why, as `uet run` does ("production gate: no comparison").
  assert "No regression against production: skipped" in text
  assert ("No comparison: no pushed model was trained on data other than this run's (the "
          "first run, or a re-train on the same data); the AUC floor alone decided.") in text
  # Without a baseline TFX drops the change threshold: the floor is the one rule shown.
  gate3 = text.split("No regression against production: skipped", 1)[1].split("Models:")[0]
  assert "candidate AUC >= floor" in gate3 and "production AUC" not in gate3


@needs_chromium
def test_the_failed_runs_page_says_where_and_why(reported, tmp_path):
  output, pushed, failed = reported
  dom, requests = browser.render(CHROMIUM, str(_index(output, failed)), str(tmp_path))
  assert requests == []
  text = browser.page_text(dom)
  assert f"FAILED at {ids.VALIDATION_GATE}" in text
  assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH" in text  # the error, verbatim
  assert "Data validation: failed" in text
  assert "Drift baseline: the statistics of span 1" in text
  # The measured divergence of `rating` against its threshold, above it.
  assert "rating Jensen-Shannon" in text and "ABOVE" in text
  assert "Beat the hash baseline: not reached" in text
  # History: the earlier push, with its AUC.
  version = os.path.basename(pushed["pushed_model_dir"])
  assert f"pushed {version} {pushed['candidate_auc']:.4f}" in text


def test_uet_runs_lists_both_runs_from_ml_metadata(reported, capsys):
  output, pushed, failed = reported
  from tools import cli  # pylint: disable=g-import-not-at-top
  assert cli.main(["runs", "--output-dir", str(output)]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split()[:3] == ["run", "started", "(UTC)"]
  first, second = lines[1], lines[2]
  version = os.path.basename(pushed["pushed_model_dir"])
  assert first.startswith(pushed["run_id"]) and f"pushed {version}" in first
  assert f"{pushed['candidate_auc']:.4f}" in first
  assert second.startswith(failed["run_id"])
  assert f"failed at {ids.VALIDATION_GATE}" in second


def test_uet_report_rebuilds_an_earlier_run(reported, capsys):
  output, pushed, _ = reported
  index = _index(output, pushed)
  before = index.read_text()
  index.unlink()
  from tools import cli  # pylint: disable=g-import-not-at-top
  assert cli.main(["report", "--output-dir", str(output), "--run", pushed["run_id"]]) == 0
  assert capsys.readouterr().out.strip() == str(index)
  # The same page up to the history, which has grown by the failed run since.
  head = lambda html: html.split('<h2 id="history">')[0]  # noqa: E731
  assert head(index.read_text()) == head(before)
  assert cli.main(["report", "--output-dir", str(output), "--run", "no-such-run"]) == 2
  assert "no pipeline run 'no-such-run'" in capsys.readouterr().err


def test_trainers_write_tensorboard_summaries_per_epoch(reported):
  output, pushed, _ = reported
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  store = runs.metadata_store(str(output))
  model_runs = store.get_artifacts_by_type("ModelRun")
  assert len(model_runs) == 2  # candidate and baseline of the pushed run
  for model_run in model_runs:
    for phase in ("train", "validation"):
      acc = event_accumulator.EventAccumulator(os.path.join(model_run.uri, phase))
      acc.Reload()
      tags = set(acc.Tags()["tensors"])
      assert {"epoch_loss", "epoch_auc"} <= tags, (model_run.uri, phase, tags)
      assert [e.step for e in acc.Tensors("epoch_auc")] == [0]  # SMALL_RUN: one epoch
