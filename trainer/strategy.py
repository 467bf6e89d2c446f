"""Chooses the distribution strategy that fits the machine: TPU, several GPUs, or default.

TPU detection never probes the network: it only tries to connect when a TPU is named (the
config's `tpu`, or `TPU_NAME` in the environment, as Cloud TPU VMs and Vertex set it) or a
local TPU device exists (`/dev/accel*`, TPU VMs).
"""

import glob
import os
from typing import Callable, List, Optional, Tuple

import tensorflow as tf
from absl import logging


def _tpu_name(requested: Optional[str]) -> Optional[str]:
  if requested:
    return requested
  if os.environ.get("TPU_NAME"):
    return os.environ["TPU_NAME"]
  if glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"):
    return "local"
  return None


def _connect_tpu(name: str) -> tf.distribute.Strategy:
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
  if name != "local":
    tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def choose_strategy(
    tpu: Optional[str] = None,
    connect_tpu: Callable[[str], tf.distribute.Strategy] = _connect_tpu,
    list_gpus: Callable[[], List] = lambda: tf.config.list_logical_devices("GPU"),
) -> Tuple[tf.distribute.Strategy, str]:
  """Returns (strategy, description).

  Args:
    tpu: TPU name or address ("local" on a TPU VM); None to detect.
    connect_tpu: connects to a named TPU (replaced in tests).
    list_gpus: lists GPU devices (replaced in tests).

  Raises:
    RuntimeError: a TPU was named explicitly and could not be reached.
  """
  name = _tpu_name(tpu)
  if name is not None:
    try:
      strategy = connect_tpu(name)
      description = f"TPUStrategy on {name} ({strategy.num_replicas_in_sync} replicas)"
      logging.info("Training under %s", description)
      return strategy, description
    except (ValueError, tf.errors.NotFoundError, tf.errors.UnavailableError) as e:
      if tpu:
        raise RuntimeError(f"TPU {tpu!r} was requested but cannot be reached: {e}") from e
      logging.warning("TPU %r detected but not usable (%s); falling back", name, e)
  gpus = list_gpus()
  if len(gpus) > 1:
    strategy = tf.distribute.MirroredStrategy()
    description = f"MirroredStrategy on {len(gpus)} GPUs"
  else:
    strategy = tf.distribute.get_strategy()
    description = f"default strategy on {'1 GPU' if gpus else 'CPU'}"
  logging.info("Training under %s", description)
  print(f"trainer: training under {description}", flush=True)
  return strategy, description


def is_tpu(strategy: tf.distribute.Strategy) -> bool:
  return isinstance(strategy, (tf.distribute.TPUStrategy,
                               tf.distribute.experimental.TPUStrategy))
