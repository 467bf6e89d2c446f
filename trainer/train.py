"""Input pipeline and training loop.

The input pipeline is built for throughput on a few CPU cores: records are batched *before*
parsing (one vectorized `parse_example` per batch instead of one per record), and the
shuffle happens once, like the tutorial's `shuffle().batch().cache()`. Memory does not grow
with the data: input of at most `CACHE_MAX_BYTES` (compressed) is cached in memory after the
first epoch, which is what makes MovieLens-100K epochs fast; larger input streams, each
epoch reading the files again, so memory holds the shuffle buffer and a few batches.
"""

import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

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
# 0.5 GB. Above it every epoch reads and parses the files again (about 9 s per 800k
# examples on 2 cores). A constant, so memory is bounded at any data size.
CACHE_MAX_BYTES = 64 << 20


def make_dataset(file_patterns: Sequence[str], feature_spec: Mapping[str, tf.io.FixedLenFeature],
                 batch_size: int, shuffle_buffer: int = 0, seed: Optional[int] = None,
                 cache: Optional[bool] = None) -> tf.data.Dataset:
  """(features, label) batches from gzipped TFRecords of transformed tf.Examples.

  Args:
    file_patterns: file globs (Trainer's `fn_args.train_files`).
    feature_spec: the transformed feature spec (must contain `label`).
    batch_size: examples per batch.
    shuffle_buffer: >0 shuffles examples once (same order every epoch) before batching.
    seed: shuffle seed.
    cache: keep the parsed batches in memory; None (default): only if the files hold at
      most CACHE_MAX_BYTES.

  Returns:
    The dataset; features are [batch] string tensors (admission flags [batch] int64), the
    label a [batch] float tensor.
  """
  # The admission flags are read when Transform wrote them (models without admission
  # ignore them).
  flags = [k for k in feature_spec if k.endswith(features.ADMITTED_SUFFIX)]
  spec = {k: feature_spec[k] for k in (*features.MODEL_FEATURES, *flags, features.LABEL)}
  files = _files(file_patterns)
  if cache is None:
    cache = sum(tf.io.gfile.stat(f).length for f in files) <= CACHE_MAX_BYTES
  ds = tf.data.TFRecordDataset(files, compression_type="GZIP",
                               num_parallel_reads=tf.data.AUTOTUNE)
  if shuffle_buffer:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
  ds = ds.batch(batch_size)

  def parse(serialized):
    parsed = tf.io.parse_example(serialized, spec)
    label = tf.cast(tf.reshape(parsed.pop(features.LABEL), [-1]), tf.float32)
    return {k: tf.reshape(v, [-1]) for k, v in parsed.items()}, label

  ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  if cache:
    ds = ds.cache()
  return ds.prefetch(tf.data.AUTOTUNE)


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
        tensorboard_dir: Optional[str] = None) -> Dict[str, float]:
  """Trains for `config.epochs` epochs; returns throughput and (if given) eval metrics.

  Args:
    model: a compiled `RankingModel`.
    train_ds: (features, label) training batches.
    config: the training config (epochs).
    eval_ds: (features, label) evaluation batches; its metrics are returned as `eval_*`.
    tensorboard_dir: write TensorBoard summaries here (loss, AUC and LogLoss per epoch,
      under `train/` and, with `eval_ds`, `validation/`); with it, `eval_ds` is also
      evaluated after every epoch. None writes nothing and evaluates once, at the end.

  Returns:
    `train_examples`, `train_seconds`, `examples_per_second` and `eval_<metric>`.
  """
  n = count_examples(train_ds)  # one streaming pass (fills the cache, if there is one)
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
