"""In-memory columns (benchmarks, collision report) come from the ExampleGen's reader and
match Transform's definitions."""

import numpy as np
import pytest

from dataspec import spec as spec_lib
from dataspec.spec import SpecError
from tests.test_example_gen_formats import HEADER, make_spec, write
from tools import columns

MOVIELENS = spec_lib.load("movielens")


def test_first_ratings_become_the_transformed_features(small_movielens):
  model_inputs, labels = columns.model_features(MOVIELENS, str(small_movielens))
  assert list(model_inputs) == list(MOVIELENS.feature_names)
  first = {f: model_inputs[f][:3].tolist() for f in MOVIELENS.feature_names}
  # u.data: 196 242 3 / 186 302 3 / 22 377 1; u.user: 196|49|M|writer|55105,
  # 186|39|F|executive|00000, 22|25|M|writer|40206.
  assert first == {
      "movie_id": [b"242", b"302", b"377"],
      "user_id": [b"196", b"186", b"22"],
      "user_gender": [b"M", b"F", b"M"],
      "user_zip_code": [b"55105", b"00000", b"40206"],
      "user_occupation": [b"writer", b"executive", b"writer"],
      "user_age_bucket": [b"45", b"35", b"25"],
  }
  np.testing.assert_array_equal(labels[:3], [1.0, 1.0, 0.0])
  assert labels.dtype == np.float32 and len(labels) == 500


def test_raw_columns_of_a_spec_with_gaps(tmp_path):
  write(tmp_path, "events.csv", HEADER + "u1,i1,9.5,3,a|b,red,1,1600000000\n"
        "u2,,,,,,0,1600000001\n")
  raw = columns.read_columns(make_spec(), str(tmp_path))
  assert list(raw) == ["user", "item", "price", "qty", "tags", "color", "clicked", "ts"]
  assert raw["item"].tolist() == [b"i1", None]
  assert raw["tags"].tolist() == [[b"a", b"b"], None]
  np.testing.assert_array_equal(raw["price"], [9.5, np.nan])
  assert raw["clicked"].dtype == np.int64 and raw["clicked"].tolist() == [1, 0]


def test_vocabularies_are_sorted_distinct_strings():
  vocabs = columns.vocabularies({"a": np.array([b"b", b"a", b"b"], dtype=object)})
  assert vocabs == {"a": ["a", "b"]}


def test_missing_directory_names_the_file(tmp_path):
  with pytest.raises(SpecError) as e:
    columns.check_data_dir(MOVIELENS, str(tmp_path))
  assert str(e.value).startswith(f"{tmp_path / 'u.data'}: missing")


def test_model_inputs_of_a_spec_with_gaps_follow_transforms_definitions(tmp_path):
  write(tmp_path, "events.csv", HEADER + "u1,i1,9.5,3,a|b,red,1,1600000000\n"
        "u2,,,,,,0,1600000001\n" "u3,i2,2.0,5,c,blue,1,1600000002\n")
  spec = make_spec()
  raw = columns.read_columns(spec, str(tmp_path))
  inputs, labels, boundaries = columns.model_inputs(spec, raw)
  np.testing.assert_array_equal(labels, [1.0, 0.0, 1.0])
  from trainer import features  # pylint: disable=g-import-not-at-top
  missing = features.MISSING_TOKEN.encode()
  for name in inputs:
    f = spec.feature(name)
    if f.kind == "multivalent":
      continue
    if f.missing == "token":
      assert inputs[name][1] == missing, name
  # Boundaries from these rows; reused as given for other rows (a test split).
  again, _, used = columns.model_inputs(spec, raw, boundaries)
  assert used == boundaries
