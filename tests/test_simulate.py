"""Pieces of `uet simulate` that decide what it reports."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from components.example_gen import spans as spans_lib
from dataspec import spec as spec_lib
from pipeline import config as pipeline_config
from tools import simulate
from trainer import admission, model as model_lib, warm_start
from tests.specs import MOVIELENS, resolved
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
           "embedding_parameters": {m: 100 * t for m in simulate.MODELS},
           "parameters": {m: {"total": 1000 * t} for m in simulate.MODELS}}
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
                                   "collisionless_frozen", "collisionless_refit",
                                   "collisionless_warm"}
  refit = result["models"]["collisionless_refit"]
  assert refit["embedding_parameters_per_period"] == [100, 200, 300]
  assert [p["total"] for p in refit["parameters_per_period"]] == [1000, 2000, 3000]
  # Like against like: cold with cold, warm with warm.
  pairs = result["unified_minus_collisionless"]
  assert (pairs["cold"]["unified"], pairs["cold"]["collisionless"]) == (
      "unified_cold", "collisionless_refit")
  assert (pairs["warm"]["unified"], pairs["warm"]["collisionless"]) == (
      "unified_warm", "collisionless_warm")
  assert pairs["cold"]["per_period"] == [r["auc"]["unified_cold"] - r["auc"]["collisionless_refit"]
                                         for r in rows]
  assert len(refit["auc_per_period"]) == 3 and refit["auc_pooled"] > 0.99
  assert [u["period"] for u in result["unseen_share_per_period"]] == [1, 2, 3]
  assert result["unseen_share_per_period"][0]["user_id"] == 0.5


# The replay's protocol, on a real MovieLens slice cut into time spans: what period t's
# models may see (spans up to t, their train split) and what they must not (span t + 1).

WINDOW = 2
PERIODS = (1, 2, 3)


def _row_keys(feats):
  """One key per rating: its id features' values (a user rates a movie once)."""
  return list(zip(*(np.asarray(feats[f]).reshape(-1).tolist() for f in MOVIELENS.id_features)))


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
  """Periods 1-3 of the reference models, with every input they received recorded."""
  tmp = tmp_path_factory.mktemp("replay")
  data = write_movielens_slice(tmp / "ml", 2400, every=40)
  spans = spans_lib.write_time_spans(MOVIELENS, str(data), str(tmp / "spans"), num_spans=5)
  loaded = [simulate.load_span(MOVIELENS, s.path) for s in spans]
  training = pipeline_config.PipelineConfig(data_dir="/d", output_dir="/o").candidate.replace(
      epochs=1, batch_size=256)
  seen = {"fit": [], "filter": [], "defaults": []}
  fit, build_filter = model_lib.RankingModel.fit, admission.build_filter
  rare_id_means = admission.rare_id_means

  def batches(ds):
    return [key for x, _ in ds for key in _row_keys({f: x[f].numpy() for f in x})]

  def spy_fit(self, ds, *a, **k):
    seen["fit"][-1].append((self.spec.kind, batches(ds)))
    return fit(self, ds, *a, **k)

  def spy_filter(values, feature, *a, **k):
    values = list(values)
    seen["filter"][-1].append((feature, values))
    return build_filter(values, feature, *a, **k)

  def spy_defaults(embedding, ds, *a, **k):
    seen["defaults"][-1].append(batches(ds))
    return rare_id_means(embedding, ds, *a, **k)

  periods, previous = {}, None
  frozen = simulate.vocabularies_of(simulate.window_rows(loaded, 1, WINDOW)[0])
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(model_lib.RankingModel, "fit", spy_fit)
    mp.setattr(admission, "build_filter", spy_filter)
    mp.setattr(admission, "rare_id_means", spy_defaults)
    for t in PERIODS:
      for v in seen.values():
        v.append([])
      periods[t] = simulate.train_references(training, loaded, t, WINDOW, frozen, previous)
      previous = periods[t]["models"]["collisionless_warm"]
  return {"tmp": tmp, "spans": spans, "loaded": loaded, "periods": periods, "seen": seen,
          "frozen": frozen}


def test_next_period_rows_never_reach_training_the_filter_defaults_or_vocabularies(replay):
  loaded = replay["loaded"]
  for i, t in enumerate(PERIODS):
    future = set(_row_keys(loaded[t]["features"]))  # span t + 1, scored by period t
    past = {f: {v for p in loaded[:t] for v in p["features"][f]}
            for f in MOVIELENS.id_features}
    future_only = {f: {v for v in loaded[t]["features"][f]} - past[f]
                   for f in MOVIELENS.id_features}
    assert future_only["user_id"], "the slice must bring new users, or nothing is tested"
    fits, filters, defaults = (replay["seen"][k][i] for k in ("fit", "filter", "defaults"))
    assert len(fits) == 4 and filters and len(defaults) >= 1
    for _, keys in fits:
      assert not future & set(keys)
    for keys in defaults:
      assert not future & set(keys)
    for feature, values in filters:
      assert not future_only[feature] & set(values)
    for name, model in replay["periods"][t]["models"].items():
      for f, vocabulary in model.spec.vocabularies:
        if f in future_only:
          assert not {v.encode() for v in vocabulary} & future_only[f], (t, name, f)


def _example_gen_train_keys(replay, span, name):
  """The candidate's rows: the real ExampleGen's train split of one span's files."""
  directory = replay["tmp"] / name
  directory.mkdir()
  shutil.copy(os.path.join(span.path, spans_lib.span_file(MOVIELENS)), directory)
  for table in MOVIELENS.source.side_tables:
    shutil.copy(replay["tmp"] / "spans" / table.path, directory)
  examples = run_executor(directory, replay["tmp"] / f"{name}-out")["train"]
  keys = []
  for serialized in examples:
    feature = tf.train.Example.FromString(serialized).features.feature
    keys.append(tuple(feature[MOVIELENS.feature(f).column].bytes_list.value[0]
                      for f in MOVIELENS.id_features))
  return keys


def test_references_train_on_exactly_the_candidates_rows(replay):
  t = 2  # trains on spans 1-2
  candidate = sorted(k for span in replay["spans"][:t]
                     for k in _example_gen_train_keys(replay, span, f"span-{span.number}"))
  i = PERIODS.index(t)
  fits = replay["seen"]["fit"][i]
  assert {kind for kind, _ in fits} == {"unified", "collisionless"}
  for _, keys in fits:
    assert sorted(keys) == candidate
  # The cold model's admission filter: the same rows' ids, per admission feature.
  for feature, values in replay["seen"]["filter"][i]:
    position = MOVIELENS.id_features.index(feature)
    assert sorted(values) == sorted(k[position] for k in candidate)


def test_frozen_vocabulary_stays_frozen_and_the_warm_one_only_grows(replay):
  first_window = simulate.window_rows(replay["loaded"], 1, WINDOW)[0]
  frozen = {f: sorted({v.decode() for v in first_window[f]}) for f in first_window}
  previous = None
  for t in PERIODS:
    models = replay["periods"][t]["models"]
    assert dict(models["collisionless_frozen"].spec.vocabularies) == {
        f: tuple(v) for f, v in frozen.items()}
    assert models["collisionless_frozen"].parameters == \
        replay["periods"][1]["models"]["collisionless_frozen"].parameters
    window = replay["periods"][t]["feats"]
    grown = dict(models["collisionless_warm"].spec.vocabularies)
    refit = dict(models["collisionless_refit"].spec.vocabularies)
    for f in grown:
      assert set(refit[f]) == {v.decode() for v in window[f]}
      assert set(grown[f]) == set(refit[f]) | set(previous[f] if previous else ())
      if previous:  # known ids keep their rows' order; new ones come after
        assert grown[f][:len(previous[f])] == previous[f]
    previous = grown
  assert len(previous["user_id"]) > len(dict(
      replay["periods"][1]["models"]["collisionless_warm"].spec.vocabularies)["user_id"])


def test_grown_collisionless_keeps_known_rows_and_starts_new_ids_from_the_default():
  config = resolved(model_type="collisionless", admission_features=MOVIELENS.id_features)
  old = {f: [f"{f}-{i}" for i in range(3)] for f in config.features}
  new = {f: v + [f"{f}-new"] for f, v in old.items()}
  tf.keras.utils.set_random_seed(1)
  source = model_lib.build_model(config, model_lib.embedding_spec(config, old))
  target = model_lib.build_model(config, model_lib.embedding_spec(config, new))
  counts = warm_start.grow_collisionless(source, target)
  assert counts == {"carried": 3 * len(old), "new": len(old)}
  for f, lookups in source.spec.lookups:
    table = lookups[0][0]
    a = source.embedding.embedding_tables[table].numpy()
    b = target.embedding.embedding_tables[table].numpy()
    np.testing.assert_array_equal(b[:4], a)  # out-of-vocabulary row and the known ids
    np.testing.assert_array_equal(b[4], a[model_lib.OUT_OF_VOCABULARY_ROW])
  for a, b in zip(source.logit.weights + source.hidden[0].weights,
                  target.logit.weights + target.hidden[0].weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  with pytest.raises(warm_start.WarmStartError, match="lacks 1 ids"):
    shrunk = {f: v[1:] + [f"{f}-new"] for f, v in old.items()}
    warm_start.grow_collisionless(
        source, model_lib.build_model(config, model_lib.embedding_spec(config, shrunk)))
