"""Replays a SavedModel's TF Serving warm-up requests in this process; the ServingCheck's
fresh process.

  python -m components.serving_check.serve SAVED_MODEL RESULT_JSON

Loads SAVED_MODEL with `tf.saved_model.load` (what a model server does: no Keras, no
project code, no Transform in Python), reads its `assets.extra/tf_serving_warmup_requests`
(TFRecord of `tensorflow_serving.apis.PredictionLog`), calls each PredictRequest's signature
with the request's input tensors and writes to RESULT_JSON, one entry per request:
{"signature", "batch", "outputs": {output name: values as a flat list}}. Exits 1 with the
error written to RESULT_JSON as {"error": ...} when the model does not load or a request
fails.
"""

import json
import os
import sys
from typing import Any, Dict, List

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def replay(saved_model: str) -> List[Dict[str, Any]]:
  """Scores every warm-up request of `saved_model`; see the module docstring."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tensorflow_serving.apis import prediction_log_pb2
  # pylint: enable=g-import-not-at-top
  loaded = tf.saved_model.load(saved_model)
  results = []
  records = tf.data.TFRecordDataset(os.path.join(saved_model, WARMUP_FILE))
  for i, record in enumerate(records):
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    if log.WhichOneof("log_type") != "predict_log":
      raise ValueError(f"warm-up request {i} is a {log.WhichOneof('log_type')}, not a "
                       "PredictRequest")
    request = log.predict_log.request
    name = request.model_spec.signature_name or "serving_default"
    if name not in loaded.signatures:
      raise ValueError(f"warm-up request {i} asks for signature {name!r}; the model has "
                       f"{sorted(loaded.signatures)}")
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    outputs = loaded.signatures[name](**inputs)
    batch = max(int(v.shape[0]) for v in inputs.values())
    results.append({"signature": name, "batch": batch,
                    "outputs": {k: v.numpy().astype(float).reshape(-1).tolist()
                                for k, v in outputs.items()}})
  if not results:
    raise ValueError(f"{os.path.join(saved_model, WARMUP_FILE)} holds no requests")
  return results


def main(argv: List[str]) -> int:
  saved_model, result_path = argv[1:3]
  try:
    result: Any = {"requests": replay(saved_model)}
    code = 0
  except Exception as e:  # pylint: disable=broad-except
    result, code = {"error": f"{type(e).__name__}: {e}"}, 1
  with open(result_path, "w") as f:
    # NaN and infinities are written as JSON's NaN / Infinity: the caller checks them.
    json.dump(result, f)
  return code


if __name__ == "__main__":
  # The environment (TF_USE_LEGACY_KERAS, TF_CPP_MIN_LOG_LEVEL) is the parent's.
  sys.exit(main(sys.argv))
