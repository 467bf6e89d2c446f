"""The exported SavedModel scores raw tf.Examples as the trained Keras model scores them.

Rows go through a real tf.Transform run; the exported `serving_default` (parse -> Transform
graph -> model, traced without AutoGraph) must give the probabilities the in-memory model
gives for the same rows' transformed features, and `transform_features` must give the label
and the slice features Transform gives. On real MovieLens rows, and on a spec with every
feature kind (missing values, a multivalent feature) whose requests lack some features.
"""

import os

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import metadata_io, schema_utils

from dataspec import schema as schema_lib
from dataspec import spec as spec_lib
from tests import runs
from tests.specs import MOVIELENS, resolved
from trainer import export, features, model as model_lib, preprocessing

NUM_ROWS = 200


def _transform(tmp_path, spec, serialized, schema):
  """A real tf.Transform run of `spec`'s preprocessing_fn over `serialized` raw examples."""
  feature_spec = schema_utils.schema_as_feature_spec(schema).feature_spec
  metadata = tft.DatasetMetadata.from_feature_spec(feature_spec)
  parsed = tf.io.parse_example(serialized, feature_spec)

  def row(i):
    out = {}
    for k, v in parsed.items():
      if isinstance(v, tf.SparseTensor):
        out[k] = tf.sparse.to_dense(tf.sparse.slice(v, [i, 0], [1, v.dense_shape[1]])
                                    ).numpy().reshape(-1).tolist()
      else:
        out[k] = v[i].numpy().reshape(-1).tolist()
    return out

  raw_rows = [row(i) for i in range(len(serialized))]
  fn = lambda inputs: preprocessing.preprocessing_fn(  # noqa: E731
      inputs, {features.DATASET_KEY: spec.to_json()})
  with beam.Pipeline() as p, tft_beam.Context(temp_dir=str(tmp_path / "tft-tmp")):
    raw = p | beam.Create(raw_rows)
    _, transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
        fn, output_record_batches=False)
    _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "transform"))
  # The raw schema beside the graph, as TFX's Transform writes it (`raw_feature_spec`).
  metadata_io.write_metadata(
      metadata, str(tmp_path / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR))
  return tft.TFTransformOutput(str(tmp_path / "transform")), parsed


def _check_export(tmp_path, spec, serialized, requests, schema, model_type="unified"):
  tf_transform_output, parsed = _transform(tmp_path, spec, serialized, schema)
  config = resolved(spec, model_type=model_type, layout="budget_rule",
                    embedding_budget=4_800)
  tf.keras.utils.set_random_seed(7)
  sparse = [f.name for f in spec.features_of_kind("multivalent")]
  model = model_lib.build_model(config, model_lib.embedding_spec(config),
                                sparse_features=sparse)
  transformed = tf_transform_output.transform_raw_features(parsed)
  inputs = {k: transformed[k] if isinstance(transformed[k], tf.SparseTensor)
            else tf.reshape(transformed[k], [-1]) for k in model.input_names_and_dtypes}
  # After training the Trainer fits the unseen-id defaults from every input, a sparse
  # (multivalent) one included; the export serves the fitted defaults.
  if config.admission_features:
    moved = model.fit_unseen_defaults(
        tf.data.Dataset.from_tensors((inputs, tf.zeros([len(serialized)]))))
    assert set(moved) == set(config.admission_features)
  expected = tf.reshape(model(inputs), [-1]).numpy()

  export_dir = os.path.join(tmp_path, "model")
  export.export_serving_model(model, tf_transform_output, export_dir, spec)
  loaded = tf.saved_model.load(export_dir)
  served = loaded.signatures["serving_default"](
      examples=tf.constant(requests))["probability"].numpy()
  assert served.shape == (len(requests),)
  assert len(set(np.round(served, 6))) > 1  # the rows do not all score alike
  np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)

  # What the Evaluator reads: the label and the features it slices by, as Transform has them.
  served_features = loaded.signatures["transform_features"](examples=tf.constant(serialized))
  assert set(served_features) == {features.LABEL, *spec.slices}
  for name in served_features:
    np.testing.assert_array_equal(tf.reshape(served_features[name], [-1]).numpy(),
                                  tf.reshape(transformed[name], [-1]).numpy())
  assert set(served_features[features.LABEL].numpy().reshape(-1)) == {0, 1}


def test_serving_signature_matches_the_keras_model_on_movielens_rows(tmp_path, ml100k):
  ratings, users = str(ml100k / "u.data"), str(ml100k / "u.user")
  serialized = [e.SerializeToString() for e in runs.raw_examples(ratings, users, NUM_ROWS)]
  requests = runs.serving_requests(ratings, users, NUM_ROWS)  # no label
  from tfx.utils import io_utils  # pylint: disable=g-import-not-at-top
  _check_export(tmp_path, MOVIELENS, serialized, requests,
                io_utils.SchemaReader().read(MOVIELENS.schema))


KINDS = spec_lib.parse({
    "name": "kinds", "source": {"path": "e.csv"},
    "label": {"column": "event", "positive_values": ["click"]},
    "features": {
        "item": {"kind": "id", "role": "item", "missing": "error"},
        "device": {"kind": "id"},
        "country": {"kind": "categorical", "domain_size": 4},
        "price": {"kind": "numeric", "quantiles": 4},
        "tags": {"kind": "multivalent"},
    },
    "slices": ["country"]}, origin="kinds.yaml")


def _kinds_example(i: int, rng: np.random.Generator, label: bool = True) -> bytes:
  feature = {"item": [f"i{rng.integers(30)}".encode()]}
  if i % 5:
    feature["device"] = [f"d{rng.integers(8)}".encode()]
  if i % 7:
    feature["country"] = [rng.choice([b"FR", b"DE", b"US"])]
  if i % 3:
    feature["tags"] = [f"t{t}".encode() for t in rng.choice(12, rng.integers(1, 4),
                                                           replace=False)]
  event = b"click" if rng.random() < 0.4 else b"view"  # drawn either way: same rows after
  if label:
    feature["event"] = [event]
  example = tf.train.Example(features=tf.train.Features(feature={
      k: tf.train.Feature(bytes_list=tf.train.BytesList(value=v)) for k, v in feature.items()}))
  if i % 4:
    example.features.feature["price"].float_list.value.append(float(rng.normal(10, 3)))
  return example.SerializeToString()


def test_serving_signature_matches_the_keras_model_with_gaps_and_multivalent_features(
    tmp_path):
  rows = [_kinds_example(i, np.random.default_rng(i)) for i in range(NUM_ROWS)]
  requests = [_kinds_example(i, np.random.default_rng(i), label=False)
              for i in range(NUM_ROWS)]
  _check_export(tmp_path, KINDS, rows, requests, schema_lib.derive(KINDS))
