"""Reads what a finished run produced from ML Metadata: AUCs, blessing, pushed model.

Works the same for fresh and cached executions: a cached execution is linked to the output
artifacts it reused.
"""

import dataclasses
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx.utils import path_utils

from components.example_gen import executor as example_gen_executor
from components.serving_check import executor as serving_check
from pipeline import ids
from pipeline import store as store_lib
from uet_upstream import tfx as upstream_tfx

_EXECUTION_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


_RESOLVER_TYPE = "tfx.dsl.components.common.resolver.Resolver"
# What trainer/run_fn.py writes into the Trainer's ModelRun output.
TRAINING_RESULT_FILE = "training_result.json"
INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def producers(store: mlmd.MetadataStore, artifact_ids: Iterable[int]) -> List[int]:
  """Ids of the executions that output these artifacts."""
  return sorted({e.execution_id for e in store.get_events_by_artifact_ids(list(artifact_ids))
                 if e.type in OUTPUT_EVENTS})


def inputs(store: mlmd.MetadataStore, execution_ids: Iterable[int], key: str) -> List[int]:
  """Ids of the artifacts these executions read under input key `key`."""
  return sorted({e.artifact_id for e in store.get_events_by_execution_ids(list(execution_ids))
                 if e.type in INPUT_EVENTS and e.path.steps and e.path.steps[0].key == key})


def resolver_type_id(store: mlmd.MetadataStore) -> Optional[int]:
  """The id of the Resolver nodes' execution type, None before any resolver ran."""
  try:
    return store.get_execution_type(_RESOLVER_TYPE).id
  except mlmd.errors.NotFoundError:
    return None


def execution_state(execution: metadata_store_pb2.Execution) -> str:
  """complete, cached, failed, running, new, canceled (or unknown)."""
  return _EXECUTION_STATES.get(execution.last_known_state, "unknown")


@dataclasses.dataclass
class NodeRun:
  execution_id: int
  state: str
  outputs: Dict[str, List[metadata_store_pb2.Artifact]]
  # Resolver nodes only look artifacts up; they run every time and are never cached.
  is_resolver: bool = False
  # Wall time between the execution's registration and its last update in ML Metadata.
  seconds: float = 0.0


def run_status(states: Mapping[str, str]) -> Tuple[str, Optional[str]]:
  """How a pipeline run ended, from its nodes' states (node id -> `execution_state`).

  Returns:
    ("failed" | "cancelled" | "unfinished" | "succeeded", the node that stopped the run).
    A failed node comes first, then a cancelled one, then one still marked running (a run
    killed, or whose disk was too full to record its failure); None when it succeeded.
  """
  for status, node_states in (("failed", ("failed",)), ("cancelled", ("canceled",)),
                              ("unfinished", ("running", "new"))):
    stopped = [node for node, state in states.items() if state in node_states]
    if stopped:
      return status, stopped[0]
  return "succeeded", None


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
  resolver_type = resolver_type_id(store)
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
              if ev.type in OUTPUT_EVENTS]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([ev.artifact_id for ev in events])}
    for ev in events:
      key = ev.path.steps[0].key if ev.path.steps else ""
      outputs.setdefault(key, []).append(artifacts[ev.artifact_id])
    result[node_id] = NodeRun(
        execution.id, execution_state(execution), outputs,
        execution.type_id == resolver_type,
        round((execution.last_update_time_since_epoch -
               execution.create_time_since_epoch) / 1000.0, 1))
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
      model = kv.key.model_name or ids.CANDIDATE_MODEL
      out.setdefault(slice_name, {}).setdefault(model, {})[kv.key.name] = value
  return out


def blessed(node: Optional[NodeRun]) -> Optional[bool]:
  """Whether the Evaluator node's blessing says `blessed` = 1; None without a blessing."""
  blessing = node.outputs.get("blessing", []) if node else []
  if not blessing:
    return None
  value = blessing[0].custom_properties.get("blessed")
  return bool(value and value.int_value == 1)


def _overall(node: Optional[NodeRun]) -> Dict[str, Dict[str, float]]:
  """model name -> metric -> value on the overall slice of an Evaluator node's output."""
  evaluation = node.outputs.get("evaluation", []) if node else []
  return evaluation_metrics(evaluation[0].uri).get("overall", {}) if evaluation else {}


def baseline_gate(nodes: Dict[str, NodeRun]) -> Dict[str, Any]:
  """Gate 1 (candidate vs hash baseline): AUC and LogLoss of both, per slice, and the verdict."""
  node = nodes.get(ids.EVALUATOR)
  evaluation = node.outputs.get("evaluation", []) if node else []
  metrics = evaluation_metrics(evaluation[0].uri) if evaluation else {}
  overall = metrics.get("overall", {})
  gate: Dict[str, Any] = {"blessed": bool(blessed(node)), "sliced_metrics": metrics}
  for role in (ids.CANDIDATE_MODEL, ids.BASELINE_MODEL):
    gate[f"{role}_auc"] = overall.get(role, {}).get("auc")
    gate[f"{role}_logloss"] = overall.get(role, {}).get("logloss")
  return gate


def production_gate(nodes: Dict[str, NodeRun]) -> Optional[Dict[str, Any]]:
  """Gate 2 (candidate vs the model in production): both AUCs and the verdict; None when
  the node did not run. `production_auc` is None without a model in production."""
  node = nodes.get(ids.PRODUCTION_EVALUATOR)
  if node is None:
    return None
  overall = _overall(node)
  return {"blessed": bool(blessed(node)),
          "candidate_auc": overall.get(ids.CANDIDATE_MODEL, {}).get("auc"),
          "production_auc": overall.get(ids.PRODUCTION_MODEL_NAME, {}).get("auc")}


def serving_gate(nodes: Dict[str, NodeRun]) -> Optional[Dict[str, Any]]:
  """Gate 3 (the candidate served from a fresh process, `components/serving_check`): its
  verdict, what failed, and the numbers it checked; None when the node did not run (a gate
  before it did not bless) or recorded no blessing (it failed)."""
  node = nodes.get(ids.SERVING_CHECK)
  blessing = node.outputs.get("blessing", []) if node else []
  if not blessing:
    return None
  record = serving_check.read_result(blessing[0].uri) or {}
  return {"blessed": bool(blessed(node)), "failure": record.get(serving_check.FAILURE_KEY),
          **{k: record.get(k) for k in ("rows", "batch_sizes", "max_abs_difference",
                                        "tolerance", "min_score", "max_score",
                                        "warmup_file")}}


def pushed_model_dir(nodes: Dict[str, NodeRun]) -> Optional[str]:
  """Where the Pusher put the candidate in this run, or None (not pushed, or skipped)."""
  node = nodes.get(ids.PUSHER)
  pushed = node.outputs.get("pushed_model", []) if node else []
  props = pushed[0].custom_properties if pushed else {}
  if props.get(upstream_tfx.PUSHED_KEY) and props[upstream_tfx.PUSHED_KEY].int_value == 1:
    return props[upstream_tfx.PUSHED_DESTINATION_KEY].string_value
  return None


def _ingest_count(nodes: Dict[str, NodeRun], name: str) -> int:
  node = nodes.get(ids.EXAMPLE_GEN)
  examples = node.outputs.get("examples", []) if node else []
  count = examples[0].custom_properties.get(name) if examples else None
  return count.int_value if count else 0


def quarantined_rows(nodes: Dict[str, NodeRun]) -> int:
  """Malformed rows the ExampleGen quarantined under --max-bad-rows (0 when none, or it did
  not run)."""
  return _ingest_count(nodes, example_gen_executor.QUARANTINED_ROWS_PROPERTY)


def dropped_rows(nodes: Dict[str, NodeRun]) -> int:
  """Rows the ExampleGen dropped for lack of a label, as the spec's `label.missing: drop`
  says (0 when none, or it did not run)."""
  return _ingest_count(nodes, example_gen_executor.DROPPED_ROWS_PROPERTY)


def trained_models(nodes: Dict[str, NodeRun]) -> Dict[str, Any]:
  """Serving directories of the candidate and baseline, the candidate's warm start, how
  many examples it trained on (all spans of the window) and at which learning rate."""
  out: Dict[str, Any] = {"candidate_model_dir": None, "baseline_model_dir": None,
                         "warm_started_from": None, "candidate_train_examples": None,
                         "candidate_learning_rate": None}
  for role, node_id in (("candidate", ids.CANDIDATE_TRAINER),
                        ("baseline", ids.BASELINE_TRAINER)):
    node = nodes.get(node_id)
    if node and node.outputs.get("model"):
      out[f"{role}_model_dir"] = path_utils.serving_model_path(node.outputs["model"][0].uri)
  result = training_result(nodes.get(ids.CANDIDATE_TRAINER))
  out["warm_started_from"] = result.get("warm_started_from")
  out["candidate_train_examples"] = result.get("train_examples")
  out["candidate_learning_rate"] = result.get("learning_rate")
  return out


def training_result(node: Optional[NodeRun]) -> Dict[str, Any]:
  """What a Trainer node's run_fn recorded in `training_result.json` of its ModelRun output
  ({} when it did not run or recorded nothing)."""
  model_run = node.outputs.get("model_run", []) if node else []
  if not model_run:
    return {}
  path = os.path.join(model_run[0].uri, TRAINING_RESULT_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def summarize(metadata_path: str, pipeline_name: str) -> Dict[str, Any]:
  """The summary of the latest run, read from ML Metadata.

  Returns:
    `run_id`; `components` (node id -> complete / cached / failed / ...) and
    `component_seconds`; each gate's numbers (`candidate_auc`, `baseline_auc`, their
    LogLoss, `sliced_metrics`, `baseline_gate_blessed`, `production_gate`,
    `serving_gate`); `blessed`
    (passed every gate, i.e. what the Pusher acted on); `pushed_model_dir`; the trained
    models' directories and warm start; `quarantined_rows` and `dropped_rows`.
  """
  nodes: Dict[str, NodeRun] = {}
  run_id = None
  if os.path.exists(metadata_path):
    store = store_lib.open_readonly(metadata_path)
    run_id = latest_run_id(store)
    nodes = node_runs(store, pipeline_name, run_id) if run_id else {}
  components = {k: v for k, v in sorted(nodes.items()) if not v.is_resolver}
  gate1 = baseline_gate(nodes)
  gate2 = production_gate(nodes)
  gate3 = serving_gate(nodes)
  summary: Dict[str, Any] = {
      "run_id": run_id,
      "components": {k: v.state for k, v in components.items()},
      "component_seconds": {k: v.seconds for k, v in components.items()},
      "cached_components": sorted(k for k, v in components.items() if v.state == "cached"),
      "resolvers": sorted(k for k, v in nodes.items() if v.is_resolver),
      **{k: v for k, v in gate1.items() if k != "blessed"},
      "baseline_gate_blessed": gate1["blessed"],
      "production_gate": gate2,
      "serving_gate": gate3,
      "blessed": (gate1["blessed"] and bool(gate2 and gate2["blessed"])
                  and bool(gate3 and gate3["blessed"])),
      "pushed_model_dir": pushed_model_dir(nodes),
      **trained_models(nodes),
      "quarantined_rows": quarantined_rows(nodes),
      "dropped_rows": dropped_rows(nodes),
  }
  return summary
