"""The Transform `preprocessing_fn`: binary label and string-valued model features.

Runs inside TFT's Beam analysis and, through the exported `TransformFeaturesLayer`, inside
the served model, so training and serving share this one definition.
"""

from typing import Any, Dict, Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft

from trainer import admission, features


def _dense(x: Any) -> tf.Tensor:
  """A [batch] dense tensor from a [batch, 1] dense or sparse raw feature."""
  if isinstance(x, tf.SparseTensor):
    default = "" if x.dtype == tf.string else 0
    x = tf.sparse.to_dense(x, default_value=default)
  return tf.reshape(x, [-1])


def binarize_rating(rating: tf.Tensor) -> tf.Tensor:
  """1 for a rating >= 3 (a liked movie), else 0; int64."""
  return tf.cast(rating >= features.LABEL_THRESHOLD, tf.int64)


def age_bucket(age: tf.Tensor) -> tf.Tensor:
  """TFDS' `bucketized_user_age`: the lower bound of the age's bucket, as a string.

  Ages below 18 map to "1"; 18-24 to "18"; ...; 56 and over to "56".
  """
  bounds = tf.constant(features.AGE_BUCKET_LOWER_BOUNDS, dtype=tf.int64)
  # Index of the last bound <= age (ages below the first bound fall into the first bucket).
  index = tf.maximum(
      tf.searchsorted(bounds[1:], tf.cast(age, tf.int64), side="right"), 0)
  return tf.strings.as_string(tf.gather(bounds, index))


def transform_features(inputs: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
  """The model's six string features from raw features (no analyzers: usable anywhere)."""
  out = {}
  for name in (features.MOVIE_ID, features.USER_ID, features.USER_GENDER,
               features.USER_ZIP_CODE, features.USER_OCCUPATION):
    value = _dense(inputs[name])
    out[name] = value if value.dtype == tf.string else tf.strings.as_string(value)
  out[features.USER_AGE_BUCKET] = age_bucket(_dense(inputs[features.USER_AGE]))
  return out


def preprocessing_fn(inputs: Mapping[str, Any],
                     custom_config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """tf.Transform callback.

  Args:
    inputs: raw features (schema/schema.pbtxt).
    custom_config: `features.VOCABULARIES_KEY`: true to write the vocabularies (only the
      collisionless reference reads them). The pipeline also puts a fingerprint of this
      package's code in it, so that a code change invalidates Transform's cache.

  Returns:
    The six model features (strings), `<feature>_admitted` (int64 0/1: the id passed the
    admission filter of the analyzed data, see `trainer/admission.py`) for the features in
    `ADMISSION_FEATURES`, the binary `label` (when `rating` is present), and, when asked
    for, a vocabulary per feature written as a Transform asset.
  """
  outputs = transform_features(inputs)
  if (custom_config or {}).get(features.VOCABULARIES_KEY):
    for name in features.MODEL_FEATURES:
      # The hashed models need no vocabulary; the collisionless reference does. Nothing in
      # the transformed data depends on it. Not by default: at 1M ratings the six analyzers
      # were 29% of Transform's time (bench/scale.py's data, Transform alone).
      tft.vocabulary(outputs[name], vocab_filename=features.vocabulary_name(name))
  # The filters are an analyzer output: a constant of the Transform graph, so the served
  # model decides admission with the very bits its training data was flagged with. One
  # analyzer and one lookup for all the features: the served graph has one gather and a few
  # bit operations in all, not per feature.
  packed = admission.filter_analyzer(outputs, admission.ADMISSION_FEATURES)
  flags = admission.admitted_flags(outputs, packed, admission.ADMISSION_FEATURES)
  for name, flag in flags.items():
    outputs[admission.admitted_name(name)] = flag
  if features.RAW_LABEL in inputs:
    outputs[features.LABEL] = binarize_rating(_dense(inputs[features.RAW_LABEL]))
  return outputs
