"""Admission filter and learned defaults: unseen ids stop reading other ids' rows."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import require_ml100k
from trainer import admission, features, model as model_lib, train, warm_start
from tests.specs import FEATURES, MOVIELENS, resolved
from trainer.config import TrainingConfig

ADMITTED = MOVIELENS.id_features


def _user_ids():
  lines = (require_ml100k() / "u.user").read_text().splitlines()
  return [line.split("|")[0].encode() for line in lines]


def test_every_training_id_passes_and_few_unseen_ids_do():
  users = _user_ids()
  seen, unseen = users[:470], users[470:]
  packed = admission.build_filter(seen * 3, "user_id")
  assert packed.dtype == np.uint8 and packed.size == admission.FILTER_BITS // 8
  flags = lambda ids: admission.is_admitted(  # noqa: E731
      tf.constant(ids), tf.constant(packed), "user_id").numpy()
  assert flags(seen).tolist() == [1] * len(seen)
  assert flags(unseen).mean() < 0.05  # 470 ids: admission.false_admission_rate(470) = 1.2%


def _ml100k_ids():
  """The distinct ids of MovieLens-100K's id features, in first-seen order."""
  root = require_ml100k()
  ratings = [line.split("\t") for line in (root / "u.data").read_text().splitlines()]
  users = [line.split("|") for line in
           (root / "u.user").read_text(encoding="latin-1").splitlines()]
  distinct = lambda values: list(dict.fromkeys(v.encode() for v in values))  # noqa: E731
  return {"movie_id": distinct(r[1] for r in ratings),
          "user_id": distinct(u[0] for u in users),
          "user_zip_code": distinct(u[4] for u in users)}


@pytest.mark.parametrize("feature,size", [
    ("movie_id", 1500), ("movie_id", 1682),  # a replay window's movies; all of them
    ("user_id", 943), ("user_zip_code", 795)])  # every user; every zip code
def test_measured_false_admission_rate_matches_the_formula_at_real_window_sizes(feature, size):
  seen = _ml100k_ids()[feature][:size]
  assert len(seen) == size
  packed = admission.build_filter(seen, feature)
  known = set(seen)
  unseen = [v for v in (str(100_000 + i).encode() for i in range(40_000)) if v not in known]
  measured = admission.is_admitted(tf.constant(unseen), tf.constant(packed),
                                   feature).numpy().mean()
  expected = admission.false_admission_rate(size)
  # Binomial noise of 40,000 queries (4 sigma), plus the filter's own draw of hashes.
  tolerance = 4 * np.sqrt(expected * (1 - expected) / len(unseen)) + 0.01
  assert abs(measured - expected) < tolerance, (measured, expected)
  # The filter's own fill, exactly: an unseen id is admitted when both its cells are set.
  fill = np.unpackbits(packed, bitorder="little").mean()
  assert abs(measured - fill ** admission.FILTER_HASHES) < 4 * np.sqrt(
      fill ** 2 * (1 - fill ** 2) / len(unseen))


def test_threshold_keeps_rare_ids_out():
  ids = [b"often"] * 3 + [b"once"]
  packed = admission.build_filter(ids, "movie_id", threshold=2)
  flags = admission.is_admitted(tf.constant([b"often", b"once"]), tf.constant(packed),
                                "movie_id").numpy()
  assert flags.tolist() == [1, 0]


def test_filter_cells_depend_on_the_feature():
  value = tf.constant([b"42"])
  assert not np.array_equal(admission.filter_cells(value, "user_id").numpy(),
                            admission.filter_cells(value, "movie_id").numpy())


def test_fused_lookup_of_concatenated_filters_matches_each_feature_alone():
  # What Transform ships: the features' filters side by side, read with one gather.
  rng = np.random.default_rng(0)
  seen = {f: [f"{f}-{i}".encode() for i in rng.integers(0, 3000, 1500)] for f in ADMITTED}
  query = {f: tf.constant([f"{f}-{i}".encode() for i in range(6000)]) for f in ADMITTED}
  packs = [admission.build_filter(seen[f], f) for f in ADMITTED]
  fused = admission.admitted_flags(query, tf.constant(np.concatenate(packs)), ADMITTED)
  for f, packed in zip(ADMITTED, packs):
    alone = admission.is_admitted(query[f], tf.constant(packed), f).numpy()
    np.testing.assert_array_equal(fused[f].numpy(), alone)
    assert fused[f].dtype == tf.int64 and 0 < alone.mean() < 1


def _config(**changes):
  return resolved(**{"model_type": "unified", "embedding_budget": 4800,
                           "admission_features": ADMITTED, **changes})


def _batch(admitted, n=4):
  x = {f: tf.constant([f"{f}-{i}".encode() for i in range(n)]) for f in FEATURES}
  x.update({admission.admitted_name(f): tf.constant([admitted] * n, tf.int64)
            for f in ADMITTED})
  return x


def test_admission_is_paid_from_the_budget():
  plain = resolved(model_type="unified", embedding_budget=24_000)
  config = plain.replace(admission_features=ADMITTED)
  cost = config.admission_parameters
  # 3 filters of 8,192 bits = 3,072 bytes = 768 float32 parameters, plus one default vector of
  # 16 dimensions (2 chunks x 8) per admission feature.
  assert cost == 768 + 3 * 16
  spec, plain_spec = model_lib.embedding_spec(config), model_lib.embedding_spec(plain)
  assert spec.num_parameters + cost <= 24_000 < plain_spec.num_parameters + cost
  assert spec.num_parameters < plain_spec.num_parameters


def test_unadmitted_ids_get_the_feature_default_not_their_rows():
  tf.keras.utils.set_random_seed(0)
  config = _config()
  model = model_lib.build_model(config, model_lib.embedding_spec(config))
  model.unseen_default.defaults["user_id"].assign(
      tf.fill(model.unseen_default.defaults["user_id"].shape, 0.3))
  rejected = model(_batch(0)).numpy()
  admitted = model(_batch(1)).numpy()
  # Without admission every row is someone's hashed rows: predictions differ per id.
  assert np.ptp(admitted) > 0
  # Rejected ids of different values all read the defaults: the rest of the features still
  # differ, so compare with the same other features but another id.
  x = _batch(0)
  x["user_id"] = tf.constant([b"someone-else"] * 4)
  np.testing.assert_allclose(model(x).numpy(), rejected, rtol=1e-6)
  x = _batch(1)
  x["user_id"] = tf.constant([b"someone-else"] * 4)
  assert not np.allclose(model(x).numpy(), admitted)


def test_after_training_the_default_is_the_mean_embedding_of_the_rarer_ids():
  # Users seen 5, 3, 1 and 1 times: the median count is 2, so "u3" and "u4" are the rarer
  # ids, and an id the model never saw gets their average, one vote per id.
  tf.keras.utils.set_random_seed(0)
  config = _config()
  model = model_lib.build_model(config, model_lib.embedding_spec(config))
  users = [b"u1"] * 5 + [b"u2"] * 3 + [b"u3", b"u4"]
  x = _batch(1, n=len(users))
  x["user_id"] = tf.constant(users)
  labels = tf.constant([1.0, 0.0] * 5)
  dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(4)  # ids span batches
  result = train.fit(model, dataset, config.replace(epochs=2))
  embedded = model.embedding(x, training=False)
  user = model.spec.feature_names.index("user_id")
  expected = (embedded[user][8].numpy() + embedded[user][9].numpy()) / 2
  np.testing.assert_allclose(model.unseen_default.defaults["user_id"].numpy(),
                             expected, rtol=1e-6)
  assert result["unseen_default_moved"]["user_id"] > 0


def test_the_defaults_pass_embeds_only_the_rows_that_bring_a_new_id():
  # What it keeps is one vector per id, whatever the number of batches: at 10M ratings
  # keeping whole batches held 4.6 GB.
  class Embedding:
    rows = 0

    def __call__(self, x, training, concatenated):
      ids = x["user_id"]
      Embedding.rows += int(tf.size(ids))
      value = tf.strings.to_number(tf.strings.substr(ids, 1, 3), tf.float32)
      return tf.stack([value, -value], axis=1)

  users = [b"u%03d" % (i % 30) for i in range(600)]  # 30 ids, each in every batch of 100
  x = {"user_id": tf.constant(users)}
  dataset = tf.data.Dataset.from_tensor_slices((x, tf.zeros(600))).batch(100)
  means = admission.rare_id_means(Embedding(), dataset, [("user_id", 2)],
                                  ["user_id"], quantile=1.0)
  assert Embedding.rows == 30
  np.testing.assert_allclose(means["user_id"], [14.5, -14.5])


def test_id_dropout_trains_the_defaults_and_only_in_training():
  def trained(id_dropout):
    tf.keras.utils.set_random_seed(0)
    config = _config(id_dropout=id_dropout)
    model = model_lib.build_model(config, model_lib.embedding_spec(config))
    labels = tf.constant([1.0, 0.0, 1.0, 1.0])
    model.fit(tf.data.Dataset.from_tensors((_batch(1), labels)).repeat(20), verbose=0)
    return model

  without, dropped = trained(0.0), trained(0.5)
  # Every training id was admitted and none dropped: the default never saw a gradient.
  assert not np.any(without.unseen_default.defaults["user_id"].numpy())
  assert np.any(dropped.unseen_default.defaults["user_id"].numpy())
  # Inference is deterministic: no dropout outside training.
  np.testing.assert_array_equal(dropped(_batch(1)).numpy(), dropped(_batch(1)).numpy())


def test_admission_model_survives_saved_model_and_warm_start(tmp_path):
  tf.keras.utils.set_random_seed(0)
  config = _config(id_dropout=0.2)
  old = model_lib.build_model(config, model_lib.embedding_spec(config))
  old.fit(tf.data.Dataset.from_tensors((_batch(1), tf.constant([1.0, 0.0, 1.0, 1.0])))
          .repeat(5), verbose=0)
  tf.saved_model.save(old, str(tmp_path / "prod"))
  warm_start.write_model_config(str(tmp_path / "prod"), old.get_config())
  new = model_lib.build_model(config, model_lib.embedding_spec(config))
  warm_start.warm_start(new, str(tmp_path / "prod"))
  for batch in (_batch(0), _batch(1)):
    np.testing.assert_allclose(new(batch).numpy(), old(batch).numpy(), rtol=1e-6)
  # A model without admission cannot seed one with it: the message says what changed.
  plain = config.replace(admission_features=(), id_dropout=0.0)
  other = model_lib.build_model(plain, model_lib.embedding_spec(plain))
  with pytest.raises(warm_start.WarmStartError, match="admission_features"):
    warm_start.warm_start(other, str(tmp_path / "prod"))


def test_config_rejects_dropout_without_admission_and_unknown_features():
  with pytest.raises(ValueError, match="id_dropout needs training.admission_features"):
    resolved(id_dropout=0.1)
  with pytest.raises(ValueError, match="the admission filter covers the dataset's id features"):
    resolved(admission_features=("user_gender",))
  config = _config(id_dropout=0.25)
  assert TrainingConfig.from_dict(config.to_dict()) == config
