"""Which model is "in production" for this run.

"In production" is the newest pushed model *not trained on the Examples ingested now*. TFX's
LatestBlessedModelStrategy (the newest blessed model) breaks caching with warm starts: after
a push, a re-run on the *same* data would see a new base model, retrain and push again,
forever. With this rule:

  * new data arrives (a new span, or changed files): the model currently in production
    qualifies (warm start, production gate);
  * the same data again (ExampleGen is a cache hit, so it is the same Examples artifact):
    the `ProductionModel` component is a cache hit too, so every input downstream is
    unchanged and every component is a cache hit (no work, no new push).

The AtomicPusher records in each version directory what the model was trained on
(`components/atomic_pusher/executor.py: PUSH_RECORD`); this module reads those records, so
the choice is the same under every runner (components/decisions.py says why it is not a
Resolver). With nothing in production the output is marked empty, and the executors of
`components/trainer` and `components/evaluator` drop it: the candidate trains from scratch
and the production gate applies its AUC floor only, as with a Resolver that found nothing.
"""

import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from absl import logging
from tfx import types
from tfx.utils import io_utils

from components import decisions
from components.atomic_pusher import executor as pusher_executor

# Custom properties of the ProductionModel output.
PRODUCTION_DIR_KEY = "production_dir"          # the pushed version directory it copies
PRODUCTION_VERSION_KEY = "production_version"  # its version
SERVING_SUBDIR = "Format-Serving"              # where TFX reads a Model artifact's SavedModel
NOTHING_IN_PRODUCTION = ("no pushed model was trained on data other than this run's (the "
                         "first run, or a re-train on the same data)")


def choose(serving_dir: str, current: Iterable[str]) -> Optional[Tuple[str, Dict[str, Any]]]:
  """The newest pushed version not trained on the Examples `current` (URIs).

  Args:
    serving_dir: the Pusher's base directory (one subdirectory per version).
    current: URIs of the Examples this run ingests.

  Returns:
    (version directory, its push record), or None. Versions without a record (pushed by
    another tool) are skipped: what they were trained on is unknown.
  """
  current = set(current)
  for version in reversed(pusher_executor.versions(serving_dir)):
    version_dir = os.path.join(serving_dir, version)
    record = pusher_executor.read_push_record(version_dir)
    trained_on = set((record or {}).get("trained_on") or ())
    if trained_on and not trained_on & current:
      return version_dir, record
  return None


def write_production_model(examples: List[types.Artifact], serving_dir: str,
                           model: types.Artifact) -> Optional[str]:
  """Fills the ProductionModel output: a copy of the model in production, or marked empty.

  Args:
    examples: the Examples this run ingests.
    serving_dir: the Pusher's base directory.
    model: the output Model artifact (its SavedModel goes to `<uri>/Format-Serving`).

  Returns:
    The version directory copied, or None (nothing in production).
  """
  chosen = choose(serving_dir, (a.uri for a in examples))
  if chosen is None:
    decisions.mark_empty(model, NOTHING_IN_PRODUCTION)
    logging.info("ProductionModel: %s", NOTHING_IN_PRODUCTION)
    return None
  version_dir, record = chosen
  io_utils.copy_dir(version_dir, os.path.join(model.uri, SERVING_SUBDIR))
  model.set_string_custom_property(PRODUCTION_DIR_KEY, version_dir)
  model.set_string_custom_property(PRODUCTION_VERSION_KEY, str(record.get("version", "")))
  logging.info("ProductionModel: %s (trained on spans %s)", version_dir, record.get("spans"))
  return version_dir
