"""The validation gate stops the run on anomalies found against schema/schema.pbtxt."""

import os

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components.validation_gate import executor as gate
from dataspec import spec as spec_lib


def _rows(**changes):
  base = dict(user_id=["1", "2"], movie_id=["242", "302"], rating=[3, 5],
              timestamp=[881250949, 891717742], user_age=[24, 53], user_gender=["M", "F"],
              user_occupation=["technician", "other"], user_zip_code=["85711", "94043"])
  base.update(changes)
  return pd.DataFrame(base)


def _anomalies_artifact(tmp_path, frame):
  """Runs TFDV's validation against our schema and stores it as ExampleValidator does."""
  schema = io_utils.SchemaReader().read(spec_lib.load("movielens").schema)
  stats = tfdv.generate_statistics_from_dataframe(frame)
  anomalies = tfdv.validate_statistics(stats, schema, environment="TRAINING")
  artifact = standard_artifacts.ExampleAnomalies()
  artifact.uri = str(tmp_path / "anomalies")
  artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
  for split in ("train", "eval"):
    path = artifact_utils.get_split_uri([artifact], split)
    os.makedirs(path, exist_ok=True)
    io_utils.write_bytes_file(os.path.join(path, gate.SCHEMA_DIFF_FILE),
                              anomalies.SerializeToString())
  return artifact


def test_clean_data_passes(tmp_path):
  gate.check(_anomalies_artifact(tmp_path, _rows()))


@pytest.mark.parametrize("changes, feature, kind", [
    (dict(user_occupation=["technician", "astronaut"]), "user_occupation",
     "ENUM_TYPE_UNEXPECTED_STRING_VALUES"),
    (dict(rating=[3, 6]), "rating", "INT_TYPE_BIG_INT"),
    (dict(user_gender=["M", "X"]), "user_gender", "ENUM_TYPE_UNEXPECTED_STRING_VALUES"),
])
def test_planted_anomaly_stops_the_run_and_names_it(tmp_path, changes, feature, kind):
  with pytest.raises(gate.DataValidationError) as e:
    gate.check(_anomalies_artifact(tmp_path, _rows(**changes)))
  message = str(e.value)
  assert f"feature={feature}" in message
  assert kind in message
  assert "split=train" in message and "split=eval" in message


def test_missing_feature_is_an_anomaly(tmp_path):
  frame = _rows().drop(columns=["user_zip_code"])
  found = gate.read_anomalies(_anomalies_artifact(tmp_path, frame))
  assert {(a.feature, a.kind) for a in found} >= {("user_zip_code", "SCHEMA_MISSING_COLUMN")}
