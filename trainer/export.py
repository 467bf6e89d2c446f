"""Exports the trained model with the Transform graph inside (no train/serve skew).

Signatures (as in TFX's penguin example):
  * `serving_default`: serialized raw tf.Examples (without the label column) ->
    {"probability": [batch]}.
  * `transform_features`: serialized raw tf.Examples -> what the Evaluator reads of the
    transformed features (its `preprocessing_function_names`): the label and the dataset
    spec's slice features.
"""

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from dataspec import spec as spec_lib
from trainer import features


def make_signatures(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                    dataset: spec_lib.DatasetSpec
                    ) -> Dict[str, tf.types.experimental.ConcreteFunction]:
  """The two serving signatures of the exported SavedModel."""
  # Tracked as an attribute so the Transform graph and its assets are saved with the model.
  model.tft_layer = tf_transform_output.transform_features_layer()

  # Traced without AutoGraph, as the model's train/test steps are (model.py): nothing here or
  # in the model has data-dependent Python control flow, and AutoGraph would re-parse the
  # model, the embedding layer and Keras' call wrappers (docs/measured.md, "Trainer").
  # tests/test_export.py checks the served probabilities against the Keras model.
  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
               autograph=False)
  def serve_tf_examples(serialized):
    raw_spec = tf_transform_output.raw_feature_spec()
    raw_spec.pop(dataset.label.column, None)
    raw = tf.io.parse_example(serialized, raw_spec)
    transformed = model.tft_layer(raw)
    # The string features and, for a model with admission, Transform's admission flags,
    # as [batch] tensors (Transform's outputs already are: no reshape op per input then);
    # multivalent features stay [batch, None] sparse.
    inputs = {k: transformed[k] if isinstance(transformed[k], tf.SparseTensor)
              or transformed[k].shape.rank == 1 else tf.reshape(transformed[k], [-1])
              for k in model.input_names_and_dtypes}
    return {"probability": tf.reshape(model(inputs), [-1])}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
               autograph=False)
  def transform_features(serialized):
    raw = tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())
    transformed = model.tft_layer(raw)
    # Only what TFMA reads: it splits every output of this signature into per-example
    # values, per model, so each output more costs every Evaluator time.
    return {k: transformed[k] for k in (features.LABEL,) + tuple(dataset.slices)}

  return {"serving_default": serve_tf_examples.get_concrete_function(),
          "transform_features": transform_features.get_concrete_function()}


def export_serving_model(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                         export_dir: str, dataset: spec_lib.DatasetSpec) -> None:
  """Writes the SavedModel with both signatures to `export_dir`."""
  signatures = make_signatures(model, tf_transform_output, dataset)
  tf.saved_model.save(model, export_dir, signatures=signatures)
