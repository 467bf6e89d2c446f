"""kubeflow/Dockerfile: what can be checked without a Docker engine.

The base image matches the installed TFX, the lock it installs is the project's and pins
that TFX, every path it copies exists, the paths the compiled pipeline names inside the
image are the ones it creates, and the modules it imports at build time import here.
"""

import importlib
import pathlib
import re
import shlex

import tfx.version
import yaml

from kubeflow import options

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "kubeflow" / "Dockerfile"


def _instructions():
  """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
  text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
  result = []
  for line in text.splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
      instruction, _, rest = line.partition(" ")
      result.append((instruction.upper(), rest.strip()))
  return result


def _all(instruction):
  return [rest for name, rest in _instructions() if name == instruction]


def test_base_image_is_the_official_tfx_image_of_the_installed_version():
  assert _all("FROM") == [f"gcr.io/tfx-oss-public/tfx:{tfx.version.__version__}"]
  assert tfx.version.__version__ == "1.16.0"


def test_legacy_keras_is_set_for_every_process():
  env = " ".join(_all("ENV"))
  assert re.search(r"\bTF_USE_LEGACY_KERAS=1\b", env)


def test_it_installs_the_project_lock_without_resolving_dependencies():
  runs = _all("RUN")
  lock_installs = [r for r in runs if "requirements.lock" in r]
  assert len(lock_installs) == 1
  assert "--no-deps" in shlex.split(lock_installs[0])
  assert "-r requirements.lock" in lock_installs[0]
  assert "requirements.lock ./" in _all("COPY")[0]  # first, so the layer caches
  # The lock pins the same TFX as the base image.
  lock = (REPO / "requirements.lock").read_text()
  assert re.search(rf"^tfx=={re.escape(tfx.version.__version__)}$", lock, re.M)
  # The project itself is installed without re-resolving its dependencies either.
  project_installs = [r for r in runs if "pip install --no-deps ." in r]
  assert len(project_installs) == 1


def test_every_copied_path_exists_and_every_package_is_copied():
  sources = set()
  for rest in _all("COPY"):
    *srcs, _ = shlex.split(rest)
    for src in srcs:
      assert (REPO / src).exists(), f"COPY source {src} does not exist"
      sources.add(src.rstrip("/"))
  # [tool.setuptools.packages.find] include = ["pipeline*", ...] (no tomllib on 3.10)
  include = re.search(r"^include\s*=\s*\[([^\]]*)\]", (REPO / "pyproject.toml").read_text(),
                      re.M).group(1)
  packages = {p.rstrip("*") for p in re.findall(r'"([^"]+)"', include)}
  assert "kubeflow" in packages
  assert packages <= sources, f"packages not copied: {packages - sources}"
  assert {"pyproject.toml", "dataspec"} <= sources


def test_the_image_is_built_in_the_project_dir_and_loads_every_preset():
  assert _all("WORKDIR") == [options.IMAGE_PROJECT_DIR]
  # The presets (spec + curated schema) are package data: the build loads each of them.
  assert any("spec.load(p) for p in spec.preset_names()" in r for r in _all("RUN"))


def test_modules_imported_at_build_time_import_here():
  smoke = [r for r in _all("RUN") if "python -c" in r]
  assert smoke
  modules = re.search(r'import ([\w., ]+)"', smoke[0]).group(1)
  names = [m.strip() for m in modules.split(",")]
  assert "kubeflow.executors" in names and "trainer.run_fn" in names
  for name in names:
    importlib.import_module(name)


def test_the_image_keeps_tfx_entrypoint_for_dataflow_workers():
  # Dataflow starts workers through the image's ENTRYPOINT (Beam's boot, set by TFX's image).
  assert not _all("ENTRYPOINT") and not _all("CMD")


def test_cloud_build_config_builds_this_dockerfile():
  config = yaml.safe_load((REPO / "kubeflow" / "cloudbuild.yaml").read_text())
  args = config["steps"][0]["args"]
  assert args[:3] == ["build", "-f", "kubeflow/Dockerfile"] and args[-1] == "."
  assert config["images"] == ["${_IMAGE}"]
