"""The AtomicPusher: a pushed version directory is complete or absent, even if the push fails
or the process is killed mid-copy; its PushedModel properties point at the version."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.atomic_pusher import executor as pusher
from tests.conftest import REPO

FILES = {
    "saved_model.pb": b"graph" * 100,
    "fingerprint.pb": b"fp",
    "variables/variables.index": b"index" * 10,
    "variables/variables.data-00000-of-00001": b"\x00" * 4096,
    "assets/vocabulary.txt": b"a\nb\n",
}


def _model(directory) -> str:
  for name, data in FILES.items():
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
  return str(directory)


def _tree(directory) -> dict:
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


def test_push_copies_the_complete_model_into_a_new_version(tmp_path):
  model = _model(tmp_path / "model")
  base = str(tmp_path / "serving")
  path, version = pusher.push_model(model, base)
  assert path == os.path.join(base, version) and version.isdigit()
  assert os.listdir(base) == [version]            # no staging directory left behind
  assert _tree(path) == FILES


def test_versions_only_increase(tmp_path):
  model = _model(tmp_path / "model")
  base = tmp_path / "serving"
  (base / "9999999999").mkdir(parents=True)       # a version from a clock in the future
  _, version = pusher.push_model(model, str(base))
  assert version == "10000000000"
  assert pusher.next_version(str(base), now=5) == "10000000001"


def test_a_failure_mid_copy_leaves_no_version_directory(tmp_path, monkeypatch):
  model = _model(tmp_path / "model")
  base = tmp_path / "serving"
  copied = []
  real_copy = fileio.copy

  def failing_copy(src, dst, overwrite=False):
    if len(copied) == 2:
      raise OSError("disk full")
    copied.append(dst)
    real_copy(src, dst, overwrite)

  monkeypatch.setattr(fileio, "copy", failing_copy)
  with pytest.raises(OSError, match="disk full"):
    pusher.push_model(model, str(base))
  assert len(copied) == 2                          # the copy really was interrupted
  assert pusher.versions(str(base)) == []
  assert os.listdir(base) == []                    # the staging copy was removed too


KILLED_PUSH = textwrap.dedent("""
    import sys, time
    from tfx.dsl.io import fileio
    from components.atomic_pusher import executor as pusher
    real_copy, copied = fileio.copy, []
    def slow_copy(src, dst, overwrite=False):
      real_copy(src, dst, overwrite)
      copied.append(dst)
      if len(copied) == 2:
        print("COPYING", flush=True)
        time.sleep(600)
    fileio.copy = slow_copy
    pusher.push_model(sys.argv[1], sys.argv[2])
""")


def test_a_push_killed_mid_copy_leaves_no_version_and_the_next_push_cleans_up(tmp_path):
  model = _model(tmp_path / "model")
  base = str(tmp_path / "serving")
  proc = subprocess.Popen([sys.executable, "-c", KILLED_PUSH, model, base], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  try:
    assert proc.stdout.readline().strip() == "COPYING"
    proc.send_signal(signal.SIGKILL)             # no `finally`, no cleanup: a real crash
  finally:
    proc.kill()
    proc.wait()
  leftovers = os.listdir(base)
  assert pusher.versions(base) == []
  assert len(leftovers) == 1 and leftovers[0].startswith(pusher.STAGING_PREFIX)
  path, version = pusher.push_model(model, base)
  assert os.listdir(base) == [version]
  assert _tree(path) == FILES


def _do(tmp_path, blessed: int):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / "trainer_model")
  _model(tmp_path / "trainer_model" / "Format-Serving")
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  blessing.set_int_custom_property("blessed", blessed)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed_model")
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(
          base_directory=str(tmp_path / "serving")))
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "examples")
  examples.span = 3
  pusher.Executor().Do(
      {standard_component_specs.MODEL_KEY: [model],
       standard_component_specs.MODEL_BLESSING_KEY: [blessing],
       pusher.EXAMPLES_KEY: [examples]},
      {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
      {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)})
  return pushed


def test_executor_marks_the_pushed_destination(tmp_path):
  pushed = _do(tmp_path, blessed=1)
  destination = pushed.get_string_custom_property("pushed_destination")
  version = pushed.get_string_custom_property("pushed_version")
  assert pushed.get_int_custom_property("pushed") == 1
  assert destination == str(tmp_path / "serving" / version)
  assert os.listdir(tmp_path / "serving") == [version]
  # The version holds the model and the push record: what it was trained on (the next
  # run's ProductionModel reads it).
  record = _tree(destination).pop(pusher.PUSH_RECORD)
  assert json.loads(record)["trained_on"] == [str(tmp_path / "examples")]
  assert pusher.read_push_record(destination)["spans"] == [3]
  assert pusher.read_push_record(destination)["version"] == version
  assert {k: v for k, v in _tree(destination).items() if k != pusher.PUSH_RECORD} == FILES
  assert _tree(pushed.uri) == FILES               # TFX's archive copy, as before


def test_executor_does_not_push_an_unblessed_model(tmp_path):
  pushed = _do(tmp_path, blessed=0)
  assert pushed.get_int_custom_property("pushed") == 0
  assert not os.path.exists(tmp_path / "serving")


def test_the_pipeline_pushes_with_the_atomic_pusher():
  from components.atomic_pusher.component import AtomicPusher
  from pipeline import config as config_lib, ids, pipeline as pipeline_lib
  config = config_lib.from_mapping({}, data_dir="/data", output_dir="/out")
  nodes = {n.id: n for n in pipeline_lib.create_pipeline(config).components}
  node = nodes[ids.PUSHER]
  assert isinstance(node, AtomicPusher)
  assert node.executor_spec.executor_class is pusher.Executor
  destination = json.loads(node.exec_properties["push_destination"])
  assert destination["filesystem"]["base_directory"] == config.serving_dir


def _infra_blessing(tmp_path, blessed: int, with_model: bool):
  blessing = standard_artifacts.InfraBlessing()
  blessing.uri = str(tmp_path / "infra_blessing")
  blessing.set_int_custom_property("blessed", blessed)
  if with_model:
    stamped = tmp_path / "infra_blessing" / "stamped_model"
    _model(stamped)
    (stamped / "assets.extra").mkdir()
    (stamped / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"requests")
    blessing.set_int_custom_property("has_model", 1)
  return blessing


def _push_with_infra_blessing(tmp_path, infra_blessing):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / "trainer_model")
  _model(tmp_path / "trainer_model" / "Format-Serving")
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  blessing.set_int_custom_property("blessed", 1)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed_model")
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(
          base_directory=str(tmp_path / "serving")))
  pusher.Executor().Do(
      {standard_component_specs.MODEL_KEY: [model],
       standard_component_specs.MODEL_BLESSING_KEY: [blessing],
       standard_component_specs.INFRA_BLESSING_KEY: [infra_blessing]},
      {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
      {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)})
  return pushed


def test_executor_pushes_the_infra_blessings_model_with_its_warmup_requests(tmp_path):
  pushed = _push_with_infra_blessing(tmp_path, _infra_blessing(tmp_path, 1, with_model=True))
  destination = pushed.get_string_custom_property("pushed_destination")
  tree = _tree(destination)
  assert tree.pop("assets.extra/tf_serving_warmup_requests") == b"requests"
  assert json.loads(tree.pop(pusher.PUSH_RECORD))["model_uri"] == str(tmp_path / "trainer_model")
  assert tree == FILES


def test_executor_does_not_push_without_the_infra_blessing(tmp_path):
  pushed = _push_with_infra_blessing(tmp_path, _infra_blessing(tmp_path, 0, with_model=False))
  assert pushed.get_int_custom_property("pushed") == 0
  assert not os.path.exists(tmp_path / "serving")
