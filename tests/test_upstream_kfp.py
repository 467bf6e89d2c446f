"""uet_upstream/kfp.py: what TFX's Kubeflow V2 compiler refuses and what it writes wrong are
still so (else a repair has become dead code and must go), and each repair does its job."""

import importlib.metadata

import pytest
from tfx import v1 as tfx
from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.common import resolver
from tfx.dsl.experimental.conditionals.conditional import Cond
from tfx.dsl.input_resolution.strategies import latest_artifact_strategy
from tfx.dsl.input_resolution.strategies.span_range_strategy import SpanRangeStrategy
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.types import standard_artifacts

from uet_upstream import kfp as upstream_kfp, pins


@component
def Gate(blessing: OutputArtifact[standard_artifacts.ModelBlessing],
         floor: Parameter[str] = "") -> None:
  del blessing, floor


@component
def Push(model_blessing: InputArtifact[standard_artifacts.ModelBlessing]) -> None:
  del model_blessing


FLOOR = tfx.dsl.experimental.RuntimeParameter(name="floor", ptype=str, default="0.7",
                                              description="the floor")


def _compile(components) -> dict:
  pipeline = tfx_pipeline.Pipeline(pipeline_name="p", pipeline_root="/tmp/root",
                                   components=components)
  runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
      config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
          default_image="image", use_pipeline_spec_2_1=True))
  return runner.run(pipeline, parameter_values={"floor": "0.7"}, write_out=False)


@pytest.fixture(scope="module")
def job():
  """The Pusher's shape: a task conditioned on a blessing it also takes as an input."""
  gate = Gate(floor=FLOOR).with_id("Gate")
  with Cond(gate.outputs["blessing"].future()[0].custom_property("blessed") == 1):
    push = Push(model_blessing=gate.outputs["blessing"]).with_id("Push")
  return _compile([gate, push])


def test_the_pipeline_spec_is_the_release_the_repairs_were_checked_against():
  version = importlib.metadata.version("kfp-pipeline-spec")
  assert version == pins.KFP_PIPELINE_SPEC, (
      f"kfp-pipeline-spec {version} is installed; uet_upstream/kfp.py edits specs of "
      f"{pins.KFP_PIPELINE_SPEC}. Re-run this file, then update pins.KFP_PIPELINE_SPEC")


def test_the_compiler_still_leaves_a_condition_key_its_task_does_not_have(job):
  push = job["pipelineSpec"]["root"]["dag"]["tasks"]["Push"]
  assert "_Gate.blessing" in push["triggerPolicy"]["condition"], (
      "TFX's compiler writes the condition differently now: re-check "
      "uet_upstream.kfp.repair_condition_keys")
  assert "_Gate.blessing" not in push["inputs"]["artifacts"], (
      "TFX's compiler now gives the task the input its condition reads: drop "
      "uet_upstream.kfp.repair_condition_keys")
  repaired = {"pipelineSpec": {"root": {"dag": {"tasks": {"Push": dict(
      push, triggerPolicy=dict(push["triggerPolicy"]))}}}}}
  assert upstream_kfp.repair_condition_keys(repaired) == [
      "Push: _Gate.blessing -> model_blessing"]


def test_a_condition_key_the_compiler_left_dangling_is_renamed_or_refused():
  task = {"inputs": {"artifacts": {"blessing_in": {"taskOutputArtifact": {
      "producerTask": "Gate", "outputArtifactKey": "blessing"}}}},
          "triggerPolicy": {"condition": "(inputs.artifacts['_Gate.blessing'].artifacts[0]"
                                         ".metadata['blessed'] == 1.0)"}}
  job = {"pipelineSpec": {"root": {"dag": {"tasks": {"Push": task}}}}}
  assert upstream_kfp.repair_condition_keys(job) == ["Push: _Gate.blessing -> blessing_in"]
  assert "inputs.artifacts['blessing_in']" in task["triggerPolicy"]["condition"]
  task["triggerPolicy"]["condition"] = "(inputs.artifacts['_Other.x'].uri == 'a')"
  with pytest.raises(upstream_kfp.SpecError,
                     match="Push: its condition reads input '_Other.x'"):
    upstream_kfp.repair_condition_keys(job)


def test_the_compiler_still_writes_defaults_and_root_outside_the_spec(job):
  spec = job["pipelineSpec"]
  assert "defaultValue" not in spec["root"]["inputDefinitions"]["parameters"]["floor"], (
      "TFX's compiler now declares parameter defaults in the spec: drop "
      "uet_upstream.kfp.add_parameter_defaults")
  assert "defaultPipelineRoot" not in spec, (
      "TFX's compiler now names the root in the spec: drop "
      "uet_upstream.kfp.set_default_pipeline_root")
  assert job["runtimeConfig"] == {"gcsOutputDirectory": "/tmp/root",
                                  "parameterValues": {"floor": "0.7"}}
  upstream_kfp.add_parameter_defaults(job, [FLOOR])
  upstream_kfp.set_default_pipeline_root(job, "/tmp/root")
  assert spec["root"]["inputDefinitions"]["parameters"]["floor"] == {
      "parameterType": "STRING", "defaultValue": "0.7", "isOptional": True,
      "description": "the floor"}
  assert spec["defaultPipelineRoot"] == "/tmp/root"


def _resolver(strategy_class) -> resolver.Resolver:
  return resolver.Resolver(
      strategy_class=strategy_class,
      examples=types.Channel(type=standard_artifacts.Examples)).with_id("Window")


def test_the_compiler_still_refuses_the_strategies_compilable_rejects():
  span_window = _resolver(SpanRangeStrategy)
  assert not upstream_kfp.compilable(span_window)
  with pytest.raises(TypeError):
    _compile([span_window])
  latest = _resolver(latest_artifact_strategy.LatestArtifactStrategy)
  assert upstream_kfp.compilable(latest)
  _compile([latest])
