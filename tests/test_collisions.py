"""`uet collisions`: counts checked by hand and by brute force on small vocabularies."""

import io

import pytest
import tensorflow as tf

from tools import cli, collisions
from trainer import embedding_layer, embeddings

VOCABS = {
    "color": ["red", "green", "blue", "cyan", "magenta", "yellow", "black"],
    "shape": ["circle", "square", "triangle", "star", "hexagon"],
    "size": ["S", "M", "L"],
    "lonely": ["only"],
}


def _by_feature(stats):
  return {s.feature: s for s in stats}


def _brute_force(spec, vocabs):
  """Pairwise comparison of every two values' rows, hashed independently of the module."""
  rows = spec.table_rows()
  rows_of = {}  # (feature, value) -> [(table, row) per chunk]
  for feature, lookups in spec.lookups:
    for value in vocabs[feature]:
      rows_of[(feature, value)] = [
          (table, int(embedding_layer.hash_ids(tf.constant([value]), rows[table],
                                          embeddings.feature_salt(feature, chunk))[0]))
          for table, chunk in lookups]
  expected = {}
  for feature, _ in spec.lookups:
    same = other = identical = 0
    for value in vocabs[feature]:
      mine = rows_of[(feature, value)]
      shared = [key for key, theirs in rows_of.items()
                if key != (feature, value) and set(mine) & set(theirs)]
      same += any(f == feature for f, _ in shared)
      other += any(f != feature for f, _ in shared)
      identical += any(rows_of[(feature, v)] == mine
                       for v in vocabs[feature] if v != value)
    expected[feature] = (same, other, identical)
  return expected


def test_one_row_tables_collide_everything_by_hand():
  # Hash baseline, one row per feature: every value of a multi-value feature shares its
  # row (and so its whole embedding) with the others; no table is shared across features.
  spec = embeddings.hash_spec({f: 1 for f in VOCABS}, 4)
  stats = _by_feature(collisions.collision_stats(spec, VOCABS))
  assert (stats["color"].same, stats["color"].other, stats["color"].identical) == (7, 0, 7)
  assert (stats["size"].same, stats["size"].other, stats["size"].identical) == (3, 0, 3)
  assert (stats["lonely"].same, stats["lonely"].other, stats["lonely"].identical) == (0, 0, 0)
  assert stats["color"].share(stats["color"].same) == 1.0


def test_one_shared_row_collides_across_features_by_hand():
  # Unified, one table of one row: every value shares with every other value.
  spec = embeddings.unified_spec({f: 2 for f in VOCABS}, 1, 4, 1)
  stats = _by_feature(collisions.collision_stats(spec, VOCABS))
  assert (stats["shape"].same, stats["shape"].other, stats["shape"].identical) == (5, 5, 5)
  # A single-value feature has no other value of its own, but shares with everyone else.
  assert (stats["lonely"].same, stats["lonely"].other, stats["lonely"].identical) == (0, 1, 0)
  assert stats["lonely"].lookups == 2 and stats["lonely"].rows == 1


def test_pigeonhole_in_a_tiny_hash_table():
  # 7 colors in 3 rows: at least 5 colors share a row (at most 2 rows hold a lone color).
  spec = embeddings.hash_spec({"color": 3}, 4)
  color = collisions.collision_stats(spec, {"color": VOCABS["color"]})[0]
  assert color.same >= 5
  assert color.identical == color.same  # one lookup: sharing a row is sharing everything


@pytest.mark.parametrize("spec", [
    embeddings.hash_spec({"color": 5, "shape": 4, "size": 3, "lonely": 2}, 4),
    embeddings.unified_spec({"color": 2, "shape": 2, "size": 1, "lonely": 3}, 6, 4, 2),
    embeddings.unified_spec({"color": 3, "shape": 1, "size": 2, "lonely": 1}, [5, 4, 3], 2, 3),
], ids=["hash", "unified-2-tables", "unified-3-uneven-tables"])
def test_counts_match_brute_force(spec):
  stats = _by_feature(collisions.collision_stats(spec, VOCABS))
  expected = _brute_force(spec, VOCABS)
  for feature, (same, other, identical) in expected.items():
    s = stats[feature]
    assert (s.same, s.other, s.identical) == (same, other, identical), feature
    assert s.values == len(VOCABS[feature])
  # The small tables make sure the comparison is not vacuous.
  assert any(s.same for s in stats.values())


def test_huge_tables_have_no_collisions():
  spec = embeddings.unified_spec({f: 2 for f in VOCABS}, 2**40, 4, 2)
  for s in collisions.collision_stats(spec, VOCABS):
    assert (s.same, s.other, s.identical) == (0, 0, 0)


def test_duplicate_vocabulary_entries_are_one_value():
  spec = embeddings.hash_spec({"size": 1}, 4)
  stats = collisions.collision_stats(spec, {"size": ["S", "S", "M"]})[0]
  assert (stats.values, stats.same) == (2, 2)


def test_cli_report_on_movielens(small_movielens, capsys):
  assert cli.main(["collisions", "--data-dir", str(small_movielens), "--budget", "6000"]) == 0
  out = capsys.readouterr().out
  assert "budget of 6,000 parameters" in out
  assert "hash: one table per feature, dim 16; 6,000 parameters" in out
  assert "unified: 2 shared tables x 375 rows x dim 8; 6,000 parameters" in out
  for feature in ("movie_id", "user_id", "user_gender", "user_zip_code", "user_occupation",
                  "user_age_bucket"):
    assert out.count(f"  {feature} ") == 2
  assert "Indistinguishable values (identical): hash" in out


def test_cli_missing_data_dir_is_a_usage_error(tmp_path, capsys):
  assert cli.main(["collisions", "--data-dir", str(tmp_path / "absent")]) == 2
  assert f"{tmp_path / 'absent'}: not a directory" in capsys.readouterr().err


def test_cli_budget_too_small_is_a_usage_error(small_movielens, capsys):
  assert cli.main(["collisions", "--data-dir", str(small_movielens), "--budget", "10"]) == 2
  assert "budget" in capsys.readouterr().err


def test_report_format_is_stable_on_synthetic_stats():
  spec = embeddings.hash_spec({"size": 1}, 4)
  stats = {"hash": [collisions.FeatureCollisions("size", 3, 1, 1, 3, 0, 3)]}
  text = collisions.format_report({"hash": spec}, stats, 4, "test")
  assert "  size                         3        1       1   100.0%     0.0%     100.0%" in text
  assert text.endswith("Indistinguishable values (identical): hash 100.0%")
