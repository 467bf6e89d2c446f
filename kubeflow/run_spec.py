"""`uet run-spec`: runs a compiled PipelineJob / PipelineSpec on this machine, as Vertex AI
Pipelines or Kubeflow Pipelines would.

A check of the compiled artifact before a cloud submission, not a production orchestrator:

  * tasks run in dependency order, each in its own process, with exactly the command and
    arguments of its container spec (TFX's `kubeflow_v2_run_executor`), `{{$}}` replaced by
    the ExecutorInput JSON that KFP's driver would build; a `lifecycle.preCacheCheck`
    (ExampleGen's span-resolving driver) runs first with the same ExecutorInput, as on
    Vertex;
  * artifacts pass through the ExecutorInput and the executor output file, under
    `<pipeline root>/<run id>/<task>/<output key>`;
  * runtime parameters come from the spec's defaults (and a PipelineJob's runtimeConfig),
    overridden by `--parameter NAME=VALUE`;
  * every output artifact is recorded in a local ML Metadata store under the pipeline root
    (`run_spec_metadata.sqlite`), and resolver tasks (what TFX compiles Resolvers into) are
    answered by evaluating their `outputArtifactQueries` filters against it: exactly the
    filters TFX 1.16's step builder writes (`schema_title`, `state`,
    `metadata.KEY.number_value` / `string_value`, `name` with an input placeholder), newest
    artifact first; anything else is refused by name;
  * trigger conditions are evaluated as the compiler wrote them: the subset of CEL that TFX
    1.16's `compiler_utils.placeholder_to_cel` emits (`cel.py`); anything else is refused by
    name;
  * a failed task stops the run with its name and error; nothing after it runs;
  * the same guarantees as `uet run` (kubeflow/README.md): one run per pipeline root at a
    time (the same lock), a local `data_dir` checked before any task starts, a damaged
    store named before any task starts, a full disk named as such, and SIGTERM (what a
    scheduler's cancel sends) passed on to the running task, whose process ends; nothing
    after it runs and the run reports itself cancelled.

What it does not do: the cache (every task runs), importer tasks, containers (tasks run in
this Python environment, the one kubeflow/Dockerfile installs, not in the image), and
everything only the cloud has: IAM, GCS, Dataflow workers, Vertex training jobs,
accelerators, Vertex ML Metadata.
"""

import dataclasses
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO

import ml_metadata as mlmd
import yaml
from ml_metadata.proto import metadata_store_pb2

from components import paths
from dataspec import files
from dataspec import spec as spec_lib
from kubeflow import cel, compiled
from pipeline import disk, lock, metadata_backup

# The placeholder KFP replaces by the whole ExecutorInput; the only one TFX's tasks use.
EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
# What kubeflow/Dockerfile sets in the image; tasks get it here too.
IMAGE_ENVIRONMENT = {"TF_USE_LEGACY_KERAS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METADATA_FILE = "run_spec_metadata.sqlite"
# The product pipeline's ExampleGen input (kubeflow/parameters.py DATA_DIR): a local value is
# checked as `uet run` checks --data-dir, before any task starts.
DATA_DIR_PARAMETER = "data_dir"
# Seconds a task has to end after SIGTERM before it is killed (Kubernetes' default grace).
CANCEL_GRACE_SECONDS = 30
# One clause of a resolver filter, as TFX 1.16's step builder writes them.
_CLAUSE = re.compile(r'^(schema_title|state|name|metadata\.(\w+)\.(number_value|string_value))'
                     r'=("(?:[^"\\]|\\.)*"|[\w.+-]+)$')
_INPUT_METADATA = re.compile(
    r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")


class RunSpecError(ValueError):
  """The spec cannot be run here (the message names the task or parameter and why)."""


class StoreDamaged(RunSpecError):
  """The run-spec ML Metadata store under the pipeline root is unreadable (nothing ran)."""


class TaskFailed(RuntimeError):
  """A task's process failed; `task` names it, the message is its error, `result` is what
  the run did before (a RunResult, set by `run`)."""

  def __init__(self, task: str, message: str, log_path: str):
    super().__init__(message)
    self.task = task
    self.log_path = log_path
    self.result: Optional["RunResult"] = None


class RunCancelled(RuntimeError):
  """SIGTERM stopped the run; `task` names the task it stopped (None: between tasks),
  `result` is what the run did before."""

  def __init__(self, task: Optional[str], signal_name: str):
    super().__init__(f"cancelled by {signal_name}" + (f" while {task} ran" if task else ""))
    self.task = task
    self.result: Optional["RunResult"] = None


@dataclasses.dataclass
class RunResult:
  """What a run did.

  Attributes:
    run_id: the run's id (its directory under the pipeline root).
    run_dir: where its artifacts, executor inputs/outputs and task logs are.
    states: task -> "complete" | "skipped", in execution order.
    seconds: task -> wall time of its process(es).
    outputs: task -> output key -> runtime artifacts (dicts as in the ExecutorOutput).
    parameters: the runtime parameter values used.
  """
  run_id: str
  run_dir: str
  states: Dict[str, str]
  seconds: Dict[str, float]
  outputs: Dict[str, Dict[str, List[Dict[str, Any]]]]
  parameters: Dict[str, Any]


def load(path: str) -> Dict[str, Any]:
  """The PipelineJob (JSON) or PipelineSpec (YAML or JSON) at `path`, as a PipelineJob dict.

  Raises:
    RunSpecError: the file is neither.
  """
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    raise RunSpecError(f"{path}: {e.strerror}") from None
  try:
    doc = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
  except (ValueError, yaml.YAMLError) as e:
    raise RunSpecError(f"{path}: not JSON/YAML: {e}") from None
  if isinstance(doc, dict) and "pipelineSpec" in doc:
    return doc
  if isinstance(doc, dict) and "root" in doc and "deploymentSpec" in doc:
    return {"pipelineSpec": doc, "runtimeConfig": {}}
  raise RunSpecError(f"{path}: neither a PipelineJob (pipelineSpec) nor a PipelineSpec "
                     "(root, deploymentSpec); write it with `uet compile`")


def _typed(name: str, ptype: str, value: Any) -> Any:
  try:
    if ptype == "STRING":
      return value if isinstance(value, str) else json.dumps(value)
    if ptype == "NUMBER_INTEGER":
      number = float(value)
      if not number.is_integer():
        raise ValueError
      return int(number)
    if ptype == "NUMBER_DOUBLE":
      return float(value)
    if ptype == "BOOLEAN":
      if isinstance(value, bool):
        return value
      if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
      raise ValueError
  except (TypeError, ValueError):
    raise RunSpecError(f"parameter {name}: {value!r} is not a {ptype}") from None
  if ptype in ("LIST", "STRUCT"):
    return json.loads(value) if isinstance(value, str) else value
  raise RunSpecError(f"parameter {name}: type {ptype} is not supported")


def parameter_values(job: Mapping[str, Any], overrides: Mapping[str, str]) -> Dict[str, Any]:
  """The pipeline's runtime parameters: defaults < PipelineJob runtimeConfig < overrides.

  Raises:
    RunSpecError: an override names no parameter, a value has the wrong type, or a
      parameter without a default has no value.
  """
  definitions = (job["pipelineSpec"]["root"].get("inputDefinitions", {})
                 .get("parameters", {}))
  unknown = sorted(set(overrides) - set(definitions))
  if unknown:
    raise RunSpecError(f"--parameter {', '.join(unknown)}: no such runtime parameter; the "
                       f"spec has {', '.join(sorted(definitions))}")
  given = (job.get("runtimeConfig") or {}).get("parameterValues") or {}
  values = {}
  for name, definition in sorted(definitions.items()):
    if name in overrides:
      value = overrides[name]
    elif name in given:
      value = given[name]
    elif "defaultValue" in definition:
      value = definition["defaultValue"]
    else:
      raise RunSpecError(f"parameter {name} has no default; give --parameter {name}=VALUE")
    values[name] = _typed(name, definition.get("parameterType", "STRING"), value)
  return values


def _upstream(task: Mapping[str, Any]) -> List[str]:
  names = set(task.get("dependentTasks", []))
  for spec in task.get("inputs", {}).get("artifacts", {}).values():
    if "taskOutputArtifact" in spec:
      names.add(spec["taskOutputArtifact"]["producerTask"])
  for spec in task.get("inputs", {}).get("parameters", {}).values():
    if "taskOutputParameter" in spec:
      names.add(spec["taskOutputParameter"]["producerTask"])
  return sorted(names)


def task_order(tasks: Mapping[str, Mapping[str, Any]]) -> List[str]:
  """The tasks in dependency order (ties by name, so every run has the same order).

  Raises:
    RunSpecError: a task depends on a missing task, or the dependencies have a cycle.
  """
  upstream = {name: _upstream(task) for name, task in tasks.items()}
  for name, names in upstream.items():
    missing = [n for n in names if n not in tasks]
    if missing:
      raise RunSpecError(f"task {name} depends on {missing}, which the spec does not have")
  order, done = [], set()
  while len(order) < len(tasks):
    ready = sorted(n for n in tasks if n not in done and set(upstream[n]) <= done)
    if not ready:
      raise RunSpecError(f"the tasks {sorted(set(tasks) - done)} depend on each other")
    order.append(ready[0])
    done.add(ready[0])
  return order


def _substitute(items: Sequence[str], executor_input: str, task: str) -> List[str]:
  result = []
  for item in items:
    item = item.replace(EXECUTOR_INPUT_PLACEHOLDER, executor_input)
    rest = item.replace(executor_input, "")
    if "{{$" in rest:
      found = re.search(r"\{\{\$[^}]*\}\}", rest)
      raise RunSpecError(f"task {task}: placeholder {found.group(0) if found else '{{$...'} "
                         "is not supported (TFX tasks use only {{$}})")
    result.append(item)
  return result


def _error_of(log_text: str) -> str:
  """The exception a task's log ends with (with its message lines), else its last line."""
  lines = log_text.rstrip().splitlines()
  pattern = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Failed|Interrupt)\b.*")
  for index in range(len(lines) - 1, -1, -1):
    if pattern.match(lines[index]):
      return "\n".join(lines[index:index + 40])
  return lines[-1] if lines else "(no output)"


def schema_title(artifact_type: Mapping[str, Any]) -> str:
  """The schema title of a KFP artifact type (`schemaTitle`, or `title:` in instanceSchema)."""
  if artifact_type.get("schemaTitle"):
    return artifact_type["schemaTitle"]
  found = re.search(r"^title:\s*(\S+)", artifact_type.get("instanceSchema", ""), re.M)
  if not found:
    raise RunSpecError(f"artifact type {artifact_type!r} has no schema title")
  return found.group(1)


class ArtifactStore:
  """The artifacts of every run under one pipeline root, in a local ML Metadata store, for
  the resolver tasks of later runs (Vertex keeps them in Vertex ML Metadata)."""

  def __init__(self, path: str):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    self._store = mlmd.MetadataStore(config)

  def record(self, artifact: Mapping[str, Any]) -> None:
    """Records one runtime artifact (name, type, uri, metadata) as LIVE."""
    type_id = self._store.put_artifact_type(
        metadata_store_pb2.ArtifactType(name=schema_title(artifact["type"])))
    proto = metadata_store_pb2.Artifact(type_id=type_id, uri=artifact["uri"],
                                        name=artifact["name"],
                                        state=metadata_store_pb2.Artifact.LIVE)
    for key, value in artifact.get("metadata", {}).items():
      if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        proto.custom_properties[key].struct_value.update({"value": value})
      elif isinstance(value, str):
        proto.custom_properties[key].string_value = value
      else:
        proto.custom_properties[key].double_value = float(value)
    self._store.put_artifacts([proto])

  def query(self, task: str, text: str,
            inputs: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The newest artifact matching a resolver filter, as a runtime artifact ([] if none).

    Raises:
      RunSpecError: a clause or placeholder outside what TFX 1.16 writes.
    """
    def substitute(match):
      listing = inputs.get(match.group(1), {}).get("artifacts", [])
      value = listing[0].get("metadata", {}).get(match.group(2)) if listing else None
      return "" if value is None else str(value)
    resolved = _INPUT_METADATA.sub(substitute, text)
    if "{{$" in resolved:
      raise RunSpecError(f"task {task}: filter {text!r} has a placeholder other than "
                         "{{$.inputs.artifacts['KEY'].metadata['NAME']}}")
    clauses = {}
    for clause in resolved.split(" AND "):
      found = _CLAUSE.match(clause.strip())
      if not found:
        raise RunSpecError(f"task {task}: filter clause {clause!r} is not one TFX 1.16 writes "
                           "(schema_title, state, name, metadata.KEY.number_value/"
                           "string_value with =)")
      value = found.group(4)
      clauses[found.group(1)] = value[1:-1] if value.startswith('"') else value
    title = clauses.pop("schema_title", None)
    if title is None:
      raise RunSpecError(f"task {task}: filter {text!r} has no schema_title")
    candidates = sorted(self._store.get_artifacts_by_type(title), key=lambda a: a.id,
                        reverse=True)
    for candidate in candidates:
      if all(self._matches(candidate, field, value) for field, value in clauses.items()):
        return [self._runtime(candidate, title)]
    return []

  @staticmethod
  def _matches(artifact: metadata_store_pb2.Artifact, field: str, value: str) -> bool:
    if field == "state":
      return metadata_store_pb2.Artifact.State.Name(artifact.state) == value
    if field == "name":
      return artifact.name == value
    key, kind = field.split(".")[1:]
    prop = artifact.custom_properties.get(key)
    if prop is None:
      return False
    if kind == "number_value":
      actual = prop.double_value if prop.HasField("double_value") else prop.int_value
      return actual == float(value)
    return prop.string_value == value

  @staticmethod
  def _runtime(artifact: metadata_store_pb2.Artifact, title: str) -> Dict[str, Any]:
    metadata = {}
    for key, value in artifact.custom_properties.items():
      kind = value.WhichOneof("value")
      if kind == "struct_value":
        metadata[key] = dict(value.struct_value)["value"]
      else:
        metadata[key] = getattr(value, kind)
    return {"name": artifact.name, "type": {"schemaTitle": title}, "uri": artifact.uri,
            "metadata": metadata}


def local_pipeline_root(job: Mapping[str, Any], pipeline_root: Optional[str]) -> str:
  """The run's pipeline root: the flag, else the job's, else the spec's; it must be local."""
  root = (pipeline_root or (job.get("runtimeConfig") or {}).get("gcsOutputDirectory")
          or job["pipelineSpec"].get("defaultPipelineRoot"))
  if not root:
    raise RunSpecError("the spec has no pipeline root; give --pipeline-root DIR")
  if not paths.is_local(root):
    raise RunSpecError(f"pipeline root {root!r} is not on this machine; give "
                       "--pipeline-root DIR (or compile with a local --pipeline-root)")
  return os.path.abspath(root)


class _Runner:
  """One run of a compiled pipeline (the caller holds the pipeline root's lock)."""

  def __init__(self, job: Dict[str, Any], pipeline_root: str,
               overrides: Mapping[str, str], stream: TextIO, python_dir: Optional[str],
               dataset: Optional[spec_lib.DatasetSpec]):
    self.spec = job["pipelineSpec"]
    self.root = local_pipeline_root(job, pipeline_root)
    self.parameters = parameter_values(job, overrides)
    _check_data_dir(self.parameters.get(DATA_DIR_PARAMETER), dataset)
    self.stream = stream
    self.python_dir = python_dir or os.path.dirname(sys.executable)
    name = self.spec.get("pipelineInfo", {}).get("name", "pipeline")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    self.run_id = f"{name}-{stamp}-{uuid.uuid4().hex[:6]}"
    self.run_dir = os.path.join(self.root, self.run_id)
    os.makedirs(self.root, exist_ok=True)
    store_path = os.path.join(self.root, METADATA_FILE)
    reason = metadata_backup.problem(store_path) if os.path.exists(store_path) else None
    if reason:
      raise StoreDamaged(
          f"{store_path}: the run-spec ML Metadata store is unreadable ({reason}). This is "
          f"what a full disk or a crash mid-copy leaves. Move it aside (mv {store_path} "
          f"{store_path}.bad): the next run starts a new one, and its resolver tasks find "
          "only artifacts of runs from then on. The models already pushed under "
          f"{self.root} are kept either way")
    self.store = ArtifactStore(store_path)
    self.outputs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
    self.parameter_outputs: Dict[str, Dict[str, Any]] = {}
    self.states: Dict[str, str] = {}
    self.seconds: Dict[str, float] = {}
    self.cancelled: List[str] = []     # the signal's name, once one arrived
    self._child: Optional[subprocess.Popen] = None
    self._cancelled_at = 0.0

  def _print(self, text: str) -> None:
    print(text, file=self.stream, flush=True)

  def _environment(self) -> Dict[str, str]:
    env = dict(os.environ, **IMAGE_ENVIRONMENT)
    # `python` in the container command is the image's interpreter: here, this environment's.
    env["PATH"] = os.pathsep.join([self.python_dir, env.get("PATH", "")])
    # The project's code as this process sees it (the image has it installed).
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [_PROJECT_ROOT, env.get("PYTHONPATH", "")] if p)
    return env

  def _input_parameters(self, name: str, task: Mapping[str, Any]) -> Dict[str, Any]:
    values = {}
    for key, spec in task.get("inputs", {}).get("parameters", {}).items():
      if "runtimeValue" in spec:
        values[key] = spec["runtimeValue"]["constant"]
      elif "componentInputParameter" in spec:
        values[key] = self.parameters[spec["componentInputParameter"]]
      elif "taskOutputParameter" in spec:
        source = spec["taskOutputParameter"]
        values[key] = self.parameter_outputs[source["producerTask"]][
            source["outputParameterKey"]]
      else:
        raise RunSpecError(f"task {name}: input parameter {key} has an unsupported source "
                           f"{sorted(spec)}")
    return values

  def _input_artifacts(self, name: str, task: Mapping[str, Any]) -> Dict[str, Any]:
    values = {}
    for key, spec in task.get("inputs", {}).get("artifacts", {}).items():
      if "taskOutputArtifact" not in spec:
        raise RunSpecError(f"task {name}: input artifact {key} has an unsupported source "
                           f"{sorted(spec)}")
      source = spec["taskOutputArtifact"]
      values[key] = {"artifacts": self.outputs[source["producerTask"]][
          source["outputArtifactKey"]]}
    return values

  def _executor_input(self, name: str, task: Mapping[str, Any],
                      component: Mapping[str, Any], task_dir: str) -> Dict[str, Any]:
    outputs: Dict[str, Any] = {"artifacts": {}, "outputFile": os.path.join(
        task_dir, "executor_output.json")}
    for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
      outputs["artifacts"][key] = {"artifacts": [{
          "name": f"{self.run_id}/{name}/{key}", "type": definition["artifactType"],
          "uri": os.path.join(task_dir, key), "metadata": {}}]}
    parameters = component.get("outputDefinitions", {}).get("parameters", {})
    if parameters:
      outputs["parameters"] = {key: {"outputFile": os.path.join(task_dir, "parameters", key)}
                               for key in parameters}
    return {"inputs": {"parameterValues": self._input_parameters(name, task),
                       "artifacts": self._input_artifacts(name, task)},
            "outputs": outputs}

  def _run_process(self, name: str, argv: List[str], log_path: str) -> None:
    with open(log_path, "a") as log:
      log.write(f"$ {' '.join(argv[:3])} ...\n")
      log.flush()
      self._child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.run_dir, env=self._environment())
      try:
        code = self._wait(self._child)
      finally:
        self._child = None
    if self.cancelled:
      raise RunCancelled(name, self.cancelled[0])
    if code != 0:
      with open(log_path, errors="replace") as f:
        log_text = f.read()
      message = _error_of(log_text)
      # The log is on the same disk: when it filled up, the traceback may be cut short, so
      # the free space itself counts too.
      if disk.is_full_text(log_text) or disk.nearly_full(self.root):
        where = disk.hint(self.root, elsewhere="another --pipeline-root",
                          then="every task runs again")
        message = f"{where}. The error was: {message}"
      raise TaskFailed(name, message, log_path)

  def _wait(self, child: subprocess.Popen) -> int:
    """The child's exit code; once cancelled, it is killed if it outlives the grace."""
    while True:
      try:
        return child.wait(timeout=1)
      except subprocess.TimeoutExpired:
        if self.cancelled and time.monotonic() - self._cancelled_at > CANCEL_GRACE_SECONDS:
          child.kill()

  def _on_sigterm(self, signum, frame) -> None:  # pylint: disable=unused-argument
    """SIGTERM: passed on to the running task (as Kubernetes does to its container); the
    run stops once it ended. Later SIGTERMs are ignored."""
    if self.cancelled:
      return
    self.cancelled.append(signal.Signals(signum).name)
    self._cancelled_at = time.monotonic()
    child = self._child
    if child is not None and child.poll() is None:
      child.terminate()

  def _read_outputs(self, name: str, executor_input: Dict[str, Any]) -> None:
    path = executor_input["outputs"]["outputFile"]
    produced = {}
    if os.path.exists(path):
      with open(path) as f:
        produced = json.load(f)
    outputs = {}
    for key, listing in executor_input["outputs"]["artifacts"].items():
      artifacts = [dict(a) for a in listing["artifacts"]]
      written = produced.get("artifacts", {}).get(key, {}).get("artifacts", [])
      # As KFP's launcher: the executor's metadata is merged into the artifacts it was given.
      for artifact, update in zip(artifacts, written):
        artifact["metadata"] = dict(artifact.get("metadata", {}), **update.get("metadata", {}))
      outputs[key] = artifacts
    self.outputs[name] = outputs
    self.parameter_outputs[name] = dict(produced.get("parameterValues", {}))
    for artifacts in outputs.values():
      for artifact in artifacts:
        self.store.record(artifact)

  def run_task(self, name: str, task: Mapping[str, Any]) -> str:
    """Runs one task (or skips it); returns its state."""
    component = self.spec["components"][task["componentRef"]["name"]]
    executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
    kind = next(iter(executor), "")
    if kind not in ("container", "resolver"):
      raise RunSpecError(f"task {name} is a {kind} task; uet run-spec runs container and "
                         "resolver tasks only")
    skipped_upstream = [u for u in _upstream(task) if self.states.get(u) == "skipped"]
    if skipped_upstream:
      self._print(f"{name} skipped (upstream {', '.join(skipped_upstream)} skipped)")
      return "skipped"
    condition = task.get("triggerPolicy", {}).get("condition")
    if condition:
      try:
        go = cel.evaluate(condition, {"inputs": {
            "artifacts": self._input_artifacts(name, task),
            "parameter_values": self._input_parameters(name, task)}})
      except cel.CelError as e:
        raise RunSpecError(f"task {name}: trigger condition {condition!r}: {e}") from None
      if go is not True:
        self._print(f"{name} skipped (condition not met)")
        return "skipped"
    if kind == "resolver":
      inputs = self._input_artifacts(name, task)
      queries = executor["resolver"].get("outputArtifactQueries", {})
      self.outputs[name] = {key: self.store.query(name, query.get("filter", ""), inputs)
                            for key, query in sorted(queries.items())}
      found = {key: len(artifacts) for key, artifacts in self.outputs[name].items()}
      self._print(f"{name} resolved {found}")
      return "complete"
    task_dir = os.path.join(self.run_dir, name)
    os.makedirs(task_dir, exist_ok=True)
    executor_input = self._executor_input(name, task, component, task_dir)
    with open(os.path.join(task_dir, "executor_input.json"), "w") as f:
      json.dump(executor_input, f, indent=1, sort_keys=True)
    serialized = json.dumps(executor_input, sort_keys=True)
    container = executor["container"]
    log_path = os.path.join(task_dir, "log.txt")
    self._print(f"{name} ...")
    start = time.monotonic()
    hook = container.get("lifecycle", {}).get("preCacheCheck")
    if hook:
      self._run_process(name, _substitute(hook.get("command", []) + hook.get("args", []),
                                          serialized, name), log_path)
    self._run_process(name, _substitute(container.get("command", []) +
                                        container.get("args", []), serialized, name),
                      log_path)
    self.seconds[name] = time.monotonic() - start
    self._read_outputs(name, executor_input)
    self._print(f"{name} done in {self.seconds[name]:.1f}s")
    return "complete"

  def run(self) -> RunResult:
    tasks = self.spec["root"]["dag"]["tasks"]
    order = task_order(tasks)
    os.makedirs(self.run_dir, exist_ok=True)
    self._print(f"uet run-spec: run {self.run_id}: {len(order)} tasks, artifacts under "
                f"{self.run_dir}")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, self._on_sigterm) if in_main_thread else None
    try:
      for name in order:
        if self.cancelled:
          raise RunCancelled(None, self.cancelled[0])
        self.states[name] = self.run_task(name, tasks[name])
    except (TaskFailed, RunCancelled) as e:
      e.result = self._result()
      raise
    finally:
      if in_main_thread:
        signal.signal(signal.SIGTERM, previous)
    return self._result()

  def _result(self) -> RunResult:
    return RunResult(self.run_id, self.run_dir, dict(self.states), dict(self.seconds),
                     dict(self.outputs), self.parameters)


def run(path: str, pipeline_root: Optional[str] = None,
        overrides: Optional[Mapping[str, str]] = None, stream: Optional[TextIO] = None,
        python_dir: Optional[str] = None, dataset: Optional[str] = None) -> RunResult:
  """Runs the compiled pipeline at `path` on this machine.

  Args:
    path: a PipelineJob JSON or PipelineSpec YAML written by `uet compile`.
    pipeline_root: where artifacts go (default: the spec's root, which must be local).
    overrides: runtime parameter values, as strings.
    stream: where the progress lines go (default: standard error).
    python_dir: the directory whose `python` runs the tasks (default: this interpreter's).
    dataset: `--dataset`: the preset or spec file the pipeline must have been compiled for
      (None: no check).

  Returns:
    What ran, with the output artifacts of each task.

  Raises:
    RunSpecError: the spec cannot run here (before any task runs, or at the task that
      cannot), e.g. it was compiled for another dataset than `dataset`, or a local data_dir
      does not hold the compiled dataset's files; StoreDamaged when that is the run-spec
      store.
    lock.RunLockedError: another run holds the pipeline root.
    TaskFailed: a task's process failed; no later task ran.
    RunCancelled: SIGTERM stopped the run; no later task ran.
  """
  job = load(path)
  try:
    spec = compiled.check_dataset(job["pipelineSpec"], path, dataset)
  except ValueError as e:  # SpecError, DatasetMismatch
    raise RunSpecError(str(e)) from None
  root = local_pipeline_root(job, pipeline_root)
  with lock.output_lock(root, holder="uet run-spec"):
    return _Runner(job, root, overrides or {}, stream or sys.stderr, python_dir, spec).run()


def _check_data_dir(value: Any, dataset: Optional[spec_lib.DatasetSpec]) -> None:
  """A local `data_dir` must hold the compiled dataset's files, as for `uet run --data-dir`
  (a pipeline that carries no dataset spec is not checked)."""
  if not isinstance(value, str) or not value or not paths.is_local(value) or dataset is None:
    return  # on the cloud's storage: the ExampleGen task reads it
  try:
    files.check(dataset, value, given_as=DATA_DIR_PARAMETER)
  except spec_lib.SpecError as e:
    raise RunSpecError(str(e)) from None
