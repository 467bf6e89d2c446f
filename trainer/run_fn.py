"""TFX Trainer entry point: reads the config, then builds, trains and exports one model.

Each step that reads or writes data runs inside `steps.step`: a failure stops the Trainer
with one message naming the step, its files, the cause and what to try (the runner shows
it); TensorFlow's trace stays chained to it, for the run log.
"""

import json
import tempfile

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from trainer import export, features, model as model_lib, steps, strategy as strategy_lib
from trainer import train
from trainer import warm_start
from trainer import config as config_lib
from trainer.config import TrainingConfig


def _vocabularies(tf_transform_output: tft.TFTransformOutput, names):
  return {f: [v.decode("utf-8") if isinstance(v, bytes) else v
              for v in tf_transform_output.vocabulary_by_name(features.vocabulary_name(f))]
          for f in names}


def _multivalent(dataset):
  return tuple(f.name for f in dataset.features_of_kind("multivalent"))


# What to try when Transform's output cannot be read.
REWRITE_TRANSFORM_OUTPUT = ("if a file is missing, truncated or corrupt, run the pipeline "
                            "again with --no-cache so that Transform rewrites its output")


def run_fn(fn_args: FnArgs) -> None:
  """Trains the model `custom_config["training"]` describes and exports it for serving.

  Raises:
    steps.TrainerStepError: a step failed (reading the Transform graph, counting,
      shuffling, training and evaluating, exporting); the message names the step, its
      files, the cause and what to try.
  """
  custom = fn_args.custom_config or {}
  dataset = features.spec_from_custom_config(custom)
  config = config_lib.resolve(TrainingConfig.from_dict(custom.get("training")), dataset)
  logging.info("Training config: %s (code %s)", config, custom.get("code_fingerprint"))
  tf.keras.utils.set_random_seed(config.seed)
  with steps.step("reading the Transform graph", [fn_args.transform_graph_path],
                  REWRITE_TRANSFORM_OUTPUT):
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    feature_spec = tf_transform_output.transformed_feature_spec()

  strategy, description = strategy_lib.choose_strategy(custom.get("tpu"))
  vocabularies = _vocabularies(tf_transform_output, config.features) \
      if config.model_type == "collisionless" else None
  spec = model_lib.embedding_spec(config, vocabularies)
  if fn_args.base_model:
    config = config.for_warm_start()  # compiled with the fine-tune's learning rate
  with strategy.scope():
    model = model_lib.build_model(config, spec, under_tpu=strategy_lib.is_tpu(strategy),
                                  sparse_features=_multivalent(dataset))
    warm = None
    if fn_args.base_model:
      # The pipeline passes the model in production here (unless warm_start is off).
      warm = warm_start.warm_start(model, fn_args.base_model)
      logging.info("Warm start: restored %d variables from %s", warm["variables"],
                   fn_args.base_model)
      print(f"trainer: warm start from {fn_args.base_model}", flush=True)
  # TensorBoard summaries go beside training_result.json, in the Trainer's ModelRun
  # artifact: `tensorboard --logdir <model_run uri>` shows train and eval curves per epoch.
  # Input larger than the shuffle buffer is shuffled through buckets on local disk, kept
  # for as long as training reads them.
  with tempfile.TemporaryDirectory(prefix="uet-shuffle-") as scratch:
    # Counted once, on the compressed records: the shuffle and the throughput both need it.
    with steps.step("counting the training examples", fn_args.train_files,
                    REWRITE_TRANSFORM_OUTPUT):
      examples = train.count_files(fn_args.train_files)
    with steps.step(f"shuffling the {examples} training examples", fn_args.train_files,
                    f"the shuffle writes about 1.5 times these files' size to {scratch}: "
                    f"check the free space there (TMPDIR chooses the disk); "
                    f"{REWRITE_TRANSFORM_OUTPUT}"):
      train_ds = train.make_dataset(fn_args.train_files, feature_spec, config.batch_size,
                                    config.shuffle_buffer, config.seed, scratch_dir=scratch,
                                    num_records=examples)
    with steps.step("training and evaluating the model",
                    [*fn_args.train_files, *fn_args.eval_files],
                    f"{REWRITE_TRANSFORM_OUTPUT}; if memory ran out, lower "
                    "training.batch_size or training.shuffle_buffer"):
      eval_ds = train.make_dataset(fn_args.eval_files, feature_spec, config.eval_batch_size)
      result = train.fit(model, train_ds, config, eval_ds,
                         tensorboard_dir=fn_args.model_run_dir, train_examples=examples)
  result.update({"model_type": config.model_type, "strategy": description,
                 "learning_rate": config.learning_rate,
                 "embedding_parameters": spec.num_parameters,
                 # Embeddings, MLP, admission filter, default vectors and their total.
                 "parameters": model_lib.parameter_counts(config, spec),
                 "warm_started_from": warm["from"] if warm else None})

  with steps.step("exporting the model with the Transform graph",
                  [fn_args.transform_graph_path, fn_args.serving_model_dir,
                   fn_args.model_run_dir],
                  "check the free space and the permissions of the last two; "
                  + REWRITE_TRANSFORM_OUTPUT):
    export.export_serving_model(model, tf_transform_output, fn_args.serving_model_dir,
                                dataset)
    warm_start.write_model_config(fn_args.serving_model_dir, model.get_config())
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(f"{fn_args.model_run_dir}/training_result.json", "w") as f:
      json.dump(result, f, indent=2)
  logging.info("Exported %s model (%d embedding parameters) to %s", config.model_type,
               spec.num_parameters, fn_args.serving_model_dir)
