"""What an embedding holds and how it is sized: specs, salts and parameter budgets.

Pure Python (no TensorFlow), so tools such as the collision report can size and describe
the models without loading the model code. The Keras layer that builds tables from a spec
is `trainer.embedding_layer.SpecEmbedding`.

Three kinds share one spec format: unified (feature multiplexing: every feature's chunks
are hashed into a few shared tables), per-feature hash, and collisionless (one exact row per
vocabulary value).

Same budget, same parameter count: `usable_budget` rounds a budget down to a multiple of
both models' row widths, and from such a budget `unified_spec_from_budget` and
`hash_spec_from_budget` both produce exactly that many parameters.

Salts derive from the feature *name* and the chunk index only (TFRS' `UnifiedEmbedding`
uses `[feature index, chunk index]`, so adding, removing or reordering one feature re-hashes
every later feature and a warm-started model reads the wrong rows).
"""

import dataclasses
import hashlib
import math
import numbers
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union


def _name_hash32(name: str) -> int:
  return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big")


def feature_salt(feature: str, chunk: int = 0) -> Tuple[int, int]:
  """The SipHash key of one lookup: it depends on the feature's name and chunk only.

  Args:
    feature: feature name.
    chunk: index of the chunk (sub-embedding) of that feature.

  Returns:
    A pair of unsigned 32-bit integers, usable as `tf.strings.to_hash_bucket_strong`'s key.
  """
  return (_name_hash32(feature), int(chunk))


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
  """What an embedding layer holds and how each feature is looked up.

  Attributes:
    kind: "unified", "hash" or "collisionless".
    tables: (table name, rows, dim) for every table.
    lookups: (feature, ((table name, chunk), ...)) for every feature, in output order.
      A feature's embedding is the concatenation of its lookups.
    vocabularies: collisionless only: (feature, values) pairs; row 0 is out-of-vocabulary.
  """

  kind: str
  tables: Tuple[Tuple[str, int, int], ...]
  lookups: Tuple[Tuple[str, Tuple[Tuple[str, int], ...]], ...]
  vocabularies: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()

  @property
  def num_parameters(self) -> int:
    """Embedding parameters: the sum of rows * dim over the tables."""
    return sum(rows * dim for _, rows, dim in self.tables)

  @property
  def feature_names(self) -> List[str]:
    """The embedded features, in output order."""
    return [f for f, _ in self.lookups]

  def table_rows(self) -> Dict[str, int]:
    """Table name -> number of rows."""
    return {name: rows for name, rows, _ in self.tables}

  def output_dims(self) -> Dict[str, int]:
    """Feature -> dimension of its embedding (the sum of its lookups' table dims)."""
    dims = {name: dim for name, _, dim in self.tables}
    return {f: sum(dims[t] for t, _ in lk) for f, lk in self.lookups}

  def to_dict(self) -> Dict[str, Any]:
    """A JSON-serializable dict; `from_dict` inverts it."""
    return {
        "kind": self.kind,
        "tables": [list(t) for t in self.tables],
        "lookups": [[f, [list(x) for x in lk]] for f, lk in self.lookups],
        "vocabularies": [[f, list(v)] for f, v in self.vocabularies],
    }

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "EmbeddingSpec":
    """The spec `to_dict` (or its JSON round trip) describes."""
    return cls(
        kind=d["kind"],
        tables=tuple((str(n), int(r), int(dm)) for n, r, dm in d["tables"]),
        lookups=tuple((str(f), tuple((str(t), int(c)) for t, c in lk))
                      for f, lk in d["lookups"]),
        vocabularies=tuple((str(f), tuple(str(x) for x in v))
                           for f, v in d.get("vocabularies", ())),
    )


def unified_spec(chunks_per_feature: Mapping[str, int],
                 buckets_per_table: Union[int, Sequence[int]],
                 dim_per_table: int, num_tables: int,
                 name: str = "unified") -> EmbeddingSpec:
  """A unified-embedding spec: every feature's chunks hashed into shared tables.

  Chunk c of feature f goes to table (hash(f) + c) % num_tables: chunks of one feature land
  in different tables (up to num_tables chunks), and the assignment does not depend on the
  other features. The price of that stability: when features have fewer chunks than there
  are tables, which tables the large features land in is up to the name hash, and the load
  can be uneven (3 tables with 2 chunks per feature lose AUC against 1 or 2 tables; see
  bench/results/unified_configs.md). Chunk counts that are multiples of `num_tables` (or a
  single table) keep every table equally loaded.

  Args:
    chunks_per_feature: feature -> number of chunks (its output dim is chunks*dim_per_table).
    buckets_per_table: rows of each table: one number for all, or one per table.
    dim_per_table: dimension of each table.
    num_tables: number of shared tables.
    name: prefix of the table names.

  Returns:
    The spec.
  """
  rows = ([int(buckets_per_table)] * num_tables
          if isinstance(buckets_per_table, numbers.Integral)
          else [int(r) for r in buckets_per_table])
  if num_tables <= 0 or dim_per_table <= 0 or len(rows) != num_tables or min(rows) <= 0:
    raise ValueError("unified embedding needs num_tables > 0, dim_per_table > 0 and a "
                     f"positive row count per table; got {num_tables} tables of dimension "
                     f"{dim_per_table} with rows {buckets_per_table}")
  tables = tuple((f"{name}_{i}", rows[i], dim_per_table) for i in range(num_tables))
  lookups = []
  for feature, n in chunks_per_feature.items():
    if n <= 0:
      raise ValueError(f"feature {feature!r} needs at least one chunk, got {n}")
    offset = _name_hash32(feature)
    lookups.append((feature, tuple((tables[(offset + c) % num_tables][0], c)
                                   for c in range(n))))
  used = {t for _, lk in lookups for t, _ in lk}
  unused = [t for t, _, _ in tables if t not in used]
  if unused:
    # An unused table would be counted in the budget but never created or trained.
    raise ValueError(f"tables {unused} receive no lookup from features "
                     f"{dict(chunks_per_feature)}: use fewer tables or more chunks")
  return EmbeddingSpec("unified", tables, tuple(lookups))


def usable_budget(budget: int, *row_widths: int) -> int:
  """The largest parameter count <= `budget` that tables of every given width can fill.

  Sizing both the unified model (rows of `dim_per_table`) and the hash baseline (rows of
  `embedding_dim`) from `usable_budget(budget, dim_per_table, embedding_dim)` gives both
  exactly this many parameters.

  Args:
    budget: the parameter budget.
    *row_widths: the embedding dimensions of the tables to be sized.

  Returns:
    `budget` rounded down to a multiple of the least common multiple of `row_widths`.

  Raises:
    ValueError: the budget cannot hold a single row of that common width.
  """
  if min(row_widths, default=1) <= 0:
    raise ValueError(f"embedding dimensions must be positive, got {row_widths}")
  unit = math.lcm(*row_widths)
  usable = budget - budget % unit
  if usable <= 0:
    raise ValueError(f"embedding budget {budget} is smaller than one row of width {unit}")
  return usable


def unified_spec_from_budget(budget: int, chunks_per_feature: Mapping[str, int],
                             dim_per_table: int, num_tables: int) -> EmbeddingSpec:
  """Sizes a unified embedding from a total parameter budget.

  The budget buys `budget // dim_per_table` rows, spread over the tables as evenly as
  possible (sizes differ by at most one row), so the spec holds
  `budget - budget % dim_per_table` parameters: exactly `budget` when it is a multiple of
  `dim_per_table` (see `usable_budget`).

  Args:
    budget: total embedding parameters.
    chunks_per_feature: feature -> number of chunks.
    dim_per_table: dimension of each table.
    num_tables: number of shared tables.

  Returns:
    The spec.
  """
  if dim_per_table <= 0 or num_tables <= 0:
    raise ValueError(f"unified embedding needs positive dim_per_table and num_tables; got "
                     f"{dim_per_table}, {num_tables}")
  total_rows = budget // dim_per_table
  if total_rows < num_tables:
    raise ValueError(f"budget {budget} is too small for {num_tables} tables of dimension "
                     f"{dim_per_table}")
  rows = [total_rows // num_tables + (1 if i < total_rows % num_tables else 0)
          for i in range(num_tables)]
  return unified_spec(chunks_per_feature, rows, dim_per_table, num_tables)


def allocate_buckets(total: int, weights: Mapping[str, int]) -> Dict[str, int]:
  """Splits `total` rows among features in proportion to `weights` (largest remainder).

  The result sums to `total` exactly, and every feature gets at least one row.
  """
  if total < len(weights):
    raise ValueError(f"{total} buckets cannot give each of {len(weights)} features a row")
  weight_sum = sum(weights.values())
  if weight_sum <= 0 or any(w < 0 for w in weights.values()):
    raise ValueError(f"bucket weights must be non-negative with a positive sum: {weights}")
  exact = {f: total * w / weight_sum for f, w in weights.items()}
  alloc = {f: max(1, int(x)) for f, x in exact.items()}
  # Hand out (or take back) the rounding difference by largest (smallest) remainder.
  order = sorted(weights, key=lambda f: (exact[f] - int(exact[f]), f), reverse=True)
  diff = total - sum(alloc.values())
  i = 0
  while diff != 0:
    f = order[i % len(order)] if diff > 0 else order[::-1][i % len(order)]
    if diff > 0:
      alloc[f] += 1
      diff -= 1
    elif alloc[f] > 1:
      alloc[f] -= 1
      diff += 1
    i += 1
  return alloc


def hash_spec(buckets: Mapping[str, int], dim: int) -> EmbeddingSpec:
  """One hashed table per feature (the baseline). Chunk 0's salt, as in unified."""
  tables = tuple((f"hash_{f}", int(b), dim) for f, b in buckets.items())
  lookups = tuple((f, ((f"hash_{f}", 0),)) for f in buckets)
  return EmbeddingSpec("hash", tables, lookups)


def hash_spec_from_budget(budget: int, weights: Mapping[str, int], dim: int,
                          features: Sequence[str]) -> EmbeddingSpec:
  """Sizes the hash baseline from the same budget as the unified model.

  The budget buys `budget // dim` rows, split among the features in proportion to
  `weights`; the spec holds `budget - budget % dim` parameters (exactly `budget` when it is
  a multiple of `dim`, see `usable_budget`).

  Args:
    budget: total embedding parameters.
    weights: relative table size of each feature.
    dim: embedding dimension of every table.
    features: the features to embed, in output order; each gets its own table.

  Returns:
    The spec.
  """
  missing = [f for f in features if f not in weights]
  if missing:
    raise ValueError(f"no hash table weight for {missing}: every feature needs its own table")
  return hash_spec(allocate_buckets(budget // dim, {f: weights[f] for f in features}), dim)


def collisionless_spec(vocabularies: Mapping[str, Sequence[str]], dim: int) -> EmbeddingSpec:
  """One exact table per feature: a row per vocabulary value plus one out-of-vocabulary row."""
  tables = tuple((f"exact_{f}", len(v) + 1, dim) for f, v in vocabularies.items())
  lookups = tuple((f, ((f"exact_{f}", 0),)) for f in vocabularies)
  vocabs = tuple((f, tuple(v)) for f, v in vocabularies.items())
  return EmbeddingSpec("collisionless", tables, lookups, vocabs)


def lookup_key(feature: str, chunk: int) -> str:
  """The name of one lookup (one chunk of one feature): "feature/chunk"."""
  return f"{feature}/{chunk}"
