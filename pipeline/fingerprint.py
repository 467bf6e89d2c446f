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

TRAINER_DIR = pathlib.Path(trainer.__file__).resolve().parent
# The modules of uet_upstream the trainer package imports (the Trainer runs them too).
TRAINER_UPSTREAM = (pathlib.Path(uet_upstream.__file__).resolve().parent / "keras.py",)
# Transform runs only these (preprocessing imports the admission filter, which reads its
# feature list from config); editing the model code must not re-run Transform.
TRANSFORM_SOURCES = ("features.py", "preprocessing.py", "admission.py", "config.py")


def fingerprint(paths: Iterable[pathlib.Path], root: pathlib.Path = TRAINER_DIR.parent) -> str:
  """sha256 over the relative names and contents of `paths` (order-independent)."""
  h = hashlib.sha256()
  for path in sorted(pathlib.Path(p) for p in paths):
    h.update(str(path.relative_to(root)).encode())
    h.update(b"\0")
    h.update(path.read_bytes())
    h.update(b"\0")
  return h.hexdigest()[:16]


def trainer_fingerprint() -> str:
  """Every Python file of the trainer package, and the upstream touchpoints it imports."""
  return fingerprint([*TRAINER_DIR.rglob("*.py"), *TRAINER_UPSTREAM])


def transform_fingerprint() -> str:
  """The files the preprocessing_fn depends on."""
  return fingerprint(TRAINER_DIR / name for name in TRANSFORM_SOURCES)
