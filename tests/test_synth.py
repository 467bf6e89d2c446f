"""`uet synth`: synthetic MovieLens-layout data is deterministic per seed, parses with the
real readers, is valid under the curated schema, and has the shape of a real catalogue
(heavy-tailed popularity, ordered timestamps, users and movies arriving over time)."""

import collections

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from dataspec import spec as spec_lib
from components.movielens_example_gen import batch_reader, reader, spans
from pipeline import cli
from tools import synth

N = 20_000


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  out = tmp_path_factory.mktemp("synth") / "data"
  assert cli.main(["synth", "--ratings", str(N), "--out", str(out), "--seed", "7"]) == 0
  return out


def _schema():
  with open(spec_lib.load("movielens").schema) as f:
    return text_format.Parse(f.read(), schema_pb2.Schema())


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, synthetic):
  again = tmp_path / "again"
  other = tmp_path / "other"
  synth.write(str(again), N, seed=7)
  synth.write(str(other), N, seed=8)
  for name in ("u.data", "u.user"):
    assert (again / name).read_bytes() == (synthetic / name).read_bytes()
  assert (other / "u.data").read_bytes() != (synthetic / "u.data").read_bytes()


def test_parses_with_the_pipeline_readers_both_paths(synthetic):
  users = reader.read_users(str(synthetic / "u.user"))
  ratings = list(reader.read_ratings(str(synthetic / "u.data"), users))
  assert len(ratings) == N
  assert len(users) == N // 106
  # The ExampleGen's fast path accepts it as clean.
  assert batch_reader.scan_ratings(str(synthetic / "u.data"), users) == N


def test_values_are_valid_under_the_curated_schema(synthetic):
  schema = _schema()
  domains = {d.name: set(d.value) for d in schema.string_domain}
  int_domains = {f.name: f.int_domain for f in schema.feature if f.HasField("int_domain")}
  users = reader.read_users(str(synthetic / "u.user"))
  for user in users.values():
    assert user.gender in domains["user_gender"]
    assert user.occupation in domains["user_occupation"]
    assert int_domains["user_age"].min <= user.age <= int_domains["user_age"].max
    assert len(user.zip_code) == 5 and user.zip_code.isdigit()
  for rating, _ in reader.read_ratings(str(synthetic / "u.data"), users):
    assert int_domains["rating"].min <= rating.rating <= int_domains["rating"].max
    assert rating.timestamp >= int_domains["timestamp"].min
  # Several occupations and both genders occur, not one constant value.
  assert len({u.occupation for u in users.values()}) > 10
  assert {u.gender for u in users.values()} == domains["user_gender"]


def test_timestamps_in_order_and_ids_arrive_over_time(synthetic):
  data = np.loadtxt(synthetic / "u.data", dtype=np.int64, delimiter="\t")
  assert (np.diff(data[:, 3]) >= 0).all()
  first, last = data[: N // 10], data[-N // 10:]
  # Late in the stream there are users and movies that did not exist early on.
  assert len(set(last[:, 0]) - set(data[: N // 2, 0])) > 0
  assert len(set(last[:, 1]) - set(data[: N // 2, 1])) > 0
  assert len(set(first[:, 1])) < len(set(data[:, 1]))


def test_popularity_is_heavy_tailed(synthetic):
  data = np.loadtxt(synthetic / "u.data", dtype=np.int64, delimiter="\t")
  counts = sorted(collections.Counter(data[:, 1]).values(), reverse=True)
  top_decile = sum(counts[: max(1, len(counts) // 10)]) / N
  assert top_decile > 0.4  # a uniform catalogue would give ~0.1
  assert counts[-1] <= 3    # and a long tail of rarely rated movies
  ratings = np.bincount(data[:, 2], minlength=6)[1:] / N
  assert (ratings > 0.02).all()  # every star value is used


def test_uet_spans_accepts_the_output(tmp_path, synthetic):
  written = spans.write_time_spans(str(synthetic), str(tmp_path / "spans"), num_spans=3)
  assert [s.number for s in written] == [1, 2, 3]
  assert sum(s.num_ratings for s in written) == N


@pytest.mark.parametrize("argv, message", [
    (["--ratings", "0"], "--ratings must be >= 1"),
    (["--ratings", "10", "--users", "-1"], "--users must be >= 1"),
])
def test_bad_sizes_are_usage_errors(tmp_path, capsys, argv, message):
  assert cli.main(["synth", "--out", str(tmp_path / "x")] + argv) == cli.EXIT_USAGE
  assert message in capsys.readouterr().err


def test_never_overwrites_a_non_empty_directory(tmp_path, capsys):
  (tmp_path / "keep.txt").write_text("mine")
  assert cli.main(["synth", "--ratings", "10", "--out", str(tmp_path)]) == cli.EXIT_USAGE
  assert "not an empty directory" in capsys.readouterr().err
  assert (tmp_path / "keep.txt").read_text() == "mine"
