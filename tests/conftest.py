"""Shared test fixtures: real MovieLens-100K slices from ../shared/data/ml-100k."""

import os
import pathlib

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before any test module imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
ML_100K = pathlib.Path(os.environ.get("UET_ML100K", REPO.parent / "shared" / "data" / "ml-100k"))


def require_ml100k() -> pathlib.Path:
  if not (ML_100K / "u.data").is_file():
    pytest.fail(f"MovieLens-100K not found at {ML_100K}: the tests need ../shared/data/ml-100k "
                "beside the checkout (or UET_ML100K pointing at a copy)")
  return ML_100K


def write_movielens_slice(directory: pathlib.Path, num_ratings: int,
                          every: int = 1) -> pathlib.Path:
  """Writes the first `num_ratings` ratings (every `every`-th line) and all users."""
  source = require_ml100k()
  directory.mkdir(parents=True, exist_ok=True)
  lines = (source / "u.data").read_text().splitlines()[::every][:num_ratings]
  (directory / "u.data").write_text("\n".join(lines) + "\n")
  (directory / "u.user").write_bytes((source / "u.user").read_bytes())
  return directory


@pytest.fixture(scope="session")
def ml100k() -> pathlib.Path:
  return require_ml100k()


@pytest.fixture
def small_movielens(tmp_path) -> pathlib.Path:
  return write_movielens_slice(tmp_path / "ml", 500)


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
  """The pipeline suites first: under `-n 2 --dist loadfile` (`make test`) each file goes to
  one worker, and the multi-minute files are dealt before the quick ones fill the gaps."""
  items.sort(key=lambda item: item.get_closest_marker("pipeline") is None)
