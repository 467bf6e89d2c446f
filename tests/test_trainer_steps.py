"""A failure inside the Trainer is one readable message: the step, its files, the cause and
what to try. TensorFlow's trace goes to the run log, not to the screen.

`run_fn` runs on real gzipped TFRecords with 16 bytes flipped in the middle (gzip's CRC
finds that every time; a file cut short is not always found: when the cut falls between
two records, TensorFlow's gzip reader returns the records before it without an error).
A damaged training split fails while it is counted (an eager op's error), a damaged
evaluation split while the model is evaluated (a graph's error, whose message holds the
Python trace of the op).
"""

import logging

import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.tf_metadata import metadata_io
from tfx.components.trainer.fn_args_utils import FnArgs

from pipeline import local_runner, progress
from trainer import features, run_fn as run_fn_lib, steps
from tests.specs import FEATURES, MOVIELENS
from trainer.config import TrainingConfig

# Lines of TensorFlow's trace in an op error's message; none may reach the screen.
TRACE_MARKERS = ("Detected at node", "most recent call last", 'File "', "[Op:",
                 "{{function_node", "[[{{node")


def _write(path, num):
  with tf.io.TFRecordWriter(str(path), options="GZIP") as w:
    for i in range(num):
      feature = {f: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"%d" % (i % 7)]))
                 for f in FEATURES}
      feature[features.LABEL] = tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))
      w.write(tf.train.Example(features=tf.train.Features(feature=feature))
              .SerializeToString())


def _corrupt(path):
  data = bytearray(path.read_bytes())
  middle = len(data) // 2
  data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
  path.write_bytes(bytes(data))


def _fn_args(tmp_path, train_file, eval_file):
  """FnArgs as TFX's Trainer gives them, with the transformed schema Transform writes."""
  spec = {f: tf.io.FixedLenFeature([1], tf.string) for f in FEATURES}
  spec[features.LABEL] = tf.io.FixedLenFeature([1], tf.int64)
  transform = tmp_path / "transform"
  metadata_io.write_metadata(tft.DatasetMetadata.from_feature_spec(spec),
                             str(transform / tft.TFTransformOutput.TRANSFORMED_METADATA_DIR))
  training = TrainingConfig(epochs=1, batch_size=32, eval_batch_size=32, shuffle_buffer=100)
  return FnArgs(train_files=[str(train_file)], eval_files=[str(eval_file)],
                transform_graph_path=str(transform),
                serving_model_dir=str(tmp_path / "serving"),
                model_run_dir=str(tmp_path / "model_run"),
                custom_config={"training": training.to_dict(),
                               features.DATASET_KEY: MOVIELENS.to_json()})


@pytest.mark.parametrize("cut,step", [
    ("train", "counting the training examples"),
    ("eval", "training and evaluating the model"),
])
def test_a_corrupt_input_file_fails_with_the_step_the_file_and_no_trace(tmp_path, cut, step):
  files = {"train": tmp_path / "train.gz", "eval": tmp_path / "eval.gz"}
  for path in files.values():
    _write(path, 300)
  _corrupt(files[cut])
  with pytest.raises(steps.TrainerStepError) as raised:
    run_fn_lib.run_fn(_fn_args(tmp_path, files["train"], files["eval"]))
  message = str(raised.value)
  assert message.startswith(f"{step} failed on ")
  assert str(files[cut]) in message
  failure, what_to_try = message.splitlines()
  assert "DataLossError" in failure
  assert what_to_try.startswith("  Try: ") and "--no-cache" in what_to_try
  assert isinstance(raised.value.__cause__, tf.errors.DataLossError)
  assert not [m for m in TRACE_MARKERS if m in message]
  # What the runner prints (`uet run: FAILED: <this>`): the component, then the message.
  shown = str(local_runner.PipelineRunError("BaselineTrainer", raised.value))
  assert shown == f"component BaselineTrainer failed: TrainerStepError: {message}"
  if cut == "eval":
    # The graph's error held the trace that stayed off the screen.
    assert "Detected at node" in raised.value.__cause__.message


def test_the_run_log_keeps_the_trace_the_screen_leaves_out(tmp_path):
  path = tmp_path / "train.gz"
  _write(path, 300)
  _corrupt(path)
  with pytest.raises(steps.TrainerStepError) as raised:
    with steps.step("counting the training examples", [str(path)], "something"):
      from trainer import train  # pylint: disable=g-import-not-at-top
      train.count_files([str(path)])
  log_file = tmp_path / "logs" / "run.log"
  with progress.LogsToFile(str(log_file)):
    local_runner.log_failure(raised.value)
  log = log_file.read_text()
  assert str(raised.value) in log
  assert "Traceback (most recent call last)" in log
  # The cause, TensorFlow's own error, with its op: what the screen did not show.
  assert "The above exception was the direct cause" in log
  assert "DataLossError" in log and "[Op:" in log


@pytest.mark.parametrize("error_type,text,expected", [
    # A graph's error (Keras fit): the Python trace of the op, the message, the node, advice.
    (tf.errors.ResourceExhaustedError,
     "Graph execution error:\n\nDetected at node IteratorGetNext defined at (most recent "
     "call last):\n  File \"x.py\", line 1, in f\n\nOutput buffer(size: 262144 bytes) too "
     "small. Should be larger than 268054 bytes.\n\t [[{{node IteratorGetNext}}]]\nHint: "
     "If you want to see a list of allocated tensors\n [Op:__inference_train_function_1]",
     "ResourceExhaustedError: Output buffer(size: 262144 bytes) too small. Should be "
     "larger than 268054 bytes."),
    # An eager op's error: the function node, the message, the op.
    (tf.errors.DataLossError,
     "{{function_node __wrapped__ReduceDataset_device_/job:localhost}} truncated record at "
     "42' failed with EOF reached [Op:ReduceDataset] name: ",
     "DataLossError: truncated record at 42' failed with EOF reached"),
])
def test_the_cause_line_is_the_ops_own_message(error_type, text, expected):
  assert steps.cause_line(error_type(None, None, text)) == expected


def test_a_step_names_itself_once_and_keeps_the_cause():
  with pytest.raises(steps.TrainerStepError) as raised:
    with steps.step("outer", ["a"], "x"):
      with steps.step("inner", ["b", "c", "d", "e", "f"], "y"):
        raise OSError("No space left on device\nmore detail")
  assert str(raised.value) == ("inner failed on b, c, d (and 2 more): OSError: No space left "
                               "on device\n  Try: y")
  assert isinstance(raised.value.__cause__, OSError)
