"""The Transform `preprocessing_fn`: the dataset spec's features as strings, and its label.

Runs inside TFT's Beam analysis and, through the exported `TransformFeaturesLayer`, inside
the served model, so training and serving share this one definition. Every feature becomes
strings the embeddings hash:

  * id and categorical: the value itself;
  * numeric: the name of its bucket (a declared lower bound, or the index of a quantile
    bucket whose boundaries Transform computes from the training window);
  * multivalent: the values (a sparse [batch, None] tensor; the model averages their
    embeddings).

A missing value (a feature absent from the raw example) becomes the spec's treatment:
`features.MISSING_TOKEN` (a value, or for a numeric feature a bucket, of its own) or the
declared default. `missing: error` features are never absent: ingestion rejects such rows
and the schema requires them.

`transform_columns` is the analyzer-free part, so tools can apply the very same
definitions in memory with boundaries of their own (`quantile_boundaries`).
"""

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from dataspec import spec as spec_lib
from trainer import admission, features

# Relative error of Transform's approximate quantiles (tft.quantiles' epsilon).
QUANTILE_EPSILON = 0.01


def _fill(x: Any, default: Any) -> Tuple[tf.Tensor, tf.Tensor]:
  """A single-valued raw feature as ([batch] values, [batch] present), missing -> `default`.

  Dense raw features ([batch] or [batch, 1]: the schema requires them) are present in every
  row; sparse ones ([batch, None], at most one value per row) are missing where a row has
  no value.
  """
  if not isinstance(x, tf.SparseTensor):
    x = tf.reshape(x, [-1])
    return x, tf.ones_like(x, dtype=tf.bool)
  shape = [x.dense_shape[0], 1]
  values = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, shape),
                              default_value=tf.cast(default, x.dtype))
  present = tf.sparse.to_dense(tf.SparseTensor(x.indices, tf.ones_like(x.values, tf.bool),
                                               shape), default_value=False)
  return tf.reshape(values, [-1]), tf.reshape(present, [-1])


def _strings(x: tf.Tensor) -> tf.Tensor:
  return x if x.dtype == tf.string else tf.strings.as_string(x)


def _categorical(feature: spec_lib.Feature, x: Any) -> tf.Tensor:
  """[batch] strings: the value, or the missing treatment."""
  fill = features.MISSING_TOKEN if feature.missing == "token" else str(feature.default or "")
  if isinstance(x, tf.SparseTensor) and x.dtype != tf.string:
    x = tf.SparseTensor(x.indices, _strings(x.values), x.dense_shape)
  values, _ = _fill(x, fill)
  return _strings(values)


def _multivalent(feature: spec_lib.Feature, x: Any) -> tf.SparseTensor:
  """[batch, None] strings: the values, or one missing value for a row without any."""
  if not isinstance(x, tf.SparseTensor):
    x = tf.sparse.from_dense(tf.reshape(_strings(x), [-1, 1]))
  ragged = tf.RaggedTensor.from_sparse(tf.SparseTensor(x.indices, _strings(x.values),
                                                       x.dense_shape))
  empty = tf.equal(ragged.row_lengths(), 0)
  fill = features.MISSING_TOKEN if feature.missing == "token" else str(feature.default or "")
  filler = tf.RaggedTensor.from_row_lengths(
      tf.fill([tf.reduce_sum(tf.cast(empty, tf.int64))], fill), tf.cast(empty, tf.int64))
  return tf.concat([ragged, filler], axis=1).to_sparse()


def _numeric(feature: spec_lib.Feature, x: Any) -> Tuple[tf.Tensor, tf.Tensor]:
  """([batch] float32 values with defaults filled in, [batch] present)."""
  default = feature.default if feature.missing == "default" else 0
  values, present = _fill(x, default)
  values = tf.cast(values, tf.float32)
  if feature.missing == "default":
    present = tf.ones_like(present)  # the default is a value like any other
  return values, present


def bucket_names(feature: spec_lib.Feature, values: tf.Tensor, present: tf.Tensor,
                 boundaries: Optional[Any] = None) -> tf.Tensor:
  """[batch] bucket names of a numeric feature.

  With `lower_bounds`: the largest lower bound <= the value, as the spec writes it (a value
  below the first bound gets the first). With quantiles: the index of the bucket among
  `boundaries` (a value equal to a boundary goes to the upper bucket). A missing value
  (`present` false) is `MISSING_TOKEN`.
  """
  if feature.lower_bounds:
    bounds = tf.constant(feature.lower_bounds[1:], tf.float32)
    index = tf.searchsorted(bounds, values, side="right")
    names = tf.gather(tf.constant(feature.bucket_names), index)
  else:
    bounds = tf.reshape(tf.cast(boundaries, tf.float32), [-1])
    index = tf.searchsorted(bounds, values, side="right")
    names = tf.strings.as_string(index)
  if feature.missing != "token":
    return names
  return tf.where(present, names, features.MISSING_TOKEN)


def label(label_spec: spec_lib.Label, x: Any) -> tf.Tensor:
  """[batch] int64 0/1 by the spec's label rule (ingestion has dropped the rows the rule
  cannot map)."""
  values, _ = _fill(x, "" if x.dtype == tf.string else 0)
  if label_spec.positive_if:
    op, threshold = label_spec.positive_if
    v = tf.cast(values, tf.float32)
    t = tf.constant(threshold, tf.float32)
    result = {">=": v >= t, ">": v > t, "<=": v <= t, "<": v < t, "==": tf.equal(v, t),
              "!=": tf.not_equal(v, t)}[op]
  elif label_spec.binary:
    if values.dtype == tf.string:
      result = tf.reduce_any(tf.equal(tf.strings.lower(values)[:, tf.newaxis],
                                      tf.constant(["1", "true"])[tf.newaxis, :]), axis=1)
    else:
      result = tf.not_equal(values, 0)
  else:
    positives = tf.constant(list(label_spec.positive_values))
    result = tf.reduce_any(tf.equal(_strings(values)[:, tf.newaxis],
                                    positives[tf.newaxis, :]), axis=1)
  return tf.cast(result, tf.int64)


def transform_columns(inputs: Mapping[str, Any], spec: spec_lib.DatasetSpec,
                      boundaries: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """The model features from raw features, without analyzers (usable anywhere).

  Args:
    inputs: raw column -> tensor (dense [batch] / [batch, 1], or sparse [batch, None]).
    spec: the dataset spec.
    boundaries: numeric features with quantiles: feature -> the bucket boundaries (the
      Transform analyzer's output, or `quantile_boundaries` in memory).

  Returns:
    feature -> [batch] strings (a [batch, None] SparseTensor for multivalent features).
  """
  out: Dict[str, Any] = {}
  for f in spec.features:
    x = inputs[f.column]
    if f.kind == "multivalent":
      out[f.name] = _multivalent(f, x)
    elif f.kind == "numeric":
      values, present = _numeric(f, x)
      out[f.name] = bucket_names(f, values, present, (boundaries or {}).get(f.name))
    else:
      out[f.name] = _categorical(f, x)
  return out


def quantile_boundaries(spec: spec_lib.DatasetSpec,
                        columns: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """In memory: each quantile-bucketized feature's boundaries over `columns` (raw column ->
  values, NaN or None where missing), for `transform_columns` outside Transform."""
  out = {}
  for f in spec.features_of_kind("numeric"):
    if f.lower_bounds:
      continue
    values = np.asarray([np.nan if v is None else v for v in columns[f.column]], np.float64)
    if f.missing == "default":
      values = np.where(np.isnan(values), float(f.default), values)
    values = values[~np.isnan(values)]
    q = np.linspace(0, 1, f.quantiles + 1)[1:-1]
    out[f.name] = np.unique(np.quantile(values, q)).astype(np.float32) if len(values) \
        else np.zeros([0], np.float32)
  return out


def preprocessing_fn(inputs: Mapping[str, Any],
                     custom_config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """tf.Transform callback.

  Args:
    inputs: raw features (the raw schema's columns).
    custom_config: `features.DATASET_KEY`: the dataset spec (JSON); `VOCABULARIES_KEY`:
      true to write a vocabulary per feature (only the collisionless reference reads
      them). The pipeline also puts a fingerprint of this package's code in it, so that a
      code change invalidates Transform's cache.

  Returns:
    The model features (`transform_columns`), `<feature>_admitted` (int64 0/1: the id
    passed the admission filter of the analyzed data, see `trainer/admission.py`) for the
    spec's id features, the binary `label` (when the raw label is present: not in serving
    requests), and, when asked for, a vocabulary per feature written as a Transform asset.
  """
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  spec = features.spec_from_custom_config(custom_config)
  boundaries = {}
  for f in spec.features_of_kind("numeric"):
    if not f.lower_bounds:
      values, present = _numeric(f, inputs[f.column])
      # Boundaries of the present values only: a missing value has a bucket of its own.
      boundaries[f.name] = tft.quantiles(
          values, num_buckets=f.quantiles, epsilon=QUANTILE_EPSILON,
          weights=tf.cast(present, tf.float32), name=f"{f.name}_quantiles")
  outputs = transform_columns(inputs, spec, boundaries)
  if (custom_config or {}).get(features.VOCABULARIES_KEY):
    for f in spec.features:
      # Nothing in the transformed data depends on it; only the collisionless model reads it.
      values = outputs[f.name]
      tft.vocabulary(values.values if isinstance(values, tf.SparseTensor) else values,
                     vocab_filename=features.vocabulary_name(f.name))
  # The filters are an analyzer output: a constant of the Transform graph, so the served
  # model decides admission with the very bits its training data was flagged with. One
  # analyzer and one lookup for all the id features.
  ids = spec.id_features
  if ids:
    packed = admission.filter_analyzer(outputs, ids)
    for name, flag in admission.admitted_flags(outputs, packed, ids).items():
      outputs[admission.admitted_name(name)] = flag
  if spec.label.column in inputs:
    outputs[features.LABEL] = label(spec.label, inputs[spec.label.column])
  return outputs


def transformed_feature_names(spec: spec_lib.DatasetSpec,
                              with_label: bool = True) -> Sequence[str]:
  """The names Transform outputs for `spec` (features, admission flags, label)."""
  names = list(spec.feature_names)
  names += [admission.admitted_name(f) for f in spec.id_features]
  return names + ([features.LABEL] if with_label else [])
