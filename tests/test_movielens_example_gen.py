"""The MovieLens ExampleGen: parsing, the join, errors that name file and line, and the
executor writing deterministic 80/20 splits from a small real directory."""

import os

import pytest
import tensorflow as tf
from tfx.components.example_gen import utils as example_gen_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.movielens_example_gen import batch_reader, component, executor, reader
from tests.conftest import write_movielens_slice


def _write(directory, ratings, users="1|24|M|technician|85711\n2|53|F|other|94043\n"):
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "u.data").write_bytes(ratings if isinstance(ratings, bytes) else ratings.encode())
  if users is not None:
    (directory / "u.user").write_bytes(users if isinstance(users, bytes) else users.encode())
  return directory


def test_rating_joined_with_user_demographics(tmp_path):
  d = _write(tmp_path, "1\t242\t3\t881250949\n2\t302\t5\t891717742\n")
  examples = [tf.train.Example.FromString(s)
              for s in executor.read_examples(str(d / "u.data"), str(d))]
  first = examples[0].features.feature
  assert first["user_id"].bytes_list.value == [b"1"]
  assert first["movie_id"].bytes_list.value == [b"242"]
  assert first["rating"].int64_list.value == [3]
  assert first["timestamp"].int64_list.value == [881250949]
  assert first["user_age"].int64_list.value == [24]
  assert first["user_gender"].bytes_list.value == [b"M"]
  assert first["user_occupation"].bytes_list.value == [b"technician"]
  assert first["user_zip_code"].bytes_list.value == [b"85711"]
  assert examples[1].features.feature["user_gender"].bytes_list.value == [b"F"]


@pytest.mark.parametrize("ratings, message", [
    ("1\t242\t3\n", "u.data:1: expected 4 tab-separated fields"),
    ("1\t242\t3\t881250949\n1\t242\tfive\t881250949\n", "u.data:2: rating 'five' is not an integer"),
    ("3\t242\t3\t881250949\n", "u.data:1: user_id '3' is not in u.user"),
    ("", "no valid ratings; the file is empty"),
])
def test_malformed_ratings_name_file_and_line(tmp_path, ratings, message):
  d = _write(tmp_path, ratings)
  with pytest.raises(reader.MovieLensFormatError, match=message):
    executor.read_examples(str(d / "u.data"), str(d))


def test_missing_user_file_is_named(tmp_path):
  d = _write(tmp_path, "1\t242\t3\t881250949\n", users=None)
  with pytest.raises(reader.MovieLensFormatError, match="u.user: file not found"):
    executor.read_examples(str(d / "u.data"), str(d))


def test_non_utf8_user_field_names_line(tmp_path):
  d = _write(tmp_path, "1\t242\t3\t881250949\n",
             users=b"1|24|M|technician|85711\n2|53|F|oth\xffer|94043\n")
  with pytest.raises(reader.MovieLensFormatError, match=r"u.user:2: not valid UTF-8"):
    executor.read_examples(str(d / "u.data"), str(d))


def test_quarantine_keeps_good_rows_up_to_the_limit(tmp_path):
  d = _write(tmp_path, "1\t242\t3\t881250949\n1\tbad\n2\t302\t5\t891717742\n")
  quarantine = tmp_path / "q" / "quarantine.tsv"
  examples = executor.read_examples(str(d / "u.data"), str(d), max_bad_rows=1,
                                    quarantine_path=str(quarantine))
  assert len(examples) == 2
  rows = quarantine.read_text().splitlines()
  assert rows[0] == "file\tline\treason\trow"
  assert rows[1].split("\t")[1] == "2" and "expected 4 tab-separated fields" in rows[1]
  with pytest.raises(reader.MovieLensFormatError, match="more than --max-bad-rows=1"):
    _write(tmp_path, "1\tbad\n1\tworse\n1\t242\t3\t881250949\n", users=None)
    executor.read_examples(str(d / "u.data"), str(d), max_bad_rows=1)


def _run_executor(input_base, output_dir):
  examples = standard_artifacts.Examples()
  examples.uri = str(output_dir)
  gen = component.MovieLensExampleGen(input_base=str(input_base))
  exec_properties = dict(gen.exec_properties)
  for key in (standard_component_specs.INPUT_CONFIG_KEY,
              standard_component_specs.OUTPUT_CONFIG_KEY,
              standard_component_specs.CUSTOM_CONFIG_KEY):
    if not isinstance(exec_properties[key], str):
      exec_properties[key] = proto_utils.proto_to_json(exec_properties[key])
  input_config = example_gen_pb2.Input()
  proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                            input_config)
  exec_properties[example_gen_utils.SPAN_PROPERTY_NAME] = 0
  exec_properties[example_gen_utils.FINGERPRINT_PROPERTY_NAME] = ""
  executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]},
                         exec_properties)
  counts = {}
  for split in ("train", "eval"):
    uri = artifact_utils.get_split_uri([examples], split)
    files = tf.io.gfile.glob(os.path.join(uri, "*"))
    counts[split] = [tf.train.Example.FromString(r.numpy()).SerializeToString()
                     for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
  return counts


def test_executor_writes_deterministic_80_20_splits(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 2000)
  first = _run_executor(data, tmp_path / "out1")
  second = _run_executor(data, tmp_path / "out2")
  total = len(first["train"]) + len(first["eval"])
  assert total == 2000
  assert 0.75 < len(first["train"]) / total < 0.85
  assert sorted(first["train"]) == sorted(second["train"])
  assert sorted(first["eval"]) == sorted(second["eval"])
  assert not set(first["train"]) & set(first["eval"])


def test_executor_writes_each_split_in_file_order(tmp_path):
  # No shuffle before writing (TFX's Reshuffle held whole splits in memory): the Trainer
  # shuffles. Ratings sorted by time are written in time order in each split.
  data = write_movielens_slice(tmp_path / "ml", 2000)
  lines = (data / "u.data").read_text().splitlines()
  lines.sort(key=lambda line: int(line.split("\t")[3]))
  (data / "u.data").write_text("\n".join(lines) + "\n")
  written = _run_executor(data, tmp_path / "out")
  for split, examples in written.items():
    times = [tf.train.Example.FromString(e).features.feature["timestamp"].int64_list.value[0]
             for e in examples]
    assert times == sorted(times), split


# The batch path (pyarrow) must produce exactly what the row path produces, and send every
# file it does not accept in full to the row path.

def test_batch_path_is_byte_identical_to_the_row_path_on_real_data(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 3000, every=7)
  users = reader.read_users(str(data / "u.user"))
  assert batch_reader.scan_ratings(str(data / "u.data"), users) == 3000
  batch = executor.read_examples(str(data / "u.data"), str(data))
  rows = executor._read_examples_row_by_row(str(data / "u.data"), users, 0, "", None)
  assert batch == rows


def test_serialization_matches_protobuf_for_long_strings_and_large_or_negative_ints(tmp_path):
  long_zip = "z" * 300  # lengths above 127 need two-byte varints at every level
  d = _write(tmp_path, "1\t242\t3\t-5\n2\t302\t9223372036854775807\t891717742\n1\t7\t1\t0\n",
             users=f"1|24|M|technician|{long_zip}\n2|53|F|other|94043\n")
  users = reader.read_users(str(d / "u.user"))
  batch = executor.read_examples(str(d / "u.data"), str(d))
  assert batch == executor._read_examples_row_by_row(str(d / "u.data"), users, 0, "", None)
  assert tf.train.Example.FromString(batch[0]).features.feature[
      "timestamp"].int64_list.value == [-5]


def test_byte_ranges_cover_the_file_on_line_boundaries(tmp_path):
  data = write_movielens_slice(tmp_path / "ml", 500)
  path = str(data / "u.data")
  ranges = batch_reader.ratings_byte_ranges(path, block_bytes=1000)
  assert len(ranges) > 5
  assert ranges[0][0] == 0 and ranges[-1][1] == os.path.getsize(path)
  assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
  content = (data / "u.data").read_bytes()
  assert all(content[end - 1:end] == b"\n" for _, end in ranges)
  assert sum(batch_reader.read_ratings_range(path, s, e).num_rows for s, e in ranges) == 500


@pytest.mark.parametrize("ratings", [
    "1\t242\t3\t881250949\n1\t242\t3\n",            # too few fields
    "1\t242\tfive\t881250949\n",                    # not an integer
    "1\t242\t\t881250949\n",                        # empty rating
    "1\t242\tNA\t881250949\n",                      # a null spelling is not a rating
    "3\t242\t3\t881250949\n",                       # unknown user
    "1\t\t3\t881250949\n",                          # empty movie_id
    " 1\t242\t3\t881250949\n",                      # whitespace the row path strips
    b"1\t24\xff2\t3\t881250949\n",                  # not UTF-8
    "",                                             # empty file
])
def test_files_the_batch_path_does_not_accept_go_to_the_row_path(tmp_path, ratings):
  d = _write(tmp_path, ratings)
  users = reader.read_users(str(d / "u.user"))
  # Whitespace around an id is valid for the row path (it strips it); the batch path
  # leaves such files to it rather than strip differently.
  assert batch_reader.scan_ratings(str(d / "u.data"), users) is None


@pytest.mark.parametrize("ratings", [
    "1\t242\t3\t881250949\r\n\n2\t302\t5\t891717742\r\n\n",  # CRLF and blank lines
    "1\t2\"42\t3\t881250949\n2\t\"302\t5\t891717742\n",        # a quote is data
])
def test_unusual_but_valid_files_take_the_batch_path_with_the_same_result(tmp_path, ratings):
  d = _write(tmp_path, ratings)
  users = reader.read_users(str(d / "u.user"))
  assert batch_reader.scan_ratings(str(d / "u.data"), users) == 2
  assert executor.read_examples(str(d / "u.data"), str(d)) == \
      executor._read_examples_row_by_row(str(d / "u.data"), users, 0, "", None)


@pytest.mark.parametrize("timestamp_range, accepted", [
    ((None, None), 2),
    ((881250949, 891717742), 2),
    ((881250950, None), None),   # one rating too early: the row path decides
    ((None, 891717741), None),   # one rating too late
])
def test_batch_path_leaves_timestamps_outside_a_range_to_the_row_path(
    tmp_path, timestamp_range, accepted):
  d = _write(tmp_path, "1\t242\t3\t881250949\n2\t302\t5\t891717742\n")
  users = reader.read_users(str(d / "u.user"))
  assert batch_reader.scan_ratings(str(d / "u.data"), users, timestamp_range) == accepted
