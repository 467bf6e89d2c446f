"""`uet compile`: the local pipeline's graph as a Vertex / Kubeflow pipeline spec.

Compiles through the CLI, then parses the file into KFP's protos and checks the graph, the
gates, the runtime parameters, the Beam arguments and the Vertex Trainer.
"""

import importlib
import json
import re

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
from tfx.dsl.components.common import resolver
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.proto import range_config_pb2
from tfx.utils import import_utils

from kubeflow import compiled, runner
from pipeline import exit_codes
from pipeline import ids, pipeline as pipeline_lib
from pipeline.config import PipelineConfig
from dataspec import spec as spec_lib
from tools import cli
from trainer.config import TrainingConfig

IMAGE = "us-central1-docker.pkg.dev/proj/uet/uet:test"
ROOT = "gs://bucket/uet"
DATA = "gs://bucket/ml-100k"
DATAFLOW_ARGS = ("--runner=DataflowRunner", "--project=proj", "--region=us-central1",
                 "--temp_location=gs://bucket/tmp", f"--sdk_container_image={IMAGE}",
                 "--experiments=use_runner_v2")
BEAM_COMPONENTS = (ids.EXAMPLE_GEN, ids.STATISTICS_GEN,
                   ids.TRANSFORM, ids.EVALUATOR)


def _compile(path, *flags):
  argv = ["compile", "--pipeline-root", ROOT, "--data-dir", DATA, "--image", IMAGE,
          "--output", str(path), *flags]
  assert cli.main(argv) == 0
  return path


@pytest.fixture(scope="module")
def job_path(tmp_path_factory):
  return _compile(tmp_path_factory.mktemp("vertex") / "pipeline.json", "--target", "vertex")


@pytest.fixture(scope="module")
def job(job_path):
  return json.loads(job_path.read_text())


@pytest.fixture(scope="module")
def tasks(job):
  return job["pipelineSpec"]["root"]["dag"]["tasks"]


@pytest.fixture(scope="module")
def cloud_job(tmp_path_factory):
  """Dataflow, TPU Trainers and non-default parameter defaults."""
  path = _compile(tmp_path_factory.mktemp("cloud") / "pipeline.json",
                  "--beam-runner", "dataflow", "--project", "proj", "--region", "us-central1",
                  "--temp-location", "gs://bucket/tmp", "--trainer-machine-type", "cloud-tpu",
                  "--trainer-accelerator-type", "TPU_V3", "--trainer-accelerator-count", "8",
                  "--epochs", "3", "--min-auc-gain", "0.02")
  return json.loads(path.read_text())


def _executor(job, task_name):
  spec = job["pipelineSpec"]
  label = spec["components"][spec["root"]["dag"]["tasks"][task_name]["componentRef"]["name"]]
  return spec["deploymentSpec"]["executors"][label["executorLabel"]]


def _constant(tasks, task_name, key):
  return tasks[task_name]["inputs"]["parameters"][key]["runtimeValue"]["constant"]


def _producer(tasks, task_name, key):
  return tasks[task_name]["inputs"]["artifacts"][key]["taskOutputArtifact"]["producerTask"]


def test_compiled_file_parses_into_kfp_pipeline_job(job_path, job):
  proto = json_format.Parse(job_path.read_text(), pipeline_spec_pb2.PipelineJob())
  spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
  assert spec.schema_version == "2.1.0"
  assert spec.sdk_version == "tfx-1.16.0"
  assert spec.pipeline_info.name == "uet-movielens"
  assert spec.default_pipeline_root == f"{ROOT}/tfx"
  assert proto.runtime_config.gcs_output_directory == f"{ROOT}/tfx"


def test_every_component_of_the_local_pipeline_is_a_task(tasks):
  local = pipeline_lib.create_pipeline(PipelineConfig(data_dir=DATA, output_dir=ROOT))
  expected = set()
  for node in local.components:
    if isinstance(node, resolver.Resolver):
      # A latest-blessed-model resolver compiles into two resolver tasks.
      matching = {t for t in tasks if t == node.id or t.startswith(node.id + "-")}
      assert matching, f"resolver {node.id} has no task"
      expected |= matching
    else:
      expected.add(node.id)
  assert set(tasks) == expected
  assert {ids.EXAMPLE_GEN, ids.STATISTICS_GEN, ids.SCHEMA_GEN,
          ids.EXAMPLE_VALIDATOR, ids.VALIDATION_GATE, ids.TRANSFORM,
          ids.CANDIDATE_TRAINER, ids.BASELINE_TRAINER,
          ids.EVALUATOR, ids.SERVING_CHECK, ids.PUSHER} <= set(tasks)


def test_validation_gate_comes_before_transform(tasks):
  assert ids.VALIDATION_GATE in tasks[ids.TRANSFORM]["dependentTasks"]


def test_evaluator_compares_the_unified_candidate_with_the_hash_baseline(tasks):
  evaluator = ids.EVALUATOR
  assert _producer(tasks, evaluator, "model") == ids.CANDIDATE_TRAINER
  assert _producer(tasks, evaluator, "baseline_model") == ids.BASELINE_TRAINER
  for trainer, model_type in ((ids.CANDIDATE_TRAINER, "unified"),
                              (ids.BASELINE_TRAINER, "hash")):
    custom = json.loads(_constant(tasks, trainer, "custom_config"))
    assert custom["training"]["model_type"] == model_type


def test_pusher_runs_only_when_both_gates_blessed_the_candidate(tasks):
  pusher = tasks[ids.PUSHER]
  blessing_key = f"_{ids.EVALUATOR}.blessing"
  condition = pusher["triggerPolicy"]["condition"]
  assert (f"(inputs.artifacts['{blessing_key}'].artifacts[0].metadata['blessed'] == 1.0)"
          in condition)
  assert _producer(tasks, ids.PUSHER, blessing_key) == ids.EVALUATOR
  # The production gate's blessing is the Pusher's `model_blessing` input; TFX 1.16 names it
  # `_ProductionEvaluator.blessing` in the condition, a key the task does not have.
  assert ("(inputs.artifacts['model_blessing'].artifacts[0].metadata['blessed'] == 1.0)"
          in condition)
  assert _producer(tasks, ids.PUSHER, "model_blessing") == \
      ids.PRODUCTION_EVALUATOR


def test_serving_check_runs_under_both_gates_and_its_blessing_gates_the_push(tasks):
  check = tasks[ids.SERVING_CHECK]
  condition = check["triggerPolicy"]["condition"]
  for key in (f"_{ids.EVALUATOR}.blessing", f"_{ids.PRODUCTION_EVALUATOR}.blessing"):
    assert f"(inputs.artifacts['{key}'].artifacts[0].metadata['blessed'] == 1.0)" in condition
    assert key in check["inputs"]["artifacts"]
  assert _producer(tasks, ids.SERVING_CHECK, "model") == ids.CANDIDATE_TRAINER
  assert _producer(tasks, ids.SERVING_CHECK, "evaluation") == ids.EVALUATOR
  assert _producer(tasks, ids.PUSHER, "infra_blessing") == ids.SERVING_CHECK
  params = check["inputs"]["parameters"]
  assert params["label_column"]["runtimeValue"]["constant"] == "rating"
  assert params["model_name"]["runtimeValue"]["constant"] == ids.CANDIDATE_MODEL


def test_every_condition_reads_inputs_its_task_has(tasks):
  for name, task in tasks.items():
    condition = task.get("triggerPolicy", {}).get("condition", "")
    for key in re.findall(r"inputs\.artifacts\['([^']+)'\]", condition):
      assert key in task["inputs"]["artifacts"], (name, key)


def test_runtime_parameters_are_declared_with_the_config_defaults(job):
  declared = job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
  expected = {
      "data_dir": ("STRING", DATA),
      "range_config": ("STRING", ""),
      "min_auc_gain": ("NUMBER_DOUBLE", 0.01),
      "auc_floor": ("NUMBER_DOUBLE", 0.70),
      "max_auc_regression": ("NUMBER_DOUBLE", 0.0),
      "epochs": ("NUMBER_INTEGER", TrainingConfig().epochs),
  }
  assert set(declared) == set(expected)
  values = job["runtimeConfig"]["parameterValues"]
  for name, (kind, default) in expected.items():
    assert declared[name]["parameterType"] == kind
    assert declared[name]["isOptional"] is True and declared[name]["description"]
    if kind == "STRING":
      assert declared[name]["defaultValue"] == values[name] == default
    else:
      assert declared[name]["defaultValue"] == pytest.approx(default)
      assert values[name] == pytest.approx(default)


def test_runtime_parameters_feed_the_components(job, tasks):
  def bound(task_name, key):
    return tasks[task_name]["inputs"]["parameters"][key].get("componentInputParameter")

  assert bound(ids.EXAMPLE_GEN, "input_base") == "data_dir"
  assert bound(ids.EXAMPLE_GEN, "range_config") == "range_config"
  assert bound(ids.EVALUATOR, "min_auc_gain") == "min_auc_gain"
  assert bound(ids.EVALUATOR, "auc_floor") == "auc_floor"
  assert bound(ids.PRODUCTION_EVALUATOR, "max_auc_regression") == "max_auc_regression"
  assert bound(ids.PRODUCTION_EVALUATOR, "auc_floor") == "auc_floor"
  trainers = [ids.CANDIDATE_TRAINER, ids.BASELINE_TRAINER]
  for trainer in trainers:
    assert bound(trainer, "epochs") == "epochs"
  # ... and are read by executors that write them into eval_config / custom_config.
  def executor_class(task_name):
    args = _executor(job, task_name)["container"]["args"]
    return args[args.index("--executor_class_path") + 1]

  for evaluator in (ids.EVALUATOR, ids.PRODUCTION_EVALUATOR):
    assert executor_class(evaluator) == "kubeflow.executors.EvaluatorExecutor"
  for trainer in trainers:
    assert executor_class(trainer) == "kubeflow.executors.TrainerExecutor"


def test_compile_flags_set_the_parameter_defaults(cloud_job):
  declared = cloud_job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
  assert declared["epochs"]["defaultValue"] == 3
  assert declared["min_auc_gain"]["defaultValue"] == pytest.approx(0.02)


def test_every_executor_the_spec_names_is_importable(job):
  # What each container does first: `python -m MODULE` (the entrypoint, ExampleGen's driver),
  # then import --executor_class_path; here in the environment kubeflow/Dockerfile installs
  # (the same requirements.lock and project).
  executors_spec = job["pipelineSpec"]["deploymentSpec"]["executors"]
  class_paths, modules = [], set()
  for executor in executors_spec.values():
    container = executor["container"]
    for command in (container["command"],
                    container.get("lifecycle", {}).get("preCacheCheck", {}).get("command", [])):
      if command[:2] == ["python", "-m"]:
        modules.add(command[2])
    args = container.get("args", [])
    if "--executor_class_path" in args:
      class_paths.append(args[args.index("--executor_class_path") + 1])
  assert len(class_paths) == len(executors_spec)
  assert modules == {"tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
                     "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"}
  for module in modules:
    importlib.import_module(module)
  for path in class_paths:
    import_utils.import_class_by_path(path)  # what the container's entrypoint does


def test_earlier_decisions_are_read_by_tasks_not_rewritten_resolvers(job, tasks):
  # The model in production and the drift baseline come from components of the graph, so
  # the compiled pipeline chooses them as `uet run` does; no resolver task (a metadata query
  # Vertex would answer differently) is left.
  executors_spec = job["pipelineSpec"]["deploymentSpec"]["executors"]
  assert all("container" in e for e in executors_spec.values())
  assert _producer(tasks, ids.CANDIDATE_TRAINER, "base_model") == \
      ids.PRODUCTION_MODEL
  assert _producer(tasks, ids.PRODUCTION_EVALUATOR, "baseline_model") == \
      ids.PRODUCTION_MODEL
  assert _producer(tasks, ids.VALIDATION_GATE, "baseline_statistics") == \
      ids.DRIFT_BASELINE
  assert _constant(tasks, ids.PRODUCTION_MODEL, "serving_dir") == f"{ROOT}/serving"
  assert _constant(tasks, ids.DRIFT_BASELINE, "validated_dir") == \
      _constant(tasks, ids.VALIDATION_GATE, "validated_dir") == \
      f"{ROOT}/validated_statistics"
  # The Pusher records what the candidate was trained on.
  assert _producer(tasks, ids.PUSHER, "examples") == ids.EXAMPLE_GEN


def test_a_local_pipeline_root_compiles_for_run_spec(tmp_path, capsys, ml100k):
  argv = ["compile", "--pipeline-root", str(tmp_path / "root"), "--data-dir",
          str(ml100k), "--image", IMAGE, "--output", str(tmp_path / "p.json")]
  assert cli.main(argv) == 0
  assert "run this file with `uet run-spec`" in capsys.readouterr().err
  job = json.loads((tmp_path / "p.json").read_text())
  assert job["pipelineSpec"]["defaultPipelineRoot"] == str(tmp_path / "root" / "tfx")
  # The data from the local directory.
  assert job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]["data_dir"][
      "defaultValue"] == str(ml100k)


def test_a_local_data_dir_is_checked_against_the_dataset_at_compile_time(tmp_path, capsys):
  # As `uet run --data-dir` checks it: the file the spec names, and what to do.
  (tmp_path / "data").mkdir()
  argv = ["compile", "--pipeline-root", str(tmp_path / "root"), "--data-dir",
          str(tmp_path / "data"), "--image", IMAGE, "--output", str(tmp_path / "p.json")]
  assert cli.main(argv) == exit_codes.EXIT_USAGE
  assert f"{tmp_path / 'data' / 'u.data'}: missing" in capsys.readouterr().err
  assert not (tmp_path / "p.json").exists()


@pytest.fixture(scope="module")
def taxi_job_path(tmp_path_factory):
  # No --data-dir: the preset's own directory (the sample inside the TFX wheel), checked.
  directory = tmp_path_factory.mktemp("taxi")
  path = directory / "pipeline.json"
  assert cli.main(["compile", "--dataset", "taxi", "--pipeline-root", str(directory / "root"),
                   "--image", IMAGE, "--output", str(path)]) == 0
  return path


def test_compile_dataset_taxi_carries_the_taxi_spec(taxi_job_path):
  taxi = spec_lib.load("taxi")
  job = json.loads(taxi_job_path.read_text())
  spec = job["pipelineSpec"]
  tasks = spec["root"]["dag"]["tasks"]
  assert spec["pipelineInfo"]["name"] == "uet-taxi"
  # One spec, the same in every component that reads it, without this machine's paths.
  assert _constant(tasks, ids.SCHEMA_GEN, "dataset") == taxi.to_json()
  for task in (ids.TRANSFORM, ids.CANDIDATE_TRAINER, ids.BASELINE_TRAINER):
    assert json.loads(_constant(tasks, task, "custom_config"))["dataset"] == taxi.to_json()
  example_gen = json.loads(_constant(tasks, ids.EXAMPLE_GEN, "custom_config"))
  assert example_gen["custom_config"]["value"]["spec"] == taxi.to_json()
  assert example_gen["custom_config"]["value"]["pattern"] == "data.csv"
  assert taxi.origin not in taxi_job_path.read_text()
  assert taxi.schema not in taxi_job_path.read_text()
  # The taxi preset's curated schema, as text.
  with open(taxi.schema) as f:
    assert _constant(tasks, ids.SCHEMA_GEN, "curated_schema") == f.read()
  # The data directory the preset names, resolved here; its description names no dataset.
  data_dir = spec["root"]["inputDefinitions"]["parameters"]["data_dir"]
  assert data_dir["defaultValue"] == spec_lib.resolve_data_dir(taxi, None)
  assert "MovieLens" not in data_dir["description"] and "u.data" not in data_dir["description"]
  assert compiled.dataset_of(spec).to_json() == taxi.to_json()


@pytest.mark.parametrize("command", ["run-spec", "schedule"])
def test_run_spec_and_schedule_refuse_a_file_compiled_for_another_dataset(
    taxi_job_path, tmp_path, capsys, command):
  flags = {"run-spec": [str(taxi_job_path), "--pipeline-root", str(tmp_path / "root")],
           "schedule": ["--target", "vertex", "--pipeline", str(taxi_job_path), "--project",
                        "p", "--region", "r", "--cron", "0 3 * * 1", "--dry-run"]}[command]
  capsys.readouterr()
  assert cli.main([command, *flags, "--dataset", "movielens"]) == exit_codes.EXIT_USAGE
  err = capsys.readouterr().err
  assert (f"{taxi_job_path} was compiled for dataset 'taxi', not for --dataset movielens: "
          "recompile it with `uet compile --dataset movielens`") in err
  assert not (tmp_path / "root").exists()  # nothing ran
  if command == "schedule":  # the same dataset passes (and nothing is sent: --dry-run)
    assert cli.main([command, *flags, "--dataset", "taxi"]) == 0


def test_the_curated_schema_travels_in_the_compiled_spec(tasks):
  # Its text, not a path: no file has to exist in the image or in Cloud Storage.
  with open(spec_lib.load("movielens").schema) as f:
    assert _constant(tasks, ids.SCHEMA_GEN, "curated_schema") == f.read()


def test_every_task_runs_the_image(job):
  for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values():
    if "container" in executor:
      assert executor["container"]["image"] == IMAGE


def test_beam_runs_in_the_container_by_default(job):
  for name in BEAM_COMPONENTS:
    args = _executor(job, name)["container"]["args"]
    assert "--runner=DirectRunner" in args
    assert not any(a.startswith("--runner=DataflowRunner") for a in args)


def test_dataflow_flags_reach_every_beam_component(cloud_job):
  for name in BEAM_COMPONENTS:
    container = _executor(cloud_job, name)["container"]
    assert container["args"][-len(DATAFLOW_ARGS):] == list(DATAFLOW_ARGS), name
    assert "--runner=DirectRunner" not in container["args"]
  # ExampleGen's driver (span resolution) gets them too.
  driver = _executor(cloud_job, ids.EXAMPLE_GEN)["container"]["lifecycle"]
  assert driver["preCacheCheck"]["args"][-len(DATAFLOW_ARGS):] == list(DATAFLOW_ARGS)


def test_tpu_trainers_run_as_vertex_custom_jobs(cloud_job):
  tasks = cloud_job["pipelineSpec"]["root"]["dag"]["tasks"]
  for trainer in (ids.CANDIDATE_TRAINER, ids.BASELINE_TRAINER):
    args = _executor(cloud_job, trainer)["container"]["args"]
    assert args[args.index("--executor_class_path") + 1] == \
        "kubeflow.executors.VertexTrainerExecutor"
    custom = json.loads(_constant(tasks, trainer, "custom_config"))
    assert custom["ai_platform_enable_vertex"] is True
    assert custom["ai_platform_vertex_region"] == "us-central1"
    job_args = custom["ai_platform_training_args"]
    assert job_args["project"] == "proj"
    pool = job_args["job_spec"]["worker_pool_specs"][0]
    assert pool["machine_spec"] == {"machine_type": "cloud-tpu", "accelerator_type": "TPU_V3",
                                    "accelerator_count": 8}
    assert pool["container_spec"]["image_uri"] == IMAGE
    # trainer/strategy.py connects to the local TPU and fails loudly if it cannot.
    assert custom["tpu"] == "local"
    assert tasks[trainer]["inputs"]["parameters"]["epochs"]["componentInputParameter"] == \
        "epochs"


def test_kubeflow_target_writes_the_yaml_kfp_client_uploads(tmp_path):
  from kfp.client import client as kfp_client  # pylint: disable=g-import-not-at-top
  path = _compile(tmp_path / "pipeline.yaml", "--target", "kubeflow")
  doc = yaml.safe_load(path.read_text())
  spec = json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())
  # The defaults must be in the spec: KFP gets no PipelineJob runtimeConfig.
  assert spec.root.input_definitions.parameters["min_auc_gain"].default_value.number_value \
      == pytest.approx(0.01)
  assert spec.default_pipeline_root == f"{ROOT}/tfx"
  # What kfp.Client.create_recurring_run(pipeline_package_path=...) does with the file.
  loaded = kfp_client._extract_pipeline_yaml(str(path))  # pylint: disable=protected-access
  assert set(loaded.pipeline_spec.root.dag.tasks) == set(doc["root"]["dag"]["tasks"])


def test_compiled_pipeline_schedules_with_its_defaults(job_path, job, capsys):
  argv = ["schedule", "--target", "vertex", "--pipeline", str(job_path), "--project", "proj",
          "--region", "us-central1", "--cron", "TZ=UTC 0 3 * * 1", "--param",
          "min_auc_gain=0.03", "--dry-run"]
  capsys.readouterr()
  assert cli.main(argv) == 0
  request = json.loads(capsys.readouterr().out)
  values = request["PipelineJob"]["parameter_values"]
  assert values["min_auc_gain"] == pytest.approx(0.03)
  assert values["data_dir"] == DATA and values["epochs"] == TrainingConfig().epochs


@pytest.mark.parametrize("flags, message", [
    (["--data-dir", "/home/me/ml-100k"], "--data-dir '/home/me/ml-100k': Vertex AI Pipelines"),
    (["--pipeline-root", "/tmp/uet", "--beam-runner", "dataflow", "--project", "p",
      "--region", "r", "--temp-location", "gs://b/t"], "is local: Dataflow and Vertex"),
    (["--beam-runner", "dataflow", "--project", "p", "--region", "r"],
     "--beam-runner dataflow needs --temp-location"),
    (["--trainer-machine-type", "cloud-tpu", "--trainer-accelerator-type", "TPU_V3"],
     "--trainer-machine-type needs --project, --region"),
    (["--target", "kubeflow", "--output", "pipeline.json"], "use a .yaml file"),
])
def test_compile_errors_say_what_to_fix(tmp_path, capsys, flags, message):
  argv = ["compile", "--pipeline-root", ROOT, "--data-dir", DATA, "--image", IMAGE,
          "--output", str(tmp_path / "p.json"), *flags]
  assert cli.main(argv) == exit_codes.EXIT_USAGE
  assert message in capsys.readouterr().err


def test_span_window_resolver_fails_with_the_vertex_alternative():
  window = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.SpanRangeStrategy,
      config={"range_config": range_config_pb2.RangeConfig(
          rolling_range=range_config_pb2.RollingRange(num_spans=3))},
      examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples),
  ).with_id("SpanWindow")
  pipeline = tfx.dsl.Pipeline(pipeline_name="window", pipeline_root=ROOT,
                              components=[window])
  # What TFX itself does with it: an unexplained TypeError.
  with pytest.raises(TypeError, match="Unexpected resolver policy"):
    kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=IMAGE)
    ).run(pipeline, write_out=False)
  with pytest.raises(runner.CompileError,
                     match="SpanWindow: SpanRangeStrategy does not compile.*range_config"):
    runner.check_resolvers(pipeline)
