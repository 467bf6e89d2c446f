"""Compiles `create_pipeline(config)` for Vertex AI Pipelines or Kubeflow Pipelines 2.x.

The same graph as `uet run`, compiled by TFX's `KubeflowV2DagRunner` into a PipelineJob
(JSON, for Vertex) or a PipelineSpec (YAML, what `kfp.Client` uploads). This runner owns
what differs from the local one: container paths, Beam on Dataflow, the Trainers on a Vertex
custom job, and the runtime parameters (`kubeflow/parameters.py`).
"""

import json
import os
import re
from typing import Any, Dict, List

import yaml
from tfx import v1 as tfx
from tfx.dsl.components.common import resolver
from tfx.dsl.io import fileio
from tfx.extensions.google_cloud_ai_platform import constants as vertex_constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer_executor
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.types import standard_component_specs
from tfx.utils import json_utils

from components import paths
from kubeflow import executors, parameters
from kubeflow.options import (IMAGE_PROJECT_DIR, KUBEFLOW, VERTEX,
                              CompileOptions, VertexTrainingOptions)
from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib
from uet_upstream import kfp as upstream_kfp, tfx as upstream_tfx

_PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")


class CompileError(ValueError):
  """The pipeline or the options cannot become a working Vertex/Kubeflow pipeline."""


def runs_here_only(config: config_lib.PipelineConfig) -> bool:
  """Whether the compiled pipeline can only run on this machine (`uet run-spec`): its
  pipeline root is a local directory, which no Vertex/KFP container can see."""
  return paths.is_local(config.output_dir)


def compile_notes(config: config_lib.PipelineConfig) -> List[str]:
  """What `uet compile` says on stderr about where the compiled pipeline can run."""
  if runs_here_only(config):
    return [f"pipeline root {config.output_dir} is a local directory: run this file with "
            "`uet run-spec` on this machine; Vertex AI / Kubeflow need a gs:// root"]
  return []


def prepare_config(config: config_lib.PipelineConfig,
                   options: CompileOptions) -> config_lib.PipelineConfig:
  """The config as the containers see it: image paths, remote storage, engines.

  A local pipeline root (a directory on this machine) compiles a pipeline for `uet
  run-spec`: paths become absolute and the schema is read where it is, not from the image.

  Raises:
    CompileError: a pipeline name Vertex/KFP reject, or a path the containers cannot read
      (a local data path with a gs:// root on Vertex, a local schema file on either target).
  """
  changes: Dict[str, Any] = {}
  if not _PIPELINE_NAME.fullmatch(config.pipeline_name):
    raise CompileError(f"pipeline name {config.pipeline_name!r}: Vertex and KFP need "
                       "lowercase letters, digits and dashes ([a-z0-9][a-z0-9-]{0,127})")
  if runs_here_only(config):
    changes["output_dir"] = os.path.abspath(config.output_dir)
    if paths.is_local(config.data_dir):
      changes["data_dir"] = os.path.abspath(config.data_dir)
    if config.schema_file is not None and paths.is_local(config.schema_file):
      changes["schema_file"] = os.path.abspath(config.schema_file)
    if options.dataflow or options.vertex_training:
      raise CompileError(f"--pipeline-root {config.output_dir!r} is local: Dataflow and "
                         "Vertex training jobs cannot reach it; give a gs:// root")
    return config.replace(**changes)
  if options.target == VERTEX:
    for flag, value in (("--pipeline-root", config.output_dir),
                        ("--data-dir", config.data_dir)):
      if not value.startswith("gs://"):
        raise CompileError(f"{flag} {value!r}: Vertex AI Pipelines containers read and write "
                           "Cloud Storage; give a gs:// path (or a local --pipeline-root, "
                           "to run the file here with `uet run-spec`)")
  if options.dataflow:
    changes["beam_args"] = options.dataflow.beam_args(options.image)
  training = options.vertex_training
  if training and training.is_tpu and not config.tpu:
    # On a Vertex TPU VM the TPU is local; naming it makes trainer/strategy.py fail loudly
    # instead of falling back to the CPU if it cannot be reached.
    changes["tpu"] = "local"
  return config.replace(**changes)


def check_resolvers(pipeline: tfx.dsl.Pipeline) -> None:
  """Fails, naming the node, on resolvers the Kubeflow V2 compiler cannot translate.

  Raises:
    CompileError: a Resolver uses another strategy than LatestArtifactStrategy or
      LatestBlessedModelStrategy (SpanRangeStrategy, a resolver function, ...).
  """
  for node in pipeline.components:
    if isinstance(node, resolver.Resolver) and not upstream_kfp.compilable(node):
      name = getattr(upstream_kfp.strategy(node), "__name__", "a resolver function")
      raise CompileError(
          f"{node.id}: {name} does not compile for Vertex/Kubeflow (TFX 1.16 translates only "
          "LatestArtifactStrategy and LatestBlessedModelStrategy, and raises TypeError on "
          "others). On these targets each run reads one span, chosen by the `range_config` "
          "runtime parameter (the latest by default): train on a window of spans with the "
          "local runner only (window_spans 1 here).")


def use_vertex_training(pipeline: tfx.dsl.Pipeline, training: VertexTrainingOptions,
                        image: str) -> None:
  """Makes every Trainer of `pipeline` a `tfx.extensions.google_cloud_ai_platform.Trainer`.

  That component is the stock Trainer with the Vertex executor, so swapping the executor (to
  its runtime-parameter-aware subclass) and adding the job to `custom_config` is the same
  thing, without a second pipeline definition. Runs after `parameters.bind`, which gave the
  Trainers `executors.TrainerExecutor`.
  """
  for node in pipeline.components:
    if not parameters.runs_executor(node, executors.TrainerExecutor):
      continue
    upstream_tfx.replace_executor(node, executors.VertexTrainerExecutor,
                                  executors.TrainerExecutor)
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    custom = json.loads(node.exec_properties.get(key) or "null") or {}
    custom.update({
        vertex_constants.ENABLE_VERTEX_KEY: True,
        vertex_constants.VERTEX_REGION_KEY: training.region,
        vertex_trainer_executor.TRAINING_ARGS_KEY: training.job_args(image),
    })
    node.exec_properties[key] = json_utils.dumps(custom)


def compile_pipeline(config: config_lib.PipelineConfig, options: CompileOptions,
                     output_path: str) -> Dict[str, Any]:
  """Compiles the pipeline and writes it to `output_path`.

  Args:
    config: the pipeline's config; `output_dir` is the pipeline root (artifacts under
      `tfx/`, pushed models under `serving/`), `data_dir` the default of `data_dir`.
    options: target, image and engines.
    output_path: `.json` writes the PipelineJob (Vertex, or both); `.yaml`/`.yml` writes the
      PipelineSpec that `kfp.Client` uploads (Kubeflow).

  Returns:
    The PipelineJob as a JSON dict.

  Raises:
    CompileError: unreadable paths, uncompilable resolvers, or an output format the target
      cannot use.
  """
  is_yaml = output_path.endswith((".yaml", ".yml"))
  if not is_yaml and not output_path.endswith(".json"):
    raise CompileError(f"--output {output_path!r}: use .json (PipelineJob) or .yaml "
                       "(PipelineSpec)")
  if options.target == KUBEFLOW and not is_yaml:
    raise CompileError(f"--output {output_path!r}: kfp.Client uploads YAML pipeline specs; "
                       "use a .yaml file for --target kubeflow")
  config = prepare_config(config, options)
  pipeline = pipeline_lib.create_pipeline(config)
  check_resolvers(pipeline)
  try:
    runtime_parameters = parameters.bind(pipeline)
  except ValueError as e:
    raise CompileError(str(e)) from None
  if options.vertex_training:
    use_vertex_training(pipeline, options.vertex_training, options.image)
  runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
      config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
          default_image=options.image, use_pipeline_spec_2_1=True))
  job = runner.run(pipeline, parameter_values=parameters.defaults(runtime_parameters),
                   write_out=False)
  upstream_kfp.add_parameter_defaults(job, runtime_parameters)
  try:
    upstream_kfp.repair_condition_keys(job)
  except upstream_kfp.SpecError as e:
    raise CompileError(str(e)) from None
  upstream_kfp.set_default_pipeline_root(job, config.pipeline_root)
  directory = os.path.dirname(output_path)
  if directory:
    fileio.makedirs(directory)
  with fileio.open(output_path, "w") as f:
    if is_yaml:
      yaml.safe_dump(job["pipelineSpec"], f, sort_keys=True)
    else:
      json.dump(job, f, indent=2, sort_keys=True)
  return job

