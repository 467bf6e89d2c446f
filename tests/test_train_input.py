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


@pytest.mark.parametrize("global_seed", [0, 5])
def test_the_bucket_order_ignores_tensorflows_global_seed(tmp_path, global_seed):
  # The Trainer sets the global seed from the config (`seed: 0` is a valid config); the
  # bucketed shuffle must build and give the order its own seed gives.
  path = tmp_path / "part-0.gz"
  _write(path, 500)
  build = lambda d: train.make_dataset(  # noqa: E731
      [str(path)], _spec(), batch_size=50, shuffle_buffer=100, seed=3,
      scratch_dir=str(tmp_path / d))
  tf.random.set_seed(None)
  expected = _positions(build("unseeded"))
  try:
    tf.keras.utils.set_random_seed(global_seed)
    assert _positions(build(f"seeded-{global_seed}")) == expected
  finally:
    tf.random.set_seed(None)


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


# What the old shuffle (tf.data save/load with snappy) could not read back: one saved
# element larger than TensorFlow's snappy output buffer.
SNAPPY_OUTPUT_BUFFER = 256 << 10
EXTRA_FEATURES = tuple(f"extra_{i}" for i in range(10))


def _write_varied(path, num, seed=0):
  """`num` examples of very different sizes; returns each one's movie id, in file order.

  Every string feature is an id of 1 to 300 characters; the movie id starts with the
  example's position, so each example is told apart. The `extra_*` features are not read
  by the model, only carried through the shuffle.
  """
  rng = np.random.default_rng(seed)
  alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)

  def token(prefix=b""):
    return prefix + rng.choice(alphabet, size=int(rng.integers(1, 301))).tobytes()

  ids = []
  with tf.io.TFRecordWriter(str(path), options="GZIP") as w:
    for i in range(num):
      feature = {f: tf.train.Feature(bytes_list=tf.train.BytesList(value=[token()]))
                 for f in (*FEATURES, *EXTRA_FEATURES)}
      ids.append(token(b"%d:" % i))
      feature["movie_id"] = tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[ids[-1]]))
      feature[features.LABEL] = tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))
      w.write(tf.train.Example(features=tf.train.Features(feature=feature))
              .SerializeToString())
  return ids


def _movie_ids(ds):
  return [v for batch, _ in ds for v in batch["movie_id"].numpy().tolist()]


def _largest_dealt_part(path, buckets):
  """Bytes of the largest run of records the deal sends to one bucket from one chunk."""
  sizes = [len(r) for r in tf.data.TFRecordDataset(str(path), compression_type="GZIP")
           .as_numpy_iterator()]
  return max(sum(sizes[start + b:start + train.DEAL_CHUNK:buckets])
             for start in range(0, len(sizes), train.DEAL_CHUNK) for b in range(buckets))


@pytest.mark.parametrize("num,buffer", [
    (1001, 1000),   # just above the buffer: two buckets of ~500 examples (~1 MB each)
    (3000, 100),    # far above it: thirty buckets
])
def test_records_of_any_size_are_shuffled_once_each_in_one_order_per_seed(
    tmp_path, num, buffer):
  path = tmp_path / "part-0.gz"
  ids = _write_varied(path, num)
  # Dealt parts larger than snappy's buffer: the input the old shuffle failed on.
  assert _largest_dealt_part(path, -(-num // buffer)) > SNAPPY_OUTPUT_BUFFER
  orders = {}
  for seed in (0, 7, 13):
    ds = train.make_dataset([str(path)], _spec(), batch_size=64, shuffle_buffer=buffer,
                            seed=seed, scratch_dir=str(tmp_path / f"scratch-{seed}"))
    order = _movie_ids(ds)
    assert len(order) == num and sorted(order) == sorted(ids)  # each example exactly once
    assert order != ids
    assert _movie_ids(ds) == order  # the same order every epoch
    again = train.make_dataset([str(path)], _spec(), batch_size=64, shuffle_buffer=buffer,
                               seed=seed, scratch_dir=str(tmp_path / f"again-{seed}"))
    assert _movie_ids(again) == order  # and every build with the same seed
    orders[seed] = order
  assert len({tuple(o) for o in orders.values()}) == 3  # each seed its own order


def test_each_bucket_holds_at_most_the_buffer_in_ordinary_tfrecord_files(tmp_path):
  # Memory holds one bucket at a time: no bucket may be larger than the buffer.
  path = tmp_path / "part-0.gz"
  _write(path, 1050)
  scratch = tmp_path / "scratch"
  ds = train.make_dataset([str(path)], _spec(), batch_size=100, shuffle_buffer=100, seed=1,
                          scratch_dir=str(scratch))
  buckets = sorted(scratch.iterdir())
  assert len(buckets) == 11
  sizes = []
  for bucket in buckets:
    parts = tf.data.TFRecordDataset(str(bucket), compression_type="ZLIB")
    sizes.append(sum(int(tf.size(tf.io.parse_tensor(p, tf.string))) for p in parts))
  assert sum(sizes) == 1050 and max(sizes) <= 100
  assert sorted(_positions(ds)) == list(range(1050))


def test_more_buckets_than_open_files_allowed_says_what_buffer_would_do(tmp_path, monkeypatch):
  path = tmp_path / "part-0.gz"
  _write(path, 500)
  monkeypatch.setattr(train.resource, "getrlimit", lambda _: (8, 8))
  with pytest.raises(ValueError, match=r"needs 5 bucket files .* limit \(8\); raise "
                                       r"shuffle_buffer to at least 125"):
    train.make_dataset([str(path)], _spec(), batch_size=50, shuffle_buffer=100, seed=1,
                       scratch_dir=str(tmp_path / "scratch"))
