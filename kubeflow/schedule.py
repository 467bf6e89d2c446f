"""Schedules a compiled pipeline: a Vertex AI schedule or a Kubeflow Pipelines recurring run.

Building the request and sending it are separate, so `uet schedule --dry-run` prints exactly
the keyword arguments the cloud library would be called with, and tests check them with the
library replaced. Both targets start at most one run at a time: a retraining run that is
still going when the next one is due makes the next one wait (KFP) or be skipped (Vertex),
never overlap it.
"""

import json
import math
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import yaml

from kubeflow import cron as cron_lib
from kubeflow.options import VERTEX

MAX_CONCURRENT_RUNS = 1
# Shown in a dry run where KFP's answer to an earlier call goes.
EXPERIMENT_ID_PLACEHOLDER = "<experiment_id returned by create_experiment>"

_PARAMETER_TYPES = {"STRING": str, "NUMBER_DOUBLE": float, "NUMBER_INTEGER": int,
                    "BOOLEAN": bool}


class ScheduleError(ValueError):
  """A request that cannot be built: bad cron, unknown parameter, wrong file for the target."""


def load_compiled(path: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """Reads a file written by `uet compile`.

  Args:
    path: a PipelineJob JSON or a PipelineSpec YAML.

  Returns:
    (pipeline spec, parameter values of the job's runtimeConfig; {} for a bare spec).

  Raises:
    ScheduleError: missing, unparsable, or not a pipeline spec.
  """
  try:
    with open(path) as f:
      doc = yaml.safe_load(f)  # YAML is a superset of JSON
  except FileNotFoundError:
    raise ScheduleError(f"{path}: not found; write it with `uet compile`") from None
  except yaml.YAMLError as e:
    raise ScheduleError(f"{path}: not JSON or YAML: {e}") from None
  if not isinstance(doc, dict):
    raise ScheduleError(f"{path}: not a compiled pipeline (expected a mapping)")
  if "pipelineSpec" in doc:
    return doc["pipelineSpec"], dict((doc.get("runtimeConfig") or {})
                                     .get("parameterValues") or {})
  if "root" in doc and "pipelineInfo" in doc:
    return doc, {}
  raise ScheduleError(f"{path}: not a compiled pipeline (no pipelineSpec or root); write it "
                      "with `uet compile`")


def _declared_parameters(spec: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
  return dict(((spec.get("root") or {}).get("inputDefinitions") or {})
              .get("parameters") or {})


def _coerce(name: str, value: Any, parameter_type: str) -> Any:
  ptype = _PARAMETER_TYPES.get(parameter_type, str)
  if ptype is str:
    return str(value)
  if ptype is bool:
    if isinstance(value, bool):
      return value
    if str(value).lower() in ("true", "false"):
      return str(value).lower() == "true"
    raise ScheduleError(f"parameter {name}: {value!r} is not true or false")
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ScheduleError(f"parameter {name}: {value!r} is not a number") from None
  if not math.isfinite(number):
    raise ScheduleError(f"parameter {name}: {value!r} is not a finite number")
  if ptype is int:
    if not number.is_integer():
      raise ScheduleError(f"parameter {name}: {value!r} is not a whole number")
    return int(number)
  return number


def resolve_parameters(spec: Mapping[str, Any], job_values: Mapping[str, Any],
                       overrides: Mapping[str, Any]) -> Dict[str, Any]:
  """Every runtime parameter's value for the scheduled runs, typed as the spec declares.

  Sending all of them (not only the overrides) makes the schedule say what it runs with.

  Args:
    spec: the compiled pipeline spec.
    job_values: the PipelineJob's runtimeConfig values (they win over spec defaults).
    overrides: values from the command line (strings are converted).

  Returns:
    {name: value} for every declared parameter that has a value.

  Raises:
    ScheduleError: an override names no parameter of the pipeline, or has the wrong type.
  """
  declared = _declared_parameters(spec)
  unknown = sorted(set(overrides) - set(declared))
  if unknown:
    raise ScheduleError(f"unknown runtime parameter(s) {unknown}; the pipeline has "
                        f"{sorted(declared)}")
  values = {}
  for name, definition in sorted(declared.items()):
    kind = definition.get("parameterType", "STRING")
    if name in overrides:
      values[name] = _coerce(name, overrides[name], kind)
    elif name in job_values:
      values[name] = _coerce(name, job_values[name], kind)
    elif "defaultValue" in definition:
      values[name] = _coerce(name, definition["defaultValue"], kind)
  return values


def span_range_config(span: int) -> str:
  """The `range_config` value that makes ExampleGen read exactly `span`."""
  if span < 0:
    raise ScheduleError(f"--span must be >= 0, got {span}")
  return json.dumps({"static_range": {"start_span_number": span, "end_span_number": span}},
                    sort_keys=True)


def _pipeline_name(spec: Mapping[str, Any]) -> str:
  return (spec.get("pipelineInfo") or {}).get("name", "pipeline")


def vertex_request(pipeline_path: str, cron: str, project: str, region: str,
                   overrides: Mapping[str, Any], display_name: Optional[str] = None,
                   service_account: Optional[str] = None,
                   pipeline_root: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
  """The calls that create a Vertex AI schedule: `PipelineJob(...)`, `.create_schedule(...)`.

  Args:
    pipeline_path: the PipelineJob JSON (or spec YAML) written by `uet compile`.
    cron: 5-field cron, optionally `TZ=zone`-prefixed.
    project: GCP project.
    region: Vertex region.
    overrides: runtime parameter values (NAME -> value or string).
    display_name: the schedule's name (default: `<pipeline>-schedule`).
    service_account: the runs' service account (default: Compute Engine default).
    pipeline_root: overrides the compiled pipeline root.

  Returns:
    {"PipelineJob": kwargs, "create_schedule": kwargs}.

  Raises:
    ScheduleError: bad cron (CronError), parameters or file.
  """
  if not project or not region:
    raise ScheduleError("--target vertex needs --project and --region")
  vertex_cron = cron_lib.for_vertex(cron)
  spec, job_values = load_compiled(pipeline_path)
  name = _pipeline_name(spec)
  job = {
      "display_name": name,
      "template_path": os.path.abspath(pipeline_path),
      "parameter_values": resolve_parameters(spec, job_values, overrides),
      "project": project,
      "location": region,
  }
  if pipeline_root:
    job["pipeline_root"] = pipeline_root
  schedule = {
      "cron": vertex_cron,
      "display_name": display_name or f"{name}-schedule",
      "max_concurrent_run_count": MAX_CONCURRENT_RUNS,
      # A run still going when the next is due: skip that one rather than pile them up.
      "allow_queueing": False,
  }
  if service_account:
    schedule["service_account"] = service_account
  return {"PipelineJob": job, "create_schedule": schedule}


def kubeflow_request(pipeline_path: str, cron: str, host: str,
                     overrides: Mapping[str, Any], display_name: Optional[str] = None,
                     experiment: str = "uet", namespace: Optional[str] = None,
                     service_account: Optional[str] = None,
                     pipeline_root: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
  """The calls that create a KFP recurring run: `Client(...)`, `.create_experiment(...)`,
  `.create_recurring_run(...)`.

  Args:
    pipeline_path: the PipelineSpec YAML written by `uet compile --target kubeflow`.
    cron: 5-field cron (translated to KFP's 6 fields) or KFP's 6-field form; UTC only.
    host: the KFP API endpoint, e.g. http://localhost:8080 (port-forwarded ml-pipeline-ui).
    overrides: runtime parameter values (NAME -> value or string).
    display_name: the recurring run's name (default: `<pipeline>-schedule`).
    experiment: the KFP experiment to create it in (created if missing).
    namespace: Kubernetes namespace (multi-user KFP only).
    service_account: Kubernetes service account of the runs.
    pipeline_root: overrides the compiled pipeline root.

  Returns:
    {"Client": kwargs, "create_experiment": kwargs, "create_recurring_run": kwargs}.

  Raises:
    ScheduleError: bad cron (CronError), parameters, or a JSON pipeline file.
  """
  if not host:
    raise ScheduleError("--target kubeflow needs --host, the KFP API endpoint (e.g. "
                        "http://localhost:8080 after `kubectl port-forward`)")
  if not pipeline_path.endswith((".yaml", ".yml")):
    raise ScheduleError(f"{pipeline_path}: kfp.Client uploads YAML pipeline specs; compile "
                        "with `uet compile --target kubeflow --output pipeline.yaml`")
  kfp_cron = cron_lib.for_kubeflow(cron)
  spec, job_values = load_compiled(pipeline_path)
  client = {"host": host}
  if namespace:
    client["namespace"] = namespace
  run = {
      "experiment_id": EXPERIMENT_ID_PLACEHOLDER,
      "job_name": display_name or f"{_pipeline_name(spec)}-schedule",
      "cron_expression": kfp_cron,
      "max_concurrency": MAX_CONCURRENT_RUNS,
      # A paused schedule resumes with the next run, not a backfill of every missed one.
      "no_catchup": True,
      "params": resolve_parameters(spec, job_values, overrides),
      "pipeline_package_path": os.path.abspath(pipeline_path),
      "enabled": True,
  }
  if pipeline_root:
    run["pipeline_root"] = pipeline_root
  if service_account:
    run["service_account"] = service_account
  return {"Client": client,
          "create_experiment": {"name": experiment, "namespace": namespace},
          "create_recurring_run": run}


def send_vertex(request: Mapping[str, Dict[str, Any]]) -> str:
  """Creates the Vertex schedule; returns its resource name."""
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  job = aiplatform.PipelineJob(**request["PipelineJob"])
  schedule = job.create_schedule(**request["create_schedule"])
  return schedule.resource_name


def send_kubeflow(request: Mapping[str, Dict[str, Any]]) -> str:
  """Creates the KFP recurring run (and its experiment if missing); returns the run's id."""
  import kfp  # pylint: disable=g-import-not-at-top
  client = kfp.Client(**request["Client"])
  experiment = client.create_experiment(**request["create_experiment"])
  run = dict(request["create_recurring_run"], experiment_id=experiment.experiment_id)
  return client.create_recurring_run(**run).recurring_run_id


def send(target: str, request: Mapping[str, Dict[str, Any]]) -> str:
  """Sends a request built by `build_request`; returns the created schedule's id."""
  return send_vertex(request) if target == VERTEX else send_kubeflow(request)
