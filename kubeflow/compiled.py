"""The dataset a compiled pipeline carries, and the `--dataset` check of `uet run-spec` and
`uet schedule`.

`uet compile --dataset SPEC` bakes the spec into the pipeline (`DatasetSpec.to_json()` in
the properties of SchemaGen, ExampleGen, Transform and the Trainers): a compiled file reads
and trains on that dataset only, whatever its data_dir parameter says. Given `--dataset`,
run-spec and schedule refuse a file compiled for another dataset before anything runs or is
sent. No TensorFlow or TFX here.
"""

import json
from typing import Any, Mapping, Optional

from dataspec import spec as spec_lib
from pipeline import ids

# The SchemaGen task's parameter that holds the spec (components/schema_gen.py).
DATASET_PARAMETER = "dataset"


class DatasetMismatch(ValueError):
  """The compiled pipeline is for another dataset than the one named."""


def _constant(task: Mapping[str, Any], key: str) -> Any:
  return ((task.get("inputs") or {}).get("parameters") or {}).get(key, {}).get(
      "runtimeValue", {}).get("constant")


def dataset_of(pipeline_spec: Mapping[str, Any]) -> Optional[spec_lib.DatasetSpec]:
  """The dataset spec compiled into `pipeline_spec` (None: the file carries none, e.g. a
  pipeline that is not `uet compile`'s)."""
  tasks = ((pipeline_spec.get("root") or {}).get("dag") or {}).get("tasks") or {}
  value = _constant(tasks.get(ids.SCHEMA_GEN) or {}, DATASET_PARAMETER)
  if not isinstance(value, str) or not value:
    return None
  try:
    return spec_lib.from_json(value)
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"task {ids.SCHEMA_GEN}: parameter {DATASET_PARAMETER} is not a dataset "
                     f"spec ({type(e).__name__}: {e}); recompile with `uet compile`") from None


def check_dataset(pipeline_spec: Mapping[str, Any], path: str,
                  dataset: Optional[str]) -> Optional[spec_lib.DatasetSpec]:
  """The compiled dataset; with `dataset` (a preset name or spec file), checks it is that one.

  Args:
    pipeline_spec: the compiled pipeline spec (`pipelineSpec` of a PipelineJob).
    path: the compiled file, for messages.
    dataset: `--dataset` as given, or None (no check).

  Returns:
    The compiled dataset spec (None when the file carries none and no check was asked).

  Raises:
    spec_lib.SpecError: `dataset` is not a valid spec.
    DatasetMismatch: the file was compiled for another dataset, or carries none.
  """
  compiled = dataset_of(pipeline_spec)
  if not dataset:
    return compiled
  wanted = spec_lib.load(dataset)
  if compiled is None:
    raise DatasetMismatch(f"{path} carries no dataset spec, so it cannot be checked against "
                          f"--dataset {dataset}; recompile it with `uet compile --dataset "
                          f"{dataset}`")
  if compiled.to_json() != wanted.to_json():
    what = (f"dataset {compiled.name!r}" if compiled.name != wanted.name
            else f"another version of dataset {wanted.name!r} ("
                 f"{', '.join(_differences(compiled, wanted))} differ)")
    raise DatasetMismatch(f"{path} was compiled for {what}, not for --dataset {dataset}: "
                          f"recompile it with `uet compile --dataset {dataset}`, or drop "
                          "--dataset to use it as it is")
  return compiled


def _differences(a: spec_lib.DatasetSpec, b: spec_lib.DatasetSpec):
  left, right = json.loads(a.to_json()), json.loads(b.to_json())
  return sorted(k for k in set(left) | set(right) if left.get(k) != right.get(k))
