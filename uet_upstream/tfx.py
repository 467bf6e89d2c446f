"""TFX internals: launching the nodes of a compiled pipeline, the Pusher executor's records,
swapping a built component's executor, ExampleGen's split writer, and the Beam flags by
which TFX skips packaging itself.

1. `NodeByNodeRunner` and `launch`: the local runner (`pipeline/parallel_runner.py`)
   launches the nodes of the compiled pipeline itself, to run a chosen node in a second
   process beside the others, which TFX 1.16's LocalDagRunner cannot (it launches one node
   after another). Compiling, the run id and each launch are TFX's own, reproduced from
   `LocalDagRunner.run_with_ir` of `pins.TFX` (not a public API: `run_with_ir` is marked
   do-not-document, `launcher.Launcher` and `runner_utils` live under `orchestration`).
   `tests/test_upstream_tfx.py` fails when that function's source changes.
2. `mark_pushed` / `mark_not_pushed` and the `PUSHED_*` keys: the AtomicPusher replaces
   the Pusher executor's `Do` and records its outcome on the PushedModel artifact as TFX's
   does, with the executor's private `_MarkPushed` / `_MarkNotPushed` (what a TFX reader
   of that artifact expects is exactly what they write).
3. `replace_executor`: the Vertex/Kubeflow runner gives already-built components another
   executor (`kubeflow/parameters.py`), as TFX's cloud extensions do by subclassing a
   component with another `EXECUTOR_SPEC`; a built component keeps its executor spec in
   the `executor_spec` attribute `BaseComponent.__init__` sets.
4. `write_split_in_order`: TFX's `example_gen.write_split.WriteSplit` (the same files,
   names and compression) without its `Reshuffle`. On the local DirectRunner that
   Reshuffle holds every example of the split in memory and then writes them in the order
   they came, so it neither shuffles nor bounds memory; the Trainer shuffles its input
   (`trainer/train.py`), on every runner. The MovieLens ExampleGen writes its splits with
   it (docs/measured.md has the memory it saves).
5. `declares_beam_dependencies`: before each Beam component runs, TFX builds an sdist of
   the installed tfx for remote Beam workers unless a Beam flag says the workers' Python
   dependencies are taken care of (`tfx.utils.dependency_utils`, not a public API). The
   local runner sets one on the DirectRunner, which needs no package
   (`pipeline/local_runner.py`).
"""

import datetime
import os
from typing import Any, Optional, Type

import apache_beam as beam

from tfx.components.example_gen import write_split
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.compiler import constants
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import metadata
from tfx.orchestration.local import local_dag_runner, runner_utils
from tfx.orchestration.portable import launcher, runtime_parameter_utils
from tfx.proto.orchestration import pipeline_pb2
from tfx.types import artifact

# The Pusher's output properties, as TFX's Pusher executor writes them (private there).
PUSHED_KEY = pusher_executor._PUSHED_KEY  # pylint: disable=protected-access
PUSHED_DESTINATION_KEY = pusher_executor._PUSHED_DESTINATION_KEY  # pylint: disable=protected-access
PUSHED_VERSION_KEY = pusher_executor._PUSHED_VERSION_KEY  # pylint: disable=protected-access

# The Beam options by which TFX sees that remote workers get their Python dependencies.
BEAM_DEPENDENCY_OPTIONS = ("extra_packages", "setup_file", "requirements_file",
                           "worker_harness_container_image", "sdk_container_image")

# What TFX's LocalDagRunner logs around each node; the local runner logs the same lines.
LAUNCH_RECORD = "Component %s is running."
FINISH_RECORD = "Component %s is finished."
SKIP_RECORD = "Skipping component %s."


class NodeByNodeRunner(local_dag_runner.LocalDagRunner):
  """TFX's LocalDagRunner whose loop over the compiled nodes is `run_nodes`.

  `run(pipeline)` compiles the pipeline as TFX does and calls `run_with_ir`, which gives
  the run its id as TFX's does and hands the compiled pipeline to `run_nodes`. Subclasses
  launch each node with `launch`, in the compiled (topological) order or otherwise.
  """

  def run_with_ir(self, pipeline: pipeline_pb2.Pipeline,
                  run_options: Optional[pipeline_pb2.RunOptions] = None,
                  **kwargs: Any) -> None:
    if run_options:
      raise NotImplementedError(
          f"{type(self).__name__} runs whole pipelines; partial runs (run_options) need "
          "TFX's own tfx.orchestration.LocalDagRunner")
    runtime_parameter_utils.substitute_runtime_parameter(
        pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME:
                   datetime.datetime.now().isoformat()})
    self.run_nodes(pipeline)

  def run_nodes(self, pipeline: pipeline_pb2.Pipeline) -> None:
    """Launches the nodes of `pipeline` (compiled, with its run id)."""
    raise NotImplementedError


def is_skipped(node: pipeline_pb2.PipelineNode) -> bool:
  """Whether the compiler marked `node` to be skipped (TFX's loop does not launch it)."""
  return node.execution_options.HasField("skip")


def run_id(pipeline: pipeline_pb2.Pipeline) -> str:
  """The run id `NodeByNodeRunner.run_with_ir` gave the compiled pipeline."""
  return pipeline.runtime_spec.pipeline_run_id.field_value.string_value


def metadata_connection(pipeline: pipeline_pb2.Pipeline) -> metadata.Metadata:
  """A connection to the ML Metadata store of a compiled local pipeline (a context manager)."""
  deployment_config = runner_utils.extract_local_deployment_config(pipeline)
  return metadata.Metadata(getattr(
      deployment_config.metadata_connection_config,
      deployment_config.metadata_connection_config.WhichOneof("connection_config")))


def launch(pipeline: pipeline_pb2.Pipeline, node: pipeline_pb2.PipelineNode) -> None:
  """Launches one node of a compiled pipeline as TFX's LocalDagRunner does (same launcher,
  same ML Metadata records), in this process."""
  deployment_config = runner_utils.extract_local_deployment_config(pipeline)
  node_id = node.node_info.id
  launcher.Launcher(
      pipeline_node=node,
      mlmd_connection=metadata_connection(pipeline),
      pipeline_info=pipeline.pipeline_info,
      pipeline_runtime_spec=pipeline.runtime_spec,
      executor_spec=runner_utils.extract_executor_spec(deployment_config, node_id),
      custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id),
  ).launch()


def mark_pushed(executor: pusher_executor.Executor, model_push: artifact.Artifact,
                destination: str, version: str) -> None:
  """Records on the PushedModel artifact that the model was pushed, as TFX's Pusher does."""
  executor._MarkPushed(model_push, pushed_destination=destination,  # pylint: disable=protected-access
                       pushed_version=version)


def mark_not_pushed(executor: pusher_executor.Executor, model_push: artifact.Artifact) -> None:
  """Records on the PushedModel artifact that nothing was pushed, as TFX's Pusher does."""
  executor._MarkNotPushed(model_push)  # pylint: disable=protected-access


def replace_executor(component: base_component.BaseComponent, executor_class: Type,
                     expected_base: Type) -> None:
  """Runs `component` with `executor_class`, keeping its Beam arguments and flags.

  Raises:
    TypeError: the component's executor is not an `expected_base` (the graph changed in a
      way the caller does not know).
  """
  old = component.executor_spec
  if not (isinstance(old, executor_spec.ExecutorClassSpec)
          and issubclass(old.executor_class, expected_base)):
    raise TypeError(f"{component.id}: expected an executor derived from "
                    f"{expected_base.__module__}.{expected_base.__name__}, found {old!r}")
  if isinstance(old, executor_spec.BeamExecutorSpec):
    new = executor_spec.BeamExecutorSpec(executor_class)
    new.beam_pipeline_args = list(old.beam_pipeline_args)
  else:
    new = executor_spec.ExecutorClassSpec(executor_class)
  new.extra_flags = list(old.extra_flags)
  component.executor_spec = new


@beam.ptransform_fn
@beam.typehints.with_input_types(bytes)
def write_split_in_order(examples: beam.pvalue.PCollection,
                         split_uri: str) -> beam.pvalue.PDone:
  """Writes serialized examples to `split_uri` as TFX's WriteSplit does, in their order."""
  return examples | "Write" >> beam.io.WriteToTFRecord(
      os.path.join(split_uri, write_split.DEFAULT_FILE_NAME), file_name_suffix=".gz")


def declares_beam_dependencies(beam_args) -> bool:
  """Whether `beam_args` set an option by which TFX builds no sdist of itself for workers."""
  options = beam.options.pipeline_options.PipelineOptions(flags=list(beam_args))
  return any(options.get_all_options().get(name) for name in BEAM_DEPENDENCY_OPTIONS)
