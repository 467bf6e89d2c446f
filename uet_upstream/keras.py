"""Keras 2 (tf-keras): the objects a model's checkpoint holds, by name.

The warm start (`trainer/warm_start.py`) reads a SavedModel's weights into a new model
*without its optimizer*: the export tracks the optimizer too (Adam's moments, its step count
and learning rate, restored when Adam creates them at the first step), and reading it would
continue the old fit at the old rate instead of fine-tuning at the configured one. A
`tf.train.Checkpoint` of the model's checkpoint children minus `optimizer` is that root;
Keras lists those children only through the private `Trackable._trackable_children`, the
method TensorFlow's checkpointing itself calls.
"""

from typing import Dict

import tensorflow as tf


def checkpoint_children(model: tf.keras.Model) -> Dict[str, object]:
  """name -> object of what a checkpoint of `model` saves under it (layers, optimizer, ...)."""
  return dict(model._trackable_children(save_type="checkpoint"))  # pylint: disable=protected-access
