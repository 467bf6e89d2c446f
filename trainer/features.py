"""The model's view of the dataset spec: Transform's output names and the spec's travel.

Every feature, its kind and the label rule come from the dataset spec (`dataspec`), which
reaches Transform and the Trainers as JSON in their `custom_config` (`DATASET_KEY`). This
module names only what Transform itself adds.
"""

from typing import Any, Mapping, Optional

from dataspec import spec as spec_lib

# Transform's binary label output (1 where the spec's label rule holds).
LABEL = spec_lib.LABEL_FEATURE
# Transform's admission flag of an id feature is named feature + this (`trainer/admission.py`).
ADMITTED_SUFFIX = spec_lib.ADMITTED_SUFFIX
# The value a missing id/categorical/multivalent value (or a numeric value's bucket) becomes.
MISSING_TOKEN = spec_lib.MISSING_TOKEN

# `custom_config` key of Transform and the Trainers: the dataset spec as JSON.
DATASET_KEY = "dataset"
# Transform `custom_config` key: true to write a vocabulary per model feature (the
# collisionless model reads them; the hashed models need none).
VOCABULARIES_KEY = "vocabularies"


def vocabulary_name(feature: str) -> str:
  """Name of the Transform vocabulary file for a model feature."""
  return f"{feature}_vocab"


def dataset_config(spec: spec_lib.DatasetSpec) -> str:
  """The spec as it travels in a component's `custom_config` (canonical JSON)."""
  return spec.to_json()


def spec_from_custom_config(custom_config: Optional[Mapping[str, Any]]) -> spec_lib.DatasetSpec:
  """The dataset spec a component was given.

  Raises:
    ValueError: the component was built without one (`create_pipeline` always adds it).
  """
  value = (custom_config or {}).get(DATASET_KEY)
  if not value:
    raise ValueError(f"custom_config has no {DATASET_KEY!r}: the pipeline passes the dataset "
                     "spec to Transform and the Trainers; build it with create_pipeline")
  return spec_lib.from_json(value) if isinstance(value, str) else spec_lib.from_dict(value)
