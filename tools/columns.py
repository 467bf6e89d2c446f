"""A dataset's raw columns in memory, for the benchmarks, `uet collisions` and `uet simulate`.

The pipeline never uses this module: it reads the same files through the ExampleGen and
Transform. Here the rows go through the ExampleGen's own reader and conversion
(`components.example_gen.source`) and Transform's own definitions (`transform_columns`,
the label rule), so the benchmarks and `uet collisions` see the features the Trainer sees
(quantile buckets from numpy's exact quantiles, where Transform's are approximate).
"""

from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from dataspec import files
from dataspec import spec as spec_lib


def check_data_dir(spec: spec_lib.DatasetSpec, data_dir: Optional[str]) -> str:
  """The absolute data directory of `spec` (`data_dir`, else the spec's own), checked.

  Raises:
    dataspec.spec.SpecError: a file is missing, empty or lacks a column the spec names.
  """
  return files.check(spec, data_dir).data_dir


def _numpy(values) -> np.ndarray:
  """One raw column as numpy: strings as bytes objects (None where missing), multivalent
  values as lists of bytes (None where missing), integers as int64 and floats as float32
  (as a tf.Example holds them); a numeric column with missing values as float64 with NaN."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  t = values.type
  if pa.types.is_list(t) or pa.types.is_large_list(t):
    out = np.empty(len(values), dtype=object)  # element-wise: equal-length lists stay lists
    for i, v in enumerate(values.to_pylist()):
      out[i] = None if v is None else [x.encode("utf-8") for x in v]
    return out
  if pa.types.is_string(t):
    return np.asarray([None if v is None else v.encode("utf-8") for v in values.to_pylist()],
                      dtype=object)
  if values.null_count:
    return np.asarray(values.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
  return np.asarray(values.to_numpy(zero_copy_only=False),
                    np.int64 if pa.types.is_integer(t) else np.float32)


def read_table(spec: spec_lib.DatasetSpec, data_dir: str, pattern: Optional[str] = None):
  """The raw columns (`spec.raw_columns`) of every row of a dataset's source, side tables
  joined, in file order, as a pyarrow Table (null where a value is missing).

  Args:
    spec: the dataset spec.
    data_dir: the data directory.
    pattern: the source files relative to `data_dir` (default: the spec's `source.path`).

  Raises:
    components.example_gen.reader.DataError: a bad row (named by file, line and column).
  """
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  from components.example_gen import source  # pylint: disable=g-import-not-at-top
  ingest = source.Ingest(spec, data_dir, pattern or spec.source.path, check_times=False)
  tables: List[pa.Table] = []
  for unit in source.scan(ingest).units:
    tables.extend(c.table for c in ingest.convert(unit))
  return pa.concat_tables(tables)


def to_numpy(table) -> Dict[str, np.ndarray]:
  """Each column of a `read_table` result as numpy (see `_numpy` for the types)."""
  return {name: _numpy(table.column(name).combine_chunks()) for name in table.column_names}


def read_columns(spec: spec_lib.DatasetSpec, data_dir: str,
                 pattern: Optional[str] = None) -> Dict[str, np.ndarray]:
  """`read_table` as numpy columns: raw column -> [num_rows] array, in file order."""
  return to_numpy(read_table(spec, data_dir, pattern))


def to_tensors(spec: spec_lib.DatasetSpec, raw: Mapping[str, np.ndarray]) -> Dict[str, Any]:
  """Raw numpy columns (`read_columns`) as the raw tensors Transform receives: a column
  without gaps dense ([rows]), one with missing values or several values per row sparse
  ([rows, None]: no value where missing)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = {}
  for column in spec.raw_columns:
    values = raw[column]
    if values.dtype != object and not (values.dtype.kind == "f" and np.isnan(values).any()):
      out[column] = tf.constant(values)
      continue
    indices, flat = [], []
    for i, v in enumerate(values):
      if v is None or (isinstance(v, float) and np.isnan(v)):
        continue
      for j, x in enumerate(v if isinstance(v, list) else [v]):
        indices.append([i, j])
        flat.append(x)
    width = max([j + 1 for _, j in indices], default=1)
    dtype = tf.string if values.dtype == object else tf.float32
    out[column] = tf.SparseTensor(
        tf.constant(indices, tf.int64, shape=[len(indices), 2]),
        tf.constant(flat, dtype, shape=[len(flat)]), [len(values), width])
  return out


def model_inputs(spec: spec_lib.DatasetSpec, raw: Mapping[str, np.ndarray],
                 boundaries: Optional[Mapping[str, np.ndarray]] = None
                 ) -> Tuple[Dict[str, Any], np.ndarray, Dict[str, np.ndarray]]:
  """The model features and binary labels of raw columns, by Transform's own definitions
  (`preprocessing.transform_columns` and the label rule).

  Args:
    spec: the dataset spec.
    raw: raw column -> values (`read_columns`).
    boundaries: the quantile boundaries of numeric features, from the training rows;
      None computes them from `raw` (`preprocessing.quantile_boundaries`).

  Returns:
    (feature -> [rows] bytes array in model order (multivalent: a [rows, None] sparse
    tensor), [rows] float32 labels, the boundaries used).
  """
  from trainer import preprocessing  # pylint: disable=g-import-not-at-top
  if boundaries is None:
    boundaries = preprocessing.quantile_boundaries(spec, raw)
  tensors = to_tensors(spec, raw)
  transformed = preprocessing.transform_columns(tensors, spec, boundaries)
  labels = preprocessing.label(spec.label, tensors[spec.label.column]).numpy()
  inputs = {f: v if f in {m.name for m in spec.features_of_kind("multivalent")}
            else v.numpy() for f, v in transformed.items()}
  return inputs, labels.astype(np.float32), dict(boundaries)


def model_features(spec: spec_lib.DatasetSpec,
                   data_dir: str) -> Tuple[Dict[str, Any], np.ndarray]:
  """The model features and the binary label of every row of `data_dir` (numeric buckets
  from all its rows)."""
  inputs, labels, _ = model_inputs(spec, read_columns(spec, data_dir))
  return inputs, labels


def vocabularies(columns: Mapping[str, np.ndarray]) -> Dict[str, List[str]]:
  """The sorted distinct values of every feature column, decoded to str (a multivalent
  feature's sparse tensor: the distinct values it holds)."""
  def distinct(values):
    values = values.values.numpy() if hasattr(values, "indices") else np.asarray(values)
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.unique(values)]
  return {f: distinct(values) for f, values in columns.items()}
