"""Drift at the validation gate: TFDV's comparators between this span's statistics and the last
validated span's, and DriftBaseline, which picks that baseline from the gate's records."""

import argparse
import dataclasses
import json
import os
import shutil

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components.validation_gate import executor as gate
from components import decisions
from components.validation_gate import baseline as baseline_lib
from pipeline import ids, pipeline as pipeline_lib
from dataspec import spec as spec_lib
from tests.conftest import require_ml100k, write_movielens_slice
from tools import run_command

MOVIELENS = spec_lib.load("movielens")
SCHEMA = io_utils.SchemaReader().read(MOVIELENS.schema)
# What the pipeline compares for the MovieLens preset: the label, and its categorical columns.
THRESHOLDS = gate.DriftThresholds(
    js_columns=(MOVIELENS.label.column,),
    linf_columns=tuple(f.column for f in MOVIELENS.features_of_kind("categorical")))
USER_COLUMNS = ["user_id", "user_age", "user_gender", "user_occupation", "user_zip_code"]


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
  """MovieLens-100K ratings joined with their users, in the raw schema's columns."""
  source = require_ml100k()
  r = pd.read_csv(source / "u.data", sep="\t", dtype=str,
                  names=["user_id", "movie_id", "rating", "timestamp"])
  u = pd.read_csv(source / "u.user", sep="|", dtype=str, names=USER_COLUMNS)
  frame = r.merge(u, on="user_id")
  for column in ("rating", "timestamp", "user_age"):
    frame[column] = frame[column].astype(int)
  return frame


def _stats_artifact(tmp_path, name, frame):
  """An ExampleStatistics artifact laid out as StatisticsGen writes it (train and eval),
  computed with the schema as the pipeline's StatisticsGen does (`rating` categorical)."""
  stats = tfdv.generate_statistics_from_dataframe(
      frame.reset_index(drop=True), stats_options=tfdv.StatsOptions(schema=SCHEMA))
  artifact = standard_artifacts.ExampleStatistics()
  artifact.uri = str(tmp_path / name)
  artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
  for split in ("train", "eval"):
    path = artifact_utils.get_split_uri([artifact], split)
    os.makedirs(path, exist_ok=True)
    io_utils.write_bytes_file(os.path.join(path, "FeatureStats.pb"),
                              stats.SerializeToString())
  return artifact


def test_same_distribution_does_not_drift(tmp_path, ratings):
  previous = _stats_artifact(tmp_path, "a", ratings.iloc[::25][:3000])
  other_slice = _stats_artifact(tmp_path, "b", ratings.iloc[1::25][:3000])
  assert gate.drift_anomalies(other_slice, previous, SCHEMA, THRESHOLDS) == []


def test_consecutive_months_stay_under_the_default_thresholds(tmp_path, ratings):
  month = pd.to_datetime(ratings.timestamp, unit="s").dt.to_period("M")
  months = sorted(month.unique())
  for i, (a, b) in enumerate(zip(months, months[1:])):
    previous = _stats_artifact(tmp_path, f"m{i}", ratings[month == a])
    current = _stats_artifact(tmp_path, f"m{i + 1}n", ratings[month == b])
    assert gate.drift_anomalies(current, previous, SCHEMA, THRESHOLDS) == [], (a, b)


def test_all_five_span_drifts_on_rating(tmp_path, ratings):
  normal = ratings.iloc[::25][:3000]
  previous = _stats_artifact(tmp_path, "a", normal)
  current = _stats_artifact(tmp_path, "b", normal.assign(rating=5))
  found = gate.drift_anomalies(current, previous, SCHEMA, THRESHOLDS)
  assert {(a.split, a.feature, a.kind) for a in found} == {
      ("train vs previous", "rating", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"),
      ("eval vs previous", "rating", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH")}
  assert "above the threshold 0.1" in found[0].description
  # The threshold is the knob: at 1.0 (its maximum) the check never trips.
  assert gate.drift_anomalies(current, previous, SCHEMA,
                              dataclasses.replace(THRESHOLDS, label_js=1.0)) == []


def test_rating_statistics_count_the_five_values(tmp_path, ratings):
  artifact = _stats_artifact(tmp_path, "a", ratings.iloc[::5][:20000])
  stats = gate.load_split_statistics(artifact, "train")
  [rating] = [f for f in stats.datasets[0].features if f.path.step == ["rating"]]
  counts = {b.label: b.sample_count for b in rating.string_stats.rank_histogram.buckets}
  assert sorted(counts) == ["1", "2", "3", "4", "5"] and sum(counts.values()) == 20000


def test_one_rating_of_six_among_20000_is_a_schema_anomaly_not_drift(tmp_path, ratings):
  previous = _stats_artifact(tmp_path, "a", ratings.iloc[::5][:20000])
  planted = ratings.iloc[1::5][:20000].reset_index(drop=True)
  planted.loc[7, "rating"] = 6
  current = _stats_artifact(tmp_path, "b", planted)
  # Value by value, one 6 in 20,000 moves the distribution by nothing worth a drift alarm.
  assert gate.drift_anomalies(current, previous, SCHEMA, THRESHOLDS) == []
  # It is what it is: a value outside the schema's domain.
  anomalies = tfdv.validate_statistics(gate.load_split_statistics(current, "train"), SCHEMA,
                                       environment="TRAINING")
  assert {k: [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in v.reason]
          for k, v in anomalies.anomaly_info.items()} == {"rating": ["INT_TYPE_BIG_INT"]}
  # The same planted value as a numeric histogram (the schema without is_categorical) is
  # what raised the false alarm: TFDV re-buckets the range 1..6.
  numeric = schema_pb2.Schema()
  numeric.CopyFrom(SCHEMA)
  [rating] = [f for f in numeric.feature if f.name == "rating"]
  rating.int_domain.is_categorical = False
  as_numbers = [tfdv.generate_statistics_from_dataframe(
      frame.reset_index(drop=True), stats_options=tfdv.StatsOptions(schema=numeric))
      for frame in (ratings.iloc[::5][:20000], planted)]
  found = tfdv.validate_statistics(
      as_numbers[1], gate.drift_schema(numeric, THRESHOLDS),
      environment="TRAINING", previous_statistics=as_numbers[0])
  assert anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH in [
      r.type for r in found.anomaly_info["rating"].reason]


def test_categorical_shift_drifts_on_l_infinity(tmp_path, ratings):
  normal = ratings.iloc[::25][:3000]
  previous = _stats_artifact(tmp_path, "a", normal)
  current = _stats_artifact(tmp_path, "b", normal.assign(user_occupation="student"))
  found = gate.drift_anomalies(current, previous, SCHEMA, THRESHOLDS)
  assert {(a.feature, a.kind) for a in found} == {
      ("user_occupation", "COMPARATOR_L_INFTY_HIGH")}


def test_no_baseline_skips_drift_and_check_lists_drift_with_the_fix(tmp_path, ratings):
  normal = ratings.iloc[::25][:3000]
  current = _stats_artifact(tmp_path, "b", normal.assign(rating=5))
  assert gate.drift_anomalies(current, None, SCHEMA, THRESHOLDS) == []
  anomalies = standard_artifacts.ExampleAnomalies()
  anomalies.uri = str(tmp_path / "anomalies")
  anomalies.split_names = artifact_utils.encode_split_names([])
  gate.check(anomalies, statistics=current, baseline=None, schema=SCHEMA,
             thresholds=THRESHOLDS)  # first run
  previous = _stats_artifact(tmp_path, "a", normal)
  with pytest.raises(gate.DataValidationError) as e:
    gate.check(anomalies, statistics=current, baseline=previous, schema=SCHEMA,
               thresholds=THRESHOLDS)
  message = str(e.value)
  assert "feature=rating kind=COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH" in message
  assert previous.uri in message and "--drift-label-js" in message


# --- DriftBaseline: the gate's records of what passed. ---

def _statistics(tmp_path, name, span):
  """A StatisticsGen-like artifact with one split file."""
  artifact = standard_artifacts.ExampleStatistics()
  artifact.uri = str(tmp_path / name)
  artifact.split_names = artifact_utils.encode_split_names(["train"])
  artifact.span = span
  os.makedirs(os.path.join(artifact.uri, "Split-train"))
  with open(os.path.join(artifact.uri, "Split-train", "FeatureStats.pb"), "w") as f:
    f.write(name)
  return artifact


def _baseline(tmp_path, current, validated_dir, name):
  out = standard_artifacts.ExampleStatistics()
  out.uri = str(tmp_path / name)
  baseline_lib.write_baseline(current, validated_dir, out)
  return out


def test_baseline_is_the_newest_statistics_that_passed_other_than_the_current(tmp_path):
  validated = str(tmp_path / "validated")
  s1, s2, s3, s4 = (_statistics(tmp_path, f"s{i}", i) for i in range(1, 5))
  # Nothing passed yet (first run): the output stands for "none", and the gate skips drift.
  first = _baseline(tmp_path, s1, validated, "b1")
  assert decisions.is_empty(first) and gate.split_names(first) == []
  baseline_lib.record_validated(validated, s1)
  baseline_lib.record_validated(validated, s2)
  # s3 drifted: the gate raised before recording it.
  # New data is compared with the newest span that passed, never with the one that failed;
  # the output is a copy, which names where it came from.
  fourth = _baseline(tmp_path, s4, validated, "b4")
  assert not decisions.is_empty(fourth)
  assert fourth.get_string_custom_property(baseline_lib.SOURCE_URI_KEY) == s2.uri
  assert gate.split_names(fourth) == ["train"] and fourth.span == 2
  with open(os.path.join(fourth.uri, "Split-train", "FeatureStats.pb")) as f:
    assert f.read() == "s2"
  # A re-run on validated data (without the cache) is never compared with itself.
  again = _baseline(tmp_path, s2, validated, "b2")
  assert again.get_string_custom_property(baseline_lib.SOURCE_URI_KEY) == s1.uri
  del s3


def test_a_baseline_whose_statistics_were_removed_is_a_record_error_naming_it(tmp_path):
  # A run with `--pipeline-root` that was later removed leaves records naming statistics
  # that no longer exist. Copying nothing would fail with a raw NotFoundError; falling back
  # to an older span would change the baseline without anyone deciding it.
  validated = str(tmp_path / "validated")
  s1, s2, s3, s4 = (_statistics(tmp_path, f"s{i}", i) for i in range(1, 5))
  for s in (s1, s2, s3):
    baseline_lib.record_validated(validated, s)
  shutil.rmtree(s2.uri)
  shutil.rmtree(s3.uri)
  newest, second = decisions.records_with_paths(validated)[:2]
  with pytest.raises(decisions.RecordError) as e:
    _baseline(tmp_path, s4, validated, "b4")
  message = str(e.value)
  assert "2 record(s)" in message and "Restore those directories, or delete" in message
  assert f"{newest[0]} -> {s3.uri}" in message and f"{second[0]} -> {s2.uri}" in message
  assert s1.uri not in message
  # What the message says to do works: without those records, span 1 is the baseline.
  os.remove(newest[0])
  os.remove(second[0])
  out = _baseline(tmp_path, s4, validated, "b4-again")
  assert out.get_string_custom_property(baseline_lib.SOURCE_URI_KEY) == s1.uri


def test_the_empty_mark_survives_the_json_metadata_of_kubeflow_tasks():
  # What a Vertex / run-spec task's entrypoint makes of an input artifact: metadata values
  # become struct-valued custom properties.
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=g-import-not-at-top
  from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as entry  # pylint: disable=g-import-not-at-top
  artifacts = {}
  for key, metadata in (("empty", {decisions.EMPTY_KEY: "nothing yet", "span": 1.0}),
                        ("real", {"span": 2.0})):
    artifacts[key] = json_format.ParseDict({"artifacts": [{
        "name": f"a/{key}", "uri": f"/s/{key}", "metadata": metadata,
        "type": {"instanceSchema": "title: tfx.ExampleStatistics\ntype: object\n"}}]},
        pipeline_spec_pb2.ArtifactList())
  parsed = entry.parse_raw_artifact_dict(artifacts, {})
  assert decisions.is_empty(parsed["empty"][0]) and parsed["empty"][0].span == 1
  assert not decisions.is_empty(parsed["real"][0])


def test_drift_thresholds_come_from_flags_and_the_config_file(tmp_path):
  parser = argparse.ArgumentParser()
  run_command.add_parser(parser.add_subparsers(dest="command"))
  data = write_movielens_slice(tmp_path / "ml", 10)
  config_file = tmp_path / "config.json"
  config_file.write_text(json.dumps({"drift_categorical_linf": 0.5}))
  config, _, _ = run_command.plan_run(parser.parse_args([
      "run", "--data-dir", str(data), "--output-dir", str(tmp_path / "out"),
      "--config", str(config_file), "--drift-label-js", "0.2"]))
  assert (config.drift_label_js, config.drift_categorical_linf) == (0.2, 0.5)
  nodes = {n.id: n for n in pipeline_lib.create_pipeline(config).components}
  gate_node = nodes[ids.VALIDATION_GATE]
  assert gate_node.exec_properties["drift_label_js"] == 0.2
  assert gate_node.exec_properties["drift_categorical_linf"] == 0.5
  # The columns compared come from the dataset spec: its label and categorical features.
  assert gate_node.exec_properties["drift_js_columns"] == "rating"
  assert gate_node.exec_properties["drift_linf_columns"] == "user_gender,user_occupation"
  assert "baseline_statistics" in gate_node.inputs
  with pytest.raises(ValueError, match="drift_label_js must be in"):
    config.replace(drift_label_js=0.0)
