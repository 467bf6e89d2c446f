"""The dataset spec: presets load, round-trip and derive what the pipeline needs; every
mistake in a spec is an error that names the key and what to write instead."""

import copy
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import yaml

from dataspec import schema as schema_lib
from dataspec import spec as spec_lib
from tests.conftest import REPO


def _movielens_values():
  with open(spec_lib.preset_path("movielens")) as f:
    return yaml.safe_load(f)


def _parse(values, origin="my.yaml"):
  return spec_lib.parse(values, origin=origin, base_dir=spec_lib.PRESETS_DIR)


def test_movielens_preset_declares_the_tutorials_six_features():
  spec = spec_lib.load("movielens")
  assert spec.pipeline_name == "uet-movielens"
  assert spec.feature_names == ("movie_id", "user_id", "user_gender", "user_zip_code",
                                "user_occupation", "user_age_bucket")
  assert spec.id_features == ("movie_id", "user_id", "user_zip_code")
  assert spec.raw_columns == {
      "movie_id": "string", "user_id": "string", "user_gender": "string",
      "user_zip_code": "string", "user_occupation": "string", "user_age": "int",
      "rating": "int", "timestamp": "int"}
  assert spec.label.rule == "rating >= 3" and spec.slices == ("user_gender", "user_age_bucket")
  # Domain sizes from the curated schema; the age buckets from their lower bounds.
  assert spec.feature("user_gender").closed_domain_size == 2
  assert spec.feature("user_occupation").closed_domain_size == 21
  assert spec.feature("user_age_bucket").bucket_names == ("1", "18", "25", "35", "45", "50",
                                                         "56")
  # u.user's columns describe the user: they are attributes of the user id.
  assert {f.name for f in spec.features if f.attribute_of == "user_id"} == {
      "user_gender", "user_zip_code", "user_occupation", "user_age_bucket"}
  assert spec.feature("user_zip_code").role == "user"


def test_spec_round_trips_through_json_and_fingerprints_its_content():
  spec = spec_lib.load("movielens")
  assert spec_lib.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
  # The JSON that travels (custom_config, the compiled pipeline) leaves out where the spec
  # and its schema were read on this machine; everything the spec declares round-trips.
  unplaced = spec.replace(origin="", schema=None,
                          source=dataclasses.replace(spec.source, data_dir=None))
  assert spec_lib.from_json(spec.to_json()) == unplaced
  moved = spec.replace(origin="/elsewhere/movielens.yaml", schema="/elsewhere/s.pbtxt",
                       source=dataclasses.replace(spec.source, data_dir="/elsewhere/data"))
  assert moved.to_json() == spec.to_json()
  assert "/" + os.path.basename(spec_lib.PRESETS_DIR) not in spec.to_json()
  # The fingerprint follows the content, the curated schema's text included.
  copied = spec.replace(schema=None)
  assert copied.fingerprint != spec.fingerprint  # no curated schema is another contract
  changed = spec.replace(slices=("user_gender",))
  assert changed.fingerprint != spec.fingerprint


def test_yaml_and_json_files_load_the_same_spec(tmp_path):
  values = _movielens_values()
  values["schema"] = spec_lib.preset_path("movielens").replace(".yaml", ".schema.pbtxt")
  (tmp_path / "a.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
  (tmp_path / "a.json").write_text(json.dumps(values))
  a, b = spec_lib.load(str(tmp_path / "a.yaml")), spec_lib.load(str(tmp_path / "a.json"))
  assert a.replace(origin="") == b.replace(origin="")


def _mutate(change):
  values = _movielens_values()
  change(values)
  return values


@pytest.mark.parametrize("change, expected", [
    (lambda v: v["features"]["movie_id"].update(kind="idd"),
     "features.movie_id.kind: 'idd' is not one of id, categorical, numeric, multivalent"),
    (lambda v: v["features"]["movie_id"].update(knd="id"),
     "features.movie_id: unknown key 'knd' (did you mean 'kind'?)"),
    (lambda v: v.update(slice=["user_gender"]), "unknown key 'slice' (did you mean 'slices'?)"),
    (lambda v: v.pop("label"), "label: missing; this key is required"),
    (lambda v: v["label"].update(positive_if="at least 3"),
     "label.positive_if: 'at least 3' is not a comparison with a number; write e.g."),
    (lambda v: v["label"].update(binary=True), "label: give exactly one rule"),
    (lambda v: v.update(slices=["movie_id"]), "slices[0]: 'movie_id' is an id feature"),
    (lambda v: v.update(slices=["genre"]), "slices[0]: 'genre' is not a feature"),
    (lambda v: v["features"]["user_age_bucket"].update(quantiles=4),
     "features.user_age_bucket.quantiles: give quantiles"),
    (lambda v: v["features"]["user_age_bucket"].update(lower_bounds=[1, 18, 18]),
     "features.user_age_bucket.lower_bounds: must increase strictly"),
    (lambda v: v["features"]["movie_id"].update(quantiles=4),
     "features.movie_id.quantiles: applies to numeric features only"),
    (lambda v: v["features"]["movie_id"].update(missing="skip"),
     "features.movie_id.missing: 'skip' is not a treatment of missing values"),
    (lambda v: v["features"]["movie_id"].update(domain_size=10),
     "features.movie_id.domain_size: id features are open vocabularies"),
    (lambda v: v["features"].update(label={"kind": "id"}), "features.label: 'label' is reserved"),
    (lambda v: v["features"].update(r={"kind": "numeric", "column": "rating"}),
     "features.r.column: reads the label column 'rating'"),
    (lambda v: v["source"]["csv"].update(delimiter="::"),
     "source.csv.delimiter: must be one character"),
    (lambda v: v["source"]["csv"].update(header=True),
     "source.csv.columns: columns are read from the header line"),
    (lambda v: v["source"]["csv"].update(encoding="klingon"),
     "source.csv.encoding: unknown encoding 'klingon'"),
    (lambda v: v["source"].update(format="xlsx"),
     "source.format: 'xlsx' is not one of csv, parquet, tfrecord"),
    (lambda v: v["source"]["side_tables"][0].update(key="zip"),
     "source.side_tables[0].columns: ['zip'] are not among csv.columns"),
    (lambda v: v["time"].update(format="days"),
     "time.format: 'days' is not one of unix_seconds, unix_millis, iso8601"),
    (lambda v: v.update(name="movie lens"), "name: name 'movie lens': use letters"),
    (lambda v: v["features"].update(
        genres={"kind": "multivalent", "separator": ""}), "features.genres.separator: must"),
    (lambda v: v.update(features=[]), "features: expected a mapping"),
])
def test_a_mistake_names_the_key_and_the_fix(change, expected):
  with pytest.raises(spec_lib.SpecError) as e:
    _parse(_mutate(change))
  assert str(e.value).startswith("dataset spec my.yaml: ")
  assert expected in str(e.value)


def test_file_errors_name_the_file_and_line(tmp_path):
  with pytest.raises(spec_lib.SpecError, match="file not found; give a preset name"):
    spec_lib.load(str(tmp_path / "nope.yaml"))
  bad = tmp_path / "bad.yaml"
  bad.write_text("name: x\nsource:\n  path: [unclosed\n")
  with pytest.raises(spec_lib.SpecError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
    spec_lib.load(str(bad))
  bad = tmp_path / "bad.json"
  bad.write_text('{"name": "x",}')
  with pytest.raises(spec_lib.SpecError, match=r"bad.json:1:\d+: invalid JSON"):
    spec_lib.load(str(bad))
  values = _movielens_values()
  values["schema"] = "missing.pbtxt"
  (tmp_path / "s.yaml").write_text(yaml.safe_dump(values))
  with pytest.raises(spec_lib.SpecError, match="schema: .*missing.pbtxt not found"):
    spec_lib.load(str(tmp_path / "s.yaml"))


def test_a_side_table_attribute_needs_its_key_as_a_feature():
  values = _movielens_values()
  del values["features"]["user_id"]
  with pytest.raises(spec_lib.SpecError, match="side_tables\\[0\\].key: feature user_gender "
                     "comes from side table u.user, whose key 'user_id' is no feature"):
    _parse(values)


def test_the_derived_schema_requires_what_the_spec_requires():
  values = _movielens_values()
  values.pop("schema")
  values["features"]["user_zip_code"]["missing"] = "token"
  values["features"]["genres"] = {"kind": "multivalent", "column": "genres"}
  values["source"]["side_tables"][0]["csv"]["columns"].append("genres")
  schema = schema_lib.derive(_parse(values))
  by_name = {f.name: f for f in schema.feature}
  assert by_name["movie_id"].presence.min_fraction == 1.0 and by_name["movie_id"].shape.dim
  # Optional: no shape (sparse in Transform), at most one value.
  zip_code = by_name["user_zip_code"]
  assert not zip_code.HasField("presence") and not zip_code.HasField("shape")
  assert (zip_code.value_count.min, zip_code.value_count.max) == (1, 1)
  assert by_name["genres"].value_count.min == 1 and not by_name["genres"].value_count.max
  assert list(by_name["rating"].not_in_environment) == ["SERVING"]
  assert by_name["user_age"].type == schema_lib.schema_pb2.INT


def test_spec_loading_imports_no_tensorflow():
  code = ("import sys; from dataspec import spec; spec.load('movielens'); "
          "print(sorted(m for m in ('tensorflow', 'tfx', 'apache_beam', 'pyarrow') "
          "if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO, check=True).stdout
  assert out.strip() == "[]"
