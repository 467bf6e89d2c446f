"""The Trainer's input pipeline streams input above a fixed size: each epoch reads the files
again, so memory holds a shuffle buffer and a few batches, never the whole data set."""

import tensorflow as tf

from trainer import features, train


def _write(path, num, value):
  with tf.io.TFRecordWriter(str(path), options="GZIP") as w:
    for i in range(num):
      feature = {f: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
                 for f in features.MODEL_FEATURES}
      feature[features.LABEL] = tf.train.Feature(
          int64_list=tf.train.Int64List(value=[i % 2]))
      w.write(tf.train.Example(features=tf.train.Features(feature=feature))
              .SerializeToString())


def _spec():
  spec = {f: tf.io.FixedLenFeature([1], tf.string) for f in features.MODEL_FEATURES}
  spec[features.LABEL] = tf.io.FixedLenFeature([1], tf.int64)
  return spec


def _values(ds):
  return {v for batch, _ in ds for v in batch[features.MOVIE_ID].numpy().tolist()}


def test_input_above_the_cache_limit_is_read_again_each_epoch(tmp_path, monkeypatch):
  path = tmp_path / "part-0.gz"
  _write(path, 50, b"before")
  monkeypatch.setattr(train, "CACHE_MAX_BYTES", path.stat().st_size - 1)
  ds = train.make_dataset([str(path)], _spec(), batch_size=8, shuffle_buffer=16, seed=1)
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
