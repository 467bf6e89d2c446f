"""Warm start: continue training the model in production on the new window.

A hashed model's rows do not depend on the vocabulary (salts derive from feature names), so
the embedding tables and the MLP of the previous model stay meaningful when new users and
items appear: they are restored as they are, and training continues.

Each exported model carries its architecture in `assets.extra/uet_model.json`; a warm start
from a model whose architecture differs stops with a message listing the differences.
"""

import json
import os
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf

from trainer import embeddings, model as model_lib
from uet_upstream import keras as upstream_keras

MODEL_CONFIG_PATH = os.path.join("assets.extra", "uet_model.json")


class WarmStartError(ValueError):
  """The base model cannot seed this model; the message says what differs and what to do."""


def write_model_config(export_dir: str, model_config: Dict[str, Any]) -> None:
  """Stores the model's architecture (RankingModel.get_config()) beside the SavedModel."""
  path = os.path.join(export_dir, MODEL_CONFIG_PATH)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(model_config, f, indent=1, sort_keys=True)


def read_model_config(model_dir: str) -> Dict[str, Any]:
  path = os.path.join(model_dir, MODEL_CONFIG_PATH)
  if not tf.io.gfile.exists(path):
    raise WarmStartError(f"{model_dir} has no {MODEL_CONFIG_PATH}: it was not exported by "
                         "this trainer, so its tables cannot be matched; cold start instead "
                         "(warm_start: false)")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
  """Human-readable differences between two model configs (empty when compatible)."""
  diffs = []
  old_spec = embeddings.EmbeddingSpec.from_dict(old["spec"])
  new_spec = embeddings.EmbeddingSpec.from_dict(new["spec"])
  if old_spec.kind != new_spec.kind:
    diffs.append(f"embedding kind {old_spec.kind} -> {new_spec.kind}")
  old_tables = {n: (r, d) for n, r, d in old_spec.tables}
  new_tables = {n: (r, d) for n, r, d in new_spec.tables}
  for name in sorted(set(old_tables) | set(new_tables)):
    a, b = old_tables.get(name), new_tables.get(name)
    if a != b:
      fmt = lambda t: "absent" if t is None else f"{t[0]} rows x {t[1]}"  # noqa: E731
      diffs.append(f"table {name}: {fmt(a)} -> {fmt(b)}")
  if dict(old_spec.lookups) != dict(new_spec.lookups) or \
      old_spec.feature_names != new_spec.feature_names:
    diffs.append(f"features/chunks {dict(old_spec.lookups)} -> {dict(new_spec.lookups)}")
  old_admission = list(old.get("admission_features", []))
  new_admission = list(new.get("admission_features", []))
  if old_admission != new_admission:
    diffs.append(f"admission_features {old_admission} -> {new_admission}")
  if list(old["layer_sizes"]) != list(new["layer_sizes"]):
    diffs.append(f"layer_sizes {old['layer_sizes']} -> {new['layer_sizes']}")
  return diffs


def warm_start(model: tf.keras.Model, base_model_dir: str) -> Dict[str, Any]:
  """Loads every weight of the model exported at `base_model_dir` into `model`.

  Args:
    model: a RankingModel with the same architecture (built or not).
    base_model_dir: the serving directory of the previous model (Trainer's `base_model`).

  Returns:
    What was restored: {"from": dir, "variables": count}.

  Raises:
    WarmStartError: the architectures differ (listed), or the weights cannot be matched.
  """
  diffs = differences(read_model_config(base_model_dir), model.get_config())
  if diffs:
    raise WarmStartError(
        f"cannot warm-start from {base_model_dir}: the embedding/model configuration "
        f"changed ({'; '.join(diffs)}). Restore the previous configuration, or train from "
        "scratch once with warm_start: false; later runs warm-start from that model")
  # Create the variables, then read them from the SavedModel's checkpoint; the SavedModel's
  # root object is the model itself, so object paths match. The root here is the model
  # *without its optimizer*: reading the old optimizer would continue the old fit at the old
  # rate instead of fine-tuning at this config's (`warm_start_lr_scale`). Signatures and the
  # Transform layer are left unread.
  model(model.empty_inputs(1))
  weights = tf.train.Checkpoint(**{
      name: child for name, child in upstream_keras.checkpoint_children(model).items()
      if name != "optimizer"})
  status = tf.train.Checkpoint(root=weights).read(
      os.path.join(base_model_dir, "variables", "variables"))
  try:
    status.assert_existing_objects_matched()
  except AssertionError as e:
    raise WarmStartError(f"cannot warm-start from {base_model_dir}: its weights do not match "
                         f"this model's ({e}); train from scratch (warm_start: false)") from e
  status.expect_partial()
  return {"from": base_model_dir, "variables": len(model.variables)}


def grow_collisionless(source: tf.keras.Model, target: tf.keras.Model) -> Dict[str, int]:
  """Warm start of a collisionless model whose vocabularies grew by new ids.

  `target` is a collisionless RankingModel over a superset of `source`'s vocabularies (same
  features, dimensions and MLP). Every id `source` knows keeps its row; every new id starts
  from `source`'s out-of-vocabulary row (after `fit_unseen_defaults`, the mean of the rarer
  ids: what `source` would have given that id); the out-of-vocabulary row, the
  MLP and any default vectors are copied as they are. Only weights move: the optimizer
  starts afresh, as in `warm_start`.

  Returns:
    {"carried": ids whose rows were copied, "new": ids started from the default}.

  Raises:
    WarmStartError: the models are not collisionless or their features, dimensions or
      MLP differ, or `target` lacks an id `source` knows (a vocabulary that shrank).
  """
  old, new = source.spec, target.spec
  if old.kind != "collisionless" or new.kind != "collisionless":
    raise WarmStartError(f"grow_collisionless needs two collisionless models, got "
                         f"{old.kind} -> {new.kind}")
  if old.feature_names != new.feature_names or old.output_dims() != new.output_dims() or \
      list(source.layer_sizes) != list(target.layer_sizes):
    raise WarmStartError(f"the models differ beyond their vocabularies: features "
                         f"{old.output_dims()} -> {new.output_dims()}, layers "
                         f"{source.layer_sizes} -> {target.layer_sizes}")
  source(source.empty_inputs(1))
  target(target.empty_inputs(1))
  old_vocab, new_vocab = dict(old.vocabularies), dict(new.vocabularies)
  old_tables, new_tables = source.embedding.embedding_tables, target.embedding.embedding_tables
  carried = fresh = 0
  for f, lookups in new.lookups:
    table = lookups[0][0]
    default_row = model_lib.OUT_OF_VOCABULARY_ROW
    rows_of = {v: i + 1 for i, v in enumerate(old_vocab[f])}  # after the default row
    lost = set(rows_of) - set(new_vocab[f])
    if lost:
      raise WarmStartError(f"feature {f}: the new vocabulary lacks {len(lost)} ids the "
                           f"previous model knows (e.g. {sorted(lost)[:3]}); a grown "
                           "vocabulary keeps every known id")
    previous = old_tables[table].numpy()
    index = np.array([default_row] + [rows_of.get(v, default_row) for v in new_vocab[f]])
    new_tables[table].assign(previous[index])
    known = sum(v in rows_of for v in new_vocab[f])
    carried += known
    fresh += len(new_vocab[f]) - known
  others = lambda m: [v for layer in m.layers if layer is not m.embedding  # noqa: E731
                      for v in layer.weights]
  for a, b in zip(others(source), others(target), strict=True):
    b.assign(a)
  return {"carried": carried, "new": fresh}
