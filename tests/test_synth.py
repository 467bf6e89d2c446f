"""`uet synth`: data for any dataset spec.

The MovieLens layout (`--ratings`) parses with the real readers, is valid under the curated
schema and has the shape of a real catalogue. For any spec: the same seed gives the same
bytes whatever the chunk size; CSV (options, side tables, spans, null tokens) and Parquet
(typed columns, list columns, ISO times, glob parts) have exactly the spec's columns; missing
values appear at the profile's rate and never where the spec forbids them; every label rule
maps the raw label back to the outcome drawn; the wide preset has its declared shape; and
its planted signal is learnable from the files on a later, held-out slice.
"""

import collections
import csv
import dataclasses
import datetime
import glob
import io
import os
import tokenize

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.example_gen import executor, spans
from dataspec import spec as spec_lib
from pipeline import exit_codes
from tools import cli, columns
from tools import synth
from tools.synth import profile as profile_lib
from tools.synth import world as world_lib
from tools.synth import writers

N = 20_000
MOVIELENS = spec_lib.load("movielens")


def _movielens_users(rows: int) -> int:
  return profile_lib.load(MOVIELENS).features["user_id"].cardinality.at(rows)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  out = tmp_path_factory.mktemp("synth") / "data"
  assert cli.main(["synth", "--ratings", str(N), "--out", str(out), "--seed", "7"]) == 0
  return out


def _schema():
  with open(MOVIELENS.schema) as f:
    return text_format.Parse(f.read(), schema_pb2.Schema())


# ---------------------------------------------------------------------------------------
# The MovieLens layout.


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, synthetic):
  again = tmp_path / "again"
  other = tmp_path / "other"
  synth.write(str(again), N, seed=7)
  synth.write(str(other), N, seed=8)
  for name in ("u.data", "u.user"):
    assert (again / name).read_bytes() == (synthetic / name).read_bytes()
  assert (other / "u.data").read_bytes() != (synthetic / "u.data").read_bytes()


def test_ratings_is_the_movielens_preset(tmp_path, synthetic):
  out = tmp_path / "generic"
  assert cli.main(["synth", "--dataset", "movielens", "--rows", str(N), "--out", str(out),
                   "--seed", "7"]) == 0
  assert (out / "u.data").read_bytes() == (synthetic / "u.data").read_bytes()


def test_the_pipelines_ingestion_reads_every_row_cleanly(synthetic):
  bad = []
  assert len(executor.read_examples(MOVIELENS, str(synthetic), bad_rows=bad)) == N
  assert bad == []
  # One u.user row per user, as MovieLens-100K has (943 users per 100,000 ratings).
  users = (synthetic / "u.user").read_text().splitlines()
  assert len(users) == _movielens_users(N) == N // 106
  assert _movielens_users(100_000) == 943


def test_values_are_valid_under_the_curated_schema(synthetic):
  schema = _schema()
  domains = {d.name: set(d.value) for d in schema.string_domain}
  int_domains = {f.name: f.int_domain for f in schema.feature if f.HasField("int_domain")}
  raw = columns.read_columns(MOVIELENS, str(synthetic))
  genders = {v.decode() for v in raw["user_gender"]}
  occupations = {v.decode() for v in raw["user_occupation"]}
  assert genders <= domains["user_gender"] and occupations <= domains["user_occupation"]
  ages = raw["user_age"].astype(np.int64)
  assert (int_domains["user_age"].min <= ages).all() and (ages <= int_domains["user_age"].max).all()
  assert all(len(z) == 5 and z.isdigit() for z in raw["user_zip_code"])
  ratings = raw["rating"].astype(np.int64)
  assert (ratings >= int_domains["rating"].min).all()
  assert (ratings <= int_domains["rating"].max).all()
  assert (raw["timestamp"].astype(np.int64) >= int_domains["timestamp"].min).all()
  # Several occupations and both genders occur, not one constant value.
  assert len(occupations) > 10
  assert genders == domains["user_gender"]


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
  # The profile's share of ratings >= 3 (MovieLens-100K: 82%).
  assert abs((data[:, 2] >= 3).mean() - 0.82) < 0.02


def test_uet_spans_accepts_the_output(tmp_path, synthetic):
  written = spans.write_time_spans(MOVIELENS, str(synthetic), str(tmp_path / "spans"),
                                   num_spans=3)
  assert [s.number for s in written] == [1, 2, 3]
  assert sum(s.num_rows for s in written) == N


def test_users_and_movies_flags_set_the_user_and_item_cardinalities(tmp_path):
  out = tmp_path / "sized"
  assert cli.main(["synth", "--ratings", "3000", "--users", "50", "--movies", "70",
                   "--out", str(out)]) == 0
  data = np.loadtxt(out / "u.data", dtype=np.int64, delimiter="\t")
  assert len((out / "u.user").read_text().splitlines()) == 50
  assert data[:, 0].max() <= 50 and data[:, 1].max() <= 70
  assert len(set(data[:, 1])) > 35


@pytest.mark.parametrize("argv, message", [
    (["--ratings", "0"], "--ratings must be >= 1"),
    (["--ratings", "10", "--users", "-1"], "--users must be >= 1"),
    (["--dataset", "wide", "--rows", "0"], "--rows must be >= 1"),
    (["--rows", "10", "--ratings", "10"], "give --rows N (with --dataset) or --ratings N"),
    (["--dataset", "wide"], "give --rows N (with --dataset) or --ratings N"),
    (["--dataset", "wide", "--ratings", "10"], "--ratings is the MovieLens layout"),
    (["--dataset", "wide", "--rows", "10", "--cardinality", "user_id"],
     "--cardinality user_id: expected FEATURE=N"),
    (["--dataset", "wide", "--rows", "10", "--cardinality", "nope=5"],
     "--cardinality nope=5: 'nope' is not a feature of dataset wide"),
    (["--dataset", "wide", "--rows", "10", "--cardinality", "c09=5"],
     "c09 is a categorical feature whose values come from the spec (2 values)"),
    (["--dataset", "nowhere.yaml", "--rows", "10"], "dataset spec nowhere.yaml: file not found"),
])
def test_bad_arguments_are_usage_errors(tmp_path, capsys, argv, message):
  assert cli.main(["synth", "--out", str(tmp_path / "x")] + argv) == exit_codes.EXIT_USAGE
  assert message in capsys.readouterr().err
  assert not (tmp_path / "x").exists()


def test_never_overwrites_a_non_empty_directory(tmp_path, capsys):
  (tmp_path / "keep.txt").write_text("mine")
  assert cli.main(["synth", "--ratings", "10", "--out", str(tmp_path)]) == exit_codes.EXIT_USAGE
  assert "not an empty directory" in capsys.readouterr().err
  assert (tmp_path / "keep.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------
# Any spec: small specs of every format and kind.

SHOP = {  # CSV with a header, ';', a null token, spans, a Parquet side table, float label
    "name": "shop",
    "source": {
        "format": "csv", "path": "span-{SPAN}/events.csv",
        "csv": {"delimiter": ";", "null_values": ["NA", ""]},
        "side_tables": [{"path": "users.parquet", "format": "parquet", "key": "user",
                         "columns": ["age", "country", "interests"]}],
    },
    "label": {"column": "score", "type": "float", "positive_if": "> 3.5", "missing": "drop"},
    "time": {"column": "ts", "format": "unix_millis"},
    "features": {
        "user": {"kind": "id", "role": "user", "missing": "error"},
        "item": {"kind": "id", "role": "item"},
        "age": {"kind": "numeric", "type": "int", "lower_bounds": [0, 18, 30, 50]},
        "country": {"kind": "categorical"},
        "interests": {"kind": "multivalent", "separator": ";"},
        "price": {"kind": "numeric"},
        "brand": {"kind": "categorical", "domain_size": 40, "missing": {"default": "unknown"}},
    },
}
SHOP_PROFILE = {"files": {"spans": 3}, "label": {"missing_rate": 0.02},
                "features": {"interests": {"missing_rate": 0.1, "max_values": 4},
                             "brand": {"missing_rate": 0.05},
                             "user": {"cardinality": 200}}}

EVENTS = {  # Parquet parts, a CSV side table, a list column, ISO times, labels by value
    "name": "events",
    "source": {
        "format": "parquet", "path": "events/*.parquet",
        "side_tables": [{"path": "items.csv", "key": "item",
                         "columns": ["category", "tags"]}],
    },
    "label": {"column": "action", "positive_values": ["click", "buy"],
              "negative_values": ["view"]},
    "time": {"column": "at", "format": "iso8601"},
    "features": {
        "user": {"kind": "id", "role": "user"},
        "item": {"kind": "id", "role": "item", "missing": "error"},
        "device": {"kind": "categorical", "domain_size": 5},
        "category": {"kind": "categorical", "domain_size": 12},
        "tags": {"kind": "multivalent", "separator": "|"},
        "genres": {"kind": "multivalent"},
        "dwell": {"kind": "numeric", "type": "int", "missing": {"default": 0}},
        "strict": {"kind": "categorical", "domain_size": 3, "missing": "error"},
    },
}
EVENTS_PROFILE = {"files": {"rows_per_file": 7000}, "label": {"positive_rate": 0.3},
                  "features": {"user": {"missing_rate": 0.05},
                               "genres": {"cardinality": 8, "min_values": 2, "max_values": 4,
                                          "missing_rate": 0.1},
                               "dwell": {"distribution": "lognormal", "median": 30,
                                         "sigma": 1.0}}}


def _spec(values, tmp_path=None) -> spec_lib.DatasetSpec:
  return spec_lib.parse(values, origin="test.yaml", base_dir=str(tmp_path or os.getcwd()))


def _write(tmp_path, spec_values, profile_values, rows, name="out", seed=3, **kwargs):
  spec = _spec(spec_values)
  profile = profile_lib.parse(profile_values, spec)
  out = tmp_path / name
  written = synth.write(str(out), rows, spec, seed=seed, profile=profile, **kwargs)
  return spec, out, written


def _tree_bytes(directory):
  return {os.path.relpath(p, directory): open(p, "rb").read()
          for p in sorted(glob.glob(f"{directory}/**/*", recursive=True)) if os.path.isfile(p)}


@pytest.mark.parametrize("values, profile", [(SHOP, SHOP_PROFILE), (EVENTS, EVENTS_PROFILE)],
                         ids=["csv-spans-parquet-side", "parquet-parts-csv-side"])
def test_chunk_size_and_row_groups_do_not_change_the_bytes(tmp_path, monkeypatch, values,
                                                           profile):
  rows = 3 * world_lib.BLOCK + 123
  # Row groups smaller than a chunk and not aligned with it: buffering must not move them.
  monkeypatch.setattr(writers, "ROW_GROUP", 5000)
  _, one, _ = _write(tmp_path, values, profile, rows, "one", chunk_rows=10 * rows)
  _, many, _ = _write(tmp_path, values, profile, rows, "many", chunk_rows=world_lib.BLOCK)
  _, other, _ = _write(tmp_path, values, profile, rows, "other", seed=4)
  assert _tree_bytes(one) == _tree_bytes(many)
  assert len(_tree_bytes(one)) >= 2
  changed = [k for k, v in _tree_bytes(other).items() if _tree_bytes(one)[k] != v]
  assert len(changed) == len(_tree_bytes(one))  # another seed changes every file
  parts = [pq.ParquetFile(p) for p in glob.glob(f"{one}/**/*.parquet", recursive=True)]
  assert parts
  if values is EVENTS:  # parts of 7,000 rows: two row groups, the second partial
    assert sorted(p.metadata.num_row_groups for p in parts) == [1, 2, 2, 2]
  for p in parts:  # every row group but a file's last has exactly ROW_GROUP rows
    sizes = [p.metadata.row_group(i).num_rows for i in range(p.metadata.num_row_groups)]
    assert all(s == 5000 for s in sizes[:-1])


def _read_csv(path, spec):
  options = spec.source.csv
  with open(path, encoding=options.encoding, newline="") as f:
    rows = list(csv.reader(f, delimiter=options.delimiter))
  return rows[0], rows[1:]


def test_csv_source_with_spans_null_tokens_and_a_parquet_side_table(tmp_path):
  rows = 9000
  spec, out, written = _write(tmp_path, SHOP, SHOP_PROFILE, rows)
  assert sorted(written.files) == ["span-1/events.csv", "span-2/events.csv",
                                   "span-3/events.csv", "users.parquet"]
  assert [written.files[f"span-{s}/events.csv"] for s in (1, 2, 3)] == [3000, 3000, 3000]
  everything, times = [], []
  for s in (1, 2, 3):
    header, lines = _read_csv(out / f"span-{s}/events.csv", spec)
    # The source's columns: the features' own (not the side table's), the label, the time.
    assert sorted(header) == ["brand", "item", "price", "score", "ts", "user"]
    assert all(len(line) == len(header) for line in lines) and len(lines) == 3000
    everything += [dict(zip(header, line)) for line in lines]
  times = [int(r["ts"]) for r in everything]
  assert times == sorted(times)
  # unix_millis from the profile's default start, 2024-01-01.
  assert 1_704_067_200_000 <= times[0] < times[-1] <= 1_704_067_200_000 + 31 * 86_400_000
  assert {r["user"] for r in everything} <= {str(i) for i in range(1, 201)}
  # Missing values are the first null token, at the profile's rate; never for missing: error.
  brand_missing = np.mean([r["brand"] == "NA" for r in everything])
  assert 0.04 < brand_missing < 0.06
  assert 0.005 < np.mean([r["price"] == "NA" for r in everything]) < 0.02  # default 1%
  assert not any(r["user"] in ("NA", "") for r in everything)
  labels = [r["score"] for r in everything]
  assert 0.01 < np.mean([v == "NA" for v in labels]) < 0.03
  values = np.array([float(v) for v in labels if v != "NA"])
  assert 0.45 < (values > 3.5).mean() < 0.55 and (values != 3.5).all()

  users = pq.read_table(out / "users.parquet")
  assert users.schema == pa.schema([("user", pa.string()), ("age", pa.int64()),
                                    ("country", pa.string()),
                                    ("interests", pa.list_(pa.string()))])
  assert users["user"].to_pylist() == [str(i) for i in range(1, 201)]  # one row per key
  interests = users["interests"].to_pylist()
  assert 5 <= sum(v is None for v in interests) <= 40
  assert all(1 <= len(v) <= 4 and len(set(v)) == len(v) for v in interests if v)
  assert len(set(users["country"].to_pylist()) - {None}) == 10  # the default domain


def test_parquet_parts_with_list_columns_iso_times_and_a_csv_side_table(tmp_path):
  rows = 20_000
  spec, out, written = _write(tmp_path, EVENTS, EVENTS_PROFILE, rows)
  parts = sorted(glob.glob(str(out / "events" / "*.parquet")))
  assert [os.path.basename(p) for p in parts] == [
      "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
  assert [pq.ParquetFile(p).metadata.num_rows for p in parts] == [7000, 7000, 6000]
  table = pq.read_table(parts)
  assert table.schema == pa.schema([
      ("at", pa.string()), ("user", pa.string()), ("item", pa.string()),
      ("device", pa.string()), ("genres", pa.list_(pa.string())), ("dwell", pa.int64()),
      ("strict", pa.string()), ("action", pa.string())])
  times = [datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
           for t in table["at"].to_pylist()]
  assert times == sorted(times) and times[0].tzinfo is not None
  assert times[0].isoformat().startswith("2024-01-01T")
  genres = table["genres"].to_pylist()
  present = [g for g in genres if g is not None]
  assert 0.08 < 1 - len(present) / rows < 0.12
  assert all(2 <= len(g) <= 4 for g in present)
  assert all(len(set(g)) == len(g) for g in present)  # no value twice in a row
  assert len({v for g in present for v in g}) == 8
  assert 0.04 < table["user"].null_count / rows < 0.06
  assert table["item"].null_count == 0 and table["strict"].null_count == 0
  assert 0.005 < table["dwell"].null_count / rows < 0.02
  dwell = table["dwell"].drop_null().to_numpy()
  assert 20 < np.median(dwell) < 40 and dwell.min() >= 0  # lognormal, median 30
  actions = collections.Counter(table["action"].to_pylist())
  assert set(actions) == {"click", "buy", "view"}
  assert abs(actions["view"] / rows - 0.7) < 0.02

  with open(out / "items.csv", newline="") as f:
    items = list(csv.DictReader(f))
  assert list(items[0]) == ["item", "category", "tags"]
  assert [r["item"] for r in items] == [str(i) for i in range(1, len(items) + 1)]
  assert set(table["item"].to_pylist()) <= {r["item"] for r in items}
  tags = [r["tags"] for r in items if r["tags"]]
  assert any("|" in t for t in tags)  # joined by the separator in text
  assert written.cardinalities["item"] == len(items) == max(10, rows // 100)


def test_csv_quotes_what_needs_it_in_the_declared_encoding(tmp_path):
  # Multivalent values joined by the delimiter itself: each such field must be quoted.
  values = {"name": "quoted", "source": {"format": "csv", "path": "rows.csv",
                                         "csv": {"encoding": "utf-16"}},
            "label": {"column": "y", "binary": True},
            "features": {"who": {"kind": "id", "missing": "error"},
                         "tags": {"kind": "multivalent", "separator": ","}}}
  profile = {"features": {"tags": {"min_values": 2, "max_values": 3, "missing_rate": 0.2}}}
  spec, out, _ = _write(tmp_path, values, profile, 3000)
  raw = (out / "rows.csv").read_bytes()
  assert raw.startswith(b"\xff\xfe") and raw.count(b"\xff\xfe") == 1  # one BOM, UTF-16
  header, lines = _read_csv(out / "rows.csv", spec)
  assert header == ["who", "tags", "y"] and len(lines) == 3000
  tags = [line[1].split(",") for line in lines if line[1]]
  assert 0.15 < 1 - len(tags) / 3000 < 0.25
  assert all(2 <= len(t) <= 3 for t in tags)  # the quotes kept each list in one field
  unquoted = {**values, "source": {**values["source"],
                                   "csv": {"encoding": "utf-16", "quoting": False}}}
  with pytest.raises(world_lib.SynthError, match="column tags's values can contain"):
    _write(tmp_path, unquoted, profile, 10, name="unquoted")
  assert not glob.glob(str(tmp_path / "unquoted*"))  # nothing half-written is left
  tfrecord = {**values, "source": {"format": "tfrecord", "path": "rows.tfrecord"}}
  with pytest.raises(world_lib.SynthError, match="uet synth writes csv and parquet sources"):
    _write(tmp_path, tfrecord, profile, 10, name="tfrecord")


LABEL_RULES = [
    ({"binary": True}, "int"),
    ({"binary": True, "type": "string"}, "string"),
    ({"positive_values": ["yes", "sure"]}, "string"),
    ({"positive_values": ["a"], "negative_values": ["b", "c"]}, "string"),
    ({"positive_values": ["2", "5"], "type": "int"}, "int"),
    ({"positive_if": ">= 3", "type": "int"}, "int"),
    ({"positive_if": "< 0.25", "type": "float"}, "float"),
    ({"positive_if": "> 3.5", "type": "float"}, "float"),
    ({"positive_if": "== 1", "type": "int"}, "int"),
    ({"positive_if": "!= 0", "type": "float"}, "float"),
]


def _maps_to(label: spec_lib.Label, value) -> bool:
  """The spec's rule, written again here: what ingestion will make of a raw value."""
  if label.binary:
    return str(value).lower() in ("1", "true")
  if label.positive_values:
    text = value if isinstance(value, str) else f"{value:g}"
    if label.negative_values:
      assert text in label.positive_values + label.negative_values
    return text in label.positive_values
  op, threshold = label.positive_if
  return {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold,
          "<": value < threshold, "==": value == threshold, "!=": value != threshold}[op]


@pytest.mark.parametrize("rule, raw_type", LABEL_RULES, ids=[str(r[0]) for r in LABEL_RULES])
def test_every_label_rule_maps_the_raw_label_back_to_the_drawn_outcome(rule, raw_type):
  values = {**EVENTS, "label": {"column": "outcome", **rule}}
  spec = _spec(values)
  world = world_lib.World(spec, profile_lib.parse({"label": {"positive_rate": 0.4}}, spec),
                          5000, seed=1)
  chunk = world.chunk(0, world.blocks)
  raw = chunk["outcome"]
  assert raw.type == {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}[raw_type]
  drawn = chunk["_positive"].to_pylist()
  assert [_maps_to(spec.label, v) for v in raw.to_pylist()] == drawn
  assert 0.35 < np.mean(drawn) < 0.45


def test_threshold_labels_use_the_schema_domain_and_lean_with_the_signal():
  world = world_lib.World(MOVIELENS, profile_lib.load(MOVIELENS), 30_000, seed=0)
  chunk = world.chunk(0, world.blocks)
  ratings = np.array(chunk["rating"].to_pylist())
  assert set(ratings) == {1, 2, 3, 4, 5}  # the schema's int domain of rating
  positive = np.array(chunk["_positive"].to_pylist())
  assert ((ratings >= 3) == positive).all()
  # Within a side, likelier rows get higher ratings: 5s go to rows of larger logits.
  logits = np.concatenate([world._draw_block(b)[2]  # pylint: disable=protected-access
                           for b in range(world.blocks)])
  assert logits[ratings == 5].mean() > logits[ratings == 3].mean() + 0.3


# ---------------------------------------------------------------------------------------
# The profile.


@pytest.mark.parametrize("values, message", [
    ({"features": {"user": {"zipff": 1}}},
     "features.user: unknown key 'zipff' (did you mean 'zipf'?)"),
    ({"features": {"nobody": {}}}, "features: 'nobody' is not a feature of dataset events"),
    ({"features": {"device": {"distribution": "normal"}}},
     "features.device.distribution: applies to numeric features, not categorical ones"),
    ({"features": {"user": {"missing_rate": 1.5}}},
     "features.user.missing_rate: must be at least 0 and below 1, got 1.5"),
    ({"features": {"item": {"missing_rate": 0.1}}},
     "features.item.missing_rate: item cannot have missing values: the spec says "
     "missing: error"),
    ({"features": {"device": {"cardinality": 9}}},
     "features.device.cardinality: the spec gives device's domain (5 values"),
    ({"features": {"user": {"cardinality": {"min": 3}}}},
     "features.user.cardinality.fraction: missing; write the share of rows"),
    ({"features": {"dwell": {"distribution": "uniform", "min": 1}}},
     "features.dwell.distribution: a uniform distribution needs min and max"),
    ({"features": {"category": {"initial": 0.5}}},
     "features.category.initial: applies to id features, not categorical ones"),
    ({"label": {"positive_rate": 1}}, "label.positive_rate: must be above 0 and below 1"),
    ({"label": {"values": [1, 2]}}, "label.values: applies to threshold rules"),
    ({"files": {"spans": 2}}, "files.spans: the spec's source.path 'events/*.parquet' has no"),
    ({"time": {"start": "yesterday"}}, "time.start: expected unix seconds or an ISO 8601"),
    ({"defaults": {"id": {"width": 0}}}, "defaults.id.width: must be at least 1, got 0"),
])
def test_profile_errors_name_the_key(values, message):
  with pytest.raises(profile_lib.ProfileError) as e:
    profile_lib.parse(values, _spec(EVENTS), origin="p.yaml")
  assert str(e.value).startswith("synthesis profile p.yaml: ")
  assert message in str(e.value)


def test_missing_values_need_a_way_to_be_written():
  # MovieLens' files declare no null values: no feature may be missing, whatever is asked.
  with pytest.raises(profile_lib.ProfileError, match="features.user_occupation.missing_rate: "
                     "user_occupation cannot have missing values: the spec says missing: error"):
    profile_lib.parse({"features": {"user_occupation": {"missing_rate": 0.1}}}, MOVIELENS)
  relaxed = dataclasses.replace(MOVIELENS, features=tuple(
      dataclasses.replace(f, missing="token") for f in MOVIELENS.features))
  with pytest.raises(profile_lib.ProfileError, match="u.user declares no csv.null_values"):
    profile_lib.parse({"features": {"user_occupation": {"missing_rate": 0.1}}}, relaxed)
  defaults = profile_lib.parse({"defaults": {"categorical": {"missing_rate": 0.3}}}, relaxed)
  assert {f.missing_rate for f in defaults.features.values()} == {0.0}


def test_profile_defaults_by_kind_and_role():
  spec = _spec(EVENTS)
  profile = profile_lib.parse({"defaults": {"categorical": {"signal": 0.0}}}, spec)
  f = profile.features
  assert (f["user"].initial, f["item"].initial) == (0.2, 0.3)  # user and item ids arrive
  assert f["user"].missing_rate == 0.0 and f["device"].missing_rate == 0.01
  assert f["item"].missing_rate == 0.0  # a side table's key
  assert f["device"].signal == 0.0 and f["user"].signal == 0.5 and f["dwell"].signal == 0.3
  assert f["user"].cardinality.at(20_000) == 200 and f["user"].cardinality.at(500) == 10


def test_presets_find_their_profiles_and_scale_ids_with_rows():
  assert profile_lib.default_path(spec_lib.load("wide")).endswith("presets/wide.synth.yaml")
  wide = profile_lib.load(spec_lib.load("wide"))
  sizes = {rows: {n: wide.features[n].cardinality.at(rows)
                  for n in ("user_id", "item_id", "c01", "c05", "c07")}
           for rows in (10**6, 10**7, 10**8)}
  assert sizes[10**6] == {"user_id": 100_000, "item_id": 20_000, "c01": 100_000,
                          "c05": 5_000, "c07": 5_000}
  assert sizes[10**7] == {"user_id": 1_000_000, "item_id": 200_000, "c01": 1_000_000,
                          "c05": 50_000, "c07": 5_000}
  assert sizes[10**8] == sizes[10**7]  # capped


def test_no_synth_module_names_a_column_of_a_preset():
  """Column names live in the preset and profile files only."""
  names = set()
  for preset in spec_lib.preset_names():
    try:
      spec = spec_lib.load(preset)
    except spec_lib.SpecError:  # a preset whose schema is not in this checkout
      values, _ = spec_lib.read_file(spec_lib.preset_path(preset))
      spec = spec_lib.parse({**values, "schema": None} if "schema" in values else values)
    names |= set(spec.raw_columns) | set(spec.feature_names)
  assert {"movie_id", "user_zip_code", "c01", "n13", "click"} <= names
  for path in glob.glob(os.path.join(os.path.dirname(synth.__file__), "*.py")):
    with open(path, "rb") as f:
      literals = [t.string for t in tokenize.tokenize(f.readline) if t.type == tokenize.STRING]
    words = {w.strip("\"'`.,:;()[]{}") for s in literals for w in s.split()}
    assert not words & names, f"{path} names {sorted(words & names)}"


# ---------------------------------------------------------------------------------------
# The wide preset.

WIDE = spec_lib.load("wide")


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
  out = tmp_path_factory.mktemp("wide") / "data"
  assert cli.main(["synth", "--dataset", "wide", "--rows", "40000", "--out", str(out)]) == 0
  return pq.read_table(sorted(glob.glob(str(out / "events" / "*.parquet"))))


def test_wide_preset_has_its_declared_columns_types_and_shape(wide):
  kinds = collections.Counter(f.kind for f in WIDE.features)
  assert kinds == {"id": 10, "categorical": 16, "numeric": 13}
  types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}
  assert sorted(wide.schema, key=lambda f: f.name) == sorted(
      (pa.field(c, types[t]) for c, t in WIDE.raw_columns.items()), key=lambda f: f.name)
  assert wide.num_rows == 40_000
  assert abs(pc.mean(wide["click"]).as_py() - 0.25) < 0.015
  assert set(wide["click"].to_pylist()) == {0, 1}
  times = wide["event_time"].to_numpy()
  assert (np.diff(times) >= 0).all() and times[-1] - times[0] > 27 * 86_400
  profile = profile_lib.load(WIDE)
  for f in WIDE.features:
    column = wide[f.column]
    rate = column.null_count / wide.num_rows
    assert abs(rate - profile.features[f.name].missing_rate) < 0.01, f.name
    if f.kind == "categorical":
      assert len(column.unique().drop_null()) == f.domain_size, f.name
    if f.kind == "id":
      size = profile.features[f.name].cardinality.at(40_000)
      seen = np.array(column.drop_null().to_pylist(), dtype=np.int64)
      assert seen.min() >= 1 and seen.max() <= size, f.name
  # Zipf: the most popular tenth of the c01 values seen carry most of its rows.
  counts = sorted(collections.Counter(wide["c01"].drop_null().to_pylist()).values(),
                  reverse=True)
  assert sum(counts[: len(counts) // 10]) / sum(counts) > 0.4


def test_wide_preset_users_and_items_arrive_over_time(wide):
  n = wide.num_rows
  for column in ("user_id", "item_id"):
    ids = wide[column].to_pylist()
    early = set(ids[: n // 2])
    late = ids[-n // 10:]
    unseen = np.mean([i not in early for i in late])
    assert 0.1 < unseen < 0.6, column
  contexts = wide["c07"].to_pylist()  # a context id: all values exist from the start
  assert np.mean([c not in set(contexts[: n // 2]) for c in contexts[-n // 10:]]) < 0.1


def _one_hot(table, spec, train_rows, numeric="buckets"):
  """Sparse one-hot design: one column per (feature, value), missing its own value;
  numeric features as 10 quantile buckets of the training rows, or standardized."""
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  n = table.num_rows
  blocks = []
  for f in spec.features:
    column = table[f.column].combine_chunks()
    if f.kind == "numeric":
      x = column.to_numpy(zero_copy_only=False).astype(float)
      if numeric == "linear":
        mean, std = np.nanmean(x[:train_rows]), np.nanstd(x[:train_rows])
        blocks.append(sparse.csr_matrix(np.nan_to_num((x - mean) / std)[:, None]))
        blocks.append(sparse.csr_matrix(np.isnan(x).astype(float)[:, None]))
        continue
      edges = np.nanquantile(x[:train_rows], np.linspace(0, 1, 11)[1:-1])
      codes = np.where(np.isnan(x), len(edges) + 1, np.searchsorted(edges, x))
    else:
      codes = pc.fill_null(column.dictionary_encode().indices, -1).to_numpy()
      codes = np.where(codes < 0, codes.max() + 1, codes)
    blocks.append(sparse.csr_matrix((np.ones(n), (np.arange(n), codes))))
  return sparse.hstack(blocks).tocsr()


def _held_out_auc(table, spec, numeric="buckets"):
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.metrics import roc_auc_score  # pylint: disable=g-import-not-at-top
  train = int(table.num_rows * 0.75)  # rows are in time order: the test rows are later
  x = _one_hot(table, spec, train, numeric)
  y = table[spec.label.column].to_numpy()
  model = LogisticRegression(C=0.3, max_iter=300, solver="liblinear").fit(x[:train], y[:train])
  return roc_auc_score(y[train:], model.predict_proba(x[train:])[:, 1])


def test_wide_signal_is_learnable_on_a_later_held_out_slice(wide):
  auc = _held_out_auc(wide, WIDE)
  assert auc > 0.70
  # The signal is where the profile planted it: the noise features alone learn nothing.
  profile = profile_lib.load(WIDE)
  noise = WIDE.replace(features=tuple(f for f in WIDE.features
                                      if profile.features[f.name].signal == 0))
  assert len(noise.features) >= 10
  assert abs(_held_out_auc(wide, noise) - 0.5) < 0.03
  # Numeric effects are not monotonic: quantile buckets learn them, a linear term barely.
  numeric = WIDE.replace(features=tuple(f for f in WIDE.features
                                        if f.kind == "numeric"
                                        and profile.features[f.name].signal > 0))
  bucketized, linear = _held_out_auc(wide, numeric), _held_out_auc(wide, numeric, "linear")
  assert bucketized > linear + 0.03 and bucketized > 0.58
