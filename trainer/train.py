"""Input pipeline and training loop.

The input pipeline is built for throughput on a few CPU cores: records are batched *before*
parsing (one vectorized `parse_example` per batch instead of one per record), and the
shuffle happens once, like the tutorial's `shuffle().batch().cache()`, with the same order
every epoch.

The shuffle is over the whole input, in bounded memory. Nothing upstream shuffles: the
ratings arrive in time order, and on the local DirectRunner ExampleGen and Transform write
them in that order. Input of at most `shuffle_buffer` examples is shuffled in memory.
Larger input is first dealt round-robin into buckets of at most `shuffle_buffer` examples
on local disk (`scratch_dir`), so each bucket samples the whole time range; the buckets are
read in an order the seed shuffles, each shuffled in memory with its own seed drawn from it.

The buckets are ordinary TFRecord files, one per bucket, written with `tf.io.TFRecordWriter`
and read with `tf.data.TFRecordDataset`. Each record of a bucket file is one serialized
string tensor: the examples one chunk of the input deals to that bucket. The limits that
apply are TFRecord's and zlib's, none of which depends on how large the examples are: a
record's length is a 64-bit field of its frame, the reader takes a record of any length
(its buffer is read-ahead, not a bound), and zlib's input stream inflates through its
buffer as many times as a record needs. What remains: a record is a protocol buffer
(`TensorProto`), at most 2 GiB, i.e. examples averaging under 512 KiB (a bucket gets at
most half of a chunk of `DEAL_CHUNK`; a transformed example takes a few hundred bytes);
and every bucket file is open while the input is dealt, so the buckets are checked against
the open-file limit. Not `tf.data.Dataset.save` with snappy: its reader decompresses each
saved element into a fixed 256 KiB buffer and fails on a larger one, which a chunk's part
of large examples can be, on one input and not on the next.

Memory while dealing: a few chunks of `DEAL_CHUNK` examples and each bucket's open writer
(about 80 KB, `SCRATCH_OPTIONS`); while reading: one bucket, at most `shuffle_buffer`
examples.

Memory does not grow with the data: input of at most `CACHE_MAX_BYTES` (compressed) is
cached in memory after the first epoch, which is what makes MovieLens-100K epochs fast;
larger input streams, each epoch reading the files again, so memory holds the shuffle buffer
and a few batches.
"""

import math
import resource
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from trainer import features
from trainer.config import TrainingConfig


def _files(file_patterns: Sequence[str]) -> List[str]:
  files = []
  for pattern in file_patterns:
    matched = tf.io.gfile.glob(pattern)
    if not matched and tf.io.gfile.isdir(pattern):
      matched = tf.io.gfile.glob(pattern.rstrip("/") + "/*")
    files.extend(sorted(matched))
  if not files:
    raise FileNotFoundError(f"no transformed examples found at {list(file_patterns)}")
  return files


# Largest input (gzipped TFRecords on disk) whose parsed batches are cached in memory. The
# transformed examples take about 29 bytes each on disk and 220 parsed (measured on the 1M
# synthetic train split: 23 MB, 168 MB of RSS), so 64 MB is about 2.2M examples and under
# 0.5 GB. Above it every epoch reads and parses its input again (the shuffle buckets:
# 2.2 s per 800k examples on 2 cores). A constant, so memory is bounded at any data size.
CACHE_MAX_BYTES = 64 << 20


# Records per chunk when dealing the input into shuffle buckets: each chunk crosses from
# tf.data to Python once, as the serialized parts of every bucket.
DEAL_CHUNK = 8192

# How the shuffle's bucket files are written: ZLIB at level 1, with 16 KiB buffers, a
# 4 KiB window and zlib's memory level 5, so that each bucket's open writer holds about
# 80 KB while the input is dealt (zlib's defaults hold about 1 MB). Measured on the 800k
# transformed examples of the 1M synthetic train split, 2 busy cores, medians of 7 runs:
# 41 bytes per example on disk (uncompressed: 263), dealing 3.3 s CPU (uncompressed: 2.2),
# a pass 4.6 s CPU (uncompressed: 4.2); dealing into 80 buckets peaked 6 MB above
# uncompressed writers (zlib's defaults: 74 MB). Never SNAPPY: TensorFlow's snappy reader
# decompresses a record into an output buffer of 256 KiB and fails on a larger one.
SCRATCH_OPTIONS = tf.io.TFRecordOptions(
    compression_type="ZLIB", compression_level=1, input_buffer_size=16 << 10,
    output_buffer_size=16 << 10, window_bits=12, mem_level=5)


def make_dataset(file_patterns: Sequence[str], feature_spec: Mapping[str, tf.io.FixedLenFeature],
                 batch_size: int, shuffle_buffer: int = 0, seed: Optional[int] = None,
                 cache: Optional[bool] = None, scratch_dir: Optional[str] = None,
                 num_records: Optional[int] = None) -> tf.data.Dataset:
  """(features, label) batches from gzipped TFRecords of transformed tf.Examples.

  Args:
    file_patterns: file globs (Trainer's `fn_args.train_files`).
    feature_spec: the transformed feature spec (must contain `label`).
    batch_size: examples per batch.
    shuffle_buffer: >0 shuffles all examples once (same order every epoch) before
      batching, holding at most this many in memory.
    seed: shuffle seed.
    cache: keep the parsed batches in memory; None (default): only if the files hold at
      most CACHE_MAX_BYTES.
    scratch_dir: a local directory for the shuffle buckets, needed when there are more
      than `shuffle_buffer` examples; it must outlive the dataset.
    num_records: the files' record count (`count_files`), if the caller has it; the
      shuffle needs it and otherwise reads the files once to count.

  Returns:
    The dataset; features are [batch] string tensors (admission flags [batch] int64), the
    label a [batch] float tensor.
  """
  # Everything Transform wrote: the features, the admission flags (models without admission
  # ignore them) and the label.
  spec = dict(feature_spec)
  files = _files(file_patterns)
  if cache is None:
    cache = sum(tf.io.gfile.stat(f).length for f in files) <= CACHE_MAX_BYTES
  # One file after another. Parallel reads interleave record by record, and that costs
  # more than it saves: one pass over the 1M synthetic train split (800k records, one
  # file, shuffled, batched and parsed) took 14.0 s with `num_parallel_reads=AUTOTUNE`
  # and 3.2 s without, on 2 cores.
  ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
  if shuffle_buffer:
    ds = _shuffled(ds, shuffle_buffer, seed, scratch_dir, num_records)
  ds = ds.batch(batch_size)

  def parse(serialized):
    parsed = tf.io.parse_example(serialized, spec)
    label = tf.cast(tf.reshape(parsed.pop(features.LABEL), [-1]), tf.float32)
    # Single-valued features as [batch]; multivalent ones stay [batch, None] sparse.
    return {k: v if isinstance(v, tf.SparseTensor) else tf.reshape(v, [-1])
            for k, v in parsed.items()}, label

  ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  if cache:
    ds = ds.cache()
  return ds.prefetch(tf.data.AUTOTUNE)


def _shuffled(records: tf.data.Dataset, buffer: int, seed: Optional[int],
              scratch_dir: Optional[str], n: Optional[int] = None) -> tf.data.Dataset:
  """`records` in one shuffled order, the same every epoch, holding at most `buffer`.

  Args:
    records: serialized examples, in file order.
    buffer: the most records held in memory.
    seed: seeds the order (the bucket order and each bucket's shuffle); None: a random
      order, still the same every epoch.
    scratch_dir: where the bucket files go when there are more than `buffer` records.
    n: the number of records; counted (one pass) if None.

  Returns:
    The shuffled records.
  """
  if n is None:
    n = count_records(records)
  if n <= buffer:
    # The buffer holds all of the input: a uniform shuffle.
    return records.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
  if not scratch_dir:
    raise ValueError(f"shuffling {n} examples with a buffer of {buffer} needs a "
                     "scratch_dir for the shuffle buckets")
  buckets = math.ceil(n / buffer)
  open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
  if open_files != resource.RLIM_INFINITY and buckets > open_files // 2:
    # Every bucket file is open while the input is dealt; the other half of the limit is
    # left to TensorFlow's and the pipeline's own files.
    raise ValueError(
        f"shuffling {n} examples with a buffer of {buffer} needs {buckets} bucket files "
        f"open at once, more than half of this process's open-file limit ({open_files}); "
        f"raise shuffle_buffer to at least {math.ceil(n / (open_files // 2))} or the limit "
        "(ulimit -n)")
  paths = _deal(records, buckets, scratch_dir)
  rng = np.random.default_rng(seed)
  order = rng.permutation(buckets)
  # One seed per bucket: with one seed for all, buckets of equal size would be permuted
  # alike, and every bucket would replay the same pattern of times.
  bucket_seeds = rng.integers(0, 2**31 - 1, size=buckets)

  def shuffled_bucket(path, bucket_seed):
    def records_of(part):
      return tf.ensure_shape(tf.io.parse_tensor(part, tf.string), [None])

    def shuffle(bucket):
      # Stateless: the order depends on the bucket's seed alone, whatever TensorFlow's
      # global seed is (a tensor seed given to `Dataset.shuffle` fails to trace when the
      # global seed is 0).
      return tf.random.experimental.stateless_shuffle(
          bucket, tf.stack([bucket_seed, tf.constant(0, bucket_seed.dtype)]))

    # A bucket holds at most `buffer` records: one batch of all of it, shuffled.
    return (tf.data.TFRecordDataset(path, compression_type=SCRATCH_OPTIONS.compression_type)
            .map(records_of).unbatch().batch(buffer).map(shuffle).unbatch())

  return tf.data.Dataset.from_tensor_slices(
      ([paths[b] for b in order], bucket_seeds[order])).flat_map(shuffled_bucket)


def _deal(records: tf.data.Dataset, buckets: int, directory: str) -> List[str]:
  """Deals record i of `records` to bucket i % `buckets`, one TFRecord file per bucket.

  Each record of a bucket file is one serialized [k] string tensor: the k records one
  chunk of DEAL_CHUNK input records deals to that bucket, in input order.

  Args:
    records: serialized examples, in file order.
    buckets: the number of buckets.
    directory: where the bucket files go (created if missing).

  Returns:
    The bucket files, bucket 0 first.
  """
  def deal(start, chunk):
    # Record i of the input goes to bucket i % buckets: every bucket takes every
    # `buckets`-th record, so it spans the whole time range.
    first = (start * DEAL_CHUNK) % buckets

    def part(bucket):
      return tf.io.serialize_tensor(chunk[(bucket - first) % buckets::buckets])

    # One element per chunk, the parts of every bucket: an element costs far more to
    # hand to Python than a part costs to write.
    return tf.map_fn(part, tf.range(buckets, dtype=tf.int64),
                     fn_output_signature=tf.string)

  tf.io.gfile.makedirs(directory)
  paths = [f"{directory}/bucket-{b:05d}-of-{buckets:05d}" for b in range(buckets)]
  writers = []
  try:
    for path in paths:
      writers.append(tf.io.TFRecordWriter(path, SCRATCH_OPTIONS))
    dealt = records.batch(DEAL_CHUNK).enumerate().map(deal).prefetch(1)
    for parts in dealt.as_numpy_iterator():
      for writer, part in zip(writers, parts):
        writer.write(part)
  finally:
    for writer in writers:
      writer.close()
  return paths


def count_records(records: tf.data.Dataset) -> int:
  """Number of records (counted in batches: one element at a time costs 10x more)."""
  return int(records.batch(DEAL_CHUNK).reduce(
      tf.constant(0, tf.int64), lambda n, chunk: n + tf.shape(chunk, out_type=tf.int64)[0]))


def count_files(file_patterns: Sequence[str]) -> int:
  """Records in gzipped TFRecord files: one read without parsing (9 s for the 8M records
  of the 10M synthetic train split on 2 cores, against 27 s for a pass of the shuffled,
  parsed batches)."""
  return count_records(tf.data.TFRecordDataset(_files(file_patterns), compression_type="GZIP"))


def count_examples(ds: tf.data.Dataset) -> int:
  return int(ds.reduce(tf.constant(0, tf.int64),
                       lambda n, batch: n + tf.cast(tf.shape(batch[1])[0], tf.int64)))


class ThroughputLogger(tf.keras.callbacks.Callback):
  """Logs examples/s per epoch (the first epoch includes parsing and caching).

  The clock stops where the epoch's validation pass (if any) starts, so the rate is of
  training alone with or without per-epoch evaluation.
  """

  def __init__(self, examples_per_epoch: int):
    super().__init__()
    self.examples_per_epoch = examples_per_epoch
    self.epoch_seconds: List[float] = []
    self._start = 0.0
    self._stop: Optional[float] = None

  def on_epoch_begin(self, epoch, logs=None):
    self._start, self._stop = time.perf_counter(), None

  def on_test_begin(self, logs=None):
    if self._stop is None:
      self._stop = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    seconds = (self._stop or time.perf_counter()) - self._start
    self.epoch_seconds.append(seconds)
    logging.info("epoch %d: %.0f examples/s (%.2fs), %s", epoch + 1,
                 self.examples_per_epoch / seconds, seconds, logs)

  def examples_per_second(self, skip_first: bool = True) -> float:
    times = self.epoch_seconds[1:] if skip_first and len(self.epoch_seconds) > 1 \
        else self.epoch_seconds
    return self.examples_per_epoch * len(times) / sum(times)


def fit(model: tf.keras.Model, train_ds: tf.data.Dataset, config: TrainingConfig,
        eval_ds: Optional[tf.data.Dataset] = None,
        tensorboard_dir: Optional[str] = None,
        train_examples: Optional[int] = None) -> Dict[str, float]:
  """Trains for `config.epochs` epochs; returns throughput and (if given) eval metrics.

  Args:
    model: a compiled `RankingModel`.
    train_ds: (features, label) training batches.
    config: the training config (epochs).
    eval_ds: (features, label) evaluation batches; its metrics are returned as `eval_*`.
    tensorboard_dir: write TensorBoard summaries here (loss, AUC and LogLoss per epoch,
      under `train/` and, with `eval_ds`, `validation/`); with it, `eval_ds` is also
      evaluated after every epoch. None writes nothing and evaluates once, at the end.
    train_examples: the number of examples in `train_ds`, if known; otherwise a pass over
      `train_ds` counts them.

  Returns:
    `train_examples`, `train_seconds`, `examples_per_second` and `eval_<metric>`.
  """
  n = train_examples if train_examples is not None else count_examples(train_ds)
  throughput = ThroughputLogger(n)
  callbacks: List[tf.keras.callbacks.Callback] = [throughput]
  validation = None
  if tensorboard_dir:
    # Per-epoch scalars only: no graph, histograms or profiler, which would slow training.
    callbacks.append(tf.keras.callbacks.TensorBoard(
        log_dir=tensorboard_dir, histogram_freq=0, write_graph=False, profile_batch=0,
        update_freq="epoch"))
    validation = eval_ds
  start = time.perf_counter()
  model.fit(train_ds, epochs=config.epochs, verbose=0, callbacks=callbacks,
            validation_data=validation)
  train_seconds = time.perf_counter() - start
  # Before the evaluation, so that the metrics are those of the model that is exported.
  moved = model.fit_unseen_defaults(train_ds)
  result = {
      "train_examples": n,
      "train_seconds": train_seconds,
      "examples_per_second": throughput.examples_per_second(skip_first=False),
  }
  if moved:
    result["unseen_default_moved"] = moved
  if eval_ds is not None:
    metrics = model.evaluate(eval_ds, return_dict=True, verbose=0)
    result.update({f"eval_{k}": float(v) for k, v in metrics.items()})
  logging.info("training result: %s", result)
  return result
