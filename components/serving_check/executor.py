"""The ServingCheck's work: warm-up requests, a fresh process that serves them, and the
comparison with the Evaluator's predictions.

TFX's InfraValidator loads the model in TF Serving (Docker or Kubernetes) and sends it
requests; a local run has neither. This check does what can be done without them:

1. Reads the first `SAMPLE_SIZE` rows of the eval split (files in name order: the same rows
   on every run over the same data) and removes the dataset's label column from them, as
   a client would.
2. Builds TF Serving warm-up requests from them, in TF Serving's format (TFRecord of
   `PredictionLog` holding a `PredictRequest` for `serving_default`, whose one string input
   takes the serialized tf.Examples), one per batch size in `BATCH_SIZES`, and writes them
   into a copy of the model (`<blessing>/stamped_model/assets.extra/`, where TFX's
   InfraValidator puts a model with warm-up requests; TFX's Pusher pushes that copy).
3. Loads that copy in a fresh Python process (`serve.py`: `tf.saved_model.load`, nothing
   else of this project) and replays every warm-up request.
4. Scores the same rows, label included, as the Evaluator does: TFMA's FeaturesExtractor
   and PredictionsExtractor with the candidate's ModelSpec from the Evaluator's EvalConfig
   (read from its output).
5. Blesses the model only if every served score is finite, in [0, 1], and within
   `TOLERANCE` (absolute) of the Evaluator's prediction for its row, for every request.

The blessing (an InfraBlessing, as TFX's InfraValidator writes it: custom property `blessed`,
`has_model` when it holds the stamped model, file INFRA_BLESSED or INFRA_NOT_BLESSED) also
carries `serving_check.json`: the numbers checked, and on failure `failure`, what failed.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import apache_beam as beam
import tensorflow as tf
import tensorflow_model_analysis as tfma
from absl import logging
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
from tfx import types
from tfx.components.util import tfxio_utils
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils
from tfx_bsl.tfxio import dataset_options, tf_example_record

import components

SIGNATURE = "serving_default"
# Rows of the eval split scored; the largest warm-up request holds all of them.
SAMPLE_SIZE = 256
BATCH_SIZES = (1, 16, 256)
# Served score vs the Evaluator's prediction for the same row, absolute. Both run the same
# signature (float32) on different batches, so they agree to float rounding; a score that
# depends on the label, on the process or on the batch does not.
TOLERANCE = 1e-4
# How long the fresh process may take to load the model and answer.
SERVE_TIMEOUT_SECONDS = 600
SPLIT = "eval"
RESULT_FILE = "serving_check.json"
BLESSED_KEY = "blessed"
HAS_MODEL_KEY = "has_model"
FAILURE_KEY = "failure"
_BLESSED_FILE = "INFRA_BLESSED"
_NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
_RAW_RECORDS = "raw_records"


class ServingCheckError(ValueError):
  """The model failed the check; the message says what failed."""


def read_rows(examples: types.Artifact, split: str = SPLIT, n: int = SAMPLE_SIZE
              ) -> List[bytes]:
  """The first `n` serialized records of `split` (fewer if it has fewer), files in name
  order, read as TFX's InfraValidator reads them (TFXIO raw records)."""
  if split not in artifact_utils.decode_split_names(examples.split_names):
    raise ServingCheckError(f"the Examples at {examples.uri} have no {split!r} split "
                            f"(splits: {examples.split_names})")
  files = sorted(fileio.glob(os.path.join(
      artifact_utils.get_split_uri([examples], split), "*")))
  if not files:
    raise ServingCheckError(f"no files in the {split!r} split of {examples.uri}")
  tfxio = tfxio_utils.get_tfxio_factory_from_artifact(
      examples=[examples], telemetry_descriptors=["ServingCheck"], schema=None,
      read_as_raw_records=True, raw_record_column_name=_RAW_RECORDS)(files)
  dataset = tfxio.TensorFlowDataset(dataset_options.TensorFlowDatasetOptions(
      batch_size=n, shuffle=False, num_epochs=1))
  for batch in dataset.take(1):
    return [bytes(r) for r in batch[_RAW_RECORDS].numpy()]
  raise ServingCheckError(f"the {split!r} split of {examples.uri} has no rows")


def without_label(rows: Sequence[bytes], label_column: str) -> List[bytes]:
  """The rows as a client sends them: tf.Examples without `label_column`."""
  out = []
  for row in rows:
    example = tf.train.Example.FromString(row)
    if label_column in example.features.feature:
      del example.features.feature[label_column]
    out.append(example.SerializeToString())
  return out


def serialized_input_key(saved_model: str, signature: str = SIGNATURE) -> str:
  """The one input of `signature` that takes serialized records (string, shape [None]), as
  TFX's InfraValidator requires of a signature it builds PredictRequests for."""
  proto = saved_model_pb2.SavedModel()
  with fileio.open(os.path.join(saved_model, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  for graph in proto.meta_graphs:
    if tf.saved_model.SERVING not in graph.meta_info_def.tags:
      continue
    if signature not in graph.signature_def:
      raise ServingCheckError(f"the model at {saved_model} has no {signature!r} signature "
                              f"(it has {sorted(graph.signature_def)})")
    inputs = graph.signature_def[signature].inputs
    string_inputs = [k for k, v in inputs.items()
                     if v.dtype == tf.string.as_datatype_enum
                     and v.tensor_shape == tf.TensorShape([None]).as_proto()]
    if len(inputs) == 1 and string_inputs:
      return string_inputs[0]
    raise ServingCheckError(
        f"the {signature!r} signature of {saved_model} must take one string tensor of "
        f"serialized tf.Examples, shape [None]; its inputs are {sorted(inputs)}")
  raise ServingCheckError(f"the model at {saved_model} has no graph tagged 'serve'")


def warmup_requests(rows: Sequence[bytes], input_key: str,
                    batch_sizes: Sequence[int] = BATCH_SIZES
                    ) -> List[prediction_log_pb2.PredictionLog]:
  """One PredictRequest per batch size (capped at the rows there are): the first `size`
  rows, for `SIGNATURE`, wrapped as TF Serving's warm-up file holds them."""
  logs = []
  for size in sorted({min(b, len(rows)) for b in batch_sizes}):
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = SIGNATURE
    request.inputs[input_key].CopyFrom(tf.make_tensor_proto(list(rows[:size]),
                                                            dtype=tf.string))
    logs.append(prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)))
  return logs


def write_model_with_warmup(model_path: str, destination: str,
                            logs: Sequence[prediction_log_pb2.PredictionLog]) -> str:
  """Copies the SavedModel to `destination` and adds the warm-up file; returns its path."""
  io_utils.copy_dir(model_path, destination)
  warmup = path_utils.warmup_file_path(destination)
  io_utils.write_tfrecord_file(warmup, *logs)
  return warmup


def serve_in_fresh_process(saved_model: str, timeout: float = SERVE_TIMEOUT_SECONDS
                           ) -> List[Dict[str, Any]]:
  """What `serve.py`, run in a new Python process, answers to the model's warm-up requests.

  Raises:
    ServingCheckError: the process failed, timed out, or reported an error.
  """
  root = os.path.dirname(os.path.dirname(os.path.abspath(components.__file__)))
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
  with tempfile.TemporaryDirectory(prefix="uet-serve-") as tmp:
    result_path = os.path.join(tmp, "result.json")
    try:
      done = subprocess.run(
          [sys.executable, "-m", "components.serving_check.serve", saved_model, result_path],
          env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
      raise ServingCheckError(f"the fresh process did not answer the warm-up requests "
                              f"within {timeout:.0f}s") from e
    if done.stderr:
      logging.info("ServingCheck's serving process said:\n%s", done.stderr)
    try:
      with open(result_path) as f:
        result = json.load(f)
    except (OSError, ValueError):
      tail = "\n".join(done.stderr.strip().splitlines()[-5:])
      raise ServingCheckError(f"the fresh process ended with exit code {done.returncode} "
                              f"and no result: {tail}") from None
  if "error" in result:
    raise ServingCheckError(f"the fresh process could not serve the model: "
                            f"{result['error']}")
  return result["requests"]


def candidate_spec(evaluation: types.Artifact, model_name: str) -> tfma.EvalConfig:
  """An EvalConfig of the Evaluator's ModelSpec of `model_name` alone (the one model of a
  single-model evaluation, so unnamed)."""
  config = tfma.load_eval_result(evaluation.uri).config
  specs = [s for s in config.model_specs if s.name == model_name]
  if not specs:
    raise ServingCheckError(f"the evaluation at {evaluation.uri} has no model "
                            f"{model_name!r} (models: {[s.name for s in config.model_specs]})")
  spec = tfma.ModelSpec()
  spec.CopyFrom(specs[0])
  spec.ClearField("name")
  spec.is_baseline = False
  return tfma.EvalConfig(model_specs=[spec])


def evaluator_predictions(model_path: str, eval_config: tfma.EvalConfig,
                          rows: Sequence[bytes]) -> Dict[bytes, float]:
  """row -> prediction, by the Evaluator's code: TFMA's features and predictions
  extractors with `eval_config`, on Beam's DirectRunner in this process."""
  shared = tfma.default_eval_shared_model(eval_saved_model_path=model_path,
                                          eval_config=eval_config)
  tfxio = tf_example_record.TFExampleBeamRecord(
      physical_format="inmem", telemetry_descriptors=["ServingCheck"],
      raw_record_column_name=tfma.ARROW_INPUT_COLUMN)
  extractors = [tfma.extractors.FeaturesExtractor(eval_config),
                tfma.extractors.PredictionsExtractor(eval_config, shared)]

  def pairs(extract):
    for row, prediction in zip(extract[tfma.INPUT_KEY], extract[tfma.PREDICTIONS_KEY]):
      yield json.dumps([bytes(row).hex(), float(prediction.reshape(-1)[0])])

  with tempfile.TemporaryDirectory(prefix="uet-tfma-") as tmp:
    out = os.path.join(tmp, "predictions")
    with beam.Pipeline() as p:
      extracts = (p | beam.Create(list(rows), reshuffle=False) | tfxio.BeamSource()
                  | tfma.BatchedInputsToExtracts())
      for extractor in extractors:
        extracts = extracts | extractor.stage_name >> extractor.ptransform
      _ = (extracts | beam.FlatMap(pairs)
           | beam.io.WriteToText(out, shard_name_template=""))
    with open(out) as f:
      return {bytes.fromhex(h): v for h, v in map(json.loads, f)}


def compare(served: Sequence[Dict[str, Any]], rows: Sequence[bytes],
            reference: Dict[bytes, float], prediction_key: str = "",
            tolerance: float = TOLERANCE) -> Dict[str, Any]:
  """Checks the served scores; returns what was checked.

  Args:
    served: `serve_in_fresh_process`'s answers, request i scoring `rows[:batch]`.
    rows: the rows (label included), in request order.
    reference: row -> the Evaluator's prediction.
    prediction_key: the signature output the Evaluator reads (its ModelSpec's
      `prediction_key`; empty: the signature's one output).
    tolerance: the largest absolute difference allowed.

  Raises:
    ServingCheckError: a score is not finite, outside [0, 1], or too far from the
      Evaluator's, or a request got the wrong number of scores; the message names the
      request (batch size), the row and the values.
  """
  worst = 0.0
  low, high = math.inf, -math.inf
  for request in served:
    batch, outputs = request["batch"], request["outputs"]
    where = f"the warm-up request of batch {batch}"
    if prediction_key:
      if prediction_key not in outputs:
        raise ServingCheckError(f"{where}: the signature has no output {prediction_key!r} "
                                f"(outputs: {sorted(outputs)})")
      scores = outputs[prediction_key]
    elif len(outputs) == 1:
      scores = next(iter(outputs.values()))
    else:
      raise ServingCheckError(f"{where}: the signature has outputs {sorted(outputs)}; the "
                              "Evaluator's ModelSpec names none (prediction_key)")
    if len(scores) != batch:
      raise ServingCheckError(f"{where}: {len(scores)} scores for {batch} rows")
    for i, (row, score) in enumerate(zip(rows[:batch], scores)):
      if not math.isfinite(score):
        raise ServingCheckError(f"{where}: row {i} scored {score}, not a finite number")
      if not 0.0 <= score <= 1.0:
        raise ServingCheckError(f"{where}: row {i} scored {score}, outside [0, 1]")
      expected = reference.get(row)
      if expected is None:
        raise ServingCheckError(f"{where}: the Evaluator's path gave no prediction for row "
                                f"{i}")
      if abs(score - expected) > tolerance:
        raise ServingCheckError(
            f"{where}: row {i} served {score:.6f} but the Evaluator's prediction is "
            f"{expected:.6f} (difference {abs(score - expected):.2g} > tolerance "
            f"{tolerance:g})")
      worst = max(worst, abs(score - expected))
      low, high = min(low, score), max(high, score)
  return {"batch_sizes": [r["batch"] for r in served], "rows": len(rows),
          "max_abs_difference": worst, "tolerance": tolerance,
          "min_score": low, "max_score": high}


def check(model: types.Artifact, examples: types.Artifact, evaluation: types.Artifact,
          label_column: str, model_name: str, blessing: types.Artifact) -> None:
  """Runs the check (module docstring) and marks `blessing`; a model that fails is marked
  not blessed, with what failed, and is not pushed.

  Raises:
    ServingCheckError: a fault of the inputs, not of the model (no eval rows, no ModelSpec
      of `model_name` in the evaluation); the run fails and nothing is pushed.
  """
  model_path = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
  rows = read_rows(examples)
  eval_config = candidate_spec(evaluation, model_name)
  stamped = path_utils.stamped_model_path(blessing.uri)
  record: Dict[str, Any] = {"model": model_path, "split": SPLIT}
  failure: Optional[str] = None
  try:
    logs = warmup_requests(without_label(rows, label_column), serialized_input_key(model_path))
    record["warmup_file"] = write_model_with_warmup(model_path, stamped, logs)
    served = serve_in_fresh_process(stamped)
    reference = evaluator_predictions(model_path, eval_config, rows)
    record.update(compare(served, rows, reference,
                          prediction_key=eval_config.model_specs[0].prediction_key))
  except ServingCheckError as e:
    failure = str(e)
  record[FAILURE_KEY] = failure
  io_utils.write_string_file(os.path.join(blessing.uri, RESULT_FILE),
                             json.dumps(record, indent=2, sort_keys=True))
  if failure is None:
    logging.info("ServingCheck passed: %s", record)
    io_utils.write_string_file(os.path.join(blessing.uri, _BLESSED_FILE), "")
    blessing.set_int_custom_property(BLESSED_KEY, 1)
    blessing.set_int_custom_property(HAS_MODEL_KEY, 1)
  else:
    logging.warning("ServingCheck failed, the model is not pushed: %s", failure)
    if fileio.exists(stamped):
      fileio.rmtree(stamped)
    io_utils.write_string_file(os.path.join(blessing.uri, _NOT_BLESSED_FILE), "")
    blessing.set_int_custom_property(BLESSED_KEY, 0)
    blessing.set_int_custom_property(HAS_MODEL_KEY, 0)
    blessing.set_string_custom_property(FAILURE_KEY, failure)


def read_result(blessing_uri: str) -> Optional[Dict[str, Any]]:
  """What `check` recorded in a blessing (None: not written)."""
  path = os.path.join(blessing_uri, RESULT_FILE)
  if not fileio.exists(path):
    return None
  return json.loads(io_utils.read_string_file(path))
