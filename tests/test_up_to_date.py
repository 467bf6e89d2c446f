"""`uet run` with nothing changed since a successful run stops before TensorFlow loads.

The key (pipeline/up_to_date.py) must change with everything the pipeline's cache depends
on, and a run is skipped only after a run that succeeded and recorded it.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from pipeline import config as config_lib, up_to_date
from tests import runs
from tests.conftest import REPO, write_movielens_slice


@pytest.fixture
def setup(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 200)
  out = tmp_path / "out"
  (out / "serving").mkdir(parents=True)
  (out / "metadata.sqlite").write_bytes(b"store")
  config = config_lib.PipelineConfig(data_dir=str(data), output_dir=str(out))
  return config, data, out


def _record(config, key, succeeded=True):
  pathlib.Path(config.summary_path).write_text(json.dumps(
      {"succeeded": succeeded, "run_id": "r1", up_to_date.KEY_FIELD: key}))


def test_the_key_is_stable_while_nothing_changes(setup):
  config, _, _ = setup
  assert up_to_date.run_key(config) == up_to_date.run_key(config)


@pytest.mark.parametrize("change", [
    "touch a data file", "add a span", "config", "metadata store", "a pushed version",
    "schema file"])
def test_the_key_changes_with_what_the_cache_depends_on(setup, tmp_path, change):
  config, data, out = setup
  before = up_to_date.run_key(config)
  if change == "touch a data file":
    st = os.stat(data / "u.data")
    os.utime(data / "u.data", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
  elif change == "add a span":
    (data / "span-2").mkdir()
    (data / "span-2" / "u.data").write_text("1\t1\t5\t881250949\n")
  elif change == "config":
    config = config.replace(evaluation=config_lib.EvaluationConfig(auc_floor=0.5))
  elif change == "metadata store":
    with open(out / "metadata.sqlite", "ab") as f:
      f.write(b"x")
  elif change == "a pushed version":
    (out / "serving" / "1795941692").mkdir()
  elif change == "schema file":
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(pathlib.Path(config.schema_path).read_text() + "\n# edited\n")
    before = up_to_date.run_key(config.replace(schema_file=str(schema)))
    schema.write_text(schema.read_text() + "# edited again\n")
    config = config.replace(schema_file=str(schema))
  assert up_to_date.run_key(config) != before


def test_only_a_succeeded_run_with_the_same_key_is_skipped(setup):
  config, _, _ = setup
  assert up_to_date.unchanged_since_last_run(config) is None  # no summary yet
  _record(config, up_to_date.run_key(config))
  assert up_to_date.unchanged_since_last_run(config)["run_id"] == "r1"
  assert up_to_date.unchanged_since_last_run(config.replace(enable_cache=False)) is None
  _record(config, up_to_date.run_key(config), succeeded=False)
  assert up_to_date.unchanged_since_last_run(config) is None
  _record(config, "another key")
  assert up_to_date.unchanged_since_last_run(config) is None
  pathlib.Path(config.summary_path).write_text("{not json")
  assert up_to_date.unchanged_since_last_run(config) is None


@pytest.mark.pipeline
def test_a_rerun_with_nothing_new_stops_before_tensorflow_and_a_change_runs(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 3000, every=25)
  out = tmp_path / "out"
  args = ["--data-dir", str(data), "--output-dir", str(out),
          "--config", runs.write_config(tmp_path / "config.json")]
  code, _, err = runs.uet_run(args)
  assert code == 0, err
  summary_before = pathlib.Path(out / "last_run.json").read_bytes()
  store_before = os.stat(out / "metadata.sqlite").st_mtime_ns

  probe = ("import sys; from tools import cli; code = cli.main(sys.argv[1:]); "
           "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow'); "
           "sys.exit(code)")
  proc = subprocess.run([sys.executable, "-c", probe, "run", *args], capture_output=True,
                        text=True, cwd=REPO, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "nothing changed since the last run" in proc.stderr
  assert "no tensorflow" in proc.stdout
  assert "candidate (unified) AUC" in proc.stdout  # the last run's result
  # Nothing written: not the summary, not ML Metadata.
  assert pathlib.Path(out / "last_run.json").read_bytes() == summary_before
  assert os.stat(out / "metadata.sqlite").st_mtime_ns == store_before

  # A changed gate: the pipeline runs (a new run in ML Metadata), the Trainers from cache.
  code, _, err = runs.uet_run([*args, "--auc-floor", "0.01"])
  assert code == 0, err
  after = json.loads(pathlib.Path(out / "last_run.json").read_text())
  assert after["run_id"] != json.loads(summary_before)["run_id"]
  assert after["components"]["CandidateTrainer"] == "cached"
  assert after["components"]["Evaluator"] == "complete"
