"""Which model is "in production" for this run: the warm-start source and the baseline of
the production gate.

TFX's LatestBlessedModelStrategy returns the newest blessed model. With warm starts that
breaks caching: after a push, a re-run on the *same* data would see a new base model, retrain
and push again, forever. This strategy returns the newest blessed model that was *not*
trained on the Examples being ingested now:

  * new data arrives (a new span, or changed files): the model currently in production
    qualifies (warm start, production gate);
  * the same data again (ExampleGen is a cache hit, so it is the same Examples artifact): the
    model chosen when that data first arrived qualifies again, so every input is unchanged and
    every component is a cache hit (no work, no new push).

Lineage is read from ML Metadata: model <- Trainer <- transformed examples <- Transform <-
Examples.
"""

from typing import Dict, List, Optional, Set

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.components.common import resolver

from components import lineage

MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"
EXAMPLES_KEY = "examples"

def training_examples(store: mlmd.MetadataStore, model_id: int) -> Set[int]:
  """Ids of the raw Examples artifacts a model was trained on (empty if unknown)."""
  trainers = lineage.producers(store, [model_id])
  transformed = lineage.inputs(store, trainers, "examples")
  transforms = lineage.producers(store, transformed)
  return set(lineage.inputs(store, transforms, "examples"))


def was_pushed(store: mlmd.MetadataStore, model_id: int) -> bool:
  """Whether a Pusher took this model as input and recorded `pushed` = 1."""
  consumers = sorted({e.execution_id for e in store.get_events_by_artifact_ids([model_id])
                      if e.type in lineage.INPUT_EVENTS})
  if not consumers:
    return False
  outputs = sorted({e.artifact_id for e in store.get_events_by_execution_ids(consumers)
                    if e.type in lineage.OUTPUT_EVENTS})
  for artifact in store.get_artifacts_by_id(outputs):
    pushed = artifact.custom_properties.get("pushed")
    if pushed is not None and pushed.int_value == 1:
      return True
  return False


class ProductionModelStrategy(resolver.ResolverStrategy):
  """Newest pushed model not trained on the Examples ingested now."""

  def resolve_artifacts(
      self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
  ) -> Optional[Dict[str, List[types.Artifact]]]:
    """Returns {model: [m] or [], model_blessing: [b] or [], examples: unchanged}."""
    examples = input_dict.get(EXAMPLES_KEY, [])
    result = {MODEL_KEY: [], BLESSING_KEY: [], EXAMPLES_KEY: list(examples)}
    if not examples:
      return result
    current = {a.id for a in examples}
    blessings = {b.get_int_custom_property("current_model_id"): b
                 for b in input_dict.get(BLESSING_KEY, [])
                 if b.get_int_custom_property("blessed") == 1}
    for model in sorted(input_dict.get(MODEL_KEY, []), key=lambda a: a.id, reverse=True):
      if model.id not in blessings:
        continue
      # Blessed by the production gate is not enough: the baseline gate decides too, and
      # only a model that both passed was pushed, i.e. is (or was) in production.
      if not was_pushed(store, model.id):
        continue
      trained_on = training_examples(store, model.id)
      if trained_on and not trained_on & current:
        result[MODEL_KEY] = [model]
        result[BLESSING_KEY] = [blessings[model.id]]
        break
    return result
