"""Admission filter: ids the model has not trained on get a default vector, not other ids' rows.

A hashed model sends an id it has never seen onto rows that belong to other, specific ids.
In a scheduled retraining most of tomorrow's users are new (82-93% of next-period ratings on
MovieLens, `uet simulate`), so that is the common case, not the corner case. Here:

  * Transform builds a counting Bloom filter of the ids of the training window (per
    id feature of the dataset, `FILTER_HASHES` cells of a `FILTER_BITS`-cell array per
    id) with one tf.Transform analyzer for all those features (their filters side by side),
    keeps the cells whose count reaches the threshold as bits, and emits
    `<feature>_admitted` (1 when every cell of the id is set; one fused lookup for all
    features, `admitted_flags`). The packed bits are a constant of the Transform graph, so
    they ship inside the SavedModel and training and serving decide admission with the
    same bits;
  * the model (`UnseenDefault`) replaces the embedding of a feature whose id is not
    admitted by a per-feature default vector ("a typical new user"). After training it is
    set to the mean embedding of the window's rarer ids (`rare_id_means`: those seen at
    most as often as the median id), since a new id is most like the ids seen least.
    Optionally (`id_dropout`) training also drops admitted ids to the default, which then
    trains it as a weight; measured, both lost to the rare-id mean (docs/measured.md);
  * the filter's bytes and the default vectors are paid from the embedding budget
    (`trainer.config.BYTES_PER_PARAMETER` bytes per float32 parameter).

Everything that turns an id into filter cells is in this module (`filter_cells`), so the
Transform analyzer, the benchmarks and the tests build and query exactly the same filter.
"""

import collections
import hashlib
from typing import AbstractSet, Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from trainer import features
from trainer.config import FILTER_BITS
FILTER_HASHES = 2
FILTER_THRESHOLD = 1    # an id is admitted once it appears this many times in the window
# The defaults are the mean embedding of the ids seen at most as often as this quantile of
# the window's id counts (bench/cold_start.py: the median beat the rarest 0/10/25%, all ids,
# and every example).
RARE_QUANTILE = 0.5


def false_admission_rate(distinct_ids: int, num_bits: int = FILTER_BITS,
                         num_hashes: int = FILTER_HASHES) -> float:
  """The expected share of never-seen ids the filter admits, with `distinct_ids` ids in it.

  At threshold 1 a cell is set when any of the window's ids hashes to it: with
  `num_hashes` cells per id in `num_bits`, a cell stays clear with probability
  e^(-num_hashes * distinct_ids / num_bits), and an unseen id is admitted when all its
  cells are set: (1 - e^(-k n / m))^k. bench/results/filter_rate.md has the rates at the
  window sizes that occur.
  """
  if distinct_ids < 0 or num_bits <= 0 or num_hashes <= 0:
    raise ValueError(f"need distinct_ids >= 0, num_bits > 0 and num_hashes > 0; got "
                     f"{distinct_ids}, {num_bits}, {num_hashes}")
  return (1.0 - np.exp(-num_hashes * distinct_ids / num_bits)) ** num_hashes


def admitted_name(feature: str) -> str:
  """The Transform output that says whether `feature`'s id passed the filter (int64 0/1)."""
  return feature + features.ADMITTED_SUFFIX


# Name of the analyzer that builds the filters (in the Transform graph).
FILTER_ANALYZER_NAME = "admission_filter"


def _key(feature: str, cell: int):
  digest = hashlib.sha256(f"admission:{feature}".encode("utf-8")).digest()
  return [int.from_bytes(digest[:4], "big"), int(cell)]


def filter_cells(values: tf.Tensor, feature: str, num_bits: int = FILTER_BITS,
                 num_hashes: int = FILTER_HASHES) -> tf.Tensor:
  """The filter cells of each value: [batch] strings -> [batch, num_hashes] int64 in [0, num_bits).

  Keyed SipHash like the embeddings, with keys of their own (derived from the feature name),
  so filter false positives and embedding collisions are independent.
  """
  return tf.stack(_cell_columns(values, feature, num_bits, num_hashes), axis=1)


def _cell_columns(values: tf.Tensor, feature: str, num_bits: int,
                  num_hashes: int) -> List[tf.Tensor]:
  """`filter_cells`' columns, unstacked: num_hashes [batch] int64 tensors."""
  if values.shape.rank != 1:
    values = tf.reshape(values, [-1])
  return [tf.strings.to_hash_bucket_strong(values, num_bits, key=_key(feature, i))
          for i in range(num_hashes)]


def pack_filter(counts: np.ndarray, threshold: int = FILTER_THRESHOLD) -> np.ndarray:
  """Cell counts -> packed bits (uint8, 8 cells per byte): a cell is set when count >= threshold."""
  return np.packbits(np.asarray(counts) >= threshold, bitorder="little")


def build_filter(values: Iterable[bytes], feature: str, threshold: int = FILTER_THRESHOLD,
                 num_bits: int = FILTER_BITS, num_hashes: int = FILTER_HASHES) -> np.ndarray:
  """The packed filter of a set of ids, in memory (what the Transform analyzer computes).

  Args:
    values: the ids of the training window, one per training example.
    feature: the feature they belong to (selects the hash keys).
    threshold: appearances an id needs to be admitted.
    num_bits: cells of the filter.
    num_hashes: cells per id.

  Returns:
    uint8 array of num_bits / 8 bytes.
  """
  cells = filter_cells(tf.constant(np.asarray(list(values), dtype=object)), feature,
                       num_bits, num_hashes).numpy()
  return pack_filter(np.bincount(cells.reshape(-1), minlength=num_bits), threshold)


def _global_cells(values: Mapping[str, tf.Tensor], feature_names: Sequence[str],
                  num_bits: int, num_hashes: int) -> tf.Tensor:
  """The filter cells of every feature side by side: [batch, F * num_hashes] int64.

  Feature j's cells (`filter_cells`) are offset by j * num_bits, so they index one array of
  F * num_bits cells: the features' filters concatenated in `feature_names` order. Built
  from F * num_hashes hash ops, one stack and one add, whatever F is (at batch 1 the op
  count is the serving cost).
  """
  cells = tf.stack([c for f in feature_names
                    for c in _cell_columns(values[f], f, num_bits, num_hashes)], axis=1)
  if len(feature_names) == 1:
    return cells
  offsets = np.repeat(np.arange(len(feature_names), dtype=np.int64) * num_bits, num_hashes)
  return cells + tf.constant(offsets)


def admitted_flags(values: Mapping[str, tf.Tensor], packed: tf.Tensor,
                   feature_names: Sequence[str],
                   num_hashes: int = FILTER_HASHES) -> Dict[str, tf.Tensor]:
  """1 where every filter cell of the value is set, else 0, for several features at once.

  One gather and a handful of bit operations for all features (not per feature).

  Args:
    values: feature -> [batch] (or [batch, 1]) string ids, for every feature in
      `feature_names`.
    packed: the features' filters as packed bits, concatenated in `feature_names` order
      (`build_filter` of each, or `filter_analyzer` of all); its length must be static.
    feature_names: the features, in the order of their filters in `packed`.
    num_hashes: cells per id (as built).

  Returns:
    feature -> [batch] int64 flags.
  """
  feature_names = list(feature_names)
  packed = tf.reshape(packed, [-1])
  if packed.shape[0] is None:
    raise ValueError("the packed filter needs a static length (it sets the hash buckets)")
  num_bits = packed.shape[0] * 8 // len(feature_names)
  cells = _global_cells(values, feature_names, num_bits, num_hashes)
  # Cell c is bit c % 8 (little-endian, `pack_filter`) of byte c // 8.
  byte = tf.cast(tf.gather(packed, tf.bitwise.right_shift(cells, 3)), tf.int64)
  bits = tf.bitwise.bitwise_and(
      tf.bitwise.right_shift(byte, tf.bitwise.bitwise_and(cells, 7)), 1)
  flags = tf.reduce_min(tf.reshape(bits, [-1, len(feature_names), num_hashes]), axis=2)
  return dict(zip(feature_names, tf.unstack(flags, num=len(feature_names), axis=1)))


def is_admitted(values: tf.Tensor, packed: tf.Tensor, feature: str,
                num_hashes: int = FILTER_HASHES) -> tf.Tensor:
  """1 where every filter cell of the value is set, else 0: [batch] int64.

  Args:
    values: [batch] (or [batch, 1]) string ids.
    packed: the filter as packed bits (`build_filter`).
    feature: the feature the ids belong to.
    num_hashes: cells per id (as built).
  """
  return admitted_flags({feature: values}, packed, [feature], num_hashes)[feature]


def filter_analyzer(values: Mapping[str, tf.Tensor], feature_names: Sequence[str],
                    threshold: int = FILTER_THRESHOLD, num_bits: int = FILTER_BITS,
                    num_hashes: int = FILTER_HASHES) -> tf.Tensor:
  """tf.Transform analyzer: the packed counting Bloom filters of `feature_names` over the dataset.

  Counts every filter cell over the whole analysis dataset (Beam: per-batch bincounts,
  summed by a global combine), keeps cells with count >= threshold and packs them 8 to a
  byte. One analyzer for all features: their filters side by side, feature j's at bytes
  [j * num_bits / 8, (j + 1) * num_bits / 8), each exactly `build_filter` of that
  feature's values. In the Transform graph the result is a uint8 constant of
  F * num_bits / 8 bytes, which `admitted_flags` reads with one gather.
  """
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top

  total_bits = len(feature_names) * num_bits

  class _CountingBloomFilter(beam.PTransform):

    def expand(self, pcoll):
      return (pcoll
              | "CountCells" >> beam.Map(
                  lambda batch: np.bincount(np.asarray(batch[0]).reshape(-1),
                                            minlength=total_bits).astype(np.int64))
              | "SumCounts" >> beam.CombineGlobally(
                  lambda counts: np.sum(list(counts), axis=0) if counts
                  else np.zeros(total_bits, np.int64))
              | "Pack" >> beam.Map(lambda counts: [pack_filter(counts, threshold)]))

  cells = _global_cells(values, list(feature_names), num_bits, num_hashes)
  (packed,) = tft.experimental.ptransform_analyzer(
      inputs=[cells], ptransform=_CountingBloomFilter(), output_dtypes=[tf.uint8],
      output_shapes=[[total_bits // 8]], name=FILTER_ANALYZER_NAME)
  return packed


@tf.keras.utils.register_keras_serializable(package="uet")
class UnseenDefault(tf.keras.layers.Layer):
  """Per-feature default embedding for ids that are not admitted.

  Input: the model's concatenated embeddings, [batch, sum of `layout`'s dims] (the features
  side by side in `layout` order), and feature -> [batch] admitted flags (0/1) for the
  features in `dims`. Output: the same tensor, with the columns of a non-admitted id's
  feature replaced by that feature's default vector. In training, admitted ids are also
  replaced at rate `id_dropout`, so the default learns what an id the model knows nothing
  about predicts.

  All features are replaced with one select over the concatenation (a column -> flag map
  is a constant of the layer), not one select per feature: at batch 1 the serving cost is
  the op count.
  """

  def __init__(self, dims: Mapping[str, int], id_dropout: float = 0.0,
               seed: Optional[int] = None,
               layout: Optional[Sequence[Sequence[Any]]] = None, **kwargs):
    """Args:
      dims: feature -> embedding dimension, for the features that have a default.
      id_dropout: training-time rate at which admitted ids are replaced by the default.
      seed: seed of the dropout draws.
      layout: (feature, dimension) of every feature of the input, in concatenation order;
        must include the features of `dims` with the same dimensions. Default: `dims`
        alone.
      **kwargs: Keras layer arguments.
    """
    super().__init__(**kwargs)
    if not 0.0 <= id_dropout < 1.0:
      raise ValueError(f"id_dropout must be in [0, 1), got {id_dropout}")
    self.dims = {str(f): int(d) for f, d in dims.items()}
    self.layout = [(str(f), int(d)) for f, d in (layout if layout is not None
                                                  else self.dims.items())]
    wrong = {f: d for f, d in self.dims.items() if (f, d) not in self.layout}
    if wrong:
      raise ValueError(f"layout {self.layout} lacks the default features {wrong}")
    self.id_dropout = float(id_dropout)
    self.seed = seed
    self.defaults = {
        f: self.add_weight(name=f"{f}_default", shape=[d], initializer="zeros")
        for f, d in self.dims.items()}
    # Column j of the input takes the flag of its feature: index i of `dims`' features, or
    # len(dims) (a column of ones: a feature without a default is always kept).
    order = {f: i for i, f in enumerate(self.dims)}
    self._column_flag = np.concatenate(
        [np.full(d, order.get(f, len(order)), np.int32) for f, d in self.layout])

  @property
  def num_parameters(self) -> int:
    """The default vectors' parameters."""
    return sum(self.dims.values())

  def call(self, embedded: tf.Tensor, admitted: Mapping[str, tf.Tensor],
           training: Optional[bool] = None) -> tf.Tensor:
    flags = []
    for f in self.dims:
      flag = admitted[f]
      flags.append(flag if flag.shape.rank == 1 else tf.reshape(flag, [-1]))
    keep = tf.cast(tf.stack(flags, axis=1), tf.bool)  # [batch, features with a default]
    if training and self.id_dropout > 0:
      keep = tf.logical_and(keep, tf.random.uniform(tf.shape(keep), seed=self.seed)
                            >= self.id_dropout)
    keep = tf.pad(keep, [[0, 0], [0, 1]], constant_values=True)
    keep = tf.gather(keep, self._column_flag, axis=1)  # [batch, columns]
    default = tf.concat([tf.cast(self.defaults[f], embedded.dtype) if f in self.defaults
                         else tf.zeros([d], embedded.dtype) for f, d in self.layout], axis=0)
    return tf.where(keep, embedded, default[tf.newaxis, :])

  def assign(self, values: Mapping[str, np.ndarray]) -> None:
    """Sets the defaults of the features in `values` (e.g. from `rare_id_means`)."""
    for f, v in values.items():
      self.defaults[f].assign(tf.cast(v, self.defaults[f].dtype))

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update({"dims": self.dims, "id_dropout": self.id_dropout, "seed": self.seed,
                   "layout": [list(x) for x in self.layout]})
    return config


def _gather_rows(values, rows: Sequence[int]):
  """`values`' rows `rows`: a dense batch, or a multivalent feature's [batch, None] sparse
  one (kept sparse, as the embedding layer pools it)."""
  if isinstance(values, tf.SparseTensor):
    return tf.gather(tf.RaggedTensor.from_sparse(values), rows).to_sparse()
  return tf.gather(values, rows)


def rare_id_means(embedding: tf.keras.layers.Layer, dataset: tf.data.Dataset,
                  layout: Sequence[Sequence[Any]], feature_names: Sequence[str],
                  quantile: float = RARE_QUANTILE,
                  known: Optional[Mapping[str, AbstractSet[bytes]]] = None
                  ) -> Dict[str, np.ndarray]:
  """Per feature of `feature_names`: the mean embedding of the window's rarer ids.

  One streaming pass over `dataset`: each id's count, and its embedding the first time it
  is seen (a hashed id's embedding does not depend on the example). The ids seen at most
  as often as the `quantile` of the counts (and at least the rarest) are averaged, one
  vote per id.

  Args:
    embedding: the model's embedding layer (`SpecEmbedding`), called with
      `concatenated=True`.
    dataset: (features, label) batches, features [batch] string tensors.
    layout: (feature, dimension) of the concatenated embedding, in order.
    feature_names: the features to average.
    quantile: which ids count as rare.
    known: feature -> the ids to consider (a collisionless model's vocabulary: the others
      share one out-of-vocabulary row); default all.

  Returns:
    feature -> [dimension] float32 mean (features without ids are left out).
  """
  columns, start = {}, 0
  for f, d in layout:
    columns[str(f)] = (start, int(d))
    start += int(d)
  counts = {f: collections.Counter() for f in feature_names}
  first: Dict[str, Dict[bytes, np.ndarray]] = {f: {} for f in feature_names}
  for x, _ in dataset:
    new_ids = {}
    for f in feature_names:
      ids = x[f].numpy().reshape(-1)
      values, index, n = np.unique(ids, return_index=True, return_counts=True)
      if known is not None and f in known:
        keep = np.array([v in known[f] for v in values.tolist()], dtype=bool)
        values, index, n = values[keep], index[keep], n[keep]
      counts[f].update(dict(zip(values.tolist(), n.tolist())))
      new_ids[f] = [(v, i) for v, i in zip(values.tolist(), index.tolist())
                    if v not in first[f]]
    rows = sorted({i for new in new_ids.values() for _, i in new})
    if not rows:
      continue
    # Only the rows that bring a new id are embedded, and each kept vector is a copy: a
    # slice of the batch's array would keep the whole batch alive, and on a large dataset
    # nearly every batch brings a new id.
    row_of = {i: k for k, i in enumerate(rows)}
    embedded = embedding({k: _gather_rows(v, rows) for k, v in x.items()}, training=False,
                         concatenated=True).numpy()
    for f, new in new_ids.items():
      lo, d = columns[f]
      for v, i in new:
        first[f][v] = embedded[row_of[i], lo:lo + d].copy()
  means = {}
  for f in feature_names:
    if not counts[f]:
      continue
    ids, n = zip(*counts[f].items())
    n = np.asarray(n)
    cut = max(n.min(), np.quantile(n, quantile))
    means[f] = np.mean([first[f][v] for v, c in zip(ids, n) if c <= cut], axis=0)
  return means


def admitted_columns(columns: Mapping[str, np.ndarray], train_columns: Mapping[str, np.ndarray],
                     admission_features: Sequence[str],
                     threshold: int = FILTER_THRESHOLD) -> Dict[str, np.ndarray]:
  """In memory, what Transform adds: `<feature>_admitted` of `columns` against a filter of
  `train_columns` (the analyzed data), for each of `admission_features`.

  For the in-process models of `uet simulate` and the benchmarks; the pipeline gets the
  same flags from the Transform analyzer (`filter_analyzer`), built with the same cells.

  Returns:
    `columns` plus one int64 array per admission feature.
  """
  out = dict(columns)
  for f in admission_features:
    packed = build_filter(train_columns[f], f, threshold)
    out[admitted_name(f)] = is_admitted(tf.constant(np.asarray(columns[f], dtype=object)),
                                        tf.constant(packed), f).numpy()
  return out
