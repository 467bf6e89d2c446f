"""`uet compile` and `uet schedule`: the pipeline on Vertex AI / Kubeflow Pipelines.

  uet compile --target vertex --dataset SPEC --pipeline-root gs://B/uet \\
      --data-dir gs://B/data --image IMAGE --output pipeline.json
  uet schedule --target vertex --pipeline pipeline.json --project P --region R \\
      --cron "TZ=UTC 0 3 * * 1" [--param min_auc_gain=0.02] [--dry-run]
  uet run-spec pipeline.json [--dataset SPEC] [--pipeline-root DIR] [--parameter NAME=VALUE ...]

Only argparse is imported here; TFX, KFP and the Vertex SDK load inside the commands, so
`uet --help` stays fast.
"""

import argparse
import json
import os
import sys
from typing import Any, Dict, Optional, Sequence

from pipeline.exit_codes import (EXIT_CANCELLED, EXIT_FAILED, EXIT_LOCKED, EXIT_METADATA,
                                  EXIT_OK, EXIT_USAGE)


def add_parser(sub) -> None:
  """Registers `compile`, `schedule` and `run-spec` on the `uet` subparsers."""
  _add_compile_parser(sub)
  _add_schedule_parser(sub)
  _add_run_spec_parser(sub)


def _add_run_spec_parser(sub) -> None:
  p = sub.add_parser(
      "run-spec", help="run a compiled pipeline on this machine, as Vertex AI / KFP would",
      description="Run a PipelineJob (JSON) or PipelineSpec (YAML) written by `uet compile` "
      "on this machine: each task in its own process with its container's command and "
      "arguments, artifacts through the ExecutorInput, trigger conditions evaluated. A check "
      "before a cloud submission, not an orchestrator. See kubeflow/README.md.")
  p.add_argument("spec", metavar="FILE", help="the file `uet compile` wrote")
  p.add_argument("--pipeline-root", help="local directory for the run's artifacts (default: "
                 "the compiled root, which must then be local)")
  p.add_argument("--dataset", help="the dataset (a preset or a spec file) the pipeline must "
                 "have been compiled for; refused when it was compiled for another one")
  p.add_argument("--parameter", action="append", metavar="NAME=VALUE",
                 help="runtime parameter value (repeatable); the others keep the spec's "
                 "defaults")
  p.set_defaults(func=cmd_run_spec)


def _add_compile_parser(sub) -> None:
  p = sub.add_parser(
      "compile", help="compile the pipeline for Vertex AI or Kubeflow Pipelines",
      description="Compile the same pipeline as `uet run` with TFX's KubeflowV2DagRunner: a "
      "PipelineJob JSON for Vertex AI Pipelines, or a PipelineSpec YAML for Kubeflow "
      "Pipelines. data_dir, range_config, min_auc_gain, auc_floor and epochs are runtime "
      "parameters; the values given here are their defaults. See kubeflow/README.md.")
  p.add_argument("--target", choices=("vertex", "kubeflow"), default="vertex",
                 help="vertex (default) or kubeflow")
  p.add_argument("--pipeline-root", help="gs:// root of everything the runs write: "
                 "artifacts under ROOT/tfx, pushed models under ROOT/serving (required "
                 "unless the --config file has output_dir)")
  p.add_argument("--dataset", help="the dataset: a preset (movielens, taxi, wide) or a "
                 "dataset spec file (.yaml/.json), as for uet run; default: movielens. The "
                 "compiled pipeline carries the spec")
  p.add_argument("--data-dir", help="default of the data_dir runtime parameter: the "
                 "directory the dataset spec's paths are relative to, one the containers can "
                 "read, e.g. gs://B/data (default: the --config file's data_dir, else the "
                 "spec's source.data_dir)")
  p.add_argument("--image", required=True, help="container image built from "
                 "kubeflow/Dockerfile, e.g. us-central1-docker.pkg.dev/P/uet/uet:TAG")
  p.add_argument("--output", help="where to write: .json (PipelineJob) or .yaml "
                 "(PipelineSpec; required for kubeflow); default pipeline.json for vertex, "
                 "pipeline.yaml for kubeflow")
  p.add_argument("--config", help="JSON config file (keys of PipelineConfig, as for uet run)")
  p.add_argument("--pipeline-name", help="pipeline name (default uet-<the dataset's name>)")
  p.add_argument("--epochs", type=int, help="default of the epochs runtime parameter")
  p.add_argument("--min-auc-gain", type=float,
                 help="default of the min_auc_gain runtime parameter (0.01)")
  p.add_argument("--auc-floor", type=float,
                 help="default of the auc_floor runtime parameter (0.70)")
  p.add_argument("--max-bad-rows", type=int, help="quarantine up to N malformed rows")
  p.add_argument("--collisionless", action="store_true", default=None,
                 help="also train the collisionless reference model")
  p.add_argument("--no-cache", action="store_true", help="compile with caching off")
  beam = p.add_argument_group(
      "Beam", "where ExampleGen, StatisticsGen, Transform and the Evaluator run their Beam "
      "jobs: in their own container (DirectRunner, the default) or on Dataflow")
  beam.add_argument("--beam-runner", choices=("direct", "dataflow"), default="direct")
  beam.add_argument("--project", help="GCP project (Dataflow, Vertex training)")
  beam.add_argument("--region", help="GCP region (Dataflow, Vertex training)")
  beam.add_argument("--temp-location", help="gs:// temp/staging directory for Dataflow")
  beam.add_argument("--dataflow-image", help="Dataflow workers' image (default: --image)")
  beam.add_argument("--beam-arg", action="append", default=None, metavar="ARG",
                    help="extra Beam argument (repeatable); with direct it replaces the "
                    "defaults, with dataflow it is added, e.g. --beam-arg=--max_num_workers=4")
  train = p.add_argument_group(
      "Vertex training", "run both Trainers as Vertex AI custom jobs on this machine "
      "(TFX's google_cloud_ai_platform Trainer), e.g. --trainer-machine-type cloud-tpu "
      "--trainer-accelerator-type TPU_V3 --trainer-accelerator-count 8")
  train.add_argument("--trainer-machine-type", help="Vertex machine type; unset: train in "
                     "the pipeline's own container")
  train.add_argument("--trainer-accelerator-type", help="TPU_V2, TPU_V3, NVIDIA_TESLA_T4, ...")
  train.add_argument("--trainer-accelerator-count", type=int, default=0)
  train.add_argument("--trainer-tpu-topology", help="TPU topology of TPU-VM machine types")
  train.add_argument("--trainer-image", help="training image (default: --image)")
  train.add_argument("--tpu", help="TPU name for trainer/strategy.py (default with a TPU "
                     "machine: local)")
  p.set_defaults(func=cmd_compile)


def _add_schedule_parser(sub) -> None:
  p = sub.add_parser(
      "schedule", help="schedule a compiled pipeline on Vertex AI or Kubeflow Pipelines",
      description="Create a Vertex AI pipeline schedule (PipelineJob.create_schedule) or a "
      "Kubeflow Pipelines recurring run (kfp.Client.create_recurring_run) for a pipeline "
      "written by `uet compile`. At most one run at a time. See kubeflow/README.md.")
  p.add_argument("--target", choices=("vertex", "kubeflow"), required=True)
  p.add_argument("--pipeline", required=True, help="the file `uet compile` wrote "
                 "(pipeline.json for vertex, pipeline.yaml for kubeflow)")
  p.add_argument("--cron", required=True, help='five fields, optionally with a time zone: '
                 '"TZ=UTC 0 3 * * 1" is Mondays 03:00 UTC. Kubeflow gets the seconds field '
                 "added (its cron has 6 fields) and takes UTC only")
  p.add_argument("--display-name", help="schedule name (default: <pipeline>-schedule)")
  p.add_argument("--param", action="append", metavar="NAME=VALUE",
                 help="runtime parameter value, e.g. --param min_auc_gain=0.02 --param "
                 "epochs=10 (repeatable); the others keep their compiled defaults")
  p.add_argument("--span", type=int, help="read this span (sets range_config); default: the "
                 "latest span at each run")
  p.add_argument("--project", help="vertex: GCP project")
  p.add_argument("--region", help="vertex: region, e.g. us-central1")
  p.add_argument("--host", help="kubeflow: KFP API endpoint, e.g. http://localhost:8080")
  p.add_argument("--experiment", default="uet", help="kubeflow: experiment (default uet)")
  p.add_argument("--namespace", help="kubeflow: namespace (multi-user deployments)")
  p.add_argument("--service-account", help="service account the runs use")
  p.add_argument("--pipeline-root", help="override the compiled pipeline root")
  p.add_argument("--dataset", help="the dataset (a preset or a spec file) the pipeline must "
                 "have been compiled for; refused when it was compiled for another one")
  p.add_argument("--dry-run", action="store_true", help="print the request, send nothing")
  p.set_defaults(func=cmd_schedule)


def parse_assignments(items: Optional[Sequence[str]], flag: str) -> Dict[str, str]:
  """`["min_auc_gain=0.02", ...]` -> `{"min_auc_gain": "0.02"}` (the values of `flag`).

  Raises:
    ValueError: an item without a name and `=`; the message names `flag`.
  """
  result = {}
  for item in items or ():
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
      raise ValueError(f"{flag} {item!r}: use NAME=VALUE, e.g. min_auc_gain=0.02")
    result[name.strip()] = value
  return result


def _error(command: str, message: Any) -> int:
  print(f"uet {command}: error: {message}", file=sys.stderr)
  return EXIT_USAGE


def build_compile_inputs(args: argparse.Namespace):
  """(PipelineConfig, CompileOptions, output path) of `uet compile`'s flags.

  Raises:
    ValueError: a missing or inconsistent flag (the message names it).
  """
  from kubeflow import options as options_lib  # pylint: disable=g-import-not-at-top
  from pipeline import config as config_lib  # pylint: disable=g-import-not-at-top
  from components import paths  # pylint: disable=g-import-not-at-top
  from dataspec import files, spec as spec_lib  # pylint: disable=g-import-not-at-top
  values = config_lib.load_file(args.config) if args.config else {}
  values.pop("mirror", None)  # `uet run`'s local download option
  if not (args.pipeline_root or values.get("output_dir")):
    raise ValueError("--pipeline-root is required (gs://BUCKET/uet: where the runs write)")
  # The dataset and its data directory resolve as for `uet run` (tools/run_command.py).
  dataset = spec_lib.load(args.dataset or values.get("dataset"))
  values["dataset"] = dataset
  data_dir = (args.data_dir or values.get("data_dir")
              or spec_lib.resolve_data_dir(dataset, None))
  if not data_dir:
    raise ValueError(f"dataset {dataset.name} names no data directory (source.data_dir): "
                     "pass --data-dir, the default of the data_dir runtime parameter, e.g. "
                     "gs://BUCKET/data")
  if values.get("span_pattern"):
    # A span layout named up front (a feed compiled for before its first span arrives):
    # its files are checked when a run reads them (`uet run-spec` checks data_dir).
    data_dir = os.path.abspath(data_dir) if paths.is_local(data_dir) else data_dir
  elif paths.is_local(data_dir) and paths.is_local(args.pipeline_root or values["output_dir"]):
    # A pipeline for `uet run-spec` on this machine: its data directory is checked as
    # `uet run` checks it, and a span layout found there becomes the compiled input
    # pattern. (A cloud root with a local data directory is refused by the compiler.)
    found = files.check(dataset, data_dir)
    data_dir = found.data_dir
    if found.spans and not values.get("span_pattern"):
      values["span_pattern"] = found.pattern
  training, evaluation = config_lib.sections_with_flags(
      values, epochs=args.epochs, min_auc_gain=args.min_auc_gain, auc_floor=args.auc_floor)
  direct = args.beam_runner == options_lib.DIRECT
  config = config_lib.from_mapping(
      values, data_dir=data_dir, output_dir=args.pipeline_root,
      pipeline_name=args.pipeline_name, training=training, evaluation=evaluation,
      beam_args=tuple(args.beam_arg) if (args.beam_arg and direct) else None,
      enable_cache=False if args.no_cache else None, max_bad_rows=args.max_bad_rows,
      train_collisionless=args.collisionless, tpu=args.tpu)
  dataflow = None
  if not direct:
    dataflow = options_lib.DataflowOptions(
        project=args.project, region=args.region, temp_location=args.temp_location,
        sdk_container_image=args.dataflow_image, extra_args=tuple(args.beam_arg or ()))
  elif args.temp_location or args.dataflow_image:
    raise ValueError("--temp-location/--dataflow-image need --beam-runner dataflow")
  vertex_training = None
  if args.trainer_machine_type:
    vertex_training = options_lib.VertexTrainingOptions(
        project=args.project, region=args.region, machine_type=args.trainer_machine_type,
        accelerator_type=args.trainer_accelerator_type,
        accelerator_count=args.trainer_accelerator_count,
        tpu_topology=args.trainer_tpu_topology, image=args.trainer_image)
  elif args.trainer_accelerator_type or args.trainer_accelerator_count:
    raise ValueError("--trainer-accelerator-* need --trainer-machine-type")
  options = options_lib.CompileOptions(target=args.target, image=args.image,
                                       dataflow=dataflow, vertex_training=vertex_training)
  output = args.output or ("pipeline.yaml" if args.target == options_lib.KUBEFLOW
                           else "pipeline.json")
  return config, options, output


def cmd_compile(args: argparse.Namespace) -> int:
  """`uet compile`: writes the compiled pipeline and prints its runtime parameters."""
  try:
    config, options, output = build_compile_inputs(args)
  except ValueError as e:
    return _error("compile", e)
  from kubeflow import runner  # pylint: disable=g-import-not-at-top
  try:
    job = runner.compile_pipeline(config, options, output)
  except ValueError as e:  # CompileError, or TFX rejecting a value
    return _error("compile", e)
  spec = job["pipelineSpec"]
  parameters = spec["root"]["inputDefinitions"]["parameters"]
  print(f"uet compile: wrote {output} ({options.target}): {len(spec['root']['dag']['tasks'])} "
        f"tasks, pipeline root {spec['defaultPipelineRoot']}", file=sys.stderr)
  for note in runner.compile_notes(config):
    print(f"uet compile: note: {note}", file=sys.stderr)
  print("runtime parameters (defaults):", file=sys.stderr)
  for name in sorted(parameters):
    print(f"  {name} = {json.dumps(parameters[name].get('defaultValue'))}", file=sys.stderr)
  return EXIT_OK


def cmd_schedule(args: argparse.Namespace) -> int:
  """`uet schedule`: builds the request, prints it (--dry-run) or sends it."""
  # pylint: disable=g-import-not-at-top
  from kubeflow import compiled, cron as cron_lib, schedule
  # pylint: enable=g-import-not-at-top
  try:
    if args.dataset:
      compiled.check_dataset(schedule.load_compiled(args.pipeline)[0], args.pipeline,
                             args.dataset)
    overrides: Dict[str, Any] = parse_assignments(args.param, "--param")
    if args.span is not None:
      overrides["range_config"] = schedule.span_range_config(args.span)
    common = dict(pipeline_path=args.pipeline, cron=args.cron, overrides=overrides,
                  display_name=args.display_name, service_account=args.service_account,
                  pipeline_root=args.pipeline_root)
    if args.target == "vertex":
      request = schedule.vertex_request(project=args.project, region=args.region, **common)
    else:
      request = schedule.kubeflow_request(host=args.host, experiment=args.experiment,
                                          namespace=args.namespace, **common)
  except (ValueError, cron_lib.CronError) as e:  # ScheduleError is a ValueError
    return _error("schedule", e)
  if args.dry_run:
    print(json.dumps(request, indent=2, sort_keys=True))
    print(f"uet schedule: dry run, nothing sent to {args.target}", file=sys.stderr)
    return EXIT_OK
  created = schedule.send(args.target, request)
  print(f"uet schedule: created {created}", file=sys.stderr)
  return EXIT_OK


def cmd_run_spec(args: argparse.Namespace) -> int:
  """`uet run-spec`: runs the compiled pipeline here; 1 when a task fails."""
  from kubeflow import run_spec  # pylint: disable=g-import-not-at-top
  from pipeline import lock  # pylint: disable=g-import-not-at-top
  try:
    overrides = parse_assignments(args.parameter, "--parameter")
  except ValueError as e:
    return _error("run-spec", e)
  try:
    result = run_spec.run(args.spec, pipeline_root=args.pipeline_root, overrides=overrides,
                          dataset=args.dataset)
  except run_spec.StoreDamaged as e:
    print(f"uet run-spec: error: {e}", file=sys.stderr)
    return EXIT_METADATA
  except run_spec.RunSpecError as e:
    return _error("run-spec", e)
  except lock.RunLockedError as e:
    print(f"uet run-spec: error: {e}", file=sys.stderr)
    return EXIT_LOCKED
  except run_spec.RunCancelled as e:
    print(f"uet run-spec: CANCELLED: {e}; its process was stopped", file=sys.stderr)
    print(f"nothing after it ran; {_pushed_line(e.result)}", file=sys.stderr)
    return EXIT_CANCELLED
  except run_spec.TaskFailed as e:
    print(f"uet run-spec: FAILED: task {e.task} failed: {e}", file=sys.stderr)
    print(f"nothing after {e.task} ran; {_pushed_line(e.result)}; its log: {e.log_path}",
          file=sys.stderr)
    return EXIT_FAILED
  ran = sum(1 for s in result.states.values() if s == "complete")
  skipped = sorted(n for n, s in result.states.items() if s == "skipped")
  print(f"uet run-spec: run {result.run_id} complete: {ran} tasks ran"
        + (f", skipped: {', '.join(skipped)}" if skipped else "")
        + f"; artifacts under {result.run_dir}", file=sys.stderr)
  pushed = _pushed(result)
  print(f"pushed to: {pushed[0] if pushed else '(not pushed)'}", file=sys.stderr)
  return EXIT_OK


def _pushed(result) -> list:
  """Where the run's tasks pushed a model (PushedModel artifacts with pushed = 1)."""
  if result is None:
    return []
  from uet_upstream import tfx as upstream_tfx  # pylint: disable=g-import-not-at-top
  return [a["metadata"].get(upstream_tfx.PUSHED_DESTINATION_KEY)
          for outputs in result.outputs.values() for artifacts in outputs.values()
          for a in artifacts if a.get("metadata", {}).get(upstream_tfx.PUSHED_KEY) == 1]


def _pushed_line(result) -> str:
  pushed = _pushed(result)
  if pushed:
    return f"pushed to: {pushed[0]}"
  return "nothing was pushed; the models already pushed are untouched"
