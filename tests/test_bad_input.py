"""Bad input never reaches production.

A first `uet run` on a good slice (carrying two malformed rows, quarantined with
--max-bad-rows) pushes a model. Then each kind of bad input is planted in a copy of that slice
and run through `uet run` on the same output directory; every one must exit non-zero with a
message naming the file and line (parse errors) or the feature and anomaly (schema and drift,
at the ValidationGate), push nothing, leave the model in OUTPUT/serving byte for byte, and
leave ML Metadata readable with no execution stuck in RUNNING.
"""

import dataclasses
import json
import os
import pathlib
import shutil
from typing import List

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import ids
from pipeline.exit_codes import EXIT_FAILED
from tests import bad_inputs, runs
from tests.conftest import write_movielens_slice

pytestmark = pytest.mark.pipeline

# Malformed rows planted in the production run's data, at these (1-based) line numbers.
QUARANTINED = {10: "196\t242\n", 20: "186\t302\tfour\t891717742\n"}


@dataclasses.dataclass
class Production:
  root: pathlib.Path
  good: pathlib.Path        # the clean slice
  output: pathlib.Path      # the output directory every test runs into
  config: str
  code: int
  stdout: str
  summary: dict
  quarantine: List[str]     # lines of OUTPUT/quarantine.tsv after the first run

  @property
  def serving(self) -> str:
    return str(self.output / "serving")


def _insert_lines(path: pathlib.Path, planted: dict) -> None:
  lines = path.read_text().splitlines(keepends=True)
  for number in sorted(planted):
    lines.insert(number - 1, planted[number])
  path.write_text("".join(lines))


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> Production:
  root = tmp_path_factory.mktemp("bad_input")
  good = write_movielens_slice(root / "good", 3000, every=25)
  first = root / "first"
  shutil.copytree(good, first)
  _insert_lines(first / "u.data", QUARANTINED)
  output = root / "out"
  config = runs.write_config(root / "config.json")
  code, stdout, stderr = runs.uet_run(["--data-dir", first, "--output-dir", output,
                                       "--config", config, "--max-bad-rows", "2"])
  assert code == 0, stderr
  summary = json.loads((output / "last_run.json").read_text())
  quarantine = (output / "quarantine.tsv").read_text().splitlines()
  return Production(root, good, output, config, code, stdout, summary, quarantine)


def plant(production: Production, name: str, ratings=None, users=None) -> pathlib.Path:
  """A copy of the good slice, with the edits of `bad_inputs.plant`."""
  return bad_inputs.plant(production.good, production.root / name, ratings, users)


def run_failing(production: Production, data_dir: pathlib.Path, *flags,
                expected_code: int = EXIT_FAILED) -> str:
  """Runs `uet run` on planted data; asserts the outcome every failure shares; returns the
  error output."""
  before = runs.serving_snapshot(production.serving)
  pushed_before = runs.pushed_models(str(production.output))
  assert before and pushed_before, "the first run should have pushed a model"
  code, stdout, stderr = runs.uet_run(["--data-dir", data_dir, "--output-dir",
                                       production.output, "--config", production.config,
                                       *flags])
  assert code == expected_code, stderr
  assert "pushed to:" not in stdout
  # Nothing pushed, the model in production intact, byte for byte.
  assert runs.serving_snapshot(production.serving) == before
  assert runs.pushed_models(str(production.output)) == pushed_before
  # ML Metadata readable, and every execution finished one way or the other.
  store = runs.metadata_store(str(production.output))
  states = {e.last_known_state for e in store.get_executions()}
  assert metadata_store_pb2.Execution.RUNNING not in states
  return stderr


def assert_component_failed(production: Production, stderr: str, component: str) -> None:
  assert f"uet run: FAILED: component {component} failed" in stderr
  assert "nothing was pushed" in stderr
  summary = json.loads((production.output / "last_run.json").read_text())
  assert summary["succeeded"] is False and summary["failed_component"] == component
  last = runs.executions_of(str(production.output), component)[-1]
  assert last.last_known_state == metadata_store_pb2.Execution.FAILED


# --- The production run: malformed rows quarantined, counted, model pushed. ---

def test_max_bad_rows_quarantines_reports_and_still_pushes(production):
  assert production.code == 0
  assert production.summary["quarantined_rows"] == 2
  assert "quarantined: 2 malformed rows (--max-bad-rows 2)" in production.stdout
  assert production.quarantine[0] == "file\tline\treason\trow"
  rows = [line.split("\t") for line in production.quarantine[1:]]
  assert [int(r[1]) for r in rows] == sorted(QUARANTINED)
  assert all(r[0].endswith("u.data") for r in rows)
  assert "expected 4 tab-separated fields" in rows[0][2]
  assert "rating 'four' is not an integer" in rows[1][2]
  assert production.summary["pushed_model_dir"]
  assert runs.versions(production.serving) == [
      os.path.basename(production.summary["pushed_model_dir"])]


def test_more_bad_rows_than_allowed_fails(production):
  data = plant(production, "too_many_bad_rows", ratings=lambda lines: (
      lines[:5] + ["1\t2", "1\t2\tx\t3", "1\t2\t3"] + lines[5:]))
  stderr = run_failing(production, data, "--max-bad-rows", "2")
  assert_component_failed(production, stderr, ids.EXAMPLE_GEN)
  assert f"{data}/u.data:8: expected 4 tab-separated fields" in stderr
  assert "(more than --max-bad-rows=2 bad rows)" in stderr


# --- Malformed files (ExampleGen fails fast with file:line and what is wrong), a missing
# file (refused before TensorFlow loads), values the schema forbids (the ValidationGate).

@pytest.mark.parametrize("case", bad_inputs.CASES, ids=lambda case: case.name)
def test_bad_input_stops_the_run_where_and_as_the_table_says(production, case):
  data = plant(production, case.name, case.ratings, case.users)
  stderr = run_failing(production, data, expected_code=case.exit_code)
  if case.stops_at:
    assert_component_failed(production, stderr, case.stops_at)
  for message in case.messages(data):
    assert message in stderr
  for message in case.never_says:
    assert message not in stderr


# --- Drift and new categories: the ValidationGate stops the run. ---

def test_occupation_absent_from_the_schema(production):
  rated_user = (production.good / "u.data").read_text().split("\t", 1)[0]

  def new_occupation(data: bytes) -> bytes:
    lines = data.decode().split("\n")
    for i, line in enumerate(lines):
      fields = line.split("|")
      if fields[0] == rated_user:
        fields[3] = "astronaut"
        lines[i] = "|".join(fields)
    return "\n".join(lines).encode()

  stderr = run_failing(production, plant(production, "astronaut", users=new_occupation))
  assert_component_failed(production, stderr, ids.VALIDATION_GATE)
  assert "feature=user_occupation kind=ENUM_TYPE_UNEXPECTED_STRING_VALUES" in stderr
  assert "astronaut" in stderr


def test_span_whose_ratings_are_all_five_drifts(production):
  def all_fives(lines):
    return ["\t".join(f if i != 2 else "5" for i, f in enumerate(line.split("\t")))
            for line in lines]
  stderr = run_failing(production, plant(production, "all_fives", ratings=all_fives))
  assert_component_failed(production, stderr, ids.VALIDATION_GATE)
  assert ("split=train vs previous feature=rating "
          "kind=COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH") in stderr
  assert "above the threshold 0.1" in stderr
  # The baseline is the statistics of the production run (the first StatisticsGen run).
  first = runs.executions_of(str(production.output), ids.STATISTICS_GEN)[0]
  store = runs.metadata_store(str(production.output))
  [baseline] = [a for a in store.get_artifacts_by_id(
      [e.artifact_id for e in store.get_events_by_execution_ids([first.id])
       if e.type == metadata_store_pb2.Event.OUTPUT])]
  assert f"last run that passed this gate ({baseline.uri})" in stderr
