"""The Trainer's input pipeline streams input above a fixed size: each epoch reads the files
again, so memory holds a shuffle buffer and a few batches, never the whole data set. The
shuffle spans the whole input even when the input is larger than the buffer."""

import numpy as np
import pytest
import tensorflow as tf

from tests.specs import FEATURES
from trainer import features, train


def _write(path, num, value=None):
  """`num` examples; each movie id is `value`, or (without one) the example's position."""
  with tf.io.TFRecordWriter(str(path), options="GZIP") as w:
    for i in range(num):
      v = value if value is not None else str(i).encode()
      feature = {f: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
                 for f in FEATURES}
      feature[features.LABEL] = tf.train.Feature(
          int64_list=tf.train.Int64List(value=[i % 2]))
      w.write(tf.train.Example(features=tf.train.Features(feature=feature))
              .SerializeToString())


def _spec():
  spec = {f: tf.io.FixedLenFeature([1], tf.string) for f in FEATURES}
  spec[features.LABEL] = tf.io.FixedLenFeature([1], tf.int64)
  return spec


def _values(ds):
  return {v for batch, _ in ds for v in batch["movie_id"].numpy().tolist()}


def test_input_above_the_cache_limit_is_read_again_each_epoch(tmp_path, monkeypatch):
  path = tmp_path / "part-0.gz"
  _write(path, 50, b"before")
  monkeypatch.setattr(train, "CACHE_MAX_BYTES", path.stat().st_size - 1)
  ds = train.make_dataset([str(path)], _spec(), batch_size=8, shuffle_buffer=64, seed=1)
  assert train.count_examples(ds) == 50
  assert _values(ds) == {b"before"}
  # A cached dataset would still serve the first epoch's batches from memory.
  _write(path, 30, b"after")
  assert _values(ds) == {b"after"}
  assert train.count_examples(ds) == 30


def test_small_input_is_cached_after_the_first_epoch(tmp_path):
  path = tmp_path / "part-0.gz"
  _write(path, 20, b"before")
  ds = train.make_dataset([str(path)], _spec(), batch_size=8)
  assert _values(ds) == {b"before"}
  _write(path, 20, b"after")
  assert _values(ds) == {b"before"}


def _positions(ds):
  return [int(v) for batch, _ in ds for v in batch["movie_id"].numpy().tolist()]


def test_input_larger_than_the_buffer_is_shuffled_across_all_of_it(tmp_path):
  # Ratings arrive in time order and nothing upstream shuffles them: a buffer of 100 over
  # 2,000 examples in file order would only ever mix neighbours.
  path = tmp_path / "part-0.gz"
  _write(path, 2000)
  ds = train.make_dataset([str(path)], _spec(), batch_size=100, shuffle_buffer=100, seed=1,
                          scratch_dir=str(tmp_path / "scratch"))
  first_epoch = _positions(ds)
  assert sorted(first_epoch) == list(range(2000))
  assert _positions(ds) == first_epoch  # the same order every epoch
  again = train.make_dataset([str(path)], _spec(), batch_size=100, shuffle_buffer=100, seed=1,
                             scratch_dir=str(tmp_path / "scratch-2"))
  assert _positions(again) == first_epoch  # and every run with the same seed
  first_batch = np.asarray(first_epoch[:100])
  # Each bucket samples the whole file: the first batch has examples of every quarter.
  assert set(first_batch // 500) == {0, 1, 2, 3}
  assert (tmp_path / "scratch").is_dir()


def test_input_within_the_buffer_is_shuffled_in_memory(tmp_path):
  path = tmp_path / "part-0.gz"
  _write(path, 200)
  ds = train.make_dataset([str(path)], _spec(), batch_size=50, shuffle_buffer=500, seed=1)
  order = _positions(ds)
  assert sorted(order) == list(range(200)) and order != list(range(200))
  assert set(np.asarray(order[:50]) // 50) == {0, 1, 2, 3}


def test_input_larger_than_the_buffer_needs_a_scratch_directory(tmp_path):
  path = tmp_path / "part-0.gz"
  _write(path, 300)
  with pytest.raises(ValueError, match="scratch_dir"):
    train.make_dataset([str(path)], _spec(), batch_size=50, shuffle_buffer=100, seed=1)


def test_a_given_record_count_shuffles_the_same_as_counting(tmp_path):
  # run_fn counts the compressed records once and hands the count to the shuffle.
  path = tmp_path / "part-0.gz"
  _write(path, 700)
  assert train.count_files([str(path)]) == 700
  counted = train.make_dataset([str(path)], _spec(), batch_size=100, shuffle_buffer=100,
                               seed=3, scratch_dir=str(tmp_path / "a"))
  given = train.make_dataset([str(path)], _spec(), batch_size=100, shuffle_buffer=100,
                             seed=3, scratch_dir=str(tmp_path / "b"), num_records=700)
  assert _positions(given) == _positions(counted)
  assert sorted(_positions(given)) == list(range(700))
