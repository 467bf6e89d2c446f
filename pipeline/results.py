"""Reads what a finished run produced from ML Metadata: AUCs, blessing, pushed model.

Works the same for fresh and cached executions: a cached execution is linked to the output
artifacts it reused.
"""

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx.utils import path_utils

from pipeline import metadata_backup
from pipeline import pipeline as pipeline_lib

_EXECUTION_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


_RESOLVER_TYPE = "tfx.dsl.components.common.resolver.Resolver"


@dataclasses.dataclass
class NodeRun:
  execution_id: int
  state: str
  outputs: Dict[str, List[metadata_store_pb2.Artifact]]
  # Resolver nodes only look artifacts up; they run every time and are never cached.
  is_resolver: bool = False


def open_store(metadata_path: str) -> mlmd.MetadataStore:
  """A read-only connection to the run's ML Metadata.

  Raises:
    metadata_backup.MetadataStoreError: the file is damaged; the message names it and says
      how to restore the last-good copy or start afresh.
  """
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  try:
    return mlmd.MetadataStore(config)
  except RuntimeError as e:  # MLMD reports SQLite errors as RuntimeError
    # SQLite's own reason reads better than MLMD's (which quotes the failing statement).
    reason = metadata_backup.problem(metadata_path) or str(e).splitlines()[0][:200]
    raise metadata_backup.MetadataStoreError(
        metadata_backup.describe(metadata_path, reason)) from e


def latest_run_id(store: mlmd.MetadataStore) -> Optional[str]:
  runs = store.get_contexts_by_type("pipeline_run")
  if not runs:
    return None
  return max(runs, key=lambda c: (c.create_time_since_epoch, c.id)).name


def node_runs(store: mlmd.MetadataStore, pipeline_name: str,
              run_id: str) -> Dict[str, NodeRun]:
  """node id -> the node's execution in pipeline run `run_id`, with its output artifacts."""
  run = store.get_context_by_type_and_name("pipeline_run", run_id)
  if run is None:
    return {}
  in_run = {e.id: e for e in store.get_executions_by_context(run.id)}
  try:
    resolver_type = store.get_execution_type(_RESOLVER_TYPE)
  except mlmd.errors.NotFoundError:
    resolver_type = None
  result = {}
  for node in store.get_contexts_by_type("node"):
    prefix = f"{pipeline_name}."
    if not node.name.startswith(prefix):
      continue
    node_id = node.name[len(prefix):]
    executions = [e for e in store.get_executions_by_context(node.id) if e.id in in_run]
    if not executions:
      continue
    execution = max(executions, key=lambda e: e.id)
    outputs: Dict[str, List[metadata_store_pb2.Artifact]] = {}
    events = [ev for ev in store.get_events_by_execution_ids([execution.id])
              if ev.type in (metadata_store_pb2.Event.OUTPUT,
                             metadata_store_pb2.Event.DECLARED_OUTPUT)]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([ev.artifact_id for ev in events])}
    for ev in events:
      key = ev.path.steps[0].key if ev.path.steps else ""
      outputs.setdefault(key, []).append(artifacts[ev.artifact_id])
    result[node_id] = NodeRun(execution.id,
                              _EXECUTION_STATES.get(execution.last_known_state, "unknown"),
                              outputs,
                              bool(resolver_type and execution.type_id == resolver_type.id))
  return result


def _metric(value) -> Optional[float]:
  if value.HasField("double_value"):
    return value.double_value.value
  return None


def evaluation_metrics(evaluation_uri: str) -> Dict[str, Dict[str, Dict[str, float]]]:
  """slice name -> model name -> metric name -> value, from the Evaluator's output."""
  out: Dict[str, Dict[str, Dict[str, float]]] = {}
  for metrics_for_slice in tfma.load_metrics(evaluation_uri):
    parts = [f"{c.column}={c.bytes_value.decode() if c.HasField('bytes_value') else c.int64_value if c.HasField('int64_value') else c.float_value}"
             for c in metrics_for_slice.slice_key.single_slice_keys]
    slice_name = ",".join(parts) or "overall"
    for kv in metrics_for_slice.metric_keys_and_values:
      if kv.key.is_diff:
        continue
      value = _metric(kv.value)
      if value is None:
        continue
      model = kv.key.model_name or pipeline_lib.CANDIDATE_MODEL
      out.setdefault(slice_name, {}).setdefault(model, {})[kv.key.name] = value
  return out


def summarize(metadata_path: str, pipeline_name: str) -> Dict[str, Any]:
  """The summary of the latest run: keys `candidate_auc`, `baseline_auc`, `blessed`,
  `pushed_model_dir`, plus LogLoss, sliced metrics, each component's state and how many
  malformed rows ExampleGen quarantined (`quarantined_rows`)."""
  nodes: Dict[str, NodeRun] = {}
  run_id = None
  if os.path.exists(metadata_path):
    store = open_store(metadata_path)
    run_id = latest_run_id(store)
    nodes = node_runs(store, pipeline_name, run_id) if run_id else {}
  summary: Dict[str, Any] = {
      "run_id": run_id,
      "components": {k: v.state for k, v in sorted(nodes.items()) if not v.is_resolver},
      "resolvers": sorted(k for k, v in nodes.items() if v.is_resolver),
      "candidate_auc": None, "baseline_auc": None,
      "candidate_logloss": None, "baseline_logloss": None,
      "blessed": False, "pushed_model_dir": None, "sliced_metrics": {},
      "production_gate": None,
      "candidate_model_dir": None, "baseline_model_dir": None, "warm_started_from": None,
      "quarantined_rows": 0,
  }
  example_gen = nodes.get(pipeline_lib.EXAMPLE_GEN)
  if example_gen and example_gen.outputs.get("examples"):
    quarantined = example_gen.outputs["examples"][0].custom_properties.get("quarantined_rows")
    summary["quarantined_rows"] = quarantined.int_value if quarantined else 0
  for role, node_id in (("candidate", pipeline_lib.CANDIDATE_TRAINER),
                        ("baseline", pipeline_lib.BASELINE_TRAINER)):
    trainer = nodes.get(node_id)
    if trainer and trainer.outputs.get("model"):
      summary[f"{role}_model_dir"] = path_utils.serving_model_path(
          trainer.outputs["model"][0].uri)
    if role == "candidate" and trainer and trainer.outputs.get("model_run"):
      result_file = os.path.join(trainer.outputs["model_run"][0].uri, "training_result.json")
      if os.path.exists(result_file):
        with open(result_file) as f:
          summary["warm_started_from"] = json.load(f).get("warm_started_from")
  evaluator = nodes.get(pipeline_lib.EVALUATOR)
  if evaluator:
    evaluation = evaluator.outputs.get("evaluation", [])
    if evaluation:
      metrics = evaluation_metrics(evaluation[0].uri)
      overall = metrics.get("overall", {})
      for role in (pipeline_lib.CANDIDATE_MODEL, pipeline_lib.BASELINE_MODEL):
        summary[f"{role}_auc"] = overall.get(role, {}).get("auc")
        summary[f"{role}_logloss"] = overall.get(role, {}).get("logloss")
      summary["sliced_metrics"] = metrics
    blessing = evaluator.outputs.get("blessing", [])
    if blessing:
      blessed = blessing[0].custom_properties.get("blessed")
      summary["blessed"] = bool(blessed and blessed.int_value == 1)
  production = nodes.get(pipeline_lib.PRODUCTION_EVALUATOR)
  if production:
    # Gate 2 ran (gate 1 passed): the candidate against the model in production.
    gate: Dict[str, Any] = {"blessed": False, "candidate_auc": None, "production_auc": None}
    evaluation = production.outputs.get("evaluation", [])
    if evaluation:
      overall = evaluation_metrics(evaluation[0].uri).get("overall", {})
      gate["candidate_auc"] = overall.get(pipeline_lib.CANDIDATE_MODEL, {}).get("auc")
      gate["production_auc"] = overall.get(pipeline_lib.PRODUCTION_MODEL_NAME, {}).get("auc")
    blessing = production.outputs.get("blessing", [])
    if blessing:
      blessed = blessing[0].custom_properties.get("blessed")
      gate["blessed"] = bool(blessed and blessed.int_value == 1)
    summary["production_gate"] = gate
  # Blessed = passed every gate that applies, i.e. what the Pusher acted on.
  summary["baseline_gate_blessed"] = summary["blessed"]
  if summary["blessed"]:
    summary["blessed"] = bool(summary["production_gate"] and
                              summary["production_gate"]["blessed"])
  pusher = nodes.get(pipeline_lib.PUSHER)
  if pusher:
    pushed = pusher.outputs.get("pushed_model", [])
    if pushed:
      props = pushed[0].custom_properties
      if props.get("pushed") and props["pushed"].int_value == 1:
        summary["pushed_model_dir"] = props["pushed_destination"].string_value
  return summary
