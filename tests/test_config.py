"""The typed config: defaults (the budget rule; the tutorial one key away), files and flags
override, typos fail."""

import json
import subprocess
import sys

import pytest

from pipeline import config as config_lib
from pipeline import fingerprint
from dataspec import spec as spec_lib
from pipeline import ids, pipeline as pipeline_lib
from tests import runs
from trainer import config as training_lib
from trainer import features
from trainer.config import TrainingConfig, budget_rule_layout

MOVIELENS = spec_lib.load("movielens")


def _spec(features_values, slices=(), side_tables=()):
  """A small CSV dataset spec with the given features (a mapping name -> values)."""
  return spec_lib.parse({
      "name": "t",
      "source": {"path": "e.csv", "side_tables": list(side_tables)},
      "label": {"column": "y", "binary": True},
      "features": features_values, "slices": list(slices)}, origin="t.yaml")


def test_defaults_train_the_tutorials_way_with_the_budget_rules_candidate():
  c = config_lib.PipelineConfig(data_dir="/d", output_dir="/o")
  assert c.candidate.model_type == "unified" and c.baseline.model_type == "hash"
  for t in (c.candidate, c.baseline):
    assert (t.layer_sizes, t.learning_rate, t.batch_size, t.epochs) == ((128, 64), 0.01, 8192, 5)
  assert c.candidate.layout == "budget_rule"
  assert (c.candidate.num_tables, c.candidate.dim_per_table) == (1, 8)
  assert c.dataset == MOVIELENS and c.pipeline_name == "uet-movielens"
  assert c.candidate.chunks_per_feature == {
      "movie_id": 6, "user_id": 4, "user_gender": 1, "user_zip_code": 2,
      "user_occupation": 2, "user_age_bucket": 1}
  assert c.candidate.admission_features == ("movie_id", "user_id", "user_zip_code")
  # The baseline keeps the tutorial's table sizes (the preset's hash weights).
  assert dict(c.baseline.hash_bucket_weights) == {
      "movie_id": 600, "user_id": 400, "user_gender": 20, "user_zip_code": 400,
      "user_occupation": 60, "user_age_bucket": 20}
  # The same from a config file without a candidate section.
  assert config_lib.from_mapping({}, data_dir="/d", output_dir="/o").candidate == c.candidate
  assert c.evaluation.min_auc_gain == 0.01 and c.evaluation.auc_floor == 0.70
  assert c.serving_dir == "/o/serving" and c.metadata_path == "/o/metadata.sqlite"


def test_the_tutorials_candidate_is_one_key_away():
  c = config_lib.from_mapping({"candidate": {"layout": "explicit"}}, data_dir="/d",
                              output_dir="/o")
  assert (c.candidate.num_tables, c.candidate.dim_per_table) == (2, 8)
  assert set(c.candidate.chunks_per_feature.values()) == {2}
  assert c.candidate.admission_features == ()
  # Giving tables or chunks yourself means the explicit layout.
  c = config_lib.from_mapping({"candidate": {"num_tables": 3}}, data_dir="/d", output_dir="/o")
  assert c.candidate.layout == "explicit" and c.candidate.num_tables == 3


def test_budget_rule_follows_the_budget():
  small, large = budget_rule_layout(6_000, MOVIELENS), budget_rule_layout(48_000, MOVIELENS)
  # Open vocabularies keep their chunks; a closed domain gets fewer as the rows grow.
  assert dict(small["chunks"])["user_occupation"] == 2
  assert dict(large["chunks"])["user_occupation"] == 1
  assert dict(small["chunks"])["movie_id"] == dict(large["chunks"])["movie_id"]
  # By what they name: the item 1.5x an open vocabulary, the user's zip code half.
  chunks = dict(budget_rule_layout(24_000, MOVIELENS)["chunks"])
  assert (chunks["movie_id"], chunks["user_id"], chunks["user_zip_code"]) == (6, 4, 2)
  assert budget_rule_layout(24_000, MOVIELENS)["num_tables"] == 1
  assert budget_rule_layout(8 * 3 * (1 << 20), MOVIELENS)["num_tables"] == 3
  t = training_lib.resolve(TrainingConfig(layout="budget_rule", embedding_budget=48_000),
                           MOVIELENS)
  assert t.chunks == large["chunks"]
  # The Trainer reads it back from TFX's custom_config, JSON with sorted keys, and
  # resolving again changes nothing.
  back = TrainingConfig.from_dict(json.loads(json.dumps(t.to_dict(), sort_keys=True)))
  assert back.chunks_per_feature == t.chunks_per_feature and back.layout == "budget_rule"
  assert training_lib.resolve(back, MOVIELENS) == t
  with pytest.raises(ValueError, match=r"derives \['num_tables'\].*layout: explicit"):
    training_lib.resolve(TrainingConfig(layout="budget_rule", num_tables=3), MOVIELENS)


def test_budget_rule_reads_kinds_roles_and_side_tables_not_names():
  spec = _spec({
      "item": {"kind": "id", "role": "item"}, "user": {"kind": "id", "role": "user"},
      "device": {"kind": "id", "role": "context"},
      "region": {"kind": "id"},  # from the users' side table: an attribute of the user
      "country": {"kind": "categorical", "domain_size": 30},
      "hour": {"kind": "categorical", "domain_size": 24},
      "price": {"kind": "numeric", "quantiles": 10},
      "tags": {"kind": "multivalent"},
  }, side_tables=[{"path": "u.csv", "key": "user", "columns": ["region", "country"]}])
  rows = 24_000 // training_lib.RULE_DIM_PER_TABLE
  layout = budget_rule_layout(24_000, spec)
  chunks = dict(layout["chunks"])
  assert (chunks["item"], chunks["user"], chunks["device"], chunks["region"]) == (6, 4, 4, 2)
  assert chunks["tags"] == training_lib.RULE_OPEN_CHUNKS  # unknown domain: open
  import math  # pylint: disable=g-import-not-at-top
  for name, n in (("country", 30), ("hour", 24), ("price", 11)):  # 10 buckets + missing
    assert chunks[name] == max(1, round(4 * math.log2(n) / math.log2(rows))), name
  assert layout["admission_features"] == ("item", "user", "device", "region")
  assert spec.feature("country").attribute_of == "user"
  assert spec.feature("country").role == "user"  # the key's role


def test_hash_baseline_default_split_gives_closed_domains_rows_by_their_size():
  spec = _spec({"item": {"kind": "id"}, "user": {"kind": "id"},
                "hour": {"kind": "categorical", "domain_size": 24},
                "day": {"kind": "numeric", "lower_bounds": [1, 2, 3, 4, 5, 6, 7],
                        "missing": "error"}})
  weights = dict(training_lib.hash_weights(24_000, 16, spec))
  rows = 24_000 // 16
  assert weights["hour"] == 2 * 24 and weights["day"] == 2 * 7
  assert weights["item"] == weights["user"] == (rows - 48 - 14) / 2
  # Weights from the spec win; all or none.
  half = _spec({"a": {"kind": "id", "hash_weight": 3}, "b": {"kind": "id"}})
  with pytest.raises(ValueError, match=r"\['b'\] have no hash_weight"):
    training_lib.hash_weights(24_000, 16, half)


def test_closed_domain_sizes_are_the_schemas():
  from tfx.utils import io_utils  # pylint: disable=g-import-not-at-top
  schema = io_utils.SchemaReader().read(MOVIELENS.schema)
  domains = {d.name: len(d.value) for d in schema.string_domain}
  assert MOVIELENS.feature("user_gender").closed_domain_size == domains["user_gender"]
  assert MOVIELENS.feature("user_occupation").closed_domain_size == domains["user_occupation"]


def test_training_section_applies_to_both_and_roles_override():
  c = config_lib.from_mapping(
      {"training": {"epochs": 3}, "baseline": {"epochs": 1},
       "evaluation": {"min_auc_gain": 0.02}}, data_dir="/d", output_dir="/o")
  assert c.candidate.epochs == 3 and c.baseline.epochs == 1
  assert c.evaluation.min_auc_gain == 0.02


@pytest.mark.parametrize("values, message", [
    ({"trainig": {}}, "unknown config keys \\['trainig'\\]"),
    ({"training": {"epoch": 3}}, "unknown training config keys \\['epoch'\\]"),
    ({"evaluation": {"min_gain": 1}}, "unknown evaluation keys"),
    ({"training": {"model_type": "mlp"}}, "model_type must be one of"),
    ({"candidate": {"model_type": "hash"}}, "must be different model types"),
    ({"training": {"chunks": {"movie": 3}}}, "unknown features \\['movie'\\]"),
    ({"candidate": {"admission_features": ["user_gender"]}},
     "admission filter covers the dataset's id features"),
    ({"drift_rating_js": 0.2}, "drift_rating_js is now drift_label_js"),
    ({"dataset": "nope.yaml"}, "nope.yaml: file not found"),
])
def test_bad_config_is_a_clear_error(values, message):
  with pytest.raises(ValueError, match=message):
    config_lib.from_mapping(values, data_dir="/d", output_dir="/o")


def test_config_file_errors_name_the_file_and_line(tmp_path):
  bad = tmp_path / "c.json"
  bad.write_text('{\n  "training": {"epochs": 3,}\n}\n')
  with pytest.raises(ValueError, match=r"c.json:2:.*invalid JSON"):
    config_lib.load_file(str(bad))


def test_training_config_round_trips_through_json():
  t = training_lib.resolve(TrainingConfig(chunks=(("movie_id", 3),), layer_sizes=(64,)),
                           MOVIELENS)
  assert TrainingConfig.from_dict(json.loads(json.dumps(t.to_dict()))) == t


def test_trainer_cache_key_carries_the_code_fingerprint(tmp_path):
  p = pipeline_lib.create_pipeline(config_lib.PipelineConfig(data_dir="/d", output_dir="/o"))
  trainers = [c for c in p.components if c.id in (ids.CANDIDATE_TRAINER,
                                                   ids.BASELINE_TRAINER)]
  assert len(trainers) == 2
  for t in trainers:
    assert fingerprint.trainer_fingerprint() in t.exec_properties["custom_config"]
  transform = next(c for c in p.components if c.id == ids.TRANSFORM)
  assert fingerprint.transform_fingerprint() in transform.exec_properties["custom_config"]


@pytest.mark.parametrize("collisionless", [False, True])
def test_transform_writes_vocabularies_only_for_the_collisionless_trainer(collisionless):
  p = pipeline_lib.create_pipeline(config_lib.PipelineConfig(
      data_dir="/d", output_dir="/o", train_collisionless=collisionless))
  transform = next(c for c in p.components if c.id == ids.TRANSFORM)
  custom = json.loads(transform.exec_properties["custom_config"])
  assert custom[features.VOCABULARIES_KEY] is collisionless
  assert (ids.COLLISIONLESS_TRAINER in {c.id for c in p.components}) is collisionless


def test_fingerprint_changes_with_one_edited_line(tmp_path):
  (tmp_path / "a.py").write_text("x = 1\n")
  (tmp_path / "b.py").write_text("y = 2\n")
  files = [tmp_path / "a.py", tmp_path / "b.py"]
  before = fingerprint.fingerprint(files, root=tmp_path)
  assert fingerprint.fingerprint(list(reversed(files)), root=tmp_path) == before
  (tmp_path / "b.py").write_text("y = 3\n")
  assert fingerprint.fingerprint(files, root=tmp_path) != before


def test_the_trainer_fingerprint_covers_exactly_what_the_trainers_and_transform_run():
  # The Trainer's cache key hashes every file of trainer/; that is right only while trainer/
  # holds nothing the Trainer (run_fn) and Transform (preprocessing_fn) do not import: a
  # tool kept there would re-train both models when its help text changes.
  # What it imports of uet_upstream (a touchpoint of Keras) is hashed with it.
  code = ("import sys, trainer.run_fn, trainer.preprocessing; "
          "print(' '.join(m for m in sys.modules "
          "if m.split('.')[0] in ('trainer', 'uet_upstream', 'dataspec')))")
  imported = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True, env=runs.python_env()).stdout.split()
  files = {p.stem if p.stem != "__init__" else "" for p in fingerprint.TRAINER_DIR.glob("*.py")}
  assert {m.partition(".")[2] for m in imported if m.startswith("trainer")} == files
  upstream = {m.partition(".")[2] for m in imported if m.startswith("uet_upstream.")}
  assert upstream == {p.stem for p in fingerprint.TRAINER_UPSTREAM}
  # Of dataspec, the spec module alone, which both fingerprints cover.
  assert {m for m in imported if m.startswith("dataspec.")} == {"dataspec.spec"}


def test_pipeline_graph_wires_candidate_against_baseline():
  p = pipeline_lib.create_pipeline(config_lib.PipelineConfig(data_dir="/d", output_dir="/o"))
  node_ids = {c.id for c in p.components}
  assert {ids.CANDIDATE_TRAINER, ids.BASELINE_TRAINER,
          ids.VALIDATION_GATE, ids.PUSHER} <= node_ids
  by_id = {c.id: c for c in p.components}
  evaluator = by_id[ids.EVALUATOR]
  assert evaluator.inputs["model"].producer_component_id == ids.CANDIDATE_TRAINER
  assert evaluator.inputs["baseline_model"].producer_component_id == \
      ids.BASELINE_TRAINER
  # Transform waits for the gate, so bad data never reaches training.
  assert ids.VALIDATION_GATE in {n.id for n in by_id[ids.TRANSFORM].upstream_nodes}


def test_gates_judge_the_overall_slice_only():
  # TFMA applies MetricConfig.threshold to every slice; a noisy age bucket must not veto.
  import tensorflow_model_analysis as tfma
  evaluation = config_lib.EvaluationConfig()
  for eval_config in (pipeline_lib.make_eval_config(evaluation),
                      pipeline_lib.make_production_eval_config(evaluation)):
    thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(
        eval_config.metrics_specs, eval_config=eval_config)
    auc = [v for k, v in thresholds.items() if k.name == "auc"]
    assert auc, "no AUC threshold"
    for per_key in auc:
      assert per_key and all(spec == tfma.SlicingSpec() for spec, _ in per_key)


def test_flags_override_the_config_files_sections():
  values = {"training": {"epochs": 3, "batch_size": 64}, "evaluation": {"auc_floor": 0.6}}
  training, evaluation = config_lib.sections_with_flags(values, epochs=7, min_auc_gain=0.02)
  assert training == {"epochs": 7, "batch_size": 64}
  assert evaluation == {"auc_floor": 0.6, "min_auc_gain": 0.02}
  assert "training" not in values and "evaluation" not in values


def test_transform_fingerprint_covers_every_trainer_module_transform_imports():
  # A module preprocessing_fn imports but the fingerprint misses would leave a stale
  # Transform in the cache after an edit.
  import ast  # pylint: disable=g-import-not-at-top
  seen, todo = set(), ["preprocessing"]
  while todo:
    name = todo.pop()
    if name in seen:
      continue
    seen.add(name)
    tree = ast.parse((fingerprint.TRAINER_DIR / f"{name}.py").read_text())
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module == "trainer":
        todo += [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trainer."):
        todo.append(node.module.split(".", 1)[1])
  assert {f"{m}.py" for m in seen} <= set(fingerprint.TRANSFORM_SOURCES)


def test_a_warm_start_fine_tunes_at_a_fraction_of_the_learning_rate():
  c = TrainingConfig(learning_rate=0.01)
  assert c.for_warm_start().learning_rate == pytest.approx(0.005)
  assert c.for_warm_start().replace(learning_rate=c.learning_rate) == c  # nothing else moves
  assert TrainingConfig(warm_start_lr_scale=1.0).for_warm_start().learning_rate == 0.01
  with pytest.raises(ValueError, match=r"warm_start_lr_scale must be in \(0, 1\]"):
    TrainingConfig(warm_start_lr_scale=0.0)
