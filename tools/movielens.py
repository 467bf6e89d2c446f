"""MovieLens files as in-memory model features, for the benchmark and the collision report.

The pipeline never uses this module: it reads the same files through the MovieLens
ExampleGen and Transform. Here the raw rows go through the same two definitions the
pipeline uses (the ExampleGen's `reader` and Transform's `transform_features` / label rule),
so the benchmark and `uet collisions` see exactly the features the Trainer sees.
"""

import os
from typing import Dict, Iterable, List, Mapping, Tuple

import numpy as np

from components.movielens_example_gen import reader
from trainer import features

def check_data_dir(data_dir: str) -> str:
  """Returns the absolute path of a MovieLens directory, or raises with what is missing.

  Raises:
    FileNotFoundError: the directory or its `u.data` / `u.user` is absent.
  """
  data_dir = os.path.abspath(data_dir)
  for name in (reader.RATINGS_FILE, reader.USERS_FILE):
    path = os.path.join(data_dir, name)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"{path} not found: pass --data-dir pointing at a MovieLens-100K directory "
          f"(with {reader.RATINGS_FILE} and {reader.USERS_FILE})")
  return data_dir


def raw_columns(rows: Iterable[Tuple[reader.Rating, reader.User]]) -> Dict[str, np.ndarray]:
  """Raw feature columns of (rating, user) rows, as the ExampleGen's examples hold them.

  Returns:
    Raw feature name -> [num_rows] array (bytes for string features, int64 otherwise), in
    row order.
  """
  columns: Dict[str, List] = {name: [] for name in features.RAW_FEATURES}
  for rating, user in rows:
    columns[features.USER_ID].append(rating.user_id.encode())
    columns[features.MOVIE_ID].append(rating.movie_id.encode())
    columns[features.RATING].append(rating.rating)
    columns[features.TIMESTAMP].append(rating.timestamp)
    columns[features.USER_AGE].append(user.age)
    columns[features.USER_GENDER].append(user.gender.encode())
    columns[features.USER_OCCUPATION].append(user.occupation.encode())
    columns[features.USER_ZIP_CODE].append(user.zip_code.encode())
  return {name: np.asarray(values, dtype=object if name in features.RAW_BYTES_FEATURES
                           else np.int64)
          for name, values in columns.items()}


def read_raw(data_dir: str) -> Dict[str, np.ndarray]:
  """The raw features of every rating (ratings joined with users), as numpy columns.

  Args:
    data_dir: a MovieLens-100K-layout directory.

  Returns:
    Raw feature name -> [num_ratings] array, in file order (see `raw_columns`).
  """
  data_dir = check_data_dir(data_dir)
  users = reader.read_users(os.path.join(data_dir, reader.USERS_FILE))
  return raw_columns(reader.read_ratings(os.path.join(data_dir, reader.RATINGS_FILE), users))


def model_inputs(raw: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """The six model features (bytes arrays) and binary labels of raw columns.

  Uses Transform's own `transform_features` and label rule, so values match the pipeline's
  transformed examples byte for byte.

  Returns:
    (features dict in `features.MODEL_FEATURES` order, [num_rows] float32 labels).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from trainer import preprocessing  # pylint: disable=g-import-not-at-top
  tensors = {k: tf.constant(v) for k, v in raw.items()}
  transformed = preprocessing.transform_features(tensors)
  label = preprocessing.binarize_rating(tensors[features.RAW_LABEL]).numpy()
  return ({f: transformed[f].numpy() for f in features.MODEL_FEATURES},
          label.astype(np.float32))


def model_features(data_dir: str) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """The six model features and the binary label of every rating of `data_dir`."""
  return model_inputs(read_raw(data_dir))


def vocabularies(columns: Mapping[str, np.ndarray]) -> Dict[str, List[str]]:
  """The sorted distinct values of every feature column, decoded to str."""
  return {f: [v.decode("utf-8") if isinstance(v, bytes) else str(v)
              for v in np.unique(np.asarray(values))]
          for f, values in columns.items()}
