"""In-memory model features (benchmark, collision report) match Transform's definitions."""

import numpy as np
import pytest

from tools import movielens
from trainer import features


def test_first_ratings_become_the_transformed_features(small_movielens):
  columns, labels = movielens.model_features(str(small_movielens))
  assert list(columns) == list(features.MODEL_FEATURES)
  first = {f: columns[f][:3].tolist() for f in features.MODEL_FEATURES}
  # u.data: 196 242 3 / 186 302 3 / 22 377 1; u.user: 196|49|M|writer|55105,
  # 186|39|F|executive|00000, 22|25|M|writer|40206.
  assert first == {
      features.MOVIE_ID: [b"242", b"302", b"377"],
      features.USER_ID: [b"196", b"186", b"22"],
      features.USER_GENDER: [b"M", b"F", b"M"],
      features.USER_ZIP_CODE: [b"55105", b"00000", b"40206"],
      features.USER_OCCUPATION: [b"writer", b"executive", b"writer"],
      features.USER_AGE_BUCKET: [b"45", b"35", b"25"],
  }
  np.testing.assert_array_equal(labels[:3], [1.0, 1.0, 0.0])
  assert labels.dtype == np.float32 and len(labels) == 500


def test_vocabularies_are_sorted_distinct_strings():
  vocabs = movielens.vocabularies({"a": np.array([b"b", b"a", b"b"], dtype=object)})
  assert vocabs == {"a": ["a", "b"]}


def test_missing_directory_names_the_file_and_the_flag(tmp_path):
  with pytest.raises(FileNotFoundError, match="pass --data-dir") as e:
    movielens.check_data_dir(str(tmp_path))
  assert str(tmp_path / "u.data") in str(e.value)
