"""`uet collisions`: how many feature values share embedding rows, hash vs unified.

  uet collisions [--dataset SPEC] [--data-dir D] [--budget N]

Reads every model feature's vocabulary from a dataset's source (a preset or a spec file;
default MovieLens-100K), sizes the hash baseline
and the unified embedding from the same parameter budget exactly as the Trainer does
(`trainer.model.embedding_spec`), hashes every value with the layers' own hashing code
(`embedding_layer.hashed_ids`) and prints, per feature, the share of values whose rows are
also used by another value:

  * same:      by another value of the same feature;
  * other:     by a value of another feature (always 0 for hash: one table per feature);
  * identical: every row equals another value's of the same feature, so the two values
               have the same embedding and the model cannot tell them apart.

TensorFlow is imported only when the command runs (`uet --help` stays fast).
"""

import argparse
import collections
import dataclasses
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO

from pipeline.exit_codes import EXIT_OK, EXIT_USAGE
DEFAULT_BUDGET = 24_000


@dataclasses.dataclass(frozen=True)
class FeatureCollisions:
  """Collision counts of one feature's vocabulary under one embedding spec.

  Attributes:
    feature: feature name.
    values: distinct values in the vocabulary.
    lookups: rows each value reads (its chunks; 1 for hash).
    rows: rows of the table(s) each lookup hashes into (shared across features for unified).
    same: values with at least one row also used by another value of the same feature.
    other: values with at least one row also used by a value of another feature.
    identical: values whose rows all equal another same-feature value's (same embedding).
  """

  feature: str
  values: int
  lookups: int
  rows: int
  same: int
  other: int
  identical: int

  def share(self, count: int) -> float:
    """`count` as a fraction of the feature's values (0 for an empty vocabulary)."""
    return count / self.values if self.values else 0.0


def collision_stats(spec: Any, vocabularies: Mapping[str, Sequence[str]]
                    ) -> List[FeatureCollisions]:
  """Counts, per feature, the values that share embedding rows with other values.

  Args:
    spec: a hashed ("unified" or "hash") `embeddings.EmbeddingSpec`.
    vocabularies: feature -> distinct values, for every feature of the spec.

  Returns:
    One `FeatureCollisions` per feature of the spec, in the spec's order.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from trainer import embedding_layer, embeddings  # pylint: disable=g-import-not-at-top

  lookups = dict(spec.lookups)
  rows_of = spec.table_rows()
  vocabs = {f: list(dict.fromkeys(vocabularies[f])) for f in spec.feature_names}
  ids = {key: tensor.numpy().tolist() for key, tensor in embedding_layer.hashed_ids(
      spec, {f: tf.constant(v, tf.string) for f, v in vocabs.items()}).items()}

  # (table, row) -> the (feature, value index) pairs that read it.
  occupants: Dict[Any, set] = collections.defaultdict(set)
  rows_by_value: Dict[str, List[List[Any]]] = {}
  for feature, values in vocabs.items():
    per_value = [[] for _ in values]
    for table, chunk in lookups[feature]:
      for i, row in enumerate(ids[embeddings.lookup_key(feature, chunk)]):
        occupants[(table, row)].add((feature, i))
        per_value[i].append((table, row))
    rows_by_value[feature] = per_value

  result = []
  for feature, values in vocabs.items():
    same = other = 0
    for i, rows in enumerate(rows_by_value[feature]):
      sharers = set().union(*(occupants[r] for r in rows)) - {(feature, i)}
      same += any(f == feature for f, _ in sharers)
      other += any(f != feature for f, _ in sharers)
    signatures = collections.Counter(tuple(rows) for rows in rows_by_value[feature])
    identical = sum(n for n in signatures.values() if n > 1)
    result.append(FeatureCollisions(
        feature=feature, values=len(values), lookups=len(lookups[feature]),
        rows=rows_of[lookups[feature][0][0]], same=same, other=other, identical=identical))
  return result


def _pct(x: float) -> str:
  return f"{100 * x:5.1f}%"


def _describe(spec: Any) -> str:
  if spec.kind == "hash":
    return f"hash: one table per feature, dim {spec.tables[0][2]}"
  rows = sorted({r for _, r, _ in spec.tables})
  rows_text = f"{rows[0]:,}" if len(rows) == 1 else f"{rows[0]:,}-{rows[-1]:,}"
  return (f"unified: {len(spec.tables)} shared table{'s' if len(spec.tables) > 1 else ''} "
          f"x {rows_text} rows x dim {spec.tables[0][2]}")


def _totals(stats: Sequence[FeatureCollisions]) -> Dict[str, float]:
  n = sum(s.values for s in stats)
  return {key: sum(getattr(s, key) for s in stats) / n if n else 0.0
          for key in ("same", "other", "identical")}


def format_report(specs: Mapping[str, Any], stats: Mapping[str, Sequence[FeatureCollisions]],
                  budget: int, source: str) -> str:
  """The printed report: one block per configuration, then a one-line verdict.

  Args:
    specs: configuration name -> spec ("hash", "unified").
    stats: configuration name -> its `collision_stats`.
    budget: the requested parameter budget.
    source: where the vocabularies came from.

  Returns:
    The report text.
  """
  first = next(iter(stats.values()))
  lines = [
      f"Embedding-row collisions at a budget of {budget:,} parameters",
      f"vocabularies: {sum(s.values for s in first):,} values of {len(first)} features "
      f"({source})",
      "",
      "Share of a feature's values whose rows are also used by another value:",
      "  same      = another value of the same feature",
      "  other     = a value of another feature",
      "  identical = ALL its rows equal another value's: same embedding, indistinguishable",
  ]
  header = (f"  {'feature':<22}{'values':>8}{'lookups':>9}{'rows':>8}"
            f"{'same':>9}{'other':>9}{'identical':>11}")
  for name, spec in specs.items():
    lines += ["", f"{_describe(spec)}; {spec.num_parameters:,} parameters", header]
    for s in stats[name]:
      lines.append(f"  {s.feature:<22}{s.values:>8,}{s.lookups:>9}{s.rows:>8,}"
                   f"{_pct(s.share(s.same)):>9}{_pct(s.share(s.other)):>9}"
                   f"{_pct(s.share(s.identical)):>11}")
    t = _totals(stats[name])
    lines.append(f"  {'all features':<22}{sum(s.values for s in stats[name]):>8,}{'':>17}"
                 f"{_pct(t['same']):>9}{_pct(t['other']):>9}{_pct(t['identical']):>11}")
  lines.append("")
  lines.append("Indistinguishable values (identical): " + ", ".join(
      f"{name} {_pct(_totals(stats[name])['identical']).strip()}" for name in specs))
  return "\n".join(lines)


def run(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
  """Runs `uet collisions`.

  Args:
    args: parsed flags (`dataset`, `data_dir`, `budget`).
    out: where the report goes (default: standard output).

  Returns:
    The exit code: 0, or 2 for a bad spec, a missing data directory or an unusable budget.
  """
  from dataspec import spec as spec_lib  # pylint: disable=g-import-not-at-top
  from tools import columns  # pylint: disable=g-import-not-at-top
  from trainer import model as model_lib  # pylint: disable=g-import-not-at-top
  from trainer.config import TrainingConfig  # pylint: disable=g-import-not-at-top
  from trainer.config import resolve  # pylint: disable=g-import-not-at-top
  try:
    dataset = spec_lib.load(args.dataset)
    data_dir = spec_lib.resolve_data_dir(dataset, args.data_dir)
    if not data_dir:
      raise ValueError(f"dataset {dataset.name} ({dataset.origin}) names no data directory "
                       "(source.data_dir): pass --data-dir")
    data_dir = columns.check_data_dir(dataset, data_dir)
    base = TrainingConfig(embedding_budget=args.budget)
    specs = {kind: model_lib.embedding_spec(resolve(base.replace(model_type=kind), dataset))
             for kind in ("hash", "unified")}
  except ValueError as e:  # SpecError is a ValueError
    print(f"uet collisions: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  model_inputs, _ = columns.model_features(dataset, data_dir)
  vocabularies = columns.vocabularies(model_inputs)
  stats = {kind: collision_stats(spec, vocabularies) for kind, spec in specs.items()}
  print(format_report(specs, stats, args.budget, data_dir), file=out or sys.stdout)
  return EXIT_OK


def add_parser(subparsers: Any) -> None:
  """Declares `uet collisions` on the CLI's subparsers."""
  p = subparsers.add_parser(
      "collisions", help="share of feature values that share embedding rows, hash vs unified",
      description="Reads each feature's vocabulary and reports, for the hash baseline and "
      "the unified embedding sized from the same budget, the share of values that share an "
      "embedding row with another value (same feature, other features, or all rows).")
  p.add_argument("--dataset", help="a preset name (movielens, taxi, wide) or a spec file "
                 "(default: movielens)")
  p.add_argument("--data-dir", help="the data directory (default: the spec's "
                 "source.data_dir)")
  p.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                 help=f"embedding parameters of each model (default {DEFAULT_BUDGET:,}, the "
                 "tutorial's)")
  p.set_defaults(func=run)
