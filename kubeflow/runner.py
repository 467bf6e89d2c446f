"""Compiles `create_pipeline(config)` for Vertex AI Pipelines or Kubeflow Pipelines 2.x.

The same graph as `uet run`, compiled by TFX's `KubeflowV2DagRunner` into a PipelineJob
(JSON, for Vertex) or a PipelineSpec (YAML, what `kfp.Client` uploads). This runner owns
what differs from the local one: container paths, Beam on Dataflow, the Trainers on a Vertex
custom job, and the runtime parameters (`kubeflow/parameters.py`).
"""

import dataclasses
import json
import os
import re
from typing import Any, Dict, List, Optional

import yaml
from tfx import v1 as tfx
from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies import latest_artifact_strategy
from tfx.dsl.input_resolution.strategies import latest_blessed_model_strategy
from tfx.dsl.io import fileio
from tfx.extensions.google_cloud_ai_platform import constants as vertex_constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer_executor
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.types import channel as types_channel
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import deprecation_utils, json_utils

from kubeflow import executors, parameters
from kubeflow.options import (IMAGE_PROJECT_DIR, IMAGE_SCHEMA_FILE, KUBEFLOW, VERTEX,
                              CompileOptions, VertexTrainingOptions)
from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib

# The only resolver strategies TFX 1.16's Kubeflow V2 compiler translates (step_builder.py);
# any other strategy (e.g. SpanRangeStrategy) raises TypeError there.
COMPILABLE_STRATEGIES = (latest_artifact_strategy.LatestArtifactStrategy,
                         latest_blessed_model_strategy.LatestBlessedModelStrategy)
_PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")


class CompileError(ValueError):
  """The pipeline or the options cannot become a working Vertex/Kubeflow pipeline."""


def prepare_config(config: config_lib.PipelineConfig,
                   options: CompileOptions) -> config_lib.PipelineConfig:
  """The config as the containers see it: image paths, remote storage, engines.

  Raises:
    CompileError: a pipeline name Vertex/KFP reject, or a path the containers cannot read
      (a local data or output path on Vertex, a local schema file on either target).
  """
  changes: Dict[str, Any] = {}
  if not _PIPELINE_NAME.fullmatch(config.pipeline_name):
    raise CompileError(f"pipeline name {config.pipeline_name!r}: Vertex and KFP need "
                       "lowercase letters, digits and dashes ([a-z0-9][a-z0-9-]{0,127})")
  if options.target == VERTEX:
    for flag, value in (("--pipeline-root", config.output_dir),
                        ("--data-dir", config.data_dir)):
      if not value.startswith("gs://"):
        raise CompileError(f"{flag} {value!r}: Vertex AI Pipelines containers read and write "
                           "Cloud Storage; give a gs:// path")
  # The curated schema ships inside the image (kubeflow/Dockerfile copies it there).
  if config.schema_file is None:
    changes["schema_file"] = IMAGE_SCHEMA_FILE
  elif not (config.schema_file.startswith(("gs://", IMAGE_PROJECT_DIR + "/"))):
    raise CompileError(f"schema_file {config.schema_file!r} is a local file the containers "
                       "cannot read; copy it to gs:// (or keep the default, which is in the "
                       "image)")
  if options.dataflow:
    changes["beam_args"] = options.dataflow.beam_args(options.image)
  training = options.vertex_training
  if training and training.is_tpu and not config.tpu:
    # On a Vertex TPU VM the TPU is local; naming it makes trainer/strategy.py fail loudly
    # instead of falling back to the CPU if it cannot be reached.
    changes["tpu"] = "local"
  return config.replace(**changes)


def _compilable(node: resolver.Resolver) -> bool:
  strategy = node.exec_properties.get(resolver.RESOLVER_STRATEGY_CLASS)
  if strategy is not None:
    strategy = deprecation_utils.get_first_nondeprecated_class(strategy)
  return strategy in COMPILABLE_STRATEGIES


@dataclasses.dataclass(frozen=True)
class AdaptedResolver:
  """A lineage-reading resolver recompiled as a strategy Vertex can run.

  Attributes:
    node_id: the resolver's id.
    query_task: the compiled task whose metadata query is narrowed to `producer`.
    query_key: the output key of that query.
    producer: the component whose artifacts count.
  """
  node_id: str
  query_task: str
  query_key: str
  producer: str


def _history_inputs(node: resolver.Resolver) -> Dict[str, Any]:
  # Channels a resolver reads from earlier runs (declared by type), as opposed to outputs of
  # this run that it only passes through.
  return {k: c for k, c in node.raw_inputs.items()
          if not isinstance(c, types_channel.OutputChannel)}


def _producer_of(node: resolver.Resolver, key: str) -> Optional[str]:
  # The declared producer, else the producer of a pass-through output of the same type
  # (the resolver compares this run's artifact with earlier ones of the same component).
  channel = node.raw_inputs[key]
  if channel.producer_component_id:
    return channel.producer_component_id
  same_type = {c.producer_component_id for c in node.raw_inputs.values()
               if isinstance(c, types_channel.OutputChannel) and c.type == channel.type}
  return same_type.pop() if len(same_type) == 1 else None


def adapt_resolvers(pipeline: tfx.dsl.Pipeline) -> List[AdaptedResolver]:
  """Replaces resolvers that read ML Metadata lineage by ones the Vertex compiler knows.

  The local pipeline picks some inputs with strategies that read lineage (the model in
  production; the statistics of the last validated span); TFX 1.16's Kubeflow V2 compiler
  only translates LatestBlessedModelStrategy and LatestArtifactStrategy, into metadata
  queries. In this pipeline object only, such a resolver (same id, same outputs) becomes:

    * Model + ModelBlessing read from earlier runs: LatestBlessedModelStrategy, narrowed to
      the blessings of the ModelBlessing's producer (the newest model that passed that gate);
    * one artifact type read from earlier runs: LatestArtifactStrategy, narrowed to that
      type's producer (the newest one it made; resolvers run before the run's own tasks).

  Inputs it only passes through from this run are dropped (none of their outputs may be
  used). `_restrict_queries` narrows the compiled queries; `stamp_producers` makes the
  producers mark their outputs so that the narrowed queries find them.

  Returns:
    The replaced resolvers.

  Raises:
    CompileError: a dropped output is consumed by another component.
  """
  adapted = []
  components = pipeline.components  # the pipeline's own list: replaced in place
  for index, node in enumerate(components):
    if not isinstance(node, resolver.Resolver) or _compilable(node):
      continue
    history = _history_inputs(node)
    models = [k for k, c in history.items() if issubclass(c.type, standard_artifacts.Model)]
    blessings = [k for k, c in history.items()
                 if issubclass(c.type, standard_artifacts.ModelBlessing)]
    if len(history) == 2 and len(models) == 1 and len(blessings) == 1:
      strategy = tfx.dsl.experimental.LatestBlessedModelStrategy
      query_task, query_key = f"{node.id}-model-blessing-resolver", blessings[0]
    elif len(history) == 1:
      strategy = tfx.dsl.experimental.LatestArtifactStrategy
      query_task, query_key = node.id, next(iter(history))
    else:
      continue  # check_resolvers explains what to do instead
    producer = _producer_of(node, query_key)
    if producer is None:
      raise CompileError(f"{node.id}: cannot tell which component's {query_key!r} artifacts "
                         "it reads; give its input channel a producer_component_id")
    users = [f"{other.id}.{key}" for other in components for key, ch in other.inputs.items()
             if getattr(ch, "producer_component_id", None) == node.id
             and getattr(ch, "output_key", None) not in history]
    if users:
      raise CompileError(f"{node.id}: on Vertex/Kubeflow it resolves only {sorted(history)}, "
                         f"but {users} use its other outputs")
    replacement = tfx.dsl.Resolver(
        strategy_class=strategy, **dict(sorted(history.items()))).with_id(node.id)
    components[index] = replacement
    # Conditions and the compiler look nodes up in the pipeline's registry.
    with pipeline.dsl_context_registry.temporary_mutable():
      pipeline.dsl_context_registry.replace_node(node, replacement)
    adapted.append(AdaptedResolver(node.id, query_task, query_key, producer))
  return adapted


def _producer_tag(pipeline: tfx.dsl.Pipeline, node_id: str) -> str:
  return f"{pipeline.pipeline_info.pipeline_name}/{node_id}"


def stamp_producers(pipeline: tfx.dsl.Pipeline, adapted: List[AdaptedResolver]) -> None:
  """Makes the producers the adapted resolvers ask for mark their outputs.

  Raises:
    CompileError: a producer has no stamping executor (kubeflow/executors.py).
  """
  nodes = {node.id: node for node in pipeline.components}
  for item in adapted:
    node = nodes.get(item.producer)
    stock = next((base for base in executors.STAMPING_EXECUTORS
                  if node is not None and parameters.runs_executor(node, base)), None)
    if stock is None:
      raise CompileError(f"{item.node_id}: its artifacts come from {item.producer!r}, which "
                         "cannot mark its outputs on Vertex; add a stamping executor to "
                         "STAMPING_EXECUTORS in kubeflow/executors.py")
    if not parameters.runs_executor(node, executors.STAMPING_EXECUTORS[stock]):
      parameters.replace_executor(node, executors.STAMPING_EXECUTORS[stock], stock)
    node.exec_properties[executors.PRODUCER_KEY] = _producer_tag(pipeline, item.producer)


def _restrict_queries(job: Dict[str, Any], pipeline: tfx.dsl.Pipeline,
                      adapted: List[AdaptedResolver]) -> None:
  # TFX's queries take the newest artifact of a type from any component (of any pipeline
  # sharing the metadata store); the local strategies read one component's. The producers
  # stamp their outputs, so the queries can ask for theirs.
  spec = job["pipelineSpec"]
  for item in adapted:
    label = spec["components"][item.query_task]["executorLabel"]
    query = (spec["deploymentSpec"]["executors"][label]["resolver"]["outputArtifactQueries"]
             [item.query_key])
    query["filter"] += (f' AND metadata.{executors.PRODUCER_KEY}.string_value='
                        f'"{_producer_tag(pipeline, item.producer)}"')


def check_resolvers(pipeline: tfx.dsl.Pipeline) -> None:
  """Fails, naming the node, on resolvers the Kubeflow V2 compiler cannot translate.

  Raises:
    CompileError: a Resolver uses another strategy than LatestArtifactStrategy or
      LatestBlessedModelStrategy (SpanRangeStrategy, a resolver function, ...).
  """
  for node in pipeline.components:
    if isinstance(node, resolver.Resolver) and not _compilable(node):
      strategy = node.exec_properties.get(resolver.RESOLVER_STRATEGY_CLASS)
      name = getattr(strategy, "__name__", "a resolver function")
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
    parameters.replace_executor(node, executors.VertexTrainerExecutor,
                                executors.TrainerExecutor)
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    custom = json.loads(node.exec_properties.get(key) or "null") or {}
    custom.update({
        vertex_constants.ENABLE_VERTEX_KEY: True,
        vertex_constants.VERTEX_REGION_KEY: training.region,
        vertex_trainer_executor.TRAINING_ARGS_KEY: training.job_args(image),
    })
    node.exec_properties[key] = json_utils.dumps(custom)


def _add_parameter_defaults(job: Dict[str, Any],
                            runtime_parameters: List[tfx.dsl.experimental.RuntimeParameter]
                            ) -> None:
  # TFX writes parameter defaults only into the PipelineJob's runtimeConfig, which the KFP
  # YAML (PipelineSpec only) does not carry; KFP's own compiler puts them in the spec.
  definitions = job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
  for p in runtime_parameters:
    definitions[p.name].update(
        {"defaultValue": p.default, "isOptional": True, "description": p.description})


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
  adapted = adapt_resolvers(pipeline)
  check_resolvers(pipeline)
  try:
    runtime_parameters = parameters.bind(pipeline)
  except ValueError as e:
    raise CompileError(str(e)) from None
  stamp_producers(pipeline, adapted)
  if options.vertex_training:
    use_vertex_training(pipeline, options.vertex_training, options.image)
  runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
      config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
          default_image=options.image, use_pipeline_spec_2_1=True))
  job = runner.run(pipeline, parameter_values=parameters.defaults(runtime_parameters),
                   write_out=False)
  _add_parameter_defaults(job, runtime_parameters)
  _restrict_queries(job, pipeline, adapted)
  # KFP reads the root from the spec (its YAML has no runtimeConfig); Vertex from either.
  job["pipelineSpec"]["defaultPipelineRoot"] = config.pipeline_root
  directory = os.path.dirname(output_path)
  if directory:
    fileio.makedirs(directory)
  with fileio.open(output_path, "w") as f:
    if is_yaml:
      yaml.safe_dump(job["pipelineSpec"], f, sort_keys=True)
    else:
      json.dump(job, f, indent=2, sort_keys=True)
  return job

