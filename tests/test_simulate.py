"""Pieces of `uet simulate` that decide what it reports."""

import numpy as np

from tools import simulate
from tests.conftest import write_movielens_slice
from tests.test_movielens_example_gen import _run_executor


def test_train_rows_follow_the_example_gens_own_split(tmp_path):
  # The in-process reference models must train on exactly the rows the pipeline trains on.
  data = write_movielens_slice(tmp_path / "ml", 1500)
  splits = _run_executor(data, tmp_path / "out")
  assert splits["train"] and splits["eval"]
  assert all(simulate._split_is_train(r) for r in splits["train"])
  assert not any(simulate._split_is_train(r) for r in splits["eval"])


def test_unseen_and_returning_users():
  nxt = {"user_id": np.array([b"1", b"2", b"3", b"1"]),
         "movie_id": np.array([b"a", b"b", b"a", b"c"])}
  share = simulate.unseen_share(nxt, seen_users={b"1"}, seen_movies={b"a", b"b"})
  assert share == {"user": 0.5, "movie": 0.25, "user_or_movie": 0.75}
  np.testing.assert_array_equal(simulate.returning_users(nxt, {b"1"}),
                                [True, False, False, True])


def test_auc_orders_scores():
  labels = np.array([0, 0, 1, 1], np.float32)
  assert simulate.auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) > 0.99
  assert simulate.auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) < 0.01
