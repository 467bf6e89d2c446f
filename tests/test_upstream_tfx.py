"""uet_upstream/tfx.py: pinned to its TFX release; each TFX internal it relies on is where it
was, with the arguments it passes."""

import hashlib
import inspect

import apache_beam as beam
import pytest
import tensorflow as tf
import tfx.version
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.example_gen import write_split
from tfx.components.pusher import executor as pusher_executor
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import executor_spec
from tfx.orchestration.local import local_dag_runner, runner_utils
from tfx.orchestration.portable import launcher, runtime_parameter_utils
from tfx.types import standard_artifacts
from tfx.utils import dependency_utils

from pipeline import config, local_runner
from uet_upstream import pins, tfx as upstream_tfx

# sha256 of the source of TFX 1.16.0's LocalDagRunner.run_with_ir, the loop
# NodeByNodeRunner and `launch` reproduce.
RUN_WITH_IR_SHA256 = "ccbc5f643cc002e7727ef91b47afb320aebb4f110cda625f1ee87766fe1c40bf"
# ... and of its example_gen.write_split.WriteSplit, which write_split_in_order reproduces.
WRITE_SPLIT_SHA256 = "44609dccb300df4dc854a58bf6f7e30ad9eed03c35669eb02cf64d4970a90e81"


def _parameters(fn) -> list:
  return [p for p in inspect.signature(fn).parameters if p != "self"]


def test_tfx_is_the_release_the_touchpoints_were_checked_against():
  assert tfx.version.__version__ == pins.TFX, (
      f"TFX {tfx.version.__version__} is installed; uet_upstream/tfx.py and kfp.py were "
      f"checked against TFX {pins.TFX}. Re-check every touchpoint listed in their docstrings "
      "(tests/test_upstream_tfx.py and test_upstream_kfp.py say which moved), then update "
      "pins.TFX")


def test_the_local_loop_reproduced_is_tfxs_own():
  source = inspect.getsource(local_dag_runner.LocalDagRunner.run_with_ir)
  assert hashlib.sha256(source.encode()).hexdigest() == RUN_WITH_IR_SHA256, (
      "TFX's LocalDagRunner.run_with_ir changed: uet_upstream/tfx.py (NodeByNodeRunner, "
      "launch) reproduces its run id, its launcher and its log lines; compare them with the "
      "new source, then update RUN_WITH_IR_SHA256")


def test_the_split_writer_reproduced_is_tfxs_own():
  source = inspect.getsource(write_split.WriteSplit)
  assert hashlib.sha256(source.encode()).hexdigest() == WRITE_SPLIT_SHA256, (
      "TFX's example_gen WriteSplit changed: uet_upstream.tfx.write_split_in_order writes "
      "the files it wrote (names, TFRecord, gzip); compare, then update WRITE_SPLIT_SHA256")


def test_the_split_writer_writes_the_files_tfxs_readers_read(tmp_path):
  with beam.Pipeline() as p:
    _ = (p | beam.Create([b"a", b"b", b"c"])
         | upstream_tfx.write_split_in_order(str(tmp_path)))
  [written] = list(tmp_path.iterdir())
  assert written.name.startswith(write_split.DEFAULT_FILE_NAME) and written.suffix == ".gz"
  records = list(tf.data.TFRecordDataset(str(written), compression_type="GZIP"))
  assert [r.numpy() for r in records] == [b"a", b"b", b"c"]


def test_tfx_packages_nothing_for_the_local_runners_beam_arguments(monkeypatch):
  def no_sdist():
    raise AssertionError("TFX builds its sdist for these Beam arguments: "
                         "uet_upstream.tfx.BEAM_DEPENDENCY_OPTIONS no longer matches "
                         "tfx.utils.dependency_utils.make_beam_dependency_flags")
  monkeypatch.setattr(dependency_utils, "build_ephemeral_package", no_sdist)
  args = local_runner.local_beam_args(config.DEFAULT_BEAM_ARGS)
  assert upstream_tfx.declares_beam_dependencies(args)
  assert dependency_utils.make_beam_dependency_flags(args) == args
  for name in upstream_tfx.BEAM_DEPENDENCY_OPTIONS:
    assert f"'{name}'" in inspect.getsource(dependency_utils.make_beam_dependency_flags), name


def test_the_internals_launch_calls_take_the_arguments_it_passes():
  assert _parameters(launcher.Launcher.__init__)[:6] == [
      "pipeline_node", "mlmd_connection", "pipeline_info", "pipeline_runtime_spec",
      "executor_spec", "custom_driver_spec"], "tfx...portable.launcher.Launcher changed"
  for name in ("extract_local_deployment_config", "extract_executor_spec",
               "extract_custom_driver_spec"):
    assert callable(getattr(runner_utils, name, None)), f"runner_utils.{name} moved"
  assert _parameters(runtime_parameter_utils.substitute_runtime_parameter) == [
      "msg", "parameter_bindings"], "runtime_parameter_utils.substitute_runtime_parameter"


def test_the_pushers_private_records_are_what_the_readers_read():
  assert (upstream_tfx.PUSHED_KEY, upstream_tfx.PUSHED_DESTINATION_KEY,
          upstream_tfx.PUSHED_VERSION_KEY) == ("pushed", "pushed_destination", "pushed_version")
  assert _parameters(pusher_executor.Executor._MarkPushed) == [  # pylint: disable=protected-access
      "model_push", "pushed_destination", "pushed_version"], "Pusher._MarkPushed changed"
  executor = pusher_executor.Executor()
  pushed = standard_artifacts.PushedModel()
  upstream_tfx.mark_pushed(executor, pushed, "/serving/17", "17")
  assert pushed.get_int_custom_property(upstream_tfx.PUSHED_KEY) == 1
  assert pushed.get_string_custom_property(upstream_tfx.PUSHED_DESTINATION_KEY) == "/serving/17"
  assert pushed.get_string_custom_property(upstream_tfx.PUSHED_VERSION_KEY) == "17"
  not_pushed = standard_artifacts.PushedModel()
  upstream_tfx.mark_not_pushed(executor, not_pushed)
  assert not_pushed.get_int_custom_property(upstream_tfx.PUSHED_KEY) == 0


class _SwappedEvaluatorExecutor(evaluator_executor.Executor):
  """An Evaluator executor subclass (what the Kubeflow runner swaps in)."""


def _evaluator() -> evaluator_component.Evaluator:
  return evaluator_component.Evaluator(
      examples=types.Channel(type=standard_artifacts.Examples),
      model=types.Channel(type=standard_artifacts.Model),
  ).with_id("Evaluator").with_beam_pipeline_args(["--direct_num_workers=1"])


def test_a_swapped_executor_keeps_the_beam_arguments_and_flags():
  node = _evaluator()
  node.executor_spec.extra_flags = ["--flag"]
  upstream_tfx.replace_executor(node, _SwappedEvaluatorExecutor, evaluator_executor.Executor)
  assert isinstance(node.executor_spec, executor_spec.BeamExecutorSpec)
  assert node.executor_spec.executor_class is _SwappedEvaluatorExecutor
  assert node.executor_spec.beam_pipeline_args == ["--direct_num_workers=1"]
  assert node.executor_spec.extra_flags == ["--flag"]


def test_an_unexpected_executor_is_refused_by_name():
  with pytest.raises(TypeError, match="Evaluator: expected an executor derived from "
                     "tfx.components.trainer.executor.GenericExecutor"):
    upstream_tfx.replace_executor(_evaluator(), _SwappedEvaluatorExecutor,
                                  trainer_executor.GenericExecutor)
