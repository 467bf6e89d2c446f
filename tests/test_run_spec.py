"""`uet run-spec` without running a pipeline: loading specs, runtime parameters, task order,
the CEL subset of trigger conditions, and what it refuses."""

import json
import shutil

import pytest
import yaml

from dataspec import spec as spec_lib
from kubeflow import cel, cli as kubeflow_cli, run_spec

# The condition TFX 1.16 compiles for the pipeline's Pusher (tests/test_kubeflow_compile.py
# checks the compiled spec still has it).
PUSHER_CONDITION = ("((inputs.artifacts['_Evaluator.blessing'].artifacts[0].metadata['blessed']"
                    " == 1.0) && (inputs.artifacts['_ProductionEvaluator.blessing'].artifacts[0]"
                    ".metadata['blessed'] == 1.0))")


def _blessings(evaluator, production):
  def one(blessed):
    return {"artifacts": [{"uri": "/b", "metadata": {"blessed": blessed}}]}
  return {"inputs": {"artifacts": {"_Evaluator.blessing": one(evaluator),
                                   "_ProductionEvaluator.blessing": one(production)}}}


@pytest.mark.parametrize("evaluator, production, expected", [
    (1.0, 1.0, True), (0.0, 1.0, False), (1.0, 0.0, False), (0.0, 0.0, False)])
def test_the_pusher_condition_needs_both_blessings(evaluator, production, expected):
  assert cel.evaluate(PUSHER_CONDITION, _blessings(evaluator, production)) is expected


def test_the_other_constructs_the_compiler_emits():
  env = {"inputs": {"artifacts": {"m": {"artifacts": [
      {"uri": "/a/b", "metadata": {"auc": 0.75, "name": "x"}}]}}}}
  m = "inputs.artifacts['m'].artifacts[0]"
  assert cel.evaluate(f"({m}.metadata['auc'] > 0.7)", env) is True
  assert cel.evaluate(f"({m}.metadata['auc'] < 0.7)", env) is False
  assert cel.evaluate(f"!(({m}.metadata['auc'] < 0.7))", env) is True
  assert cel.evaluate(f"(({m}.metadata['auc'] < 0.7) || ({m}.uri == '/a/b'))", env) is True
  assert cel.evaluate(f"(({m}.uri + '/c') == '/a/b/c')", env) is True


@pytest.mark.parametrize("text, message", [
    ("size(inputs.artifacts['m'].artifacts) == 1.0", "'size' at 0 is not in the subset"),
    ("inputs.artifacts['m'].artifacts[0].metadata['auc'] >= 0.7", "operator '>='"),
    ("inputs.artifacts['m'].artifacts[0].metadata['auc'] == 'high'", "no such overload"),
    ("inputs.artifacts['m'].artifacts[0].metadata['nope'] == 1.0", "key 'nope'"),
    ("inputs.artifacts['m'].artifacts[0].metadata['auc']", None),
])
def test_anything_else_is_refused_by_name(text, message):
  env = {"inputs": {"artifacts": {"m": {"artifacts": [{"uri": "/", "metadata": {"auc": 0.7}}]}}}}
  if message is None:  # a value, not a bool: fine for evaluate, but no trigger condition
    assert cel.evaluate(text, env) == 0.7
    return
  with pytest.raises(cel.CelError, match=message):
    cel.evaluate(text, env)


def _spec(tasks, parameters=None):
  components = {name: {"executorLabel": f"{name}_executor"} for name in tasks}
  executors = {f"{name}_executor": {"container": {"image": "i", "command": ["true"]}}
               for name in tasks}
  return {"pipelineInfo": {"name": "p"}, "defaultPipelineRoot": "/tmp/root",
          "root": {"dag": {"tasks": tasks},
                   "inputDefinitions": {"parameters": parameters or {}}},
          "components": components, "deploymentSpec": {"executors": executors}}


def _task(name, *upstream, artifact_from=None):
  task = {"componentRef": {"name": name}, "taskInfo": {"name": name},
          "dependentTasks": list(upstream)}
  if artifact_from:
    task["inputs"] = {"artifacts": {"x": {"taskOutputArtifact": {
        "producerTask": artifact_from, "outputArtifactKey": "x"}}}}
  return task


def test_tasks_run_in_dependency_order():
  tasks = {"c": _task("c", "b"), "b": _task("b", artifact_from="a"), "a": _task("a"),
           "d": _task("d")}
  order = run_spec.task_order(tasks)
  assert order.index("a") < order.index("b") < order.index("c")
  with pytest.raises(run_spec.RunSpecError, match="depend on each other"):
    run_spec.task_order({"a": _task("a", "b"), "b": _task("b", "a")})
  with pytest.raises(run_spec.RunSpecError, match=r"task a depends on \['z'\]"):
    run_spec.task_order({"a": _task("a", "z")})


def test_parameters_defaults_then_runtime_config_then_flags():
  parameters = {"epochs": {"parameterType": "NUMBER_INTEGER", "defaultValue": 5},
                "gain": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.01},
                "data_dir": {"parameterType": "STRING", "defaultValue": "/d"}}
  job = {"pipelineSpec": _spec({"a": _task("a")}, parameters),
         "runtimeConfig": {"parameterValues": {"epochs": 3.0}}}
  assert run_spec.parameter_values(job, {}) == {"epochs": 3, "gain": 0.01, "data_dir": "/d"}
  assert run_spec.parameter_values(job, kubeflow_cli.parse_assignments(
      ["gain=0.5", "data_dir=/e"], "--parameter")) == {"epochs": 3, "gain": 0.5, "data_dir": "/e"}
  with pytest.raises(run_spec.RunSpecError, match="--parameter epoch: no such runtime"):
    run_spec.parameter_values(job, {"epoch": "2"})
  with pytest.raises(run_spec.RunSpecError, match="epochs: '2.5' is not a NUMBER_INTEGER"):
    run_spec.parameter_values(job, {"epochs": "2.5"})
  with pytest.raises(ValueError, match="--parameter 'epochs': use NAME=VALUE"):
    kubeflow_cli.parse_assignments(["epochs"], "--parameter")


def test_yaml_pipeline_specs_and_json_pipeline_jobs_load(tmp_path):
  spec = _spec({"a": _task("a")})
  (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
  (tmp_path / "p.json").write_text(json.dumps({"pipelineSpec": spec, "runtimeConfig": {}}))
  assert run_spec.load(str(tmp_path / "p.yaml"))["pipelineSpec"] == spec
  assert run_spec.load(str(tmp_path / "p.json"))["pipelineSpec"] == spec
  (tmp_path / "x.json").write_text("{}")
  with pytest.raises(run_spec.RunSpecError, match="neither a PipelineJob"):
    run_spec.load(str(tmp_path / "x.json"))


def test_a_failed_task_stops_the_run_and_nothing_after_it_runs(tmp_path):
  spec = _spec({"a": _task("a"), "b": _task("b", "a"), "c": _task("c", "b")})
  marker = tmp_path / "c-ran"
  spec["deploymentSpec"]["executors"]["a_executor"]["container"]["command"] = [
      "python", "-c", "print('fine')"]
  spec["deploymentSpec"]["executors"]["b_executor"]["container"]["command"] = [
      "python", "-c", "import sys; sys.stderr.write('ValueError: bad span 3\\n'); sys.exit(1)"]
  spec["deploymentSpec"]["executors"]["c_executor"]["container"]["command"] = [
      "python", "-c", f"open({str(marker)!r}, 'w')"]
  path = tmp_path / "p.json"
  path.write_text(json.dumps({"pipelineSpec": spec}))
  with pytest.raises(run_spec.TaskFailed, match="ValueError: bad span 3") as e:
    run_spec.run(str(path), pipeline_root=str(tmp_path / "root"))
  assert e.value.task == "b"
  assert not marker.exists()


def _one_failing_task(tmp_path, logged):
  """A PipelineJob of one task that writes `logged` to its log and exits 1."""
  spec = _spec({"a": _task("a")})
  spec["deploymentSpec"]["executors"]["a_executor"]["container"]["command"] = [
      "python", "-c", f"import sys; sys.stderr.write({logged!r}); sys.exit(1)"]
  path = tmp_path / "p.json"
  path.write_text(json.dumps({"pipelineSpec": spec}))
  return path


@pytest.mark.parametrize("logged, free_bytes", [
    ("OSError: [Errno 28] No space left on device: 'x'", 10 << 30),  # the log says so
    ("Tracebac", 4096)])  # the log was cut short, and the disk has (nearly) nothing left
def test_a_task_failing_on_a_full_disk_is_told_so(tmp_path, monkeypatch, logged, free_bytes):
  path = _one_failing_task(tmp_path, logged)
  real_usage = shutil.disk_usage
  monkeypatch.setattr(shutil, "disk_usage", lambda d: real_usage(d)._replace(free=free_bytes))
  root = tmp_path / "root"
  with pytest.raises(run_spec.TaskFailed) as e:
    run_spec.run(str(path), pipeline_root=str(root))
  assert str(e.value).startswith(f"no space left on the device of {root} (")
  assert ("Free space (or use another --pipeline-root) and run again: every task runs "
          f"again. The error was: {logged}") in str(e.value)


def test_a_task_failing_with_space_left_is_not_called_a_full_disk(tmp_path):
  path = _one_failing_task(tmp_path, "ValueError: bad span 3")
  with pytest.raises(run_spec.TaskFailed) as e:
    run_spec.run(str(path), pipeline_root=str(tmp_path / "root"))
  assert str(e.value) == "ValueError: bad span 3"


def test_importer_tasks_and_unknown_placeholders_are_refused_by_name(tmp_path):
  spec = _spec({"a": _task("a")})
  spec["deploymentSpec"]["executors"]["a_executor"] = {"importer": {"artifactUri": {}}}
  path = tmp_path / "p.json"
  path.write_text(json.dumps({"pipelineSpec": spec}))
  with pytest.raises(run_spec.RunSpecError, match="task a is a importer task"):
    run_spec.run(str(path), pipeline_root=str(tmp_path / "root"))
  spec = _spec({"a": _task("a")})
  spec["deploymentSpec"]["executors"]["a_executor"]["container"]["args"] = [
      "{{$.inputs.parameters['x']}}"]
  path.write_text(json.dumps({"pipelineSpec": spec}))
  with pytest.raises(run_spec.RunSpecError, match=r"placeholder \{\{\$\.inputs"):
    run_spec.run(str(path), pipeline_root=str(tmp_path / "root"))


# A task that makes a model and a blessing of it, as the Trainer and Evaluator would.
_MAKE = """
import json, os, sys
executor_input = json.loads(sys.argv[1])
outputs = executor_input["outputs"]
model = outputs["artifacts"]["model"]["artifacts"][0]
os.makedirs(os.path.dirname(outputs["outputFile"]), exist_ok=True)
with open(outputs["outputFile"], "w") as f:
  json.dump({"artifacts": {"model": {"artifacts": [{"metadata": {}}]},
             "blessing": {"artifacts": [{"metadata": {
                 "blessed": 1, "current_model_id": model["name"]}}]}}}, f)
"""


def _resolver_spec():
  """What TFX 1.16 compiles a LatestBlessedModelStrategy Resolver into, plus a producer."""
  spec = _spec({"a-blessing": _task("a-blessing"), "b-model": _task("b-model"),
                "make": _task("make")})
  spec["root"]["dag"]["tasks"]["b-model"]["inputs"] = {"artifacts": {"input": {
      "taskOutputArtifact": {"producerTask": "a-blessing", "outputArtifactKey": "blessing"}}}}
  executors = spec["deploymentSpec"]["executors"]
  executors["a-blessing_executor"] = {"resolver": {"outputArtifactQueries": {"blessing": {
      "filter": 'schema_title="tfx.ModelBlessing" AND state=LIVE AND '
                'metadata.blessed.number_value=1'}}}}
  executors["b-model_executor"] = {"resolver": {"outputArtifactQueries": {"model": {
      "filter": 'schema_title="tfx.Model" AND state=LIVE AND '
                'name="{{$.inputs.artifacts[\'input\'].metadata[\'current_model_id\']}}"'}}}}
  executors["make_executor"]["container"]["command"] = ["python", "-c", _MAKE, "{{$}}"]
  spec["components"]["make"]["outputDefinitions"] = {"artifacts": {
      "model": {"artifactType": {"schemaTitle": "tfx.Model"}},
      "blessing": {"artifactType": {"schemaTitle": "tfx.ModelBlessing"}}}}
  return spec


def test_resolver_tasks_query_the_artifacts_of_earlier_runs(tmp_path):
  path = tmp_path / "p.json"
  path.write_text(json.dumps({"pipelineSpec": _resolver_spec()}))
  root = str(tmp_path / "root")
  first = run_spec.run(str(path), pipeline_root=root)
  # Nothing ran before: the queries find nothing (as a Resolver on a first run).
  assert first.outputs["a-blessing"] == {"blessing": []}
  assert first.outputs["b-model"] == {"model": []}
  made = first.outputs["make"]["model"][0]
  second = run_spec.run(str(path), pipeline_root=root)
  [blessing] = second.outputs["a-blessing"]["blessing"]
  assert blessing["metadata"]["blessed"] == 1 and blessing["uri"].startswith(first.run_dir)
  # The model query names the blessed model through the blessing's current_model_id.
  [model] = second.outputs["b-model"]["model"]
  assert (model["name"], model["uri"]) == (made["name"], made["uri"])


def test_a_filter_tfx_does_not_write_is_refused_by_name(tmp_path):
  spec = _resolver_spec()
  spec["deploymentSpec"]["executors"]["a-blessing_executor"]["resolver"][
      "outputArtifactQueries"]["blessing"]["filter"] = (
          'schema_title="tfx.ModelBlessing" AND create_time>"2024"')
  path = tmp_path / "p.json"
  path.write_text(json.dumps({"pipelineSpec": spec}))
  with pytest.raises(run_spec.RunSpecError,
                     match="task a-blessing: filter clause 'create_time>\"2024\"'"):
    run_spec.run(str(path), pipeline_root=str(tmp_path / "root"))


def test_a_local_data_dir_parameter_is_checked_and_named_as_the_parameter(tmp_path):
  # The same check as `uet run --data-dir`, named as the user gave it.
  # pylint: disable=protected-access
  movielens, taxi = spec_lib.load("movielens"), spec_lib.load("taxi")
  with pytest.raises(run_spec.RunSpecError, match=r"^data_dir /nonexistent: not a directory$"):
    run_spec._check_data_dir("/nonexistent", movielens)
  with pytest.raises(run_spec.RunSpecError, match=r"u.data: missing"):
    run_spec._check_data_dir(str(tmp_path), movielens)
  # The files of the dataset the pipeline was compiled for.
  with pytest.raises(run_spec.RunSpecError, match=r"data.csv: missing"):
    run_spec._check_data_dir(str(tmp_path), taxi)
  run_spec._check_data_dir("gs://bucket/ml-100k", movielens)  # the ExampleGen task reads it
