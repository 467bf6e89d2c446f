"""ProductionModel: the newest pushed model not trained on the data ingested now, chosen from
the records the AtomicPusher writes; "nothing in production" reaches the Trainer and the
Evaluator as no input."""

import os

import pytest
from tfx.types import standard_artifacts, standard_component_specs

from components import decisions
from components.atomic_pusher import executor as pusher
from components.production_model import executor as production


def _examples(uri, span):
  artifact = standard_artifacts.Examples()
  artifact.uri = uri
  artifact.span = span
  return artifact


def _push(tmp_path, serving, name, trained_on):
  model = tmp_path / name
  (model / "variables").mkdir(parents=True)
  (model / "saved_model.pb").write_text(name)
  (model / "variables" / "variables.index").write_text(name)
  record = {"trained_on": [a.uri for a in trained_on],
            "spans": sorted(int(a.span) for a in trained_on)}
  path, version = pusher.push_model(str(model), str(serving), record)
  return path


def _production(tmp_path, serving, current, name):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / name)
  chosen = production.write_production_model([current], str(serving), model)
  return chosen, model


def test_the_newest_push_not_trained_on_the_ingested_examples_is_in_production(tmp_path):
  serving = tmp_path / "serving"
  span1, span2, span3 = (_examples(f"/tfx/ExampleGen/examples/{i}", i) for i in (1, 2, 3))
  # First run: nothing pushed, so nothing in production (and the output says so).
  chosen, model = _production(tmp_path, serving, span1, "p0")
  assert chosen is None and decisions.is_empty(model)
  first = _push(tmp_path, serving, "m1", [span1])
  # The record travels inside the version directory, with its version.
  record = pusher.read_push_record(first)
  assert record["spans"] == [1] and record["version"] == os.path.basename(first)
  # A re-run on span 1 (no new data) must not see span 1's own model: same answer as before.
  chosen, model = _production(tmp_path, serving, span1, "p1")
  assert chosen is None and decisions.is_empty(model)
  # Span 2 arrives: span 1's model is in production, copied where TFX reads a Model.
  chosen, model = _production(tmp_path, serving, span2, "p2")
  assert chosen == first and not decisions.is_empty(model)
  assert model.get_string_custom_property(production.PRODUCTION_DIR_KEY) == first
  copied = os.path.join(model.uri, production.SERVING_SUBDIR, "saved_model.pb")
  assert open(copied).read() == "m1"
  # A model trained on a window [1, 2] is skipped when span 2 is re-ingested, used for 3.
  second = _push(tmp_path, serving, "m2", [span1, span2])
  assert _production(tmp_path, serving, span2, "p3")[0] == first
  assert _production(tmp_path, serving, span3, "p4")[0] == second


def test_versions_without_a_record_are_not_in_production(tmp_path):
  serving = tmp_path / "serving"
  (serving / "17").mkdir(parents=True)  # pushed by another tool: lineage unknown
  assert production.choose(str(serving), ["/x"]) is None


def test_executors_drop_an_empty_production_model():
  empty = standard_artifacts.Model()
  decisions.mark_empty(empty, production.NOTHING_IN_PRODUCTION)
  real = standard_artifacts.Model()
  key = standard_component_specs.BASELINE_MODEL_KEY
  assert key not in decisions.drop_empty({key: [empty], "model": [real]}, key)
  assert decisions.drop_empty({key: [real]}, key) == {key: [real]}


def test_a_damaged_record_names_its_file_and_what_to_do(tmp_path):
  serving = tmp_path / "serving"
  version_dir = _push(tmp_path, serving, "m1", [_examples("/e/1", 1)])
  record = os.path.join(version_dir, pusher.PUSH_RECORD)
  with open(record, "w") as f:
    f.write("{truncated")
  with pytest.raises(decisions.RecordError, match=f"{record}: not a JSON record.*delete it"):
    production.choose(str(serving), ["/e/2"])
