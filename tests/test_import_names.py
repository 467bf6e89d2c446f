"""Our generic top-level import names (`kubeflow`, `pipeline`, ...) belong to us alone."""

import importlib.metadata

from tools import import_names


def test_no_other_installed_distribution_claims_our_names():
  assert import_names.clashes() == {}


def test_a_second_owner_of_a_name_is_reported(monkeypatch):
  owners = importlib.metadata.packages_distributions()
  owners["kubeflow"] = ["kubeflow", import_names.DISTRIBUTION]
  monkeypatch.setattr(importlib.metadata, "packages_distributions", lambda: owners)
  assert import_names.clashes() == {"kubeflow": ["also installed by kubeflow"]}


def test_the_image_build_runs_the_check():
  dockerfile = (import_names.__file__.rsplit("/tools/", 1)[0] + "/kubeflow/Dockerfile")
  with open(dockerfile) as f:
    assert "python -m tools.import_names" in f.read()
