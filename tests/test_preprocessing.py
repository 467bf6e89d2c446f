"""The Transform preprocessing_fn: label rules, buckets, missing values, and real
tf.Transform runs on MovieLens rows and on a spec with every feature kind."""

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

from dataspec import schema as schema_lib
from dataspec import spec as spec_lib
from trainer import admission, features, preprocessing

MOVIELENS = spec_lib.load("movielens")


def _label(values, dtype, **rule):
  spec = spec_lib.parse({"name": "t", "source": {"path": "x.csv"},
                         "label": {"column": "y", **rule}, "features": {"a": {"kind": "id"}}})
  return preprocessing.label(spec.label, tf.constant(values, dtype)).numpy().tolist()


def test_label_rules():
  # MovieLens' rule: a rating of 3 or more.
  assert preprocessing.label(MOVIELENS.label, tf.constant([1, 2, 3, 4, 5], tf.int64)
                             ).numpy().tolist() == [0, 0, 1, 1, 1]
  assert _label([3.4, 3.5, 9.0], tf.float32, positive_if=">= 3.5") == [0, 1, 1]
  assert _label([3.4, 3.5], tf.float32, positive_if="< 3.5") == [1, 0]
  assert _label([0, 1, 1], tf.int64, binary=True) == [0, 1, 1]
  assert _label(["true", "False", "1", "0"], tf.string, binary=True, type="string") == [
      1, 0, 1, 0]
  assert _label(["click", "view", "buy"], tf.string, positive_values=["click", "buy"]) == [
      1, 0, 1]
  assert _label([4, 2], tf.int64, positive_values=[4, 5], type="int") == [1, 0]


def test_lower_bound_buckets_match_tfds_bucketized_user_age():
  ages = [7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73]
  expected = [b"1", b"1", b"18", b"18", b"25", b"25", b"35", b"35", b"45", b"45", b"50",
              b"50", b"56", b"56"]
  age = MOVIELENS.feature("user_age_bucket")
  values = tf.constant(ages, tf.float32)
  names = preprocessing.bucket_names(age, values, tf.ones_like(values, tf.bool))
  assert list(names.numpy()) == expected


def _raw_schema():
  return io_utils.SchemaReader().read(MOVIELENS.schema)


def _movielens_fn(**custom):
  return functools.partial(preprocessing.preprocessing_fn, custom_config={
      features.DATASET_KEY: MOVIELENS.to_json(), **custom})


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
    assert [r["user_age_bucket"] for r in out] == [b"45", b"1", b"25"]
    assert [r["user_zip_code"] for r in out] == [b"55105", b"55105", b"T8H1N"]
    assert set(out[0]) == set(preprocessing.transformed_feature_names(MOVIELENS))
    assert set(out[0]) == (set(MOVIELENS.feature_names) | {features.LABEL} |
                           {admission.admitted_name(f) for f in MOVIELENS.id_features})
    # Every analyzed id passed the filter.
    assert all(r[admission.admitted_name(f)] == 1
               for r in out for f in MOVIELENS.id_features)

  with tempfile.TemporaryDirectory() as tmp:
    with beam.Pipeline() as p, tft_beam.Context(temp_dir=tmp + "/tmp"):
      raw = p | beam.Create(rows)
      (transformed, _), transform_fn = (
          (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
              _movielens_fn(**{features.VOCABULARIES_KEY: vocabularies}),
              output_record_batches=False))
      _ = transform_fn | tft_beam.WriteTransformFn(tmp + "/out")
      beam_testing.assert_that(transformed, check)
    output = tft.TFTransformOutput(tmp + "/out")
    written = glob.glob(os.path.join(output.transform_savedmodel_dir, "assets", "*_vocab"))
    if vocabularies:
      # Each feature's vocabulary, for the collisionless model, most frequent first.
      assert len(written) == len(MOVIELENS.features)
      assert output.vocabulary_by_name(features.vocabulary_name("user_id")) == [
          b"196", b"22"]
      assert sorted(output.vocabulary_by_name(
          features.vocabulary_name("user_age_bucket"))) == [b"1", b"25", b"45"]
    else:
      assert not written  # the hashed models need none
    # The filter travels inside the Transform graph: ids of the analyzed data pass, an id it
    # never saw does not (the same bits in training and serving).
    layer = output.transform_features_layer()
    request = {k: tf.constant([v], tf.string if isinstance(v[0], bytes) else tf.int64)
               for k, v in rows[0].items() if k != "rating"}
    request["user_id"] = tf.constant([[b"a-user-never-seen"]])
    served = layer(request)
    assert served[admission.admitted_name("user_id")].numpy().tolist() == [0]
    assert served[admission.admitted_name("movie_id")].numpy().tolist() == [1]


# Every kind of feature, every treatment of missing values; the schema derived from the spec.
EVERY_KIND = spec_lib.parse({
    "name": "kinds", "source": {"path": "e.csv"},
    "label": {"column": "event", "positive_values": ["click"]},
    "features": {
        "item": {"kind": "id", "role": "item", "missing": "error"},
        "device": {"kind": "id"},                                   # missing -> token
        "country": {"kind": "categorical", "domain_size": 3, "missing": {"default": "ZZ"}},
        "price": {"kind": "numeric", "quantiles": 2},               # missing -> own bucket
        "age": {"kind": "numeric", "type": "int", "lower_bounds": [0, 30],
                "missing": {"default": 40}},
        "tags": {"kind": "multivalent"},                            # none -> token
    }}, origin="kinds.yaml")


def test_every_kind_and_missing_value_through_tf_transform():
  rows = [
      dict(item=[b"i1"], device=[b"d1"], country=[b"FR"], price=[1.0], age=[25],
           tags=[b"a", b"b"], event=[b"click"]),
      dict(item=[b"i2"], device=[], country=[], price=[], age=[], tags=[], event=[b"view"]),
      dict(item=[b"i3"], device=[b"d2"], country=[b"DE"], price=[3.0], age=[31],
           tags=[b"c"], event=[b"click"]),
      dict(item=[b"i4"], device=[b"d2"], country=[b"DE"], price=[5.0], age=[70],
           tags=[b"a"], event=[b"view"]),
  ]
  schema = schema_lib.derive(EVERY_KIND)
  metadata = tft.DatasetMetadata.from_feature_spec(
      schema_utils.schema_as_feature_spec(schema).feature_spec)
  fn = functools.partial(preprocessing.preprocessing_fn,
                         custom_config={features.DATASET_KEY: EVERY_KIND.to_json()})

  def check(transformed):
    out = sorted(transformed, key=lambda r: r["item"])
    assert [r["label"] for r in out] == [1, 0, 1, 0]
    assert [r["device"] for r in out] == [b"d1", features.MISSING_TOKEN.encode(), b"d2", b"d2"]
    assert [r["country"] for r in out] == [b"FR", b"ZZ", b"DE", b"DE"]
    # Two quantile buckets of the present prices (1, 3, 5): the median is the boundary.
    assert [r["price"] for r in out] == [b"0", features.MISSING_TOKEN.encode(), b"1", b"1"]
    # The default age (40) is a value like any other.
    assert [r["age"] for r in out] == [b"0", b"30", b"30", b"30"]
    assert [list(r["tags"]) for r in out] == [[b"a", b"b"], [features.MISSING_TOKEN.encode()],
                                              [b"c"], [b"a"]]
    assert {"item_admitted", "device_admitted"} <= set(out[0])

  with tempfile.TemporaryDirectory() as tmp:
    with beam.Pipeline() as p, tft_beam.Context(temp_dir=tmp + "/tmp"):
      raw = p | beam.Create(rows)
      (transformed, _), transform_fn = (
          (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(fn, output_record_batches=False))
      _ = transform_fn | tft_beam.WriteTransformFn(tmp + "/out")
      beam_testing.assert_that(transformed, check)
    output = tft.TFTransformOutput(tmp + "/out")
    spec = output.transformed_feature_spec()
    # Multivalent features leave Transform as variable-length (sparse) features.
    assert isinstance(spec["tags"], tf.io.VarLenFeature)
    assert isinstance(spec["price"], tf.io.FixedLenFeature)
    # In memory, the same definitions with numpy boundaries give the same buckets.
    columns = {"price": np.array([1.0, np.nan, 3.0, 5.0])}
    boundaries = preprocessing.quantile_boundaries(EVERY_KIND, columns)
    np.testing.assert_allclose(boundaries["price"], [3.0])
