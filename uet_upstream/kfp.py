"""The pipeline spec TFX 1.16's Kubeflow V2 compiler writes (KFP's PipelineSpec, as JSON):
what it cannot compile, and what it writes that Vertex AI / KFP cannot run as it is.

1. `compilable`: TFX's step builder (`tfx/orchestration/kubeflow/v2/step_builder.py`)
   translates Resolvers of two strategies only and raises TypeError on any other; the
   runner refuses those first, naming the node and the alternative.
2. `repair_condition_keys`: the step builder names a channel of a `Cond` predicate
   `_<producer>.<output>` and adds it as an input, except when the task already has that
   channel as an input under another key (the Pusher's `model_blessing` is the
   ProductionEvaluator's blessing); its CEL then still reads `_ProductionEvaluator.blessing`,
   a key the task does not have, and Vertex cannot evaluate the condition.
3. `add_parameter_defaults` and `set_default_pipeline_root`: TFX writes the runtime
   parameters' defaults and the pipeline root only into the PipelineJob's `runtimeConfig`,
   which the KFP YAML (the PipelineSpec alone) does not carry; KFP's own compiler puts them
   in the spec.

`tests/test_upstream_kfp.py` compiles a pipeline and fails when the compiler stops needing a
repair (then drop it) or its output changes shape.
"""

import re
from typing import Any, Dict, Iterable, List

from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies import latest_artifact_strategy
from tfx.dsl.input_resolution.strategies import latest_blessed_model_strategy
from tfx.utils import deprecation_utils

# The only resolver strategies the compiler translates (step_builder.py).
COMPILABLE_STRATEGIES = (latest_artifact_strategy.LatestArtifactStrategy,
                         latest_blessed_model_strategy.LatestBlessedModelStrategy)
_CONDITION_KEY = re.compile(r"inputs\.artifacts\['([^']+)'\]")


class SpecError(ValueError):
  """The compiled spec has a construct no repair here applies to."""


def strategy(node: resolver.Resolver) -> Any:
  """The strategy class of a Resolver node (None for a resolver function)."""
  found = node.exec_properties.get(resolver.RESOLVER_STRATEGY_CLASS)
  return deprecation_utils.get_first_nondeprecated_class(found) if found is not None else None


def compilable(node: resolver.Resolver) -> bool:
  """Whether the compiler translates this Resolver."""
  return strategy(node) in COMPILABLE_STRATEGIES


def repair_condition_keys(job: Dict[str, Any]) -> List[str]:
  """Points the trigger conditions of a compiled PipelineJob at the input keys their tasks
  have: a reference the compiler left dangling is renamed to the task's own key for the
  same producer output.

  Returns:
    "task: old -> new" for each renamed key.

  Raises:
    SpecError: a condition names an input that neither exists nor maps to one.
  """
  renamed = []
  for name, task in job["pipelineSpec"]["root"]["dag"]["tasks"].items():
    condition = task.get("triggerPolicy", {}).get("condition")
    if not condition:
      continue
    artifacts = task.get("inputs", {}).get("artifacts", {})
    for key in sorted(set(_CONDITION_KEY.findall(condition))):
      if key in artifacts:
        continue
      producer, _, output = key[1:].partition(".")
      same = [k for k, spec in artifacts.items()
              if spec.get("taskOutputArtifact") == {"producerTask": producer,
                                                     "outputArtifactKey": output}]
      if not key.startswith("_") or len(same) != 1:
        raise SpecError(f"task {name}: its condition reads input {key!r}, which it does "
                        "not have")
      condition = condition.replace(f"inputs.artifacts['{key}']",
                                    f"inputs.artifacts['{same[0]}']")
      renamed.append(f"{name}: {key} -> {same[0]}")
    task["triggerPolicy"]["condition"] = condition
  return renamed


def add_parameter_defaults(job: Dict[str, Any], runtime_parameters: Iterable[Any]) -> None:
  """Declares each RuntimeParameter's default (and description) in the spec itself."""
  definitions = job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
  for p in runtime_parameters:
    definitions[p.name].update(
        {"defaultValue": p.default, "isOptional": True, "description": p.description})


def set_default_pipeline_root(job: Dict[str, Any], pipeline_root: str) -> None:
  """Names the pipeline root in the spec itself (KFP reads it there; Vertex either there or
  in the PipelineJob's runtimeConfig)."""
  job["pipelineSpec"]["defaultPipelineRoot"] = pipeline_root
