"""Fingerprints of the code a component runs, for TFX's cache key.

TFX fingerprints a `module_file`, but not an imported package: with `run_fn="trainer.run_fn.run_fn"`
an edited trainer would be served from the cache. The pipeline puts these fingerprints into
the components' `custom_config`, which is part of the cache key.
"""

import hashlib
import pathlib
from typing import Iterable

import trainer
import uet_upstream
from dataspec import spec as spec_lib

TRAINER_DIR = pathlib.Path(trainer.__file__).resolve().parent
# Modules outside trainer/ that the trainer package imports (the Trainer runs them too):
# the upstream touchpoints and the spec module it reads the spec with (the spec itself
# travels in custom_config, already part of the key).
TRAINER_UPSTREAM = (pathlib.Path(uet_upstream.__file__).resolve().parent / "keras.py",)
SPEC_MODULE = pathlib.Path(spec_lib.__file__).resolve()
# Transform runs only these (preprocessing imports the admission filter, which reads its
# size from config); editing the model code must not re-run Transform.
TRANSFORM_SOURCES = ("features.py", "preprocessing.py", "admission.py", "config.py")


def fingerprint(paths: Iterable[pathlib.Path], root: pathlib.Path = TRAINER_DIR.parent) -> str:
  """sha256 over the relative names and contents of `paths` (order-independent)."""
  h = hashlib.sha256()
  for path in sorted(pathlib.Path(p) for p in paths):
    name = path.relative_to(root) if path.is_relative_to(root) else path.name
    h.update(str(name).encode())
    h.update(b"\0")
    h.update(path.read_bytes())
    h.update(b"\0")
  return h.hexdigest()[:16]


def trainer_fingerprint() -> str:
  """Every Python file of the trainer package, and the modules outside it that it imports."""
  return fingerprint([*TRAINER_DIR.rglob("*.py"), *TRAINER_UPSTREAM, SPEC_MODULE])


def transform_fingerprint() -> str:
  """The files the preprocessing_fn depends on."""
  return fingerprint([*(TRAINER_DIR / name for name in TRANSFORM_SOURCES), SPEC_MODULE])
