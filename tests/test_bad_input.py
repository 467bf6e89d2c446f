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
from typing import Callable, List, Optional

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import pipeline as pipeline_lib
from pipeline.cli import EXIT_FAILED, EXIT_USAGE
from tests import runs
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


def plant(production: Production, name: str,
          ratings: Optional[Callable[[List[str]], List[str]]] = None,
          users: Optional[Callable[[bytes], Optional[bytes]]] = None) -> pathlib.Path:
  """A copy of the good slice with `ratings` applied to u.data's lines and `users` to
  u.user's bytes (None deletes the file)."""
  directory = production.root / name
  shutil.copytree(production.good, directory)
  if ratings:
    lines = (directory / "u.data").read_text().splitlines()
    (directory / "u.data").write_text("".join(f"{line}\n" for line in ratings(lines)))
  if users:
    data = users((directory / "u.user").read_bytes())
    if data is None:
      (directory / "u.user").unlink()
    else:
      (directory / "u.user").write_bytes(data)
  return directory


def set_field(line_number: int, field: int, value: str):
  """A `ratings` edit: field `field` (0-based) of line `line_number` (1-based) := value."""
  def edit(lines: List[str]) -> List[str]:
    fields = lines[line_number - 1].split("\t")
    fields[field] = value
    lines[line_number - 1] = "\t".join(fields)
    return lines
  return edit


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
  assert "quarantined: 2 malformed ratings rows (--max-bad-rows 2)" in production.stdout
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
  assert_component_failed(production, stderr, pipeline_lib.EXAMPLE_GEN)
  assert f"{data}/u.data:8: expected 4 tab-separated fields" in stderr
  assert "(more than --max-bad-rows=2 malformed rows)" in stderr


# --- Malformed files: ExampleGen fails fast with file:line and what is wrong. ---

def test_truncated_line(production):
  data = plant(production, "truncated", ratings=lambda lines: (
      lines[:16] + ["\t".join(lines[16].split("\t")[:2])] + lines[17:]))
  stderr = run_failing(production, data)
  assert_component_failed(production, stderr, pipeline_lib.EXAMPLE_GEN)
  assert f"{data}/u.data:17: expected 4 tab-separated fields (user_id, movie_id, rating, " \
         "timestamp), found 2" in stderr


def test_non_numeric_rating(production):
  stderr = run_failing(production, plant(production, "non_numeric",
                                         ratings=set_field(5, 2, "4.5")))
  assert_component_failed(production, stderr, pipeline_lib.EXAMPLE_GEN)
  assert "u.data:5: rating '4.5' is not an integer" in stderr


def test_rating_dated_in_the_future(production):
  data = plant(production, "future", ratings=set_field(12, 3, "99999999999"))
  stderr = run_failing(production, data)
  assert_component_failed(production, stderr, pipeline_lib.EXAMPLE_GEN)
  assert (f"{data}/u.data:12: timestamp 99999999999 (5138-11-16 09:46:39 UTC) is after the "
          "time of ingestion (") in stderr
  assert "fix the clock or the field upstream, or drop the rating" in stderr


def test_rating_for_a_user_missing_from_the_user_file(production):
  stderr = run_failing(production, plant(production, "unknown_user",
                                         ratings=set_field(8, 0, "9999")))
  assert_component_failed(production, stderr, pipeline_lib.EXAMPLE_GEN)
  assert "u.data:8: user_id '9999' is not in u.user; add the user's demographics or drop " \
         "the rating" in stderr


def test_empty_ratings_file(production):
  stderr = run_failing(production, plant(production, "empty", ratings=lambda lines: []))
  assert_component_failed(production, stderr, pipeline_lib.EXAMPLE_GEN)
  assert "u.data: no valid ratings; the file is empty" in stderr


@pytest.mark.parametrize("field, bad", [(4, b"85\xff11"), (3, b"techn\xe9cian")])
def test_non_utf8_bytes_in_the_user_file(production, field, bad):
  def corrupt(data: bytes) -> bytes:
    lines = data.split(b"\n")
    fields = lines[0].split(b"|")
    fields[field] = bad
    lines[0] = b"|".join(fields)
    return b"\n".join(lines)
  stderr = run_failing(production, plant(production, f"non_utf8_{field}", users=corrupt))
  assert_component_failed(production, stderr, pipeline_lib.EXAMPLE_GEN)
  assert "u.user:1: not valid UTF-8" in stderr and "re-encode the file as UTF-8" in stderr


def test_missing_user_file(production):
  data = plant(production, "no_users", users=lambda data: None)
  stderr = run_failing(production, data, expected_code=EXIT_USAGE)
  assert f"{data}/u.user: missing; a MovieLens directory needs u.data (ratings) and u.user " \
         "(users)" in stderr


# --- Values the schema forbids, and drift: the ValidationGate stops the run. ---

@pytest.mark.parametrize("rating, kind", [("0", "INT_TYPE_SMALL_INT"),
                                          ("6", "INT_TYPE_BIG_INT")])
def test_rating_out_of_range(production, rating, kind):
  stderr = run_failing(production, plant(production, f"rating_{rating}",
                                         ratings=set_field(3, 2, rating)))
  assert_component_failed(production, stderr, pipeline_lib.VALIDATION_GATE)
  assert f"feature=rating kind={kind}" in stderr
  assert "Fix the input data" in stderr
  # One out-of-range value is the schema anomaly it is, not drift: ratings are compared
  # value by value (schema: int_domain is_categorical).
  assert "COMPARATOR_" not in stderr


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
  assert_component_failed(production, stderr, pipeline_lib.VALIDATION_GATE)
  assert "feature=user_occupation kind=ENUM_TYPE_UNEXPECTED_STRING_VALUES" in stderr
  assert "astronaut" in stderr


def test_span_whose_ratings_are_all_five_drifts(production):
  def all_fives(lines):
    return ["\t".join(f if i != 2 else "5" for i, f in enumerate(line.split("\t")))
            for line in lines]
  stderr = run_failing(production, plant(production, "all_fives", ratings=all_fives))
  assert_component_failed(production, stderr, pipeline_lib.VALIDATION_GATE)
  assert ("split=train vs previous feature=rating "
          "kind=COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH") in stderr
  assert "above the threshold 0.1" in stderr
  # The baseline is the statistics of the production run (the first StatisticsGen run).
  first = runs.executions_of(str(production.output), pipeline_lib.STATISTICS_GEN)[0]
  store = runs.metadata_store(str(production.output))
  [baseline] = [a for a in store.get_artifacts_by_id(
      [e.artifact_id for e in store.get_events_by_execution_ids([first.id])
       if e.type == metadata_store_pb2.Event.OUTPUT])]
  assert f"last run that passed this gate ({baseline.uri})" in stderr
