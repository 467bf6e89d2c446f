"""`uet schedule`: cron translation, parameter checks, and the requests sent to Vertex / KFP.

The cloud clients are replaced at the library boundary (`google.cloud.aiplatform.PipelineJob`,
`kfp.Client`); nothing here needs a cloud project or the network.
"""

import json
import os
import subprocess
import sys
from unittest import mock

import pytest
import yaml

from kubeflow import cli as kubeflow_cli, cron, schedule
from pipeline import exit_codes
from tools import cli

PARAMETERS = {
    "auc_floor": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.7},
    "data_dir": {"parameterType": "STRING", "defaultValue": "gs://bucket/ml-100k"},
    "epochs": {"parameterType": "NUMBER_INTEGER", "defaultValue": 5},
    "min_auc_gain": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.01},
    "range_config": {"parameterType": "STRING", "defaultValue": ""},
}
SPEC = {
    "pipelineInfo": {"name": "uet-movielens"},
    "schemaVersion": "2.1.0",
    "defaultPipelineRoot": "gs://bucket/uet/tfx",
    "root": {"dag": {"tasks": {}}, "inputDefinitions": {"parameters": PARAMETERS}},
}
DEFAULTS = {"auc_floor": 0.7, "data_dir": "gs://bucket/ml-100k", "epochs": 5,
            "min_auc_gain": 0.01, "range_config": ""}


@pytest.fixture
def job_json(tmp_path):
  """A PipelineJob as `uet compile --target vertex` writes it (runtimeConfig included)."""
  path = tmp_path / "pipeline.json"
  path.write_text(json.dumps({
      "displayName": "uet-movielens", "pipelineSpec": SPEC,
      "runtimeConfig": {"gcsOutputDirectory": "gs://bucket/uet/tfx",
                        "parameterValues": dict(DEFAULTS, epochs=5.0)}}))
  return str(path)


@pytest.fixture
def spec_yaml(tmp_path):
  """A PipelineSpec as `uet compile --target kubeflow` writes it."""
  path = tmp_path / "pipeline.yaml"
  path.write_text(yaml.safe_dump(SPEC))
  return str(path)


# --- cron ---------------------------------------------------------------------------------

def test_vertex_cron_keeps_five_fields_and_time_zone():
  assert cron.for_vertex("TZ=UTC 0 3 * * 1") == "TZ=UTC 0 3 * * 1"
  assert cron.for_vertex("CRON_TZ=Europe/Berlin 30 2 * * MON-FRI") == \
      "TZ=Europe/Berlin 30 2 * * MON-FRI"
  assert cron.for_vertex("*/15 0-6,22 1 JAN,jul *") == "*/15 0-6,22 1 JAN,jul *"


def test_kubeflow_cron_gets_seconds_field_first():
  # Monday 03:00: KFP's robfig/cron reads six fields, seconds first.
  assert cron.for_kubeflow("TZ=UTC 0 3 * * 1") == "0 0 3 * * 1"
  assert cron.for_kubeflow("0 3 * * 1") == "0 0 3 * * 1"
  assert cron.for_kubeflow("*/15 * * * *") == "0 */15 * * * *"
  # Already in KFP's form: kept.
  assert cron.for_kubeflow("30 0 3 * * 1") == "30 0 3 * * 1"


@pytest.mark.parametrize("expression, message", [
    ("0 3 * *", "has 4 fields"),
    ("0 3 * * 1 2 3", "has 7 fields"),
    ("", "empty cron"),
    ("60 3 * * 1", "minute 60 is out of range 0-59"),
    ("0 24 * * 1", "hour 24 is out of range 0-23"),
    ("0 3 0 * *", "day-of-month 0 is out of range 1-31"),
    ("0 3 * 13 *", "month 13 is out of range 1-12"),
    ("0 3 * * 7", "use 0 for Sunday"),
    ("0 3 * * FUN", "day-of-week 'FUN' is not a number"),
    ("0 3 ? * 1", "use '*'"),
    ("*/0 3 * * 1", "step '0' must be a positive number"),
    ("5 3/2 * * 1", "a step needs '*' or a range"),
    ("30-10 3 * * 1", "runs backwards"),
    ("0,,5 3 * * 1", "empty item"),
    ("@weekly", "shortcuts like @daily"),
    ("TZ=Mars/Olympus 0 3 * * 1", "unknown time zone 'Mars/Olympus'"),
    ("TIMEZONE=UTC 0 3 * * 1", "not a time zone prefix"),
])
def test_bad_cron_strings_name_the_problem(expression, message):
  for target in (cron.VERTEX, cron.KUBEFLOW):
    with pytest.raises(cron.CronError, match=message.replace("*", r"\*").replace("?", r"\?")):
      cron.translate(expression, target)


def test_six_field_cron_is_rejected_for_vertex_with_the_fix():
  with pytest.raises(cron.CronError, match=r"drop the seconds, e.g. '0 3 \* \* 1'"):
    cron.for_vertex("0 0 3 * * 1")


def test_kubeflow_cron_takes_utc_only():
  with pytest.raises(cron.CronError, match="rewrite Europe/Paris times in UTC"):
    cron.for_kubeflow("TZ=Europe/Paris 0 3 * * 1")
  assert cron.for_kubeflow("CRON_TZ=Etc/UTC 0 3 * * 1") == "0 0 3 * * 1"


# --- parameters ---------------------------------------------------------------------------

def test_parameters_are_typed_as_the_spec_declares_and_all_are_sent():
  values = schedule.resolve_parameters(
      SPEC, {"epochs": 5.0}, {"min_auc_gain": "0.02", "epochs": "8", "data_dir": "gs://x/y"})
  assert values == {"auc_floor": 0.7, "data_dir": "gs://x/y", "epochs": 8,
                    "min_auc_gain": 0.02, "range_config": ""}
  assert isinstance(values["epochs"], int) and isinstance(values["min_auc_gain"], float)


@pytest.mark.parametrize("overrides, message", [
    ({"min_auc_gian": "0.02"}, r"unknown runtime parameter\(s\) \['min_auc_gian'\]"),
    ({"epochs": "2.5"}, "epochs: '2.5' is not a whole number"),
    ({"min_auc_gain": "high"}, "min_auc_gain: 'high' is not a number"),
    ({"auc_floor": "nan"}, "not a finite number"),
])
def test_bad_parameters_are_rejected(overrides, message):
  with pytest.raises(schedule.ScheduleError, match=message):
    schedule.resolve_parameters(SPEC, {}, overrides)


def test_param_flags_need_name_equals_value():
  assert kubeflow_cli.parse_assignments(["epochs=3", "data_dir=gs://a=b"], "--param") == \
      {"epochs": "3", "data_dir": "gs://a=b"}
  with pytest.raises(ValueError, match="--param 'epochs': use NAME=VALUE"):
    kubeflow_cli.parse_assignments(["epochs"], "--param")


def test_span_becomes_a_static_range_config():
  assert json.loads(schedule.span_range_config(3)) == \
      {"static_range": {"start_span_number": 3, "end_span_number": 3}}


# --- requests -----------------------------------------------------------------------------

def test_vertex_request(job_json):
  request = schedule.vertex_request(
      job_json, "TZ=UTC 0 3 * * 1", project="proj", region="us-central1",
      overrides={"min_auc_gain": "0.02"}, service_account="sa@proj.iam.gserviceaccount.com")
  assert request == {
      "PipelineJob": {
          "display_name": "uet-movielens",
          "template_path": os.path.abspath(job_json),
          "parameter_values": dict(DEFAULTS, min_auc_gain=0.02),
          "project": "proj",
          "location": "us-central1",
      },
      "create_schedule": {
          "cron": "TZ=UTC 0 3 * * 1",
          "display_name": "uet-movielens-schedule",
          "max_concurrent_run_count": 1,
          "allow_queueing": False,
          "service_account": "sa@proj.iam.gserviceaccount.com",
      },
  }


def test_kubeflow_request(spec_yaml):
  request = schedule.kubeflow_request(
      spec_yaml, "TZ=UTC 0 3 * * 1", host="http://localhost:8080",
      overrides={"epochs": "3"}, display_name="weekly")
  assert request["Client"] == {"host": "http://localhost:8080"}
  assert request["create_experiment"] == {"name": "uet", "namespace": None}
  assert request["create_recurring_run"] == {
      "experiment_id": schedule.EXPERIMENT_ID_PLACEHOLDER,
      "job_name": "weekly",
      "cron_expression": "0 0 3 * * 1",
      "max_concurrency": 1,
      "no_catchup": True,
      "params": dict(DEFAULTS, epochs=3),
      "pipeline_package_path": os.path.abspath(spec_yaml),
      "enabled": True,
  }


def test_kubeflow_needs_the_yaml_spec(job_json):
  with pytest.raises(schedule.ScheduleError, match="--target kubeflow --output pipeline.yaml"):
    schedule.kubeflow_request(job_json, "0 3 * * 1", host="http://localhost:8080",
                              overrides={})


def test_missing_compiled_file_says_how_to_make_it(tmp_path):
  with pytest.raises(schedule.ScheduleError, match="write it with `uet compile`"):
    schedule.vertex_request(str(tmp_path / "nope.json"), "0 3 * * 1", project="p",
                            region="r", overrides={})


# --- the CLI, with the cloud libraries replaced -------------------------------------------

def _vertex_args(job_json, *extra):
  return ["schedule", "--target", "vertex", "--pipeline", job_json, "--project", "proj",
          "--region", "us-central1", "--cron", "TZ=UTC 0 3 * * 1", *extra]


def _kubeflow_args(spec_yaml, *extra):
  return ["schedule", "--target", "kubeflow", "--pipeline", spec_yaml, "--host",
          "http://localhost:8080", "--cron", "TZ=UTC 0 3 * * 1", *extra]


def test_vertex_schedule_is_created_with_pipeline_job(job_json, capsys):
  with mock.patch("google.cloud.aiplatform.PipelineJob") as pipeline_job:
    pipeline_job.return_value.create_schedule.return_value.resource_name = \
        "projects/proj/locations/us-central1/schedules/123"
    assert cli.main(_vertex_args(job_json, "--param", "epochs=7", "--span", "4")) == 0
  pipeline_job.assert_called_once_with(
      display_name="uet-movielens", template_path=os.path.abspath(job_json),
      parameter_values=dict(DEFAULTS, epochs=7,
                            range_config=schedule.span_range_config(4)),
      project="proj", location="us-central1")
  pipeline_job.return_value.create_schedule.assert_called_once_with(
      cron="TZ=UTC 0 3 * * 1", display_name="uet-movielens-schedule",
      max_concurrent_run_count=1, allow_queueing=False)
  assert "schedules/123" in capsys.readouterr().err


def test_kubeflow_recurring_run_is_created_with_kfp_client(spec_yaml, capsys):
  with mock.patch("kfp.Client") as client_cls:
    client = client_cls.return_value
    client.create_experiment.return_value.experiment_id = "exp-1"
    client.create_recurring_run.return_value.recurring_run_id = "rr-9"
    assert cli.main(_kubeflow_args(spec_yaml, "--param", "min_auc_gain=0.03")) == 0
  client_cls.assert_called_once_with(host="http://localhost:8080")
  client.create_experiment.assert_called_once_with(name="uet", namespace=None)
  client.create_recurring_run.assert_called_once_with(
      experiment_id="exp-1", job_name="uet-movielens-schedule",
      cron_expression="0 0 3 * * 1", max_concurrency=1, no_catchup=True,
      params=dict(DEFAULTS, min_auc_gain=0.03),
      pipeline_package_path=os.path.abspath(spec_yaml), enabled=True)
  assert "rr-9" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_dry_run_prints_the_request_and_sends_nothing(target, job_json, spec_yaml, capsys):
  with mock.patch("google.cloud.aiplatform.PipelineJob") as pipeline_job, \
       mock.patch("kfp.Client") as client_cls:
    args = (_vertex_args(job_json, "--dry-run") if target == "vertex"
            else _kubeflow_args(spec_yaml, "--dry-run"))
    assert cli.main(args) == 0
  pipeline_job.assert_not_called()
  client_cls.assert_not_called()
  printed = json.loads(capsys.readouterr().out)
  if target == "vertex":
    assert printed == schedule.vertex_request(job_json, "TZ=UTC 0 3 * * 1", project="proj",
                                              region="us-central1", overrides={})
    assert printed["create_schedule"]["cron"] == "TZ=UTC 0 3 * * 1"
  else:
    assert printed == schedule.kubeflow_request(spec_yaml, "TZ=UTC 0 3 * * 1",
                                                host="http://localhost:8080", overrides={})
    assert printed["create_recurring_run"]["cron_expression"] == "0 0 3 * * 1"


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_bad_cron_is_a_usage_error_before_anything_is_sent(target, job_json, spec_yaml,
                                                          capsys):
  with mock.patch("google.cloud.aiplatform.PipelineJob") as pipeline_job, \
       mock.patch("kfp.Client") as client_cls:
    args = _vertex_args(job_json) if target == "vertex" else _kubeflow_args(spec_yaml)
    args[args.index("--cron") + 1] = "0 3 * *"
    assert cli.main(args) == exit_codes.EXIT_USAGE
  pipeline_job.assert_not_called()
  client_cls.assert_not_called()
  err = capsys.readouterr().err
  assert "uet schedule: error: cron '0 3 * *' has 4 fields" in err
  assert "TZ=UTC 0 3 * * 1" in err  # the example of the right form


def test_help_does_not_import_tensorflow_or_cloud_clients():
  code = ("import sys; from tools import cli\n"
          "for argv in (['--help'], ['compile', '--help'], ['schedule', '--help']):\n"
          "  try: cli.main(argv)\n"
          "  except SystemExit: pass\n"
          "heavy = [m for m in ('tensorflow', 'tfx', 'kfp', 'google.cloud.aiplatform') "
          "if m in sys.modules]\n"
          "assert not heavy, heavy\n")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert "uet compile" not in result.stderr
  assert "--cron" in result.stdout and "--beam-runner" in result.stdout
