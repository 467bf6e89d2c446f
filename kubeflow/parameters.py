"""The runtime parameters of the compiled pipeline, and how they reach the components.

What changes between scheduled runs without recompiling:

  data_dir      (string)  ExampleGen's `input_base`: the directory the compiled dataset
                          spec's source paths (and side tables) are relative to.
  range_config  (string)  ExampleGen's `range_config`, a RangeConfig JSON: which span to read
                          when the source pattern has `{SPAN}`; "" reads the latest span.
  min_auc_gain  (double)  AUC the candidate must gain over the hash baseline to be blessed.
  max_auc_regression (double) AUC the candidate may lose against the model in production.
  auc_floor     (double)  minimum candidate AUC to be blessed (every Evaluator).
  epochs        (integer) training epochs of every Trainer (same budget for both models).

`data_dir` and `range_config` are whole execution properties of ExampleGen, which TFX 1.16
compiles as RuntimeParameters directly. The others live inside `eval_config` and the
Trainers' `custom_config`, where a RuntimeParameter does not compile; they become execution
properties of their own, read by the executors in `kubeflow/executors.py`.

Each default is the value `create_pipeline(config)` put in the component, so a compiled
pipeline run without parameters behaves like `uet run` with the same config.
"""

import dataclasses
from typing import Any, Dict, List, Sequence, Type

from tfx import v1 as tfx
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs

from kubeflow import executors
from pipeline import ids
from uet_upstream import tfx as upstream_tfx

RuntimeParameter = tfx.dsl.experimental.RuntimeParameter


@dataclasses.dataclass(frozen=True)
class Parameter:
  """A runtime parameter of the compiled pipeline (name, type, what it does)."""
  name: str
  ptype: Type
  description: str


DATA_DIR = Parameter(
    "data_dir", str, "Directory ExampleGen reads: the dataset spec's source.path and side "
    "tables are relative to it, e.g. gs://BUCKET/data.")
RANGE_CONFIG = Parameter(
    "range_config", str, 'Span ExampleGen reads, as a RangeConfig JSON, e.g. '
    '{"static_range": {"start_span_number": 3, "end_span_number": 3}}; empty: the latest '
    "span. Needs a source pattern with {SPAN}.")
MIN_AUC_GAIN = Parameter(
    executors.MIN_AUC_GAIN_KEY, float, "AUC the unified candidate must gain over the hash "
    "baseline (absolute) to be blessed and pushed.")
AUC_FLOOR = Parameter(
    executors.AUC_FLOOR_KEY, float, "Minimum AUC of the candidate to be blessed and pushed.")
MAX_AUC_REGRESSION = Parameter(
    executors.MAX_AUC_REGRESSION_KEY, float, "AUC the candidate may lose against the model "
    "in production (the last pushed one) and still be pushed.")
EPOCHS = Parameter(
    executors.EPOCHS_KEY, int, "Training epochs of every Trainer (candidate and baseline "
    "alike, so both keep the same budget).")
ALL = (DATA_DIR, RANGE_CONFIG, MIN_AUC_GAIN, MAX_AUC_REGRESSION, AUC_FLOOR, EPOCHS)

# Which parameter sets the AUC change threshold of each Evaluator, and its sign there: the
# baseline gate needs a gain, the production gate tolerates a regression, i.e. a negative
# change. Both share `auc_floor`.
EVALUATOR_GATES = {
    ids.EVALUATOR: (MIN_AUC_GAIN, 1.0),
    ids.PRODUCTION_EVALUATOR: (MAX_AUC_REGRESSION, -1.0),
}


def _runtime_parameter(parameter: Parameter, default: Any) -> RuntimeParameter:
  return RuntimeParameter(name=parameter.name, ptype=parameter.ptype,
                          default=parameter.ptype(default),
                          description=parameter.description)


def _node(nodes: Dict[str, Any], node_id: str):
  if node_id not in nodes:
    raise KeyError(f"the pipeline has no component {node_id!r}; runtime parameters are bound "
                   "by the component ids of pipeline/pipeline.py")
  return nodes[node_id]


def runs_executor(node, executor_class: Type) -> bool:
  """Whether `node` is a component whose executor is `executor_class` or a subclass."""
  spec = getattr(node, "executor_spec", None)
  return (isinstance(spec, executor_spec.ExecutorClassSpec)
          and issubclass(spec.executor_class, executor_class))


def _single_default(parameter: Parameter, values: Dict[str, Any]) -> Any:
  if len(set(values.values())) != 1:
    raise ValueError(f"{parameter.name} differs between components {values}; the compiled "
                     f"pipeline has one `{parameter.name}` parameter for all of them: make "
                     "them equal in the config")
  return next(iter(values.values()))


def bind(pipeline: tfx.dsl.Pipeline) -> List[RuntimeParameter]:
  """Turns the values in `pipeline`'s components into runtime parameters.

  Mutates the components of this pipeline object only (the graph is untouched): ExampleGen's
  `input_base` and `range_config` become RuntimeParameters; every Evaluator and Trainer gets
  the parameter-reading executor of `kubeflow.executors` and its parameters as extra
  execution properties.

  Args:
    pipeline: a pipeline just built by `create_pipeline`.

  Returns:
    The runtime parameters, in the order of `ALL`, each with its default (the value
    `create_pipeline` had put in the components).

  Raises:
    ValueError: components disagree on the default of one parameter (e.g. the Trainers
      train for different epochs), or an Evaluator has no binding here.
  """
  nodes = {node.id: node for node in pipeline.components}
  result = {}

  example_gen = _node(nodes, ids.EXAMPLE_GEN)
  props = example_gen.exec_properties
  for parameter, key in ((DATA_DIR, standard_component_specs.INPUT_BASE_KEY),
                         (RANGE_CONFIG, standard_component_specs.RANGE_CONFIG_KEY)):
    result[parameter.name] = _runtime_parameter(parameter, props.get(key) or "")
    props[key] = result[parameter.name]

  evaluators = [n for n in pipeline.components if runs_executor(n, evaluator_executor.Executor)]
  unknown = [n.id for n in evaluators if n.id not in EVALUATOR_GATES]
  if unknown:
    raise ValueError(f"Evaluator(s) {unknown} have no runtime parameter binding; add them "
                     "to EVALUATOR_GATES in kubeflow/parameters.py")
  defaults: Dict[str, Dict[str, Any]] = {}
  for node in evaluators:
    change, floor = executors.read_auc_thresholds(
        node.exec_properties[standard_component_specs.EVAL_CONFIG_KEY])
    gate, sign = EVALUATOR_GATES[node.id]
    defaults.setdefault(gate.name, {})[node.id] = sign * change + 0.0  # no -0.0
    defaults.setdefault(AUC_FLOOR.name, {})[node.id] = floor
  for parameter in (MIN_AUC_GAIN, MAX_AUC_REGRESSION, AUC_FLOOR):
    if parameter.name in defaults:
      result[parameter.name] = _runtime_parameter(
          parameter, _single_default(parameter, defaults[parameter.name]))
  for node in evaluators:
    upstream_tfx.replace_executor(node, executors.EvaluatorExecutor, evaluator_executor.Executor)
    for parameter in (EVALUATOR_GATES[node.id][0], AUC_FLOOR):
      node.exec_properties[parameter.name] = result[parameter.name]

  trainers = [n for n in pipeline.components if runs_executor(n, trainer_executor.GenericExecutor)]
  epochs = {t.id: executors.read_epochs(
      t.exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)) for t in trainers}
  result[EPOCHS.name] = _runtime_parameter(EPOCHS, _single_default(EPOCHS, epochs))
  for trainer in trainers:
    upstream_tfx.replace_executor(trainer, executors.TrainerExecutor,
                                  trainer_executor.GenericExecutor)
    trainer.exec_properties[EPOCHS.name] = result[EPOCHS.name]

  return [result[p.name] for p in ALL if p.name in result]


def defaults(parameters: Sequence[RuntimeParameter]) -> Dict[str, Any]:
  """{name: default} of runtime parameters."""
  return {p.name: p.default for p in parameters}
