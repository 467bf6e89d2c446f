"""Bad input never reaches production.

A first `uet run` on a good slice (carrying two malformed rows, quarantined with
--max-bad-rows) pushes a model. Then each kind of bad input is planted in a copy of that slice
and run through `uet run` on the same output directory; every one must exit non-zero with a
message naming the file and line (parse errors) or the feature and anomaly (schema and drift,
at the ValidationGate), push nothing, leave the model in OUTPUT/serving byte for byte, and
leave ML Metadata readable with no execution stuck in RUNNING.

The same holds on the generic path (issue 23, item 8): a CSV export with a header and a side
table, declared by a dataset spec (`--dataset FILE`), first pushes a model (dropping a row
without a label and quarantining a malformed one, both counted); then each bad input of the
item (a column the file lacks, a row with the wrong number of fields, a value of the wrong
type, a label the rule cannot map, a side-table key missing, an empty file, a Parquet span
whose schema differs from the previous span's) must stop the run naming the file, line or
column and the fix, and leave that model as it was. Plan-time refusals (exit 2) come from
`dataspec.files`, before TensorFlow loads; row-level ones from the ExampleGen. Their
component-level variants are in tests/test_example_gen_formats.py and
tests/test_dataspec_files.py.
"""

import dataclasses
import json
import os
import pathlib
import shutil
from typing import Callable, List, Optional, Tuple

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import ids
from pipeline.exit_codes import EXIT_FAILED, EXIT_USAGE
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
  pipeline_name: str = "uet-movielens"

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
  last = runs.executions_of(str(production.output), component, production.pipeline_name)[-1]
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


# --- Any dataset: the bad inputs of issue 23, item 8, through `uet run --dataset FILE`. ---

EVENTS_HEADER = "user,item,rating,ts"
USERS_HEADER = "user,age,gender,occupation,zip"
# A CSV export with a header, a side table joined on `user`, a label with a threshold whose
# missing values are dropped, and an integer feature from the side table.
GENERIC_SPEC = """\
name: events
source:
  format: csv
  path: events.csv
  side_tables:
    - {path: users.csv, key: user, columns: [age, gender, occupation]}
label: {column: rating, type: int, positive_if: ">= 4", missing: drop}
time: {column: ts, format: unix_seconds}
features:
  item: {kind: id, role: item}
  user: {kind: id, role: user}
  gender: {kind: categorical}
  occupation: {kind: categorical}
  age: {kind: numeric, type: int, lower_bounds: [1, 18, 25, 35, 45, 50, 56]}
slices: [gender]
"""
# Planted in the first run's events.csv (1-based line numbers, the header is line 1): a row
# without a label (dropped) and a row with too few fields (quarantined).
GENERIC_PLANTED = {10: "196,242,,881250949\n", 20: "186,302\n"}


@dataclasses.dataclass
class Generic:
  """The generic dataset's production: the shape `run_failing` takes."""
  root: pathlib.Path
  good: pathlib.Path
  output: pathlib.Path
  spec: pathlib.Path
  config: str
  code: int
  stdout: str
  summary: dict
  pipeline_name: str = "uet-events"

  @property
  def serving(self) -> str:
    return str(self.output / "serving")


def _events_feed(directory: pathlib.Path) -> pathlib.Path:
  """A MovieLens slice rewritten as a CSV export with headers: events.csv, users.csv."""
  ml = write_movielens_slice(directory.parent / f"{directory.name}-ml", 3000, every=25)
  directory.mkdir(parents=True)
  ratings = [line.replace("\t", ",") for line in (ml / "u.data").read_text().splitlines()]
  (directory / "events.csv").write_text("\n".join([EVENTS_HEADER, *ratings]) + "\n")
  users = [line.replace("|", ",") for line in
           (ml / "u.user").read_text(encoding="latin-1").splitlines()]
  (directory / "users.csv").write_text("\n".join([USERS_HEADER, *users]) + "\n")
  return directory


@pytest.fixture(scope="module")
def generic(tmp_path_factory) -> Generic:
  root = tmp_path_factory.mktemp("generic")
  good = _events_feed(root / "good")
  first = root / "first"
  shutil.copytree(good, first)
  _insert_lines(first / "events.csv", GENERIC_PLANTED)
  spec = root / "events.yaml"
  spec.write_text(GENERIC_SPEC)
  output = root / "out"
  config = runs.write_config(root / "config.json")
  code, stdout, stderr = runs.uet_run(["--dataset", spec, "--data-dir", first, "--output-dir",
                                       output, "--config", config, "--max-bad-rows", "1"])
  assert code == 0, stderr
  summary = json.loads((output / "last_run.json").read_text())
  return Generic(root, good, output, spec, config, code, stdout, summary)


def test_generic_first_run_drops_and_quarantines_counts_both_and_pushes(generic):
  assert generic.summary["pushed_model_dir"]
  assert generic.summary["dropped_rows"] == 1
  assert generic.summary["quarantined_rows"] == 1
  assert "quarantined: 1 malformed row (--max-bad-rows 1)" in generic.stdout
  assert ("dropped: 1 row without a label (label column 'rating', missing: drop in the "
          "dataset spec)") in generic.stdout
  [quarantined] = (generic.output / "quarantine.tsv").read_text().splitlines()[1:]
  assert quarantined.split("\t")[:2] == [str(generic.root / "first" / "events.csv"), "20"]
  # The report's data table counts both, and names the label as the spec does.
  page = (generic.output / "report" / "latest" / "index.html").read_text()
  assert 'id="dropped-rows">1<' in page and 'id="quarantined-rows">1<' in page
  assert "rating is 0/1" not in page and "rating &gt;= 4" in page


def _edit_line(number: int, edit: Callable[[List[str]], List[str]]):
  """An edit of events.csv: line `number` (1-based, the header is 1) split on commas."""
  def apply(directory: pathlib.Path) -> None:
    path = directory / "events.csv"
    lines = path.read_text().splitlines()
    lines[number - 1] = ",".join(edit(lines[number - 1].split(",")))
    path.write_text("\n".join(lines) + "\n")
  return apply


def _set(index: int, value: str):
  def edit(fields: List[str]) -> List[str]:
    fields[index] = value
    return fields
  return edit


def _rated_user_age(value: str):
  """users.csv: the age of the user of events.csv's first row := value."""
  def apply(directory: pathlib.Path) -> None:
    rated = (directory / "events.csv").read_text().splitlines()[1].split(",")[0]
    path = directory / "users.csv"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
      fields = line.split(",")
      if fields[0] == rated:
        fields[1] = value
        lines[i] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
  return apply


def _empty(directory: pathlib.Path) -> None:
  (directory / "events.csv").write_text("")


def _parquet_spans(directory: pathlib.Path) -> None:
  """events.csv as two Parquet spans; the second writes `ts` as text."""
  # pylint: disable=g-import-not-at-top
  import pyarrow as pa
  import pyarrow.csv as pa_csv
  import pyarrow.parquet as pq
  # pylint: enable=g-import-not-at-top
  table = pa_csv.read_csv(directory / "events.csv")
  os.remove(directory / "events.csv")
  half = table.num_rows // 2
  for span, part in ((1, table.slice(0, half)), (2, table.slice(half))):
    if span == 2:
      part = part.set_column(part.schema.get_field_index("ts"), "ts",
                             part.column("ts").cast(pa.string()))
    os.makedirs(directory / f"span-{span}")
    pq.write_table(part, directory / f"span-{span}" / "events.parquet")


@dataclasses.dataclass(frozen=True)
class GenericCase:
  """One bad input on the generic path: the data edit, the spec's edit, what it says."""
  name: str
  plant: Callable[[pathlib.Path], None]
  says: Tuple[str, ...]                    # `{data}`: the planted directory; `{spec}`: its spec
  stops_at: Optional[str] = ids.EXAMPLE_GEN  # None: refused at plan time
  spec_edit: Tuple[Tuple[str, str], ...] = ()  # (old, new) text replacements of the spec
  exit_code: int = EXIT_FAILED


GENERIC_CASES = [
    GenericCase(
        "column_the_file_lacks", lambda d: None,
        ("dataset spec {spec}: features.device names column 'device', which "
         "{data}/events.csv does not have; its columns are user, item, rating, ts. Fix the "
         "spec or the file",),
        stops_at=None, exit_code=EXIT_USAGE,
        spec_edit=(("slices:", "  device: {kind: categorical}\nslices:"),)),
    GenericCase(
        "wrong_number_of_fields", _edit_line(17, lambda f: f[:2]),
        ("{data}/events.csv:17: expected 4 comma-separated fields (user, item, rating, ts), "
         "found 2; its header names 4 columns: fix the row or remove it",)),
    GenericCase(
        "wrong_type", _rated_user_age("old"),
        # The side table's line: the value is there.
        ("{data}/users.csv:", ": age 'old' is not an integer (type int); write a whole "
         "number, or remove the row")),
    GenericCase(
        "label_the_rule_cannot_map", _edit_line(5, _set(2, "lots")),
        ("{data}/events.csv:5: rating 'lots' is not an integer (the label, type int: rule "
         "rating >= 4); write a whole number, or remove the row",)),
    GenericCase(
        "side_table_key_missing", _edit_line(8, _set(0, "9999")),
        ("{data}/events.csv:8: user '9999' is not in users.csv (the side table joined on "
         "user); add a row for it there, or remove this row",)),
    GenericCase(
        "empty_file", _empty,
        ("{data}/events.csv: the file is empty (source.path of dataset spec {spec}): write "
         "its rows there (an interrupted export leaves such files), or point the spec at "
         "another file",),
        stops_at=None, exit_code=EXIT_USAGE),
    GenericCase(
        "parquet_span_schema_changed", _parquet_spans,
        ("{data}/span-2/events.parquet: its Parquet schema differs from "
         "{data}/span-1/events.parquet (the previous span's file): column ts was int64, is "
         "string. Write every file of the feed with the same columns and types",),
        stops_at=None, exit_code=EXIT_USAGE,
        spec_edit=(("format: csv\n  path: events.csv", "format: parquet\n  path: events.parquet"),)),
]


@pytest.mark.parametrize("case", GENERIC_CASES, ids=lambda case: case.name)
def test_generic_bad_input_is_named_and_the_pushed_model_stays(generic, case):
  data = generic.root / case.name
  shutil.copytree(generic.good, data)
  case.plant(data)
  spec = generic.spec
  if case.spec_edit:
    text = generic.spec.read_text()
    for old, new in case.spec_edit:
      assert old in text
      text = text.replace(old, new)
    spec = generic.root / f"{case.name}.yaml"
    spec.write_text(text)
  def example_gen_runs() -> int:
    return len(runs.executions_of(str(generic.output), ids.EXAMPLE_GEN, generic.pipeline_name))

  runs_before = example_gen_runs()
  assert runs_before >= 1  # the first run's, at least
  stderr = run_failing(generic, data, "--dataset", spec, expected_code=case.exit_code)
  for fragment in case.says:
    assert fragment.format(data=data, spec=spec) in stderr
  if case.stops_at:
    assert_component_failed(generic, stderr, case.stops_at)
  else:  # refused before any component ran
    assert example_gen_runs() == runs_before
