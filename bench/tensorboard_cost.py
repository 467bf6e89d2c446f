"""What the Trainers' TensorBoard summaries cost: `train.fit` with and without them.

With `tensorboard_dir`, `trainer.train.fit` evaluates the eval split after every epoch (for the
validation curves) and writes the summaries; without it, it evaluates once at the end. Both
run here on the tutorial's MovieLens-100K split (80,000 / 20,000, `bench/quality.py`'s
protocol), unified model, 5 epochs, alternating A/B/A/B in one process so that machine load
hits both alike. Prints each fit's wall time and the median ratio. Asserts nothing.

  .venv/bin/python bench/tensorboard_cost.py [--data-dir D] [--repeats N]
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

import tensorflow as tf  # noqa: E402

from bench import quality  # noqa: E402
from trainer import model as model_lib, train  # noqa: E402
from trainer.config import TrainingConfig  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", default=quality.DEFAULT_DATA_DIR)
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args(argv)
  split = quality.load_split(args.data_dir)
  config = TrainingConfig(model_type="unified")
  spec = model_lib.embedding_spec(config, split.vocabularies)
  eval_ds = quality.test_dataset(split)
  seconds = {"without": [], "with": []}
  with tempfile.TemporaryDirectory() as logs:
    for repeat in range(args.repeats):
      for mode in ("without", "with"):
        tf.keras.utils.set_random_seed(config.seed)
        model = model_lib.build_model(config, spec)
        start = time.perf_counter()
        result = train.fit(model, quality.train_dataset(split, config.batch_size, config.seed),
                           config, eval_ds,
                           tensorboard_dir=os.path.join(logs, str(repeat)) if mode == "with"
                           else None)
        seconds[mode].append(time.perf_counter() - start)
        print(f"repeat {repeat + 1}, {mode:7s} TensorBoard: fit {seconds[mode][-1]:.1f}s, "
              f"AUC {result['eval_auc']:.4f}", flush=True)
        tf.keras.backend.clear_session()
  ratio = statistics.median(w / wo for w, wo in zip(seconds["with"], seconds["without"]))
  print(f"median fit time with / without TensorBoard summaries: {ratio:.2f}x "
        f"({config.epochs} epochs, {len(split.train_labels):,} training and "
        f"{len(split.test_labels):,} eval examples)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
