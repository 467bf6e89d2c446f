"""The DatasetExampleGen on any spec: CSV with a header and gaps, headerless TSV and pipe
files, Parquet (with a list column), TFRecord of tf.Example, globs, side tables (CSV and
Parquet), every label rule and missing-label policy, ISO 8601 and millisecond times, the bad
inputs of issue 23 (each message naming file, line or row, column and the fix), quarantine,
and real executor runs on CSV, Parquet and the Chicago Taxi sample that ships with TFX."""

import copy
from typing import Any, Dict, List

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from components.example_gen import executor, reader
from components.example_gen.reader import DataError
from dataspec import spec as spec_lib
from tests.test_example_gen import run_executor

NOW = 1_700_000_000

BASE: Dict[str, Any] = {
    "name": "shop",
    "source": {"format": "csv", "path": "events.csv"},
    "label": {"column": "clicked", "binary": True},
    "time": {"column": "ts", "format": "unix_seconds"},
    "features": {
        "user": {"kind": "id", "role": "user", "missing": "error"},
        "item": {"kind": "id", "role": "item"},
        "price": {"kind": "numeric", "quantiles": 4},
        "qty": {"kind": "numeric", "type": "int", "lower_bounds": [0, 2, 5]},
        "tags": {"kind": "multivalent", "separator": "|"},
        "color": {"kind": "categorical", "domain_size": 3},
    },
    "slices": ["color"],
}

HEADER = "user,item,price,qty,tags,color,clicked,ts\n"


def make_spec(**changes) -> spec_lib.DatasetSpec:
  values = copy.deepcopy(BASE)
  for key, value in changes.items():
    target = values
    *path, last = key.split("__")
    for part in path:
      target = target[part]
    if value is None:
      target.pop(last, None)
    else:
      target[last] = value
  return spec_lib.parse(values, origin="test.yaml")


def read(spec, directory, **kwargs) -> List[tf.train.Example]:
  return [tf.train.Example.FromString(e) for e in
          executor.read_examples(spec, str(directory), now=NOW, **kwargs)]


def values(example: tf.train.Example) -> Dict[str, list]:
  """Feature -> its values (bytes decoded; floats rounded to float32 precision)."""
  out = {}
  for name, feature in example.features.feature.items():
    kind = feature.WhichOneof("kind")
    vals = list(getattr(feature, kind).value)
    out[name] = [v.decode() if isinstance(v, bytes) else v for v in vals]
  return out


def write(directory, name, text):
  path = directory / name
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(text, bytes):
    path.write_bytes(text)
  else:
    path.write_text(text)
  return path


def error(spec, directory, **kwargs) -> str:
  with pytest.raises(DataError) as e:
    read(spec, directory, **kwargs)
  return str(e.value)


# --- CSV ---


def test_csv_with_header_and_missing_values(tmp_path):
  write(tmp_path, "events.csv", HEADER +
        "u1,i1,9.5,3,a|b,red,1,1600000000\n"
        "u2,,,,,,0,1600000001\n"
        '"u3","i3",  2  ,0," c | |d ",blue,true,1600000002\n')
  first, second, third = (values(e) for e in read(make_spec(), tmp_path))
  assert first == {"user": ["u1"], "item": ["i1"], "price": [9.5], "qty": [3],
                   "tags": ["a", "b"], "color": ["red"], "clicked": [1], "ts": [1600000000]}
  # Empty fields are absent features: Transform applies each feature's missing treatment.
  assert second == {"user": ["u2"], "clicked": [0], "ts": [1600000001]}
  assert third == {"user": ["u3"], "item": ["i3"], "price": [2.0], "qty": [0],
                   "tags": ["c", "d"], "color": ["blue"], "clicked": [1], "ts": [1600000002]}


def test_csv_null_values_and_a_quoted_line_break(tmp_path):
  write(tmp_path, "events.csv", HEADER +
        'u1,NA,1.5,1,"x\ny",-,0,1600000000\n'
        "u2,i2,N/A,2,z,red,1,1600000001\n")
  spec = make_spec(source__csv={"null_values": ["", "NA", "N/A", "-"]})
  first, second = (values(e) for e in read(spec, tmp_path))
  assert first == {"user": ["u1"], "price": [1.5], "qty": [1], "tags": ["x\ny"],
                   "clicked": [0], "ts": [1600000000]}
  assert second["item"] == ["i2"] and "price" not in second


def test_rows_after_a_multi_line_record_keep_their_line_numbers(tmp_path):
  write(tmp_path, "events.csv", HEADER +
        'u1,i1,1,1,"a\nb\nc",red,1,1600000000\n'
        "u2,i2,two,1,a,red,1,1600000001\n")
  message = error(make_spec(), tmp_path)
  assert message.startswith(f"{tmp_path}/events.csv:5: price 'two' is not a number")


def test_headerless_tsv_and_pipe_files(tmp_path):
  columns = ["user", "item", "price", "qty", "tags", "color", "clicked", "ts"]
  write(tmp_path, "events.tsv", "u1\ti1\t1.5\t2\ta,b\tred\t0\t1600000000\n")
  tsv = make_spec(source={"path": "events.tsv", "csv": {
      "delimiter": "\t", "header": False, "columns": columns}},
      features__tags={"kind": "multivalent", "separator": ","})
  assert values(read(tsv, tmp_path)[0])["tags"] == ["a", "b"]
  write(tmp_path, "events.txt", "u1|i1|1.5|2|a;b|red|1|1600000000\nu2|i2|1|1|c|blue|1\n")
  pipe = make_spec(source={"path": "events.txt", "csv": {
      "delimiter": "|", "header": False, "columns": columns}},
      features__tags={"kind": "multivalent", "separator": ";"})
  message = error(pipe, tmp_path)
  assert message == (f"{tmp_path}/events.txt:2: expected 8 '|'-separated fields (user, item, "
                     "price, qty, tags, color, clicked, ts), found 7; csv.columns names 8 "
                     "columns: fix the row or remove it")


def test_latin1_file(tmp_path):
  write(tmp_path, "events.csv", (HEADER + "u1,caf\xe9,1,1,a,red,1,1600000000\n").encode(
      "latin-1"))
  spec = make_spec(source__csv={"encoding": "latin-1"})
  assert values(read(spec, tmp_path)[0])["item"] == ["café"]
  message = error(make_spec(), tmp_path)
  assert message.startswith(f"{tmp_path}/events.csv:2: not valid UTF-8 (byte 7 of the line is "
                            "b'\\xe9'); re-encode the file as UTF-8 or declare its encoding")


def test_glob_of_several_files_in_order(tmp_path):
  write(tmp_path, "events/b.csv", HEADER + "u2,i2,1,1,a,red,1,1600000001\n")
  write(tmp_path, "events/a.csv", HEADER + "u1,i1,1,1,a,red,0,1600000000\n")
  write(tmp_path, "events/notes.txt", "not a source file\n")
  spec = make_spec(source={"path": "events/*.csv"})
  assert [values(e)["user"] for e in read(spec, tmp_path)] == [["u1"], ["u2"]]
  write(tmp_path, "events/c.csv", HEADER)
  assert error(spec, tmp_path) == f"{tmp_path}/events/c.csv: no rows; the file is empty"


# --- Parquet and TFRecord ---


def _parquet_events(path, **overrides):
  columns = {
      "user": pa.array(["u1", "u2", "u3"]),
      "item": pa.array(["i1", None, "i3"]),
      "price": pa.array([1.5, None, 3.0]),
      "qty": pa.array([1, 2, None], pa.int64()),
      "tags": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
      "color": pa.array(["red", "blue", None]).dictionary_encode(),
      "clicked": pa.array([True, False, True]),
      "ts": pa.array([1600000000, 1600000001, 1600000002], pa.timestamp("s")),
  }
  columns.update(overrides)
  path.parent.mkdir(parents=True, exist_ok=True)
  pq.write_table(pa.table(columns), path, row_group_size=2)
  return path


def test_parquet_with_a_list_column_nulls_and_row_groups(tmp_path):
  _parquet_events(tmp_path / "events.parquet")
  spec = make_spec(source={"format": "parquet", "path": "events.parquet"},
                   label={"column": "clicked", "binary": True, "type": "int"})
  first, second, third = (values(e) for e in read(spec, tmp_path))
  assert first == {"user": ["u1"], "item": ["i1"], "price": [1.5], "qty": [1],
                   "tags": ["a", "b"], "color": ["red"], "clicked": [1], "ts": [1600000000]}
  assert second == {"user": ["u2"], "qty": [2], "color": ["blue"], "clicked": [0],
                    "ts": [1600000001]}
  assert set(third) == {"user", "item", "price", "clicked", "ts"}


def test_a_parquet_row_group_is_read_in_batches_that_keep_row_numbers(tmp_path):
  pq.write_table(pa.table({"user": [f"u{i}" for i in range(5)]}), tmp_path / "e.parquet")
  [unit] = reader.parquet_units(str(tmp_path / "e.parquet"))
  batches = list(reader.read_parquet_unit(unit, ["user"], batch_rows=2))
  assert [b.numbers.tolist() for b in batches] == [[1, 2], [3, 4], [5]]
  assert batches[2].text(0) == "user='u4'" and batches[2].where(0) == (
      f"{tmp_path}/e.parquet: row 5")


def test_parquet_bad_values_name_file_row_and_column(tmp_path):
  _parquet_events(tmp_path / "events.parquet", price=pa.array(["1.5", "cheap", "3"]),
                  qty=pa.array([1.0, 2.5, 3.0]))
  spec = make_spec(source={"format": "parquet", "path": "events.parquet"})
  message = error(spec, tmp_path, max_bad_rows=0)
  assert message == (f"{tmp_path}/events.parquet: row 2: price 'cheap' is not a number (type "
                     "float); write a finite number such as 3 or 2.5, or remove the row")
  bad: List[reader.BadRow] = []
  assert len(read(spec, tmp_path, max_bad_rows=2, bad_rows=bad)) == 2
  assert [(b.line, b.reason.split(": ", 2)[2][:24]) for b in bad] == [
      (2, "price 'cheap' is not a n")]


def _tf_example(**features) -> bytes:
  feature = {}
  for name, value in features.items():
    if isinstance(value, float):
      feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    elif isinstance(value, int):
      feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    else:
      items = value if isinstance(value, list) else [value]
      feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[v.encode() for v in items]))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.mark.parametrize("gzipped", [False, True])
def test_tfrecord_of_examples(tmp_path, gzipped):
  records = [
      _tf_example(user="u1", item="i1", price=1.5, qty=2, tags=["a", "b"], color="red",
                  clicked=1, ts=1600000000, extra="ignored"),
      _tf_example(user="u2", clicked=0, ts=1600000001),
  ]
  path = tmp_path / "events.tfrecord"
  options = tf.io.TFRecordOptions(compression_type="GZIP" if gzipped else "")
  with tf.io.TFRecordWriter(str(path), options) as w:
    for r in records:
      w.write(r)
  spec = make_spec(source={"format": "tfrecord", "path": "events.tfrecord"})
  first, second = (values(e) for e in read(spec, tmp_path))
  assert first == {"user": ["u1"], "item": ["i1"], "price": [1.5], "qty": [2],
                   "tags": ["a", "b"], "color": ["red"], "clicked": [1], "ts": [1600000000]}
  assert second == {"user": ["u2"], "clicked": [0], "ts": [1600000001]}


def test_tfrecord_records_of_the_wrong_type_are_named(tmp_path):
  path = tmp_path / "events.tfrecord"
  with tf.io.TFRecordWriter(str(path)) as w:
    w.write(_tf_example(user="u1", qty=2, clicked=1, ts=1600000000))
    w.write(_tf_example(user="u2", qty=2.5, clicked=1, ts=1600000000))
    w.write(_tf_example(user=["u3", "u4"], clicked=1, ts=1600000000))
  spec = make_spec(source={"format": "tfrecord", "path": "events.tfrecord"})
  bad: List[reader.BadRow] = []
  assert len(read(spec, tmp_path, max_bad_rows=2, bad_rows=bad)) == 1
  assert [b.reason.replace(str(path), "F") for b in bad] == [
      "F: record 2: qty 2.5 is not an integer (type int); write a whole number, or remove "
      "the row",
      "F: record 3: user holds 2 values; it is read as one value per row: declare its feature "
      "multivalent, or write one value"]
  write(tmp_path, "empty.tfrecord", b"")
  message = error(make_spec(source={"format": "tfrecord", "path": "empty.tfrecord"}), tmp_path)
  assert message == f"{tmp_path}/empty.tfrecord: no records; the file is empty"
  with tf.io.TFRecordWriter(str(tmp_path / "junk.tfrecord")) as w:
    w.write(_tf_example(user="u1", clicked=1, ts=1600000000))
    w.write(b"\xff\xfe not a proto")
  message = error(make_spec(source={"format": "tfrecord", "path": "junk.tfrecord"}), tmp_path)
  assert message.startswith(f"{tmp_path}/junk.tfrecord: record 2: not a tf.Example (")
  write(tmp_path, "text.tfrecord", "user,clicked\n")
  message = error(make_spec(source={"format": "tfrecord", "path": "text.tfrecord"}), tmp_path)
  assert message.startswith(f"{tmp_path}/text.tfrecord: record 1 onwards: not a readable "
                            "TFRecord file (")


# --- Side tables ---

SIDE_SPEC = dict(
    source={"path": "events.csv", "side_tables": [
        {"path": "items.csv", "key": "item", "columns": ["color", "tags"]},
        {"path": "users.parquet", "key": "user", "format": "parquet", "columns": ["qty"]}]})


def _side_files(tmp_path, items="item,color,tags\ni1,red,a|b\ni2,,c\n"):
  write(tmp_path, "events.csv", "user,item,price,clicked,ts\n"
        "u1,i1,1,1,1600000000\nu2,i2,2,0,1600000001\nu1,i9,3,0,1600000002\n")
  write(tmp_path, "items.csv", items)
  pq.write_table(pa.table({"user": ["u1", "u2"], "qty": pa.array([4, None], pa.int64())}),
                 tmp_path / "users.parquet")


def test_side_tables_csv_and_parquet_are_joined_by_key(tmp_path):
  _side_files(tmp_path)
  spec = make_spec(**SIDE_SPEC)
  bad: List[reader.BadRow] = []
  first, second = (values(e) for e in read(spec, tmp_path, max_bad_rows=1, bad_rows=bad))
  assert first == {"user": ["u1"], "item": ["i1"], "price": [1.0], "qty": [4],
                   "tags": ["a", "b"], "color": ["red"], "clicked": [1], "ts": [1600000000]}
  assert second == {"user": ["u2"], "item": ["i2"], "price": [2.0], "tags": ["c"],
                    "clicked": [0], "ts": [1600000001]}
  assert [b.reason for b in bad] == [
      f"{tmp_path}/events.csv:4: item 'i9' is not in items.csv (the side table joined on "
      "item); add a row for it there, or remove this row"]
  assert bad[0].text == "u1,i9,3,0,1600000002"


def test_a_key_twice_in_a_side_table_names_both_lines(tmp_path):
  _side_files(tmp_path, items="item,color,tags\ni1,red,a\ni2,blue,b\ni1,green,c\n")
  assert error(make_spec(**SIDE_SPEC), tmp_path) == (
      f"{tmp_path}/items.csv:4: key item 'i1' appears twice, also at {tmp_path}/items.csv:2; "
      "keep one of the two rows")


def test_missing_error_on_a_side_table_column_names_the_side_row(tmp_path):
  _side_files(tmp_path)
  spec = make_spec(**SIDE_SPEC, features__color={"kind": "categorical", "missing": "error"})
  message = error(spec, tmp_path, max_bad_rows=0)
  assert message.startswith(f"{tmp_path}/events.csv:3: color is missing (an empty field in "
                            "items.csv for item 'i2'); feature color declares missing: error")


# --- Labels ---


@pytest.mark.parametrize("label, raw, expected", [
    ({"column": "clicked", "positive_if": ">= 3.5"}, ["4", "3"], [[4.0], [3.0]]),
    ({"column": "clicked", "positive_if": "> 0", "type": "int"}, ["1", "0"], [[1], [0]]),
    ({"column": "clicked", "binary": True}, ["true", "FALSE"], [[1], [0]]),
    ({"column": "clicked", "binary": True, "type": "string"}, ["1", "false"],
     [["1"], ["false"]]),
    ({"column": "clicked", "positive_values": ["buy"]}, ["buy", "view"], [["buy"], ["view"]]),
    ({"column": "clicked", "positive_values": ["buy"], "negative_values": ["view"]},
     ["buy", "view"], [["buy"], ["view"]]),
])
def test_label_rules_write_the_label_as_its_type(tmp_path, label, raw, expected):
  write(tmp_path, "events.csv", HEADER + "".join(
      f"u{i},i,1,1,a,red,{r},1600000000\n" for i, r in enumerate(raw)))
  assert [values(e)["clicked"] for e in read(make_spec(label=label), tmp_path)] == expected


@pytest.mark.parametrize("label, raw, message", [
    ({"column": "clicked", "positive_if": ">= 3.5"}, "lots",
     "clicked 'lots' is not a number (the label, type float: rule clicked >= 3.5); write a "
     "finite number such as 3 or 2.5, or remove the row"),
    ({"column": "clicked", "binary": True}, "2",
     "clicked '2' is not 0/1 (the label, type int: rule clicked is 0/1): the label must be 0, "
     "1, true or false; fix it, or remove the row"),
    ({"column": "clicked", "positive_values": ["buy"], "negative_values": ["view"]}, "cart",
     "clicked 'cart' is neither positive (buy) nor negative (view); add it to "
     "label.positive_values or label.negative_values in the spec, or remove the row"),
    ({"column": "clicked", "binary": True}, "",
     "clicked is missing (an empty field); every row needs a label (label.missing: "
     "quarantine): fill it in, or declare label.missing: drop to drop such rows"),
])
def test_labels_the_rule_cannot_map_are_bad_rows(tmp_path, label, raw, message):
  good = label.get("positive_values", ["1"])[0]
  write(tmp_path, "events.csv", HEADER + f"u0,i,1,1,a,red,{good},1600000000\n"
        f"u1,i,1,1,a,red,{raw},1600000000\n")
  assert error(make_spec(label=label), tmp_path) == f"{tmp_path}/events.csv:3: {message}"


def test_missing_labels_dropped_and_counted(tmp_path):
  write(tmp_path, "events.csv", HEADER + "u0,i,1,1,a,red,1,1600000000\n"
        "u1,i,1,1,a,red,,1600000000\nu2,i,1,1,a,red,0,1600000000\n")
  spec = make_spec(label={"column": "clicked", "binary": True, "missing": "drop"})
  assert [values(e)["user"] for e in read(spec, tmp_path)] == [["u0"], ["u2"]]
  written = run_executor(tmp_path, tmp_path / "out", spec=spec)
  assert written["artifact"].get_int_custom_property(executor.DROPPED_ROWS_PROPERTY) == 1
  assert written["artifact"].get_int_custom_property(executor.QUARANTINED_ROWS_PROPERTY) == 0


# --- Time ---


def test_iso8601_times(tmp_path):
  times = ["2020-09-13T12:26:40Z", "2020-09-13 14:26:40+02:00", "2020-09-13T12:26:40.999",
           "2020-09-13", "2020-09-13T12:26"]
  write(tmp_path, "events.csv", HEADER + "".join(
      f"u{i},i,1,1,a,red,1,{t}\n" for i, t in enumerate(times)))
  spec = make_spec(time={"column": "ts", "format": "iso8601"})
  assert [values(e)["ts"][0] for e in read(spec, tmp_path)] == [
      1600000000, 1600000000, 1600000000, 1599955200, 1599999960]
  write(tmp_path, "events.csv", HEADER + "u0,i,1,1,a,red,1,13/09/2020\n")
  assert error(spec, tmp_path) == (
      f"{tmp_path}/events.csv:2: ts '13/09/2020' is not an ISO 8601 time (time.format: "
      "iso8601), e.g. 2014-05-16T19:45:00Z or 2014-05-16 19:45:00; fix it, or remove the row")


def test_unix_millis_and_fractional_seconds(tmp_path):
  write(tmp_path, "events.csv", HEADER + "u0,i,1,1,a,red,1,1600000000999\n")
  spec = make_spec(time={"column": "ts", "format": "unix_millis"})
  assert values(read(spec, tmp_path)[0])["ts"] == [1600000000]
  write(tmp_path, "events.csv", HEADER + "u0,i,1,1,a,red,1,1600000000.0\n")
  assert values(read(make_spec(), tmp_path)[0])["ts"] == [1600000000]


def test_times_after_ingestion_are_bad_rows(tmp_path):
  write(tmp_path, "events.csv", HEADER + f"u0,i,1,1,a,red,1,{NOW + 1}\n")
  assert error(make_spec(), tmp_path).startswith(
      f"{tmp_path}/events.csv:2: ts {NOW + 1} (2023-11-14 22:13:21 UTC) is after the time of "
      "ingestion (2023-11-14 22:13:20 UTC)")


# --- Bad input (issue 23, item 8) and quarantine ---


def test_a_value_of_the_wrong_type_names_column_and_value(tmp_path):
  write(tmp_path, "events.csv", HEADER + "u0,i,1,1,a,red,1,1600000000\n"
        "u1,i,1,several,a,red,1,1600000000\n")
  assert error(make_spec(), tmp_path) == (
      f"{tmp_path}/events.csv:3: qty 'several' is not an integer (type int); write a whole "
      "number, or remove the row")


def test_missing_error_feature_is_a_bad_row(tmp_path):
  write(tmp_path, "events.csv", HEADER + ",i,1,1,a,red,1,1600000000\n")
  assert error(make_spec(), tmp_path) == (
      f"{tmp_path}/events.csv:2: user is missing (an empty field); feature user declares "
      "missing: error: fill it in, or declare missing: token (a value of its own) or "
      "missing: {default: VALUE}")


def test_a_column_the_file_lacks_at_run_time(tmp_path):
  write(tmp_path, "events.csv", "user,item,price,qty,tags,colour,clicked,ts\n"
        "u0,i,1,1,a,red,1,1600000000\n")
  assert error(make_spec(), tmp_path) == (
      f"dataset spec test.yaml: features.color names column 'color', which "
      f"{tmp_path}/events.csv does not have; its columns are user, item, price, qty, tags, "
      "colour, clicked, ts. Fix the spec or the file")


def test_empty_files(tmp_path):
  write(tmp_path, "events.csv", "")
  assert error(make_spec(), tmp_path) == f"{tmp_path}/events.csv: no rows; the file is empty"
  write(tmp_path, "events.csv", HEADER)
  assert error(make_spec(), tmp_path) == f"{tmp_path}/events.csv: no rows; the file is empty"
  pq.write_table(pa.table({"user": pa.array([], pa.string())}), tmp_path / "e.parquet")
  assert error(make_spec(source={"format": "parquet", "path": "e.parquet"}), tmp_path) == \
      f"{tmp_path}/e.parquet: no rows; the file is empty"


def test_quarantine_under_max_bad_rows(tmp_path):
  write(tmp_path, "events.csv", HEADER + "u0,i,1,1,a,red,1,1600000000\n"
        "u1,i,1,1,a,red,1\n"
        "u2,i,x,1,a,red,1,1600000000\n"
        "u3,i,1,1,a,red,1,1600000000\n")
  quarantine = tmp_path / "q.tsv"
  examples = read(make_spec(), tmp_path, max_bad_rows=2, quarantine_path=str(quarantine))
  assert [values(e)["user"] for e in examples] == [["u0"], ["u3"]]
  rows = [line.split("\t") for line in quarantine.read_text().splitlines()]
  assert rows[0] == ["file", "line", "reason", "row"]
  assert [(r[1], r[3]) for r in rows[1:]] == [("3", "u1,i,1,1,a,red,1"),
                                               ("4", "u2,i,x,1,a,red,1,1600000000")]
  assert "expected 8 comma-separated fields" in rows[1][2]
  assert "price 'x' is not a number" in rows[2][2]
  message = error(make_spec(), tmp_path, max_bad_rows=1)
  assert message.startswith(f"{tmp_path}/events.csv:4: price 'x'")
  assert message.endswith("(more than --max-bad-rows=1 bad rows)")


def test_parquet_span_whose_schema_changed(tmp_path):
  _parquet_events(tmp_path / "span-1" / "events.parquet")
  _parquet_events(tmp_path / "span-2" / "events.parquet", qty=pa.array(["1", "2", "3"]))
  spec = make_spec(source={"format": "parquet", "path": "span-{SPAN}/events.parquet"},
                   label={"column": "clicked", "binary": True, "type": "int"})
  with pytest.raises(DataError) as e:
    executor.read_examples(spec, str(tmp_path), pattern="span-2/events.parquet",
                           span_pattern="span-{SPAN}/events.parquet", span=2, now=NOW)
  assert str(e.value) == (
      f"{tmp_path}/span-2/events.parquet: its Parquet schema differs from "
      f"{tmp_path}/span-1/events.parquet's: column qty was int64, is string. Write every file "
      "of the feed with the same columns and types, or rewrite the older files")


# --- Real executor runs (Beam) ---


def test_executor_on_csv_and_parquet(tmp_path):
  write(tmp_path, "events.csv", HEADER + "".join(
      f"u{i},i{i % 7},{i / 4},{i % 5},a|b,red,{i % 2},{1600000000 + i}\n" for i in range(300)))
  csv_run = run_executor(tmp_path, tmp_path / "out_csv", spec=make_spec())
  assert len(csv_run["train"]) + len(csv_run["eval"]) == 300
  table = pa.table({"user": [f"u{i}" for i in range(300)],
                    "clicked": pa.array([i % 2 for i in range(300)], pa.int64()),
                    "tags": [["a"] if i % 3 else None for i in range(300)],
                    "ts": pa.array([1600000000 + i for i in range(300)], pa.int64())})
  pq.write_table(table, tmp_path / "events.parquet", row_group_size=64)
  spec = make_spec(source={"format": "parquet", "path": "events.parquet"},
                   features={"user": {"kind": "id"}, "tags": {"kind": "multivalent"}},
                   slices=[])
  parquet_run = run_executor(tmp_path, tmp_path / "out_parquet", spec=spec)
  examples = [tf.train.Example.FromString(e) for e in
              parquet_run["train"] + parquet_run["eval"]]
  assert len(examples) == 300
  assert sum("tags" in e.features.feature for e in examples) == 200


def test_executor_on_the_chicago_taxi_sample(tmp_path):
  values_, origin = spec_lib.read_file(spec_lib.preset_path("taxi"))
  values_.pop("schema")
  spec = spec_lib.parse(values_, origin=origin, base_dir=spec_lib.PRESETS_DIR)
  data_dir = spec_lib.resolve_data_dir(spec, None)
  written = run_executor(data_dir, tmp_path / "out", spec=spec)
  examples = [tf.train.Example.FromString(e) for e in written["train"] + written["eval"]]
  assert len(examples) == 15_002
  assert 0.75 < len(written["train"]) / len(examples) < 0.85
  present = {name: sum(name in e.features.feature for e in examples)
             for name in spec.raw_columns}
  # The sample's empty fields are absent features; complete columns are always there.
  assert present["company"] == 15_002 - 5_140
  assert present["dropoff_census_tract"] == 15_002 - 4_241
  assert present["trip_seconds"] == 15_002 - 6
  assert present["big_tipper"] == present["trip_start_timestamp"] == 15_002
  one = next(e for e in examples if "company" in e.features.feature)
  assert one.features.feature["fare"].WhichOneof("kind") == "float_list"
  assert one.features.feature["trip_start_hour"].WhichOneof("kind") == "bytes_list"
  assert one.features.feature["big_tipper"].WhichOneof("kind") == "int64_list"


def test_stray_quotes_are_read_line_by_line_and_named(tmp_path):
  # A quote inside an unquoted field is data (as pyarrow and Python's csv read it); a field
  # that opens a quote and never closes it is a bad row. Either way every row keeps its line.
  write(tmp_path, "events.csv", HEADER + "u0,i,1,1,a,red,1,1600000000\n"
        'u1,i"x,1,1,a,red,1,1600000000\n'
        'u2,"i,1,1,a,red,1,1600000000\n'
        "u3,i,zz,1,a,red,1,1600000000\n"
        "u4,i,1,1,a,red,1,1600000000\n")
  bad: List[reader.BadRow] = []
  examples = read(make_spec(), tmp_path, max_bad_rows=2, bad_rows=bad)
  assert [values(e)["user"] for e in examples] == [["u0"], ["u1"], ["u4"]]
  assert values(examples[1])["item"] == ['i"x']
  assert [b.line for b in bad] == [4, 5]
  assert bad[0].reason.startswith(f"{tmp_path}/events.csv:4: cannot parse the row (")
  assert bad[0].reason.endswith("or declare csv.quoting: false")
  assert bad[1].reason.startswith(f"{tmp_path}/events.csv:5: price 'zz' is not a number")
  spec = make_spec(source__csv={"quoting": False})
  assert [values(e)["item"] for e in read(spec, tmp_path, max_bad_rows=1)] == [
      ["i"], ['i"x'], ['"i'], ["i"]]


def test_parquet_bytes_that_are_not_utf8_and_nan(tmp_path):
  _parquet_events(tmp_path / "events.parquet",
                  item=pa.array([b"i1", b"\xff", b"i3"], pa.binary()),
                  price=pa.array([1.0, 2.0, float("nan")]))
  spec = make_spec(source={"format": "parquet", "path": "events.parquet"},
                   label={"column": "clicked", "binary": True, "type": "int"})
  bad: List[reader.BadRow] = []
  assert len(read(spec, tmp_path, max_bad_rows=2, bad_rows=bad)) == 1
  assert [b.reason.replace(str(tmp_path), "D") for b in bad] == [
      "D/events.parquet: row 2: item b'\\xff' is not valid UTF-8; write it as UTF-8 text, or "
      "remove the row",
      "D/events.parquet: row 3: price nan is not a finite number (type float); write a number "
      "or a missing value (null), or remove the row"]


def test_a_side_table_without_a_column_it_should_bring(tmp_path):
  _side_files(tmp_path)
  pq.write_table(pa.table({"user": ["u1", "u2"]}), tmp_path / "users.parquet")
  assert error(make_spec(**SIDE_SPEC), tmp_path) == (
      f"{tmp_path}/users.parquet: no column 'qty' (the side table joined on user); it has "
      "user. Fix the spec's side table or the file")
