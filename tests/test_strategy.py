"""choose_strategy: TPU when named, MirroredStrategy on several GPUs, else the default.

The TPU connector and the GPU lister are replaced, so nothing here touches a network or a
device; `TPUClusterResolver` is booby-trapped to prove it.
"""

import pytest
import tensorflow as tf

from trainer import strategy as strategy_lib


class FakeTPUStrategy:
  num_replicas_in_sync = 8


@pytest.fixture(autouse=True)
def no_tpu_machine(monkeypatch):
  """A machine with no TPU_NAME and no local TPU devices, where resolving would be an error."""
  monkeypatch.delenv("TPU_NAME", raising=False)
  monkeypatch.setattr(strategy_lib.glob, "glob", lambda pattern: [])

  def no_resolver(*args, **kwargs):
    raise AssertionError("TPUClusterResolver must not be created (it probes the network)")
  monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", no_resolver)


class Recorder:
  """A replacement TPU connector that records the names it was asked for."""

  def __init__(self, result=None, error=None):
    self.result, self.error, self.names = result, error, []

  def __call__(self, name):
    self.names.append(name)
    if self.error is not None:
      raise self.error
    return self.result


def test_named_tpu_is_used():
  fake = FakeTPUStrategy()
  connect = Recorder(result=fake)
  strategy, description = strategy_lib.choose_strategy(
      "my-tpu", connect_tpu=connect, list_gpus=lambda: pytest.fail("GPUs listed"))
  assert strategy is fake
  assert connect.names == ["my-tpu"]
  assert description == "TPUStrategy on my-tpu (8 replicas)"


def test_tpu_name_from_environment_is_used(monkeypatch):
  monkeypatch.setenv("TPU_NAME", "env-tpu")
  connect = Recorder(result=FakeTPUStrategy())
  strategy_lib.choose_strategy(connect_tpu=connect, list_gpus=lambda: [])
  assert connect.names == ["env-tpu"]


def test_local_tpu_device_is_used(monkeypatch):
  monkeypatch.setattr(strategy_lib.glob, "glob",
                      lambda pattern: ["/dev/accel0"] if "accel" in pattern else [])
  connect = Recorder(result=FakeTPUStrategy())
  strategy_lib.choose_strategy(connect_tpu=connect, list_gpus=lambda: [])
  assert connect.names == ["local"]


@pytest.mark.parametrize("error", [
    ValueError("bad TPU address"),
    tf.errors.NotFoundError(None, None, "no such TPU"),
    tf.errors.UnavailableError(None, None, "TPU unreachable"),
])
def test_requested_tpu_that_cannot_be_reached_is_an_error(error):
  with pytest.raises(RuntimeError, match="'my-tpu' was requested but cannot be reached"):
    strategy_lib.choose_strategy("my-tpu", connect_tpu=Recorder(error=error),
                                 list_gpus=lambda: [])


def test_detected_but_unusable_tpu_falls_back(monkeypatch):
  monkeypatch.setenv("TPU_NAME", "stale-tpu")
  connect = Recorder(error=tf.errors.UnavailableError(None, None, "TPU unreachable"))
  strategy, description = strategy_lib.choose_strategy(connect_tpu=connect,
                                                       list_gpus=lambda: [])
  assert connect.names == ["stale-tpu"]
  assert strategy is tf.distribute.get_strategy()
  assert description == "default strategy on CPU"


def test_two_gpus_use_mirrored_strategy():
  connect = Recorder(result=FakeTPUStrategy())
  strategy, description = strategy_lib.choose_strategy(
      connect_tpu=connect, list_gpus=lambda: ["/gpu:0", "/gpu:1"])
  assert isinstance(strategy, tf.distribute.MirroredStrategy)
  assert description == "MirroredStrategy on 2 GPUs"
  assert connect.names == []


def test_one_gpu_uses_the_default_strategy():
  strategy, description = strategy_lib.choose_strategy(
      connect_tpu=Recorder(result=FakeTPUStrategy()), list_gpus=lambda: ["/gpu:0"])
  assert strategy is tf.distribute.get_strategy()
  assert description == "default strategy on 1 GPU"


def test_nothing_named_uses_the_default_strategy_without_probing():
  connect = Recorder(result=FakeTPUStrategy())
  strategy, description = strategy_lib.choose_strategy(connect_tpu=connect,
                                                       list_gpus=lambda: [])
  assert connect.names == []  # no TPU connection attempted
  assert strategy is tf.distribute.get_strategy()
  assert not strategy_lib.is_tpu(strategy)
  assert description == "default strategy on CPU"


def test_default_connector_is_not_called_when_nothing_is_named():
  # With the real connector: the booby-trapped resolver proves no probe happens.
  strategy, _ = strategy_lib.choose_strategy(list_gpus=lambda: [])
  assert strategy is tf.distribute.get_strategy()
