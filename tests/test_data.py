"""Dataset resolution: a verified copy of the official release, or a user's directory."""

import os
import shutil

import pytest

from dataspec import files
from dataspec import spec as spec_lib
from dataspec.spec import SpecError
from pipeline import data


def test_mirror_copy_is_verified_and_reused(tmp_path, ml100k):
  target = tmp_path / "ml-100k"
  path = data.fetch_ml100k(str(target), mirror=str(ml100k))
  assert path == str(target)
  for name, expected in data.ML_100K_MD5.items():
    assert data.md5(os.path.join(path, name)) == expected
  mtime = os.path.getmtime(target / "u.data")
  # A second call keeps the verified copy untouched (ExampleGen's cache sees file times).
  assert data.fetch_ml100k(str(target), mirror=str(ml100k)) == path
  assert os.path.getmtime(target / "u.data") == mtime


def test_checksum_mismatch_is_a_clear_error(tmp_path, ml100k):
  mirror = tmp_path / "mirror"
  shutil.copytree(ml100k, mirror)
  os.chmod(mirror / "u.data", 0o644)
  with open(mirror / "u.data", "a") as f:
    f.write("1\t1\t5\t881250949\n")
  with pytest.raises(data.DatasetError, match=r"u.data: MD5 .* does not match the official"):
    data.fetch_ml100k(str(tmp_path / "copy"), mirror=str(mirror))
  assert not (tmp_path / "copy").exists()


def test_missing_file_in_mirror_is_named(tmp_path, ml100k):
  mirror = tmp_path / "mirror"
  mirror.mkdir()
  shutil.copy(ml100k / "u.data", mirror / "u.data")
  with pytest.raises(data.DatasetError, match=r"u.user: missing"):
    data.fetch_ml100k(str(tmp_path / "copy"), mirror=str(mirror))


def test_user_directory_needs_ratings_and_users(tmp_path):
  movielens = spec_lib.load("movielens")
  (tmp_path / "u.data").write_text("1\t1\t5\t881250949\n")
  with pytest.raises(SpecError, match=r"u.user: missing"):
    files.check(movielens, str(tmp_path))
  (tmp_path / "u.user").write_text("1|24|M|technician|85711\n")
  assert files.check(movielens, str(tmp_path)).data_dir == str(tmp_path)
  with pytest.raises(SpecError, match="not a directory"):
    files.check(movielens, str(tmp_path / "nope"))
