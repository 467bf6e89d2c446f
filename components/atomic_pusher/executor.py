"""Pusher executor whose pushed version directory is either complete or absent.

TFX's Pusher copies the model file by file straight into `<base>/<version>/` (saved_model.pb
last). A process that dies mid-copy leaves a half-written version directory that a model
server or `tf.saved_model.load` may pick up as the newest version. This executor copies into
a hidden staging directory beside the versions and renames it into place: on a local
filesystem the rename is atomic, so a version directory appears only when it is complete.
Staging directories left by a push that died are removed by the next push.

Blessing checks (the Evaluator's `model_blessing` and, when given, an `infra_blessing`), the
archive copy to the PushedModel artifact and its `pushed`,
`pushed_destination` and `pushed_version` properties are TFX's (the last through
`uet_upstream.tfx`). Each version directory also
carries `assets.extra/uet_push.json`: which Examples the model was trained on, so that the
next run's `ProductionModel` can tell the model in production (components/decisions.py).
When the infra blessing holds a model (TFX's `has_model`: the model with TF Serving warm-up
requests in `assets.extra/`, `components/serving_check`), that copy is pushed.
"""

import os
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, path_utils, proto_utils

from components import decisions, paths
from uet_upstream import tfx as upstream_tfx

# Model servers treat only integer-named subdirectories as versions; this prefix is not one.
STAGING_PREFIX = ".staging-"
SAVED_MODEL_FILE = "saved_model.pb"
# The push record inside a version directory (assets.extra is where model servers allow
# extra files).
PUSH_RECORD = os.path.join("assets.extra", "uet_push.json")
# The AtomicPusher's input: the Examples the model was trained on.
EXAMPLES_KEY = "examples"


def versions(base_directory: str) -> List[str]:
  """The version directories under `base_directory` (integer names), oldest first."""
  if not fileio.isdir(base_directory):
    return []
  names = [n.rstrip("/") for n in fileio.listdir(base_directory)]
  return sorted((n for n in names if n.isdigit()), key=int)


def remove_stale_staging(base_directory: str) -> List[str]:
  """Deletes staging directories of pushes that died; returns their names.

  Only one push writes a serving directory at a time (the local runner holds the output
  directory's lock), so any staging directory found before a push is a leftover.
  """
  removed = []
  if fileio.isdir(base_directory):
    for name in fileio.listdir(base_directory):
      name = name.rstrip("/")
      if name.startswith(STAGING_PREFIX):
        fileio.rmtree(os.path.join(base_directory, name))
        removed.append(name)
  if removed:
    logging.warning("Removed %d incomplete push(es) left in %s: %s", len(removed),
                    base_directory, removed)
  return removed


def next_version(base_directory: str, now: int) -> str:
  """A version newer than every existing one: the UNIX time, or one past the newest."""
  existing = versions(base_directory)
  newest = int(existing[-1]) if existing else -1
  return str(max(now, newest + 1))


def read_push_record(version_dir: str) -> Optional[Dict[str, Any]]:
  """The push record of a pushed version directory (None: pushed by another tool)."""
  return decisions.read_json(os.path.join(version_dir, PUSH_RECORD))


def push_model(model_path: str, base_directory: str,
               record: Optional[Dict[str, Any]] = None) -> Tuple[str, str]:
  """Copies the SavedModel at `model_path` to a new version under `base_directory`.

  Args:
    model_path: the serving model directory (a SavedModel).
    base_directory: the serving directory holding one subdirectory per version.
    record: written to `PUSH_RECORD` in the version directory, with `version` added.

  Returns:
    (path of the new version directory, version).
  """
  fileio.makedirs(base_directory)
  remove_stale_staging(base_directory)
  version = next_version(base_directory, int(time.time()))
  serving_path = os.path.join(base_directory, version)
  if not paths.is_local(base_directory):
    # Object stores cannot rename a directory atomically; fall back to TFX's order
    # (saved_model.pb last, the file model servers wait for).
    _copy_saved_model(model_path, serving_path, record, version)
    return serving_path, version
  staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
  try:
    _copy_saved_model(model_path, staging, record, version)
    fileio.rename(staging, serving_path)
  except BaseException:
    if fileio.exists(staging):
      fileio.rmtree(staging)
    raise
  return serving_path, version


def _copy_saved_model(model_path: str, destination: str,
                      record: Optional[Dict[str, Any]], version: str) -> None:
  io_utils.copy_dir(model_path, destination, deny_regex_patterns=[r"saved_model\.pb"])
  if record is not None:
    decisions.write_json(os.path.join(destination, PUSH_RECORD),
                         dict(record, version=version))
  source = os.path.join(model_path, SAVED_MODEL_FILE)
  if fileio.exists(source):
    io_utils.copy_file(source, os.path.join(destination, SAVED_MODEL_FILE))


INFRA_BLESSING_MODEL_FLAG = "has_model"


class Executor(pusher_executor.Executor):
  """TFX's Pusher executor with an all-or-nothing filesystem push."""

  def GetModelPath(self, input_dict: Dict[str, List[types.Artifact]]) -> str:
    """The infra blessing's model (with warm-up requests) if it holds one, else the model.

    TFX's Pusher pushes the infra blessing's model only when given no `model`; this one
    also reads `model` (the push record names it).
    """
    infra = input_dict.get(standard_component_specs.INFRA_BLESSING_KEY)
    if infra:
      blessing = artifact_utils.get_single_instance(infra)
      if blessing.get_int_custom_property(INFRA_BLESSING_MODEL_FLAG) == 1:
        return path_utils.stamped_model_path(blessing.uri)
    return super().GetModelPath(input_dict)

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Pushes the model to `push_destination.filesystem` if it is blessed.

    Args:
      input_dict: `model`, `model_blessing` and optionally `infra_blessing` (TFX's Pusher
        inputs), and `examples`: what the model was trained on (recorded with the push).
      output_dict: `pushed_model`: archive copy and push properties.
      exec_properties: `push_destination` (JSON PushDestination; filesystem only).
    """
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      upstream_tfx.mark_not_pushed(self, model_push)
      return
    model_path = self.GetModelPath(input_dict)
    push_destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], push_destination)
    kind = push_destination.WhichOneof("destination")
    if kind != "filesystem":
      raise NotImplementedError(f"AtomicPusher pushes to a filesystem, not {kind!r}")
    fs_config = push_destination.filesystem
    if fs_config.versioning not in (pusher_pb2.Versioning.AUTO,
                                    pusher_pb2.Versioning.UNIX_TIMESTAMP):
      raise NotImplementedError(f"invalid versioning {fs_config.versioning}")
    model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
    trained_on = input_dict.get(EXAMPLES_KEY, [])
    record = {"model_uri": model.uri,
              "trained_on": sorted(a.uri for a in trained_on),
              "spans": sorted({int(a.span) for a in trained_on}),
              "pushed_at": int(time.time())}
    serving_path, version = push_model(model_path, fs_config.base_directory, record)
    logging.info("Model written to serving path %s.", serving_path)
    io_utils.copy_dir(model_path, model_push.uri)
    upstream_tfx.mark_pushed(self, model_push, serving_path, version)
    logging.info("Model pushed to %s.", model_push.uri)
