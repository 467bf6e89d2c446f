"""uet_upstream/pins.py: a runtime replacement holds for its block and its release only."""

import types

from uet_upstream import pins


def test_replaced_for_the_block_then_restored():
  module = types.SimpleNamespace(f=len)
  with pins.replaced(module, "f", max, installed="1.0", checked="1.0") as on:
    assert on and module.f is max
  assert module.f is len


def test_restored_when_the_block_raises():
  module = types.SimpleNamespace(f=len)
  try:
    with pins.replaced(module, "f", max, installed="1.0", checked="1.0"):
      raise RuntimeError("in the block")
  except RuntimeError:
    pass
  assert module.f is len


def test_another_release_runs_the_upstream_code():
  module = types.SimpleNamespace(f=len)
  with pins.replaced(module, "f", max, installed="1.1", checked="1.0") as on:
    assert not on and module.f is len
