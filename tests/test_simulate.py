"""Pieces of `uet simulate` that decide what it reports."""

import numpy as np

from dataspec import spec as spec_lib
from tools import simulate
from tests.specs import MOVIELENS
from tests.conftest import write_movielens_slice
from tests.test_example_gen import run_executor


def test_train_rows_follow_the_example_gens_own_split(tmp_path):
  # The in-process reference models must train on exactly the rows the pipeline trains on.
  data = write_movielens_slice(tmp_path / "ml", 1500)
  splits = run_executor(data, tmp_path / "out")
  assert splits["train"] and splits["eval"]
  assert all(simulate._split_is_train(r) for r in splits["train"])
  assert not any(simulate._split_is_train(r) for r in splits["eval"])


def test_unseen_and_returning_ids():
  nxt = {"user_id": np.array([b"1", b"2", b"3", b"1"]),
         "movie_id": np.array([b"a", b"b", b"a", b"c"])}
  share = simulate.unseen_share(nxt, {"user_id": {b"1"}, "movie_id": {b"a", b"b"}})
  assert share == {"user_id": 0.5, "movie_id": 0.25, simulate.ANY_ID: 0.75}
  np.testing.assert_array_equal(simulate.returning_rows(nxt, "user_id", {b"1"}),
                                [True, False, False, True])


def test_returning_is_measured_on_the_user_id_of_any_spec():
  assert simulate.returning_feature(MOVIELENS) == "user_id"
  taxi = spec_lib.load("taxi")
  assert simulate.returning_feature(taxi) in taxi.id_features


def test_auc_orders_scores():
  labels = np.array([0, 0, 1, 1], np.float32)
  assert simulate.auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) > 0.99
  assert simulate.auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) < 0.01


def _rows_and_scores():
  labels = [np.array([0, 1, 0, 1], np.float32), np.array([0, 0, 1, 1], np.float32),
            np.array([1, 0, 1, 0], np.float32)]
  good = [y * 0.8 + 0.1 for y in labels]
  # Right inside each period, but its scores for period 2 sit below everyone else's, so
  # pooling the periods ranks period 2's positives under period 1's negatives.
  shifted = [labels[0] * 0.1 + 0.5, labels[1] * 0.1 + 0.1, labels[2] * 0.1 + 0.5]
  scores = {m: good for m in simulate.MODELS}
  scores["hash"] = shifted
  rows = [{"period": t, "auc": {m: simulate.auc(labels[t - 1], scores[m][t - 1])
                                for m in simulate.MODELS},
           "unseen": {"user_id": 0.5, "movie_id": 0.0, simulate.ANY_ID: 0.5},
           "embedding_parameters": {m: 100 * t for m in simulate.MODELS}}
          for t in (1, 2, 3)]
  return rows, scores, labels


def test_pooled_auc_is_one_auc_over_every_periods_predictions():
  rows, scores, labels = _rows_and_scores()
  pooled = simulate.pooled_auc(rows, scores, labels)
  assert pooled["unified_warm"] > 0.99
  # Perfect within every period, not across them: pooling is not the mean of the periods.
  assert all(r["auc"]["hash"] > 0.99 for r in rows)
  assert pooled["hash"] < 0.9
  late = simulate.pooled_auc(rows, scores, labels, from_period=3)
  assert late["hash"] > 0.99  # period 3 alone


def test_summary_is_keyed_by_model_with_unseen_shares():
  rows, scores, labels = _rows_and_scores()
  result = simulate.simulation_summary(rows, scores, labels)
  assert set(result["models"]) == {"unified_warm", "unified_cold", "hash",
                                   "collisionless_frozen", "collisionless_refit"}
  refit = result["models"]["collisionless_refit"]
  assert refit["embedding_parameters_per_period"] == [100, 200, 300]
  assert len(refit["auc_per_period"]) == 3 and refit["auc_pooled"] > 0.99
  assert [u["period"] for u in result["unseen_share_per_period"]] == [1, 2, 3]
  assert result["unseen_share_per_period"][0]["user_id"] == 0.5
