"""The one typed configuration of a pipeline run, built from CLI flags and/or a JSON file.

`create_pipeline(config)` reads nothing else: no environment variables, no $HOME. Runners
decide paths (local directories or gs:// URIs) and engines, then pass the config down.
"""

import dataclasses
import json
from typing import Any, Dict, Mapping, Optional, Tuple

from dataspec import spec as spec_lib
from trainer import config as training_lib
from trainer.config import TrainingConfig

# Beam on the local machine: the in-memory DirectRunner, one worker (docs/measured.md,
# "Beam on the local machine", compares it with multi-processing).
DEFAULT_BEAM_ARGS = ("--runner=DirectRunner", "--direct_running_mode=in_memory",
                     "--direct_num_workers=1")
# Files of the output directory: the outcome of the last run, the local ML Metadata store,
# the quarantined rows.
SUMMARY_FILE = "last_run.json"
METADATA_FILE = "metadata.sqlite"
QUARANTINE_FILE = "quarantine.tsv"


def output_path(output_dir: str, name: str) -> str:
  """`name` in the output directory (a plain string join, so gs:// works too)."""
  return f"{output_dir.rstrip('/')}/{name}"


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
  """When the candidate is blessed.

  Attributes:
    min_auc_gain: the candidate's AUC must exceed the baseline's by at least this (absolute).
    auc_floor: and be at least this.
    max_auc_regression: the production gate: the candidate's AUC may be at most this much
      below the model currently in production (the latest pushed one), on the new data.
  """
  min_auc_gain: float = 0.01
  auc_floor: float = 0.70
  max_auc_regression: float = 0.0


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Everything `create_pipeline` needs.

  Attributes:
    data_dir: the directory the dataset's source paths are relative to.
    output_dir: root of everything the run writes: `tfx/` (artifacts), `metadata.sqlite`
      (local ML Metadata), `serving/<version>/` (pushed models), `last_run.json`.
    dataset: the dataset spec (None: the default preset, MovieLens-100K).
    pipeline_name: the TFX pipeline name (also the ML Metadata context); None: the
      dataset's (`uet-<name>`).
    schema_file: a raw schema for ImportSchemaGen to import instead of the dataset's
      (None: the spec's `schema`, or, without one, the schema derived from the spec).
    candidate: training config of the candidate (unified by default), resolved against
      the dataset (`trainer.config.resolve`).
    baseline: training config of the baseline (hash, same budget, by default), resolved.
    train_collisionless: also train the collisionless reference (not evaluated or pushed).
    evaluation: blessing thresholds.
    beam_args: Beam pipeline arguments for the Beam-powered components.
    enable_cache: reuse executions whose inputs, code and config are unchanged.
    max_bad_rows: malformed rows quarantined before failing (0: fail fast).
    tpu: TPU name/address for the Trainers (None: detect).
    span_pattern: the source pattern relative to data_dir with `{SPAN}` (e.g.
      `span-{SPAN}/u.data`): each run ingests the newest span. None: the dataset's
      `source.path`.
    window_spans: Transform and the Trainers read the newest this many spans (a rolling
      window, local runner only; Vertex cannot compile SpanRangeStrategy).
    warm_start: the candidate starts from the model in production (the latest pushed one)
      when there is one; False trains from scratch every run.
    drift_label_js: the ValidationGate stops the run when the Jensen-Shannon divergence of
      the raw label column between this span and the last validated one exceeds this (TFDV
      drift comparator; 1.0 disables).
    drift_categorical_linf: ... or the L-infinity distance of a categorical feature's
      column exceeds this (1.0 disables). Short spans differ more from each other:
      docs/measured.md ("Drift between spans") has the distances of monthly and weekly
      MovieLens-100K spans to choose both thresholds from.
  """

  data_dir: str
  output_dir: str
  dataset: Optional[spec_lib.DatasetSpec] = None
  pipeline_name: Optional[str] = None
  schema_file: Optional[str] = None
  candidate: TrainingConfig = TrainingConfig(model_type="unified", layout="budget_rule")
  baseline: TrainingConfig = TrainingConfig(model_type="hash")
  train_collisionless: bool = False
  evaluation: EvaluationConfig = EvaluationConfig()
  beam_args: Tuple[str, ...] = DEFAULT_BEAM_ARGS
  enable_cache: bool = True
  max_bad_rows: int = 0
  tpu: Optional[str] = None
  span_pattern: Optional[str] = None
  window_spans: int = 1
  warm_start: bool = True
  drift_label_js: float = 0.1
  drift_categorical_linf: float = 0.3

  def __post_init__(self):
    # Frozen: the derived fields are set once, here.
    if self.dataset is None:
      object.__setattr__(self, "dataset", spec_lib.load(spec_lib.DEFAULT_PRESET))
    if self.pipeline_name is None:
      object.__setattr__(self, "pipeline_name", self.dataset.pipeline_name)
    for role in ("candidate", "baseline"):
      object.__setattr__(self, role, training_lib.resolve(getattr(self, role), self.dataset))
    if self.window_spans < 1:
      raise ValueError(f"window_spans must be >= 1, got {self.window_spans}")
    if self.window_spans > 1 and not self.span_pattern:
      raise ValueError("window_spans > 1 needs spans: a data_dir with span-N/ directories "
                       "(see `uet spans`) or a span_pattern containing {SPAN}")
    if self.span_pattern and "{SPAN}" not in self.span_pattern:
      raise ValueError(f"span_pattern {self.span_pattern!r} must contain {{SPAN}}")
    if self.candidate.model_type == self.baseline.model_type:
      raise ValueError("candidate and baseline must be different model types, both are "
                       f"{self.candidate.model_type!r}")
    if self.max_bad_rows < 0:
      raise ValueError(f"max_bad_rows must be >= 0, got {self.max_bad_rows}")
    for name in ("drift_label_js", "drift_categorical_linf"):
      if not 0.0 < getattr(self, name) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1] (1 disables the check), got "
                         f"{getattr(self, name)}")

  # Paths derived from output_dir. They are plain string joins so gs:// works too.
  @property
  def pipeline_root(self) -> str:
    return f"{self.output_dir.rstrip('/')}/tfx"

  @property
  def schema_path(self) -> Optional[str]:
    """The curated raw schema file; None: the pipeline derives the raw schema from the
    dataset spec."""
    return self.schema_file or self.dataset.schema

  def curated_schema(self) -> str:
    """The curated raw schema's text ("" when there is none).

    Raises:
      ValueError: the file is missing or is not a schema.pbtxt.
    """
    if not self.schema_path:
      return ""
    from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top
    try:
      with open(self.schema_path, encoding="utf-8") as f:
        text = f.read()
      text_format.Parse(text, schema_pb2.Schema())
    except (OSError, text_format.ParseError) as e:
      raise ValueError(f"schema {self.schema_path}: not a readable schema.pbtxt ({e}); fix "
                       "it, or leave schema out of the dataset spec to derive one") from None
    return text

  @property
  def metadata_path(self) -> str:
    return output_path(self.output_dir, METADATA_FILE)

  @property
  def serving_dir(self) -> str:
    return f"{self.output_dir.rstrip('/')}/serving"

  @property
  def summary_path(self) -> str:
    """The last run's outcome (`pipeline/local_runner.py` writes it)."""
    return output_path(self.output_dir, SUMMARY_FILE)

  @property
  def quarantine_path(self) -> str:
    return output_path(self.output_dir, QUARANTINE_FILE)

  def replace(self, **changes: Any) -> "PipelineConfig":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> Dict[str, Any]:
    return {
        "data_dir": self.data_dir, "output_dir": self.output_dir,
        "dataset": self.dataset.to_dict(),
        "pipeline_name": self.pipeline_name, "schema_file": self.schema_file,
        "candidate": self.candidate.to_dict(), "baseline": self.baseline.to_dict(),
        "train_collisionless": self.train_collisionless,
        "evaluation": dataclasses.asdict(self.evaluation),
        "beam_args": list(self.beam_args), "enable_cache": self.enable_cache,
        "max_bad_rows": self.max_bad_rows, "tpu": self.tpu,
        "span_pattern": self.span_pattern, "window_spans": self.window_spans,
        "warm_start": self.warm_start,
        "drift_label_js": self.drift_label_js,
        "drift_categorical_linf": self.drift_categorical_linf,
    }


def from_mapping(values: Mapping[str, Any], **overrides: Any) -> PipelineConfig:
  """Builds a PipelineConfig from a (JSON) mapping.

  Besides the PipelineConfig fields, a `training` section applies to both candidate and
  baseline (e.g. epochs); `candidate` / `baseline` sections override it per model.
  Unknown keys are an error, so a typo never silently falls back to a default.

  Args:
    values: the mapping (e.g. a parsed config file).
    **overrides: field values that win over `values` (e.g. from CLI flags); None is ignored.

  Returns:
    The config.
  """
  values = dict(values)
  values.update({k: v for k, v in overrides.items() if v is not None})
  if "drift_rating_js" in values:
    raise ValueError("config key drift_rating_js is now drift_label_js (the drift of the "
                     "dataset's label column); rename it")
  known = {f.name for f in dataclasses.fields(PipelineConfig)} | {"training"}
  unknown = set(values) - known
  if unknown:
    raise ValueError(f"unknown config keys {sorted(unknown)}; known keys are {sorted(known)}")
  shared = dict(values.pop("training", {}) or {})
  kwargs: Dict[str, Any] = {}
  for role, default_type in (("candidate", "unified"), ("baseline", "hash")):
    section = values.pop(role, {}) or {}
    if isinstance(section, TrainingConfig):
      kwargs[role] = section
    else:
      # The candidate's layout follows the budget rule unless the config says otherwise.
      kwargs[role] = TrainingConfig.from_dict(
          {"model_type": default_type, **shared, **section},
          default_layout="budget_rule" if role == "candidate" else "explicit")
  evaluation = values.pop("evaluation", {}) or {}
  if not isinstance(evaluation, EvaluationConfig):
    eval_known = {f.name for f in dataclasses.fields(EvaluationConfig)}
    if set(evaluation) - eval_known:
      raise ValueError(f"unknown evaluation keys {sorted(set(evaluation) - eval_known)}; "
                       f"known keys are {sorted(eval_known)}")
    evaluation = EvaluationConfig(**{k: float(v) for k, v in evaluation.items()})
  kwargs["evaluation"] = evaluation
  if "beam_args" in values:
    values["beam_args"] = tuple(values["beam_args"])
  dataset = values.get("dataset")
  if dataset is None or isinstance(dataset, str):
    values["dataset"] = spec_lib.load(dataset)
  elif isinstance(dataset, Mapping):
    values["dataset"] = spec_lib.from_dict(dataset)
  missing = {"data_dir", "output_dir"} - set(values)
  if missing:
    raise ValueError(f"config needs {sorted(missing)}")
  return PipelineConfig(**values, **kwargs)


def sections_with_flags(values: Dict[str, Any], epochs: Optional[int] = None,
                        min_auc_gain: Optional[float] = None,
                        auc_floor: Optional[float] = None) -> Tuple[Dict, Dict]:
  """Pops the `training` and `evaluation` sections of a config file's values and applies
  the command-line flags that override them (None: not given).

  Returns:
    (training section, evaluation section), for `from_mapping`.
  """
  training = dict(values.pop("training", {}) or {})
  if epochs is not None:
    training["epochs"] = epochs
  evaluation = dict(values.pop("evaluation", {}) or {})
  if min_auc_gain is not None:
    evaluation["min_auc_gain"] = min_auc_gain
  if auc_floor is not None:
    evaluation["auc_floor"] = auc_floor
  return training, evaluation


def load_file(path: str) -> Dict[str, Any]:
  """Reads a JSON config file; the error names the file and what is wrong."""
  try:
    with open(path) as f:
      data = json.load(f)
  except FileNotFoundError:
    raise ValueError(f"config file {path} not found") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"config file {path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
  if not isinstance(data, dict):
    raise ValueError(f"config file {path}: expected a JSON object at the top level")
  return data
