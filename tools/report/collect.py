"""Gathers what a report shows from ML Metadata and the run's artifacts.

Everything is read through TFX/TFMA/TFDV: executions, states and lineage from ML Metadata
(`pipeline.results`), metrics and thresholds with `tfma.load_metrics` /
`load_eval_result` / `load_validation_result`, statistics with TFX's statistics reader,
anomalies and drift with TFDV (`components.validation_gate.executor`), training curves from
TensorBoard's event files. Nothing here parses a file format by hand.

The result is plain data (dataclasses, dicts, floats) that the template renders; nothing
here draws or formats.
"""

import dataclasses
import datetime
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import ml_metadata as mlmd
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import decisions
from components.validation_gate import baseline as drift_baseline_lib
from components.validation_gate import executor as gate_lib
from dataspec import spec as spec_lib
from pipeline import ids
from pipeline import pipeline as pipeline_lib, results
from uet_upstream import tfx as upstream_tfx

# Components in pipeline order (what the report lists first); any other node comes after.
NODE_ORDER = (
    ids.EXAMPLE_GEN, ids.STATISTICS_GEN, ids.SCHEMA_GEN,
    ids.EXAMPLE_VALIDATOR, ids.DRIFT_BASELINE, ids.VALIDATION_GATE,
    ids.SPAN_WINDOW, ids.PRODUCTION_MODEL, ids.TRANSFORM,
    ids.CANDIDATE_TRAINER, ids.BASELINE_TRAINER,
    ids.COLLISIONLESS_TRAINER, ids.EVALUATOR,
    ids.PRODUCTION_EVALUATOR, ids.SERVING_CHECK, ids.PUSHER,
)
MODELS = (ids.CANDIDATE_MODEL, ids.BASELINE_MODEL,
          ids.PRODUCTION_MODEL_NAME)
_DRIFT_MEASURES = {
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "Jensen-Shannon",
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity",
    anomalies_pb2.DriftSkewInfo.Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE:
        "normalized absolute difference",
}


class RunNotFoundError(LookupError):
  """No such pipeline run in ML Metadata (the message lists what there is)."""


@dataclasses.dataclass
class ComponentRun:
  """One node of the run: its state in ML Metadata and how long it took."""
  node_id: str
  state: str            # complete, cached, failed, running, skipped, not run
  is_resolver: bool = False
  started: Optional[datetime.datetime] = None
  seconds: Optional[float] = None
  note: str = ""


@dataclasses.dataclass
class Check:
  """One rule of a gate: `value` against `threshold` and whether it held."""
  rule: str
  value: Optional[float]
  threshold: Optional[float]
  passed: Optional[bool]  # None: the rule did not apply (no number to compare)
  note: str = ""
  is_count: bool = False  # shown as a whole number


@dataclasses.dataclass
class Gate:
  name: str
  verdict: str          # passed, failed, skipped (nothing to compare with), not reached
  checks: List[Check] = dataclasses.field(default_factory=list)
  messages: List[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FeatureStats:
  """One feature of one split, from StatisticsGen (TFDV's statistics proto)."""
  name: str
  kind: str
  count: int
  missing: int
  distinct: Optional[int]
  top_values: List[Tuple[str, float]]
  mean: Optional[float] = None
  minimum: Optional[float] = None
  maximum: Optional[float] = None


@dataclasses.dataclass
class DriftMeasure:
  split: str
  feature: str
  measure: str
  value: float
  threshold: float

  @property
  def passed(self) -> bool:
    return self.value <= self.threshold


@dataclasses.dataclass
class RunRow:
  """One line of `uet runs` (and of the report's history)."""
  run_id: str
  started: Optional[datetime.datetime]
  span: Optional[int]
  status: str           # succeeded, failed at <node>, cancelled at <node>, running or killed
  pushed: bool
  pushed_version: Optional[str]
  candidate_auc: Optional[float]
  baseline_auc: Optional[float]
  production_auc: Optional[float]

  @property
  def decision(self) -> str:
    if self.status != "succeeded":
      return self.status
    return f"pushed {self.pushed_version}" if self.pushed else "not pushed"


@dataclasses.dataclass
class RunReport:
  """Everything the report of one run shows."""
  run_id: str
  pipeline_name: str
  output_dir: str
  started: Optional[datetime.datetime]
  succeeded: bool
  failed_component: Optional[str]
  error: Optional[str]
  components: List[ComponentRun]
  gates: List[Gate]
  pushed: bool
  pushed_destination: Optional[str]
  # slice -> model -> metric -> value (both Evaluators; `production` from the second).
  metrics: Dict[str, Dict[str, Dict[str, float]]]
  statistics: Dict[str, List[FeatureStats]]           # split -> features
  # split -> buckets of the raw label column (when it is numeric)
  label_histogram: Dict[str, List[Tuple[float, float, float]]]
  anomalies: List[gate_lib.Anomaly]
  drift: List[DriftMeasure]
  drift_baseline: Optional[Dict[str, Any]]
  lineage: Dict[str, Any]
  history: List[RunRow]
  training_curves: Dict[str, Dict[str, List[Tuple[int, float]]]]  # model -> tag -> points
  summary: Dict[str, Any]
  # The run's dataset spec (None: neither ML Metadata nor the summary has it), and what
  # ExampleGen set aside: rows quarantined under --max-bad-rows, rows dropped for lack of a
  # label (`label.missing: drop`).
  dataset: Optional[spec_lib.DatasetSpec] = None
  quarantined_rows: int = 0
  dropped_rows: int = 0

  @property
  def label(self) -> Optional[str]:
    """The raw label column, as the dataset spec names it."""
    return self.dataset.label.column if self.dataset else None

  @property
  def label_rule(self) -> str:
    """The label rule in the spec's words (`Label.rule`), "" without a spec."""
    return self.dataset.label.rule if self.dataset else ""

  @property
  def slice_features(self) -> Tuple[str, ...]:
    """The features the Evaluator slices by, as the dataset spec names them."""
    return tuple(self.dataset.slices) if self.dataset else ()


def _time(ms: int) -> Optional[datetime.datetime]:
  if not ms:
    return None
  return datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc)


def pipeline_names(store: mlmd.MetadataStore) -> List[str]:
  return sorted(c.name for c in store.get_contexts_by_type("pipeline"))


def run_contexts(store: mlmd.MetadataStore) -> List[metadata_store_pb2.Context]:
  """Every pipeline run in ML Metadata, oldest first."""
  return sorted(store.get_contexts_by_type("pipeline_run"),
                key=lambda c: (c.create_time_since_epoch, c.id))


def _executions(store: mlmd.MetadataStore,
                nodes: Dict[str, results.NodeRun]) -> Dict[str, metadata_store_pb2.Execution]:
  """node id -> its execution (for start times and parameters)."""
  by_id = {e.id: e for e in store.get_executions_by_id(
      [n.execution_id for n in nodes.values()])}
  return {node_id: by_id[n.execution_id] for node_id, n in nodes.items()}


def _input_artifacts(store: mlmd.MetadataStore, execution_id: int,
                     key: str) -> List[metadata_store_pb2.Artifact]:
  artifact_ids = results.inputs(store, [execution_id], key)
  return list(store.get_artifacts_by_id(artifact_ids)) if artifact_ids else []


def _as_tfx(artifact: metadata_store_pb2.Artifact, store: mlmd.MetadataStore):
  """A TFX Artifact object of an MLMD artifact (for TFX's readers)."""
  artifact_type = store.get_artifact_types_by_id([artifact.type_id])[0]
  return artifact_utils.deserialize_artifact(artifact_type, artifact)


def _int_property(artifact: metadata_store_pb2.Artifact, name: str) -> Optional[int]:
  for props in (artifact.properties, artifact.custom_properties):
    if name in props:
      return props[name].int_value
  return None


def _string_property(artifact: metadata_store_pb2.Artifact, name: str) -> Optional[str]:
  for props in (artifact.properties, artifact.custom_properties):
    if name in props:
      return props[name].string_value
  return None


def _exec_property(execution: metadata_store_pb2.Execution, name: str):
  for props in (execution.properties, execution.custom_properties):
    if name in props:
      value = props[name]
      kind = value.WhichOneof("value")
      return getattr(value, kind) if kind else None
  return None


def run_row(store: mlmd.MetadataStore, pipeline_name: str,
            context: metadata_store_pb2.Context) -> RunRow:
  """The one-line summary of a pipeline run, from ML Metadata and the Evaluators' outputs."""
  nodes = results.node_runs(store, pipeline_name, context.name)
  outcome, stopped = results.run_status({n: r.state for n, r in nodes.items()})
  status = {"failed": f"failed at {stopped}", "cancelled": f"cancelled at {stopped}",
            "unfinished": "running or killed"}.get(outcome, outcome)
  example_gen = nodes.get(ids.EXAMPLE_GEN)
  span = None
  if example_gen and example_gen.outputs.get("examples"):
    span = _int_property(example_gen.outputs["examples"][0], "span")
  gate1 = results.baseline_gate(nodes)
  gate2 = results.production_gate(nodes) or {}
  destination = results.pushed_model_dir(nodes)
  return RunRow(
      run_id=context.name, started=_time(context.create_time_since_epoch), span=span,
      status=status, pushed=destination is not None,
      pushed_version=os.path.basename(destination.rstrip("/")) if destination else None,
      candidate_auc=gate1["candidate_auc"], baseline_auc=gate1["baseline_auc"],
      production_auc=gate2.get("production_auc"))


def list_runs(store: mlmd.MetadataStore, pipeline_name: str) -> List[RunRow]:
  """Every run of the pipeline, oldest first."""
  return [run_row(store, pipeline_name, c) for c in run_contexts(store)]


def _auc_thresholds(eval_config: tfma.EvalConfig) -> Dict[str, Optional[float]]:
  """The AUC floor and the change threshold an Evaluator was configured with."""
  found: Dict[str, Optional[float]] = {"floor": None, "change": None}
  for t in pipeline_lib.auc_thresholds(eval_config):
    if t.HasField("value_threshold") and t.value_threshold.HasField("lower_bound"):
      found["floor"] = t.value_threshold.lower_bound.value
    if t.HasField("change_threshold") and t.change_threshold.HasField("absolute"):
      found["change"] = t.change_threshold.absolute.value
  return found


def _eval_config(evaluation_uri: str) -> tfma.EvalConfig:
  return tfma.load_eval_result(evaluation_uri).config


def _validation_messages(evaluation_uri: str) -> List[str]:
  """TFMA's own words for each failed threshold (empty when validation passed)."""
  try:
    result = tfma.load_validation_result(evaluation_uri)
  except (OSError, IOError, ValueError):
    return []
  messages = []
  for per_slice in result.metric_validations_per_slice:
    for failure in per_slice.failures:
      messages.append(failure.message or str(failure.metric_key.name))
  return messages


def _validation_gate(store: mlmd.MetadataStore, nodes: Dict[str, results.NodeRun],
                     executions: Dict[str, metadata_store_pb2.Execution]
                     ) -> Tuple[Gate, List[gate_lib.Anomaly], List[DriftMeasure],
                                Optional[Dict[str, Any]]]:
  """The data gate: schema anomalies, drift distances and the drift baseline."""
  gate_node = nodes.get(ids.VALIDATION_GATE)
  validator = nodes.get(ids.EXAMPLE_VALIDATOR)
  anomalies: List[gate_lib.Anomaly] = []
  if validator and validator.outputs.get("anomalies"):
    anomalies = gate_lib.read_anomalies(_as_tfx(validator.outputs["anomalies"][0], store))
  if gate_node is None:
    return Gate("Data validation", "not reached"), anomalies, [], None
  execution = executions[ids.VALIDATION_GATE]
  columns = lambda name: tuple(  # noqa: E731
      c for c in (_exec_property(execution, name) or "").split(",") if c)
  thresholds = gate_lib.DriftThresholds(
      label_js=_exec_property(execution, "drift_label_js"),
      categorical_linf=_exec_property(execution, "drift_categorical_linf"),
      js_columns=columns("drift_js_columns"), linf_columns=columns("drift_linf_columns"))
  statistics = _input_artifacts(store, execution.id, "statistics")
  # On the first run DriftBaseline's output stands for nothing: there is no baseline.
  baseline = [a for a in _input_artifacts(store, execution.id, "baseline_statistics")
              if not decisions.is_empty(_as_tfx(a, store))]
  schema_artifacts = _input_artifacts(store, execution.id, "schema")
  drift: List[DriftMeasure] = []
  baseline_info = None
  if baseline:
    # DriftBaseline hands the gate a copy of the last validated statistics; its span and
    # run are those of the StatisticsGen output it copied (`source_uri`).
    source = baseline[0].custom_properties.get(drift_baseline_lib.SOURCE_URI_KEY)
    originals = store.get_artifacts_by_uri(source.string_value) if source else []
    origin = originals[0] if originals else baseline[0]
    producer = results.producers(store, [origin.id])
    runs = []
    if producer:
      runs = [c.name for c in store.get_contexts_by_execution(producer[0])
              if c.type_id == store.get_context_type("pipeline_run").id]
    baseline_info = {"span": _span_of_statistics(store, origin), "uri": origin.uri,
                     "run_id": runs[0] if runs else None}
    if statistics and schema_artifacts:
      schema = io_utils.SchemaReader().read(
          io_utils.get_only_uri_in_dir(schema_artifacts[0].uri))
      drift = drift_measures(_as_tfx(statistics[0], store), _as_tfx(baseline[0], store),
                             schema, thresholds)
  passed = gate_node.state in ("complete", "cached")
  checks = [Check("schema anomalies found by ExampleValidator", len(anomalies), 0,
                  not anomalies, is_count=True)]
  for d in drift:
    checks.append(Check(f"{d.measure} distance of {d.feature} ({d.split}) from span "
                        f"{baseline_info['span']}", d.value, d.threshold, d.passed))
  if not baseline:
    checks.append(Check("drift", None, None, None,
                        "no span has passed this gate before: no drift baseline, not checked"))
  gate = Gate("Data validation", "passed" if passed else
              ("failed" if gate_node.state == "failed" else gate_node.state), checks)
  return gate, anomalies, drift, baseline_info


def _span_of_statistics(store: mlmd.MetadataStore,
                        statistics: metadata_store_pb2.Artifact) -> Optional[int]:
  """The span of the examples StatisticsGen computed these statistics from (lineage)."""
  for execution_id in results.producers(store, [statistics.id]):
    for examples in _input_artifacts(store, execution_id, "examples"):
      return _int_property(examples, "span")
  return None


def drift_measures(statistics, baseline, schema, thresholds: gate_lib.DriftThresholds
                   ) -> List[DriftMeasure]:
  """Each drift distance TFDV measures between two statistics artifacts, with its threshold.

  The same comparators as the ValidationGate (`gate_lib.drift_schema`); TFDV reports every
  measured distance in `drift_skew_info`, not only those above the threshold.
  """
  schema = gate_lib.drift_schema(schema, thresholds)
  previous = set(gate_lib.split_names(baseline))
  found = []
  for split in gate_lib.split_names(statistics):
    if split not in previous:
      continue
    anomalies = tfdv.validate_statistics(
        gate_lib.load_split_statistics(statistics, split), schema, environment="TRAINING",
        previous_statistics=gate_lib.load_split_statistics(baseline, split))
    for info in anomalies.drift_skew_info:
      feature = ".".join(info.path.step)
      for m in info.drift_measurements:
        found.append(DriftMeasure(split, feature, _DRIFT_MEASURES.get(m.type, str(m.type)),
                                  m.value, m.threshold))
  return found


def _model_gate(name: str, node: Optional[results.NodeRun], other: str,
                change_rule: str, nothing_to_compare: Optional[str] = None) -> Gate:
  """A TFMA gate: the AUC floor and the change against `other`, with the numbers.

  `nothing_to_compare` says why there is no `other` model (no model in production): the
  comparison is then skipped and the floor alone decides.
  """
  if node is None:
    return Gate(name, "not reached")
  if node.state == "failed" or not node.outputs.get("evaluation"):
    return Gate(name, "failed" if node.state == "failed" else node.state)
  uri = node.outputs["evaluation"][0].uri
  overall = results.evaluation_metrics(uri).get("overall", {})
  candidate = overall.get(ids.CANDIDATE_MODEL, {}).get("auc")
  reference = overall.get(other, {}).get("auc")
  thresholds = _auc_thresholds(_eval_config(uri))
  checks = []
  if thresholds["floor"] is not None:
    checks.append(Check("candidate AUC >= floor", candidate, thresholds["floor"],
                        None if candidate is None else candidate >= thresholds["floor"]))
  if thresholds["change"] is not None:
    if reference is None:
      checks.append(Check(change_rule, None, thresholds["change"], None,
                          f"skipped: no {other} model to compare with"))
    else:
      diff = candidate - reference
      checks.append(Check(change_rule, diff, thresholds["change"],
                          diff >= thresholds["change"],
                          f"candidate {candidate:.4f} - {other} {reference:.4f}"))
  blessed = results.blessed(node)
  skipped = reference is None and nothing_to_compare is not None
  gate = Gate(name, "failed" if not blessed else "skipped" if skipped else "passed", checks)
  if skipped:
    gate.messages = [f"No comparison: {nothing_to_compare}; the AUC floor alone decided."]
  if not blessed:
    gate.messages += _validation_messages(uri)
  return gate


SERVING_GATE = "Serves from a fresh process"


def _serving_gate(node: Optional[results.NodeRun]) -> Gate:
  """Gate 3, the ServingCheck: served scores finite, in [0, 1] and equal to the Evaluator's
  within its tolerance; what failed when it failed."""
  if node is None:
    return Gate(SERVING_GATE, "not reached",
                messages=["Runs only when the candidate passed both model gates."])
  gate = results.serving_gate({ids.SERVING_CHECK: node})
  if gate is None:
    return Gate(SERVING_GATE, "failed" if node.state == "failed" else node.state)
  checks = []
  if gate["blessed"]:
    checks = [
        Check("rows scored (each request's rows)", gate["rows"], None, True,
              f"warm-up requests of batch {', '.join(map(str, gate['batch_sizes']))}",
              is_count=True),
        Check("lowest served score >= 0", gate["min_score"], 0.0, True),
        Check("highest served score <= 1", gate["max_score"], 1.0, True),
        Check("|served - Evaluator's prediction| <= tolerance", gate["max_abs_difference"],
              gate["tolerance"], True,
              f"largest difference {gate['max_abs_difference']:.2g}, tolerance "
              f"{gate['tolerance']:g}"),
    ]
  return Gate(SERVING_GATE, "passed" if gate["blessed"] else "failed", checks,
              [] if gate["blessed"] else [f"Not pushed: {gate['failure']}"])


def _nothing_in_production(store: mlmd.MetadataStore,
                           node: Optional[results.NodeRun]) -> Optional[str]:
  """Why the ProductionModel node's output stands for no model (None: there is one)."""
  models = node.outputs.get("model", []) if node else []
  if not models or not decisions.is_empty(_as_tfx(models[0], store)):
    return None
  return _as_tfx(models[0], store).get_string_custom_property(decisions.EMPTY_KEY)


def _split_statistics(store: mlmd.MetadataStore, node: Optional[results.NodeRun],
                      label: Optional[str]) -> Tuple[Dict[str, List[FeatureStats]],
                                 Dict[str, List[Tuple[float, float, float]]]]:
  """Per split: each feature's statistics, and the histogram of the numeric feature
  `label` (the dataset's raw label column)."""
  if node is None or not node.outputs.get("statistics"):
    return {}, {}
  stats_artifact = _as_tfx(node.outputs["statistics"][0], store)
  by_split: Dict[str, List[FeatureStats]] = {}
  histograms: Dict[str, List[Tuple[float, float, float]]] = {}
  for split in gate_lib.split_names(stats_artifact):
    proto = gate_lib.load_split_statistics(stats_artifact, split)
    if not proto.datasets:
      continue
    dataset = proto.datasets[0]
    features = []
    for f in dataset.features:
      name = ".".join(f.path.step) or f.name
      kind = f.WhichOneof("stats")
      if kind == "num_stats":
        common = f.num_stats.common_stats
        features.append(FeatureStats(
            name, "INT" if f.type == f.INT else "FLOAT", common.num_non_missing,
            common.num_missing, None, [], f.num_stats.mean, f.num_stats.min,
            f.num_stats.max))
        if label and name == label:
          histograms[split] = _standard_histogram(f.num_stats)
      elif kind == "string_stats":
        common = f.string_stats.common_stats
        features.append(FeatureStats(
            name, "STRING", common.num_non_missing, common.num_missing,
            f.string_stats.unique,
            [(v.value, v.frequency) for v in f.string_stats.top_values[:5]]))
    by_split[split] = features
  return by_split, histograms


def _standard_histogram(num_stats) -> List[Tuple[float, float, float]]:
  """TFDV's standard histogram of a numeric feature: (low, high, count) per bucket.

  TFDV builds it from a quantiles sketch over equal-width buckets of [min, max], so counts
  are approximate (and fractional) and an integer on a bucket edge is spread over both.
  """
  standard = [h for h in num_stats.histograms if h.type == h.STANDARD]
  if not standard:
    return []
  return [(b.low_value, b.high_value, b.sample_count) for b in standard[0].buckets]


def _training_curves(model_run_uri: str) -> Dict[str, List[Tuple[int, float]]]:
  """`train/epoch_auc`, `validation/epoch_loss`, ... -> (epoch, value), from TensorBoard."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  curves: Dict[str, List[Tuple[int, float]]] = {}
  for phase in ("train", "validation"):
    directory = os.path.join(model_run_uri, phase)
    if not os.path.isdir(directory):
      continue
    acc = event_accumulator.EventAccumulator(
        directory, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    for tag in acc.Tags().get("tensors", []):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      curves[f"{phase}/{tag}"] = [(e.step + 1, float(tf.make_ndarray(e.tensor_proto)))
                                  for e in acc.Tensors(tag)]
  return curves


def _lineage(store: mlmd.MetadataStore, nodes: Dict[str, results.NodeRun],
             executions: Dict[str, metadata_store_pb2.Execution],
             pushed_destination: Optional[str]) -> Dict[str, Any]:
  """Span ingested, spans trained on, the warm-start source and the pushed version."""
  out: Dict[str, Any] = {"span": None, "training_spans": [], "warm_started_from": None,
                         "warm_start_version": None, "pushed_version": None,
                         "candidate_model": None, "candidate_model_run": None,
                         "baseline_model_run": None}
  example_gen = nodes.get(ids.EXAMPLE_GEN)
  if example_gen and example_gen.outputs.get("examples"):
    out["span"] = _int_property(example_gen.outputs["examples"][0], "span")
  transform = executions.get(ids.TRANSFORM)
  if transform is not None:
    out["training_spans"] = sorted(
        {_int_property(a, "span") for a in _input_artifacts(store, transform.id, "examples")})
  for model, node_id in ((ids.CANDIDATE_MODEL, ids.CANDIDATE_TRAINER),
                         (ids.BASELINE_MODEL, ids.BASELINE_TRAINER)):
    trainer = nodes.get(node_id)
    if trainer and trainer.outputs.get("model_run"):
      out[f"{model}_model_run"] = trainer.outputs["model_run"][0].uri  # TensorBoard logdir
  candidate = nodes.get(ids.CANDIDATE_TRAINER)
  if candidate and candidate.outputs.get("model"):
    out["candidate_model"] = candidate.outputs["model"][0].uri
  out["warm_started_from"] = results.training_result(candidate).get("warm_started_from")
  if out["warm_started_from"]:
    # Which pushed version that model is: the push whose Pusher read this Model artifact.
    base = _input_artifacts(store, executions[ids.CANDIDATE_TRAINER].id,
                            "base_model")
    if base:
      out["warm_start_version"] = _pushed_version_of_model(store, base[0].id)
  if pushed_destination:
    out["pushed_version"] = os.path.basename(pushed_destination.rstrip("/"))
  return out


def _pushed_version_of_model(store: mlmd.MetadataStore, model_id: int) -> Optional[str]:
  readers = {e.execution_id for e in store.get_events_by_artifact_ids([model_id])
             if e.type in results.INPUT_EVENTS}
  for event in store.get_events_by_execution_ids(sorted(readers)):
    if event.type not in results.OUTPUT_EVENTS:
      continue
    [artifact] = store.get_artifacts_by_id([event.artifact_id])
    if _int_property(artifact, upstream_tfx.PUSHED_KEY) == 1:
      destination = _string_property(artifact, upstream_tfx.PUSHED_DESTINATION_KEY)
      return os.path.basename(destination.rstrip("/")) if destination else None
  return None


def _components(nodes: Dict[str, results.NodeRun],
                executions: Dict[str, metadata_store_pb2.Execution],
                all_nodes: Sequence[str], failed_component: Optional[str],
                succeeded: bool) -> List[ComponentRun]:
  rank = {n: i for i, n in enumerate(NODE_ORDER)}
  out = []
  for node_id in sorted(set(all_nodes) | set(nodes), key=lambda n: (rank.get(n, 99), n)):
    run = nodes.get(node_id)
    if run is None:
      if node_id in (ids.SERVING_CHECK, ids.PUSHER) and succeeded:
        out.append(ComponentRun(node_id, "skipped",
                                note="condition not met: both gates must bless"))
      elif not succeeded:
        out.append(ComponentRun(node_id, "not run",
                                note=f"the run stopped at {failed_component}"
                                if failed_component else "the run stopped earlier"))
      continue
    out.append(ComponentRun(node_id, run.state, run.is_resolver,
                            _time(executions[node_id].create_time_since_epoch), run.seconds))
  return out


def resolve_run_id(store: mlmd.MetadataStore, run_id: Optional[str]) -> str:
  """`run_id` if ML Metadata has it (also accepts a report directory name); else the newest.

  Raises:
    RunNotFoundError: no runs at all, or none named so.
  """
  runs = run_contexts(store)
  if not runs:
    raise RunNotFoundError("ML Metadata holds no pipeline runs yet; run `uet run` first")
  if run_id is None:
    return runs[-1].name
  for c in runs:
    if run_id in (c.name, report_dir_name(c.name)):
      return c.name
  raise RunNotFoundError(
      f"no pipeline run {run_id!r} in ML Metadata; `uet runs` lists them (newest: "
      f"{runs[-1].name})")


def report_dir_name(run_id: str) -> str:
  """The directory of a run's report: its run id, safe in a file name and a URL."""
  return "".join(c if c.isalnum() or c in "-_." else "-" for c in run_id)


def collect(store: mlmd.MetadataStore, pipeline_name: str, run_id: str,
            output_dir: str, summary: Optional[Dict[str, Any]] = None) -> RunReport:
  """Everything the report of pipeline run `run_id` shows.

  Args:
    store: ML Metadata (read only).
    pipeline_name: the TFX pipeline name.
    run_id: the pipeline run (its `pipeline_run` context name).
    output_dir: the run's output directory (shown; not read).
    summary: the run's `last_run.json` if known: the error text of a failed run lives only
      there (TFX records that an execution failed, not why).

  Returns:
    The RunReport.
  """
  summary = dict(summary or {})
  context = store.get_context_by_type_and_name("pipeline_run", run_id)
  nodes = results.node_runs(store, pipeline_name, run_id)
  executions = _executions(store, nodes)
  outcome, stopped = results.run_status({n: r.state for n, r in nodes.items()})
  failed_component = summary.get("failed_component") or stopped
  succeeded = summary.get("succeeded", outcome == "succeeded" and bool(nodes))
  error = summary.get("error")
  if not succeeded and not error:
    error = {
        "failed": f"component {failed_component} failed; ML Metadata records that it failed, "
                  "not why: see the run's log in OUTPUT/logs/",
        "cancelled": f"the run was cancelled while {failed_component} ran",
    }.get(outcome, "the run did not finish (killed, or still running)")
  all_nodes = [c.name[len(pipeline_name) + 1:] for c in store.get_contexts_by_type("node")
               if c.name.startswith(pipeline_name + ".")]

  validation, anomalies, drift, drift_baseline = _validation_gate(store, nodes, executions)
  gates = [
      validation,
      _model_gate("Beat the hash baseline", nodes.get(ids.EVALUATOR),
                  ids.BASELINE_MODEL, "candidate AUC - baseline AUC >= min gain"),
      _model_gate("No regression against production",
                  nodes.get(ids.PRODUCTION_EVALUATOR),
                  ids.PRODUCTION_MODEL_NAME,
                  "candidate AUC - production AUC >= -max regression",
                  _nothing_in_production(store, nodes.get(ids.PRODUCTION_MODEL))),
      _serving_gate(nodes.get(ids.SERVING_CHECK)),
  ]
  metrics: Dict[str, Dict[str, Dict[str, float]]] = {}
  evaluator = nodes.get(ids.EVALUATOR)
  if evaluator and evaluator.outputs.get("evaluation"):
    metrics = results.evaluation_metrics(evaluator.outputs["evaluation"][0].uri)
  production = nodes.get(ids.PRODUCTION_EVALUATOR)
  if production and production.outputs.get("evaluation"):
    for slice_name, models in results.evaluation_metrics(
        production.outputs["evaluation"][0].uri).items():
      if ids.PRODUCTION_MODEL_NAME in models:
        metrics.setdefault(slice_name, {})[ids.PRODUCTION_MODEL_NAME] = \
            models[ids.PRODUCTION_MODEL_NAME]
  dataset = _dataset(executions, summary)
  statistics, histograms = _split_statistics(
      store, nodes.get(ids.STATISTICS_GEN), dataset.label.column if dataset else None)
  destination = results.pushed_model_dir(nodes)
  pushed = destination is not None
  curves = {}
  for model, node_id in ((ids.CANDIDATE_MODEL, ids.CANDIDATE_TRAINER),
                         (ids.BASELINE_MODEL, ids.BASELINE_TRAINER)):
    trainer = nodes.get(node_id)
    if trainer and trainer.outputs.get("model_run"):
      curves[model] = _training_curves(trainer.outputs["model_run"][0].uri)
  history = list_runs(store, pipeline_name)
  return RunReport(
      run_id=run_id, pipeline_name=pipeline_name, output_dir=output_dir,
      started=_time(context.create_time_since_epoch) if context else None,
      succeeded=bool(succeeded), failed_component=failed_component, error=error,
      components=_components(nodes, executions, all_nodes, failed_component,
                             bool(succeeded)),
      gates=gates, pushed=pushed, pushed_destination=destination, metrics=metrics,
      statistics=statistics, label_histogram=histograms, anomalies=anomalies, drift=drift,
      drift_baseline=drift_baseline,
      lineage=_lineage(store, nodes, executions, destination),
      history=history, training_curves=curves, summary=summary, dataset=dataset,
      quarantined_rows=results.quarantined_rows(nodes),
      dropped_rows=results.dropped_rows(nodes))


def _dataset(executions: Dict[str, metadata_store_pb2.Execution],
             summary: Dict[str, Any]) -> Optional[spec_lib.DatasetSpec]:
  """The run's dataset spec: SchemaGen's `dataset` property in ML Metadata (what the run
  used), else the config in the run's summary; None when neither has one."""
  execution = executions.get(ids.SCHEMA_GEN)
  text = _exec_property(execution, "dataset") if execution else None
  try:
    if text:
      return spec_lib.from_json(text)
    config_dataset = (summary.get("config") or {}).get("dataset")
    return spec_lib.from_dict(config_dataset) if config_dataset else None
  except (ValueError, KeyError, TypeError):
    return None  # written by another version: the report goes on without the spec's names
