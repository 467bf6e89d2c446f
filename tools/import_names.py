"""Checks that this project's top-level import names belong to it alone.

The folders `pipeline/`, `components/`, `trainer/`, `kubeflow/`, `tools/`, `schema/` and
`uet_upstream/` are installed as top-level packages, most with generic names (`kubeflow` is
also a name on PyPI). Two
distributions that install the same top-level name overwrite each other's files, and which
one `import kubeflow` loads then depends on install order. This check fails when any other
installed distribution declares one of our names, or when one of them imports from outside
our distribution. It runs in the tests (the project's environment) and while the container
image is built (kubeflow/Dockerfile), so both environments are covered.

  python -m tools.import_names
"""

import importlib
import importlib.metadata
import os
import sys
from typing import Dict, List

DISTRIBUTION = "uet-pipeline"
PACKAGES = ("pipeline", "components", "trainer", "kubeflow", "tools", "dataspec",
            "uet_upstream")


def clashes() -> Dict[str, List[str]]:
  """Top-level name -> what is wrong with it (empty when every name is ours alone)."""
  owners = importlib.metadata.packages_distributions()
  problems: Dict[str, List[str]] = {}
  for name in PACKAGES:
    others = sorted(set(owners.get(name, [])) - {DISTRIBUTION})
    if others:
      problems.setdefault(name, []).append(f"also installed by {', '.join(others)}")
    module = importlib.import_module(name)
    location = os.path.dirname(os.path.abspath(module.__file__))
    files = importlib.metadata.distribution(DISTRIBUTION).files or []
    ours = any(os.path.dirname(os.path.abspath(f.locate())) == location for f in files)
    # An editable install records a finder, not the files: there the package must be in
    # the checkout the finder points at, i.e. beside this file's package.
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not ours and os.path.dirname(location) != checkout:
      problems.setdefault(name, []).append(f"imports from {location}, not from "
                                           f"{DISTRIBUTION}")
  return problems


def main() -> int:
  problems = clashes()
  for name, messages in problems.items():
    for message in messages:
      print(f"import name {name!r}: {message}", file=sys.stderr)
  if problems:
    print("rename the package or uninstall the other distribution", file=sys.stderr)
    return 1
  print(f"import names {', '.join(PACKAGES)}: all from {DISTRIBUTION} only")
  return 0


if __name__ == "__main__":
  sys.exit(main())
