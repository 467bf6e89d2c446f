"""The Transform preprocessing_fn: label rule, age buckets, and a real tf.Transform run."""

import functools
import glob
import os
import tempfile

import apache_beam as beam
from apache_beam.testing import util as beam_testing
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import schema_utils
from tfx.utils import io_utils

from schema import SCHEMA_FILE
from trainer import admission, features, preprocessing


def test_label_is_one_from_rating_three_up():
  labels = preprocessing.binarize_rating(tf.constant([1, 2, 3, 4, 5], tf.int64)).numpy()
  np.testing.assert_array_equal(labels, [0, 0, 1, 1, 1])


def test_label_boundary_is_between_two_and_three():
  assert preprocessing.binarize_rating(tf.constant([2], tf.int64)).numpy()[0] == 0
  assert preprocessing.binarize_rating(tf.constant([3], tf.int64)).numpy()[0] == 1


def test_age_buckets_match_tfds_bucketized_user_age():
  ages = [7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73]
  expected = [b"1", b"1", b"18", b"18", b"25", b"25", b"35", b"35", b"45", b"45", b"50",
              b"50", b"56", b"56"]
  assert list(preprocessing.age_bucket(tf.constant(ages, tf.int64)).numpy()) == expected


def _raw_schema():
  return io_utils.SchemaReader().read(SCHEMA_FILE)


@pytest.mark.parametrize("vocabularies", [True, False])
def test_preprocessing_fn_on_rows_with_tf_transform(vocabularies):
  rows = [
      dict(user_id=[b"196"], movie_id=[b"242"], rating=[3], timestamp=[881250949],
           user_age=[49], user_gender=[b"M"], user_occupation=[b"writer"],
           user_zip_code=[b"55105"]),
      dict(user_id=[b"22"], movie_id=[b"377"], rating=[2], timestamp=[878887116],
           user_age=[25], user_gender=[b"F"], user_occupation=[b"artist"],
           user_zip_code=[b"T8H1N"]),
      dict(user_id=[b"196"], movie_id=[b"377"], rating=[5], timestamp=[878887117],
           user_age=[17], user_gender=[b"M"], user_occupation=[b"writer"],
           user_zip_code=[b"55105"]),
  ]
  metadata = tft.DatasetMetadata.from_feature_spec(
      schema_utils.schema_as_feature_spec(_raw_schema()).feature_spec)
  def check(transformed):
    out = sorted(transformed, key=lambda r: (r["user_id"], r["movie_id"]))
    assert [r[features.LABEL] for r in out] == [1, 1, 0]
    assert [r[features.USER_AGE_BUCKET] for r in out] == [b"45", b"1", b"25"]
    assert [r[features.USER_ZIP_CODE] for r in out] == [b"55105", b"55105", b"T8H1N"]
    assert set(out[0]) == (set(features.MODEL_FEATURES) | {features.LABEL} |
                           {admission.admitted_name(f) for f in admission.ADMISSION_FEATURES})
    # Every analyzed id passed the filter.
    assert all(r[admission.admitted_name(f)] == 1
               for r in out for f in admission.ADMISSION_FEATURES)

  with tempfile.TemporaryDirectory() as tmp:
    with beam.Pipeline() as p, tft_beam.Context(temp_dir=tmp + "/tmp"):
      raw = p | beam.Create(rows)
      (transformed, _), transform_fn = (
          (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
              functools.partial(preprocessing.preprocessing_fn,
                                custom_config={features.VOCABULARIES_KEY: vocabularies}),
              output_record_batches=False))
      _ = transform_fn | tft_beam.WriteTransformFn(tmp + "/out")
      beam_testing.assert_that(transformed, check)
    output = tft.TFTransformOutput(tmp + "/out")
    written = glob.glob(os.path.join(output.transform_savedmodel_dir, "assets", "*_vocab"))
    if vocabularies:
      # Each feature's vocabulary, for the collisionless model, most frequent first.
      assert len(written) == len(features.MODEL_FEATURES)
      assert output.vocabulary_by_name(features.vocabulary_name(features.USER_ID)) == [
          b"196", b"22"]
      assert sorted(output.vocabulary_by_name(
          features.vocabulary_name(features.USER_AGE_BUCKET))) == [b"1", b"25", b"45"]
    else:
      assert not written  # the hashed models need none
    # The filter travels inside the Transform graph: ids of the analyzed data pass, an id it
    # never saw does not (the same bits in training and serving).
    layer = output.transform_features_layer()
    request = {k: tf.constant([v], tf.string if isinstance(v[0], bytes) else tf.int64)
               for k, v in rows[0].items() if k != features.RATING}
    request[features.USER_ID] = tf.constant([[b"a-user-never-seen"]])
    served = layer(request)
    assert served[admission.admitted_name(features.USER_ID)].numpy().tolist() == [0]
    assert served[admission.admitted_name(features.MOVIE_ID)].numpy().tolist() == [1]
