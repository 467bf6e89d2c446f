"""The exported SavedModel scores raw tf.Examples as the trained Keras model scores them.

Real MovieLens rows go through a real tf.Transform run; the exported `serving_default`
(parse -> Transform graph -> model, traced without AutoGraph) must give the probabilities
the in-memory model gives for the same rows' transformed features, and `transform_features`
must give the label and the slice features Transform gives.
"""

import os

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import metadata_io, schema_utils
from tfx.utils import io_utils

from schema import SCHEMA_FILE
from tests import runs
from trainer import export, features, model as model_lib, preprocessing
from tests.specs import FEATURES, resolved

NUM_ROWS = 200


def test_serving_signature_matches_the_keras_model_on_real_rows(tmp_path, ml100k):
  ratings, users = str(ml100k / "u.data"), str(ml100k / "u.user")
  serialized = [e.SerializeToString() for e in runs.raw_examples(ratings, users, NUM_ROWS)]
  feature_spec = schema_utils.schema_as_feature_spec(
      io_utils.SchemaReader().read(SCHEMA_FILE)).feature_spec
  metadata = tft.DatasetMetadata.from_feature_spec(feature_spec)
  parsed = tf.io.parse_example(serialized, feature_spec)
  raw_rows = [{k: parsed[k][i].numpy().reshape(-1).tolist() for k in parsed}
              for i in range(len(serialized))]
  with beam.Pipeline() as p, tft_beam.Context(temp_dir=str(tmp_path / "tft-tmp")):
    raw = p | beam.Create(raw_rows)
    _, transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
        preprocessing.preprocessing_fn, output_record_batches=False)
    _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "transform"))
  # The raw schema beside the graph, as TFX's Transform writes it (`raw_feature_spec`).
  metadata_io.write_metadata(
      metadata, str(tmp_path / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR))
  tf_transform_output = tft.TFTransformOutput(str(tmp_path / "transform"))

  config = resolved()
  tf.keras.utils.set_random_seed(7)
  model = model_lib.build_model(config, model_lib.embedding_spec(config))
  transformed = tf_transform_output.transform_raw_features(parsed)
  inputs = {k: tf.reshape(transformed[k], [-1]) for k in model.input_names_and_dtypes}
  expected = tf.reshape(model(inputs), [-1]).numpy()

  export_dir = os.path.join(tmp_path, "model")
  export.export_serving_model(model, tf_transform_output, export_dir)
  loaded = tf.saved_model.load(export_dir)

  requests = tf.constant(runs.serving_requests(ratings, users, NUM_ROWS))  # no label
  served = loaded.signatures["serving_default"](examples=requests)["probability"].numpy()
  assert served.shape == (NUM_ROWS,)
  assert len(set(np.round(served, 6))) > 1  # the rows do not all score alike
  np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)

  # What the Evaluator reads: the label and the features it slices by, as Transform has them.
  served_features = loaded.signatures["transform_features"](examples=tf.constant(serialized))
  assert set(served_features) == {features.LABEL, *features.SLICE_FEATURES}
  for name in served_features:
    np.testing.assert_array_equal(tf.reshape(served_features[name], [-1]).numpy(),
                                  tf.reshape(transformed[name], [-1]).numpy())
  assert set(served_features[features.LABEL].numpy().reshape(-1)) == {0, 1}
