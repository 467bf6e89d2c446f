"""The layers of docs/design.md ("Layers") hold on the real import graph, and importing a
module never changes the process's environment."""

import ast
import json
import pathlib
import subprocess
import sys
from typing import Dict, List, Set

from tests import runs
from tests.conftest import REPO

# Package -> the packages of this project it may import (docs/design.md, "Layers").
ALLOWED: Dict[str, Set[str]] = {
    "uet_upstream": set(),
    "dataspec": set(),
    "trainer": {"dataspec", "uet_upstream"},
    "components": {"trainer", "dataspec", "uet_upstream"},
    "pipeline": {"components", "trainer", "dataspec", "uet_upstream"},
    "kubeflow": {"pipeline", "components", "trainer", "dataspec", "uet_upstream"},
    "tools": {"kubeflow", "pipeline", "components", "trainer", "dataspec", "uet_upstream"},
}


def _imports(path: pathlib.Path) -> List[str]:
  """Every module `path` imports, at any depth (imports inside functions count too)."""
  found = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      raise AssertionError(f"{path}: relative import; the layer test reads absolute ones")
  return found


def test_every_package_of_the_project_has_a_layer():
  packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
  assert packages == set(ALLOWED)


def test_imports_run_down_the_layers_only():
  wrong = []
  for package, allowed in ALLOWED.items():
    for path in sorted((REPO / package).rglob("*.py")):
      for name in _imports(path):
        top = name.split(".")[0]
        if top in ALLOWED and top != package and top not in allowed:
          wrong.append(f"{path.relative_to(REPO)} imports {name}")
  assert not wrong, "imports up the layers (docs/design.md, Layers):\n" + "\n".join(wrong)


def test_the_uet_command_lists_only_modules_it_may_import():
  from tools import cli  # pylint: disable=g-import-not-at-top
  for name in cli.SUBCOMMAND_MODULES:
    assert name.split(".")[0] in ALLOWED["tools"] | {"tools"}, name


def test_the_check_reads_imports_inside_functions():
  # A lazy import is an arrow too: tools/run_command.py loads the local runner in a function.
  assert "pipeline.local_runner" in _imports(REPO / "tools" / "run_command.py")


def _fresh_python(code: str) -> list:
  """Runs `code` in a fresh interpreter without the variables `environment` sets; returns
  what its last line printed (JSON)."""
  from pipeline import environment  # pylint: disable=g-import-not-at-top
  env = {k: v for k, v in runs.python_env().items()
         if k not in {**environment.REQUIRED, **environment.DEFAULTS}}
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=env, cwd=REPO, check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_an_entry_point_sets_no_environment_variable():
  assert _fresh_python(
      "import json, os, warnings\n"
      "before = (dict(os.environ), list(warnings.filters))\n"
      "import tools.cli, tools.run_command, kubeflow.cli, pipeline.node_process\n"
      "print(json.dumps(before == (dict(os.environ), list(warnings.filters))))\n") is True


def test_the_uet_command_sets_the_environment_before_a_subcommand_runs(tmp_path):
  # `uet runs` on an empty directory stops with a usage error before TensorFlow loads.
  code, legacy_keras, tensorflow_loaded = _fresh_python(
      "import json, os, sys\n"
      "from tools import cli\n"
      f"code = cli.main(['runs', '--output-dir', {str(tmp_path)!r}])\n"
      "print(json.dumps([code, os.environ.get('TF_USE_LEGACY_KERAS'), "
      "'tensorflow' in sys.modules]))\n")
  assert (code, legacy_keras, tensorflow_loaded) == (2, "1", False)
