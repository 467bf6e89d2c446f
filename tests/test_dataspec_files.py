"""Plan-time checks of a spec against its files: headers and schemas only, before TensorFlow
loads; every refusal names the file, the spec key and what to fix."""

import os
import shutil
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataspec import files
from dataspec import spec as spec_lib
from dataspec.spec import SpecError
from tests.conftest import REPO
from tests.test_example_gen_formats import BASE, HEADER, make_spec, write

MOVIELENS = spec_lib.load("movielens")
ORIGIN = MOVIELENS.origin


def _movielens(directory, ratings="1\t242\t3\t881250949\n",
               users="1|24|M|technician|85711\n"):
  directory.mkdir(parents=True, exist_ok=True)
  if ratings is not None:
    (directory / "u.data").write_text(ratings)
  if users is not None:
    (directory / "u.user").write_text(users)
  return directory


def _refusal(spec, directory) -> str:
  with pytest.raises(SpecError) as e:
    files.check(spec, str(directory))
  return str(e.value)


def test_movielens_directory(tmp_path, ml100k):
  found = files.check(MOVIELENS, str(ml100k))
  assert found == files.DataFiles(str(ml100k), "u.data", (str(ml100k / "u.data"),),
                                  (str(ml100k / "u.user"),))
  assert not found.spans


def test_the_span_layout_is_found_without_a_span_pattern(tmp_path):
  feed = _movielens(tmp_path / "feed", ratings=None)
  _movielens(feed / "span-1", users=None)
  _movielens(feed / "span-12", users=None)
  _movielens(feed / "span-3", users=None)
  found = files.check(MOVIELENS, str(feed))
  assert found.pattern == "span-{SPAN}/u.data" and found.spans
  assert found.files == (str(feed / "span-12" / "u.data"),)
  assert found.side_tables == (str(feed / "u.user"),)
  # A span directory may carry its own side table.
  _movielens(feed / "span-12", ratings=None)
  assert files.check(MOVIELENS, str(feed)).side_tables == (str(feed / "span-12" / "u.user"),)


def test_missing_and_empty_files(tmp_path):
  d = _movielens(tmp_path, users=None)
  assert _refusal(MOVIELENS, d) == (
      f"{d}/u.user: missing; source.side_tables[0] of dataset spec {ORIGIN} names it: put the "
      f"file in {d}, or fix source.side_tables[0].path")
  os.remove(d / "u.data")
  assert _refusal(MOVIELENS, d) == (
      f"{d}/u.data: missing; source.path of dataset spec {ORIGIN} names it: put the file in "
      f"{d}, or fix source.path")
  _movielens(d, ratings="")
  assert _refusal(MOVIELENS, d) == (
      f"{d}/u.data: the file is empty (source.path of dataset spec {ORIGIN}): write its rows "
      "there (an interrupted export leaves such files), or point the spec at another file")
  assert _refusal(MOVIELENS, d / "u.data") == f"--data-dir {d}/u.data: not a directory"


def test_a_headerless_file_with_another_number_of_fields(tmp_path):
  d = _movielens(tmp_path, ratings="1\t242\t3\n")
  assert _refusal(MOVIELENS, d) == (
      f"{d}/u.data:1: 3 tab-separated fields, but csv.columns names 4 (user_id, movie_id, "
      f"rating, timestamp); fix csv.columns or csv.delimiter in the spec (source.path of "
      f"dataset spec {ORIGIN})")
  _movielens(d, ratings="1\t242\t3\t881250949\n", users="1,24,M,technician,85711\n")
  assert "u.user:1: 1 '|'-separated fields, but csv.columns names 5" in _refusal(MOVIELENS, d)


def test_a_column_the_file_lacks_names_the_spec_key(tmp_path):
  write(tmp_path, "events.csv", HEADER.replace("qty", "quantity") + "u,i,1,1,a,r,1,1\n")
  assert _refusal(make_spec(), tmp_path) == (
      f"dataset spec test.yaml: features.qty names column 'qty', which {tmp_path}/events.csv "
      "does not have; its columns are user, item, price, quantity, tags, color, clicked, ts. "
      "Fix the spec or the file")
  write(tmp_path, "events.csv", HEADER.replace("clicked", "click") + "u,i,1,1,a,r,1,1\n")
  assert "label.column names column 'clicked'" in _refusal(make_spec(), tmp_path)
  write(tmp_path, "events.csv", HEADER)
  assert _refusal(make_spec(), tmp_path) == (
      f"{tmp_path}/events.csv: no rows after the header; the file is empty (source.path of "
      "dataset spec test.yaml): write its rows there (an interrupted export leaves such "
      "files), or point the spec at another file")


def test_side_table_keys_and_columns_must_exist_on_both_sides(tmp_path):
  spec = make_spec(source={"path": "events.csv", "side_tables": [
      {"path": "items.csv", "key": "item", "columns": ["color"]}]})
  write(tmp_path, "events.csv", HEADER.replace(",color", "") + "u,i,1,1,a,1,1\n")
  write(tmp_path, "items.csv", "sku,color\ni,red\n")
  assert _refusal(spec, tmp_path) == (
      "dataset spec test.yaml: source.side_tables[0].key names column 'item', which "
      f"{tmp_path}/items.csv does not have; its columns are sku, color")
  write(tmp_path, "items.csv", "item,colour\ni,red\n")
  assert _refusal(spec, tmp_path) == (
      "dataset spec test.yaml: source.side_tables[0].columns names ['color'], which "
      f"{tmp_path}/items.csv does not have; its columns are item, colour")
  write(tmp_path, "items.csv", "item,color\ni,red\n")
  assert files.check(spec, str(tmp_path)).side_tables == (str(tmp_path / "items.csv"),)
  lean = dict(BASE, features={"user": {"kind": "id"}, "item": {"kind": "id"},
                              "color": {"kind": "categorical"}}, slices=[])
  lean["source"] = {"path": "events.csv", "side_tables": [
      {"path": "items.csv", "key": "item", "columns": ["color"]}]}
  write(tmp_path, "events.csv", "user,clicked,ts\nu,1,1\n")
  assert _refusal(spec_lib.parse(lean, origin="test.yaml"), tmp_path) == (
      "dataset spec test.yaml: features.item names column 'item', which "
      f"{tmp_path}/events.csv does not have; its columns are user, clicked, ts. Fix the spec "
      "or the file")


def test_globs_and_parquet(tmp_path):
  spec = make_spec(source={"format": "parquet", "path": "parts/*.parquet"})
  assert _refusal(spec, tmp_path).startswith(f"{tmp_path}/parts/*.parquet: no file matches")
  os.makedirs(tmp_path / "parts")
  columns = {c: pa.array(["x"]) for c in ("user", "item", "tags", "color", "clicked")}
  columns.update(price=pa.array([1.0]), qty=pa.array([1]), ts=pa.array([1]))
  pq.write_table(pa.table(columns), tmp_path / "parts" / "a.parquet")
  assert files.check(spec, str(tmp_path)).files == (str(tmp_path / "parts" / "a.parquet"),)
  pq.write_table(pa.table(dict(columns, qty=pa.array(["1"]))), tmp_path / "parts" / "b.parquet")
  assert _refusal(spec, tmp_path) == (
      f"{tmp_path}/parts/b.parquet: its Parquet schema differs from "
      f"{tmp_path}/parts/a.parquet (another file of the same span): column qty was int64, is "
      "string. Write every file of the feed with the same columns and types")
  os.remove(tmp_path / "parts" / "b.parquet")
  pq.write_table(pa.table({k: v for k, v in columns.items() if k != "color"}),
                 tmp_path / "parts" / "a.parquet")
  assert "features.color names column 'color', which" in _refusal(spec, tmp_path)
  pq.write_table(pa.table(columns).slice(0, 0), tmp_path / "parts" / "a.parquet")
  assert "no rows; the file is empty" in _refusal(spec, tmp_path)


def test_a_parquet_span_whose_schema_changed_at_plan_time(tmp_path):
  spec = make_spec(source={"format": "parquet", "path": "events.parquet"})
  columns = {c: pa.array(["x"]) for c in ("user", "item", "tags", "color", "clicked")}
  columns.update(price=pa.array([1.0]), qty=pa.array([1]), ts=pa.array([1]))
  for n, table in ((1, pa.table(columns)), (2, pa.table(dict(columns, extra=pa.array([1]))))):
    os.makedirs(tmp_path / f"span-{n}")
    pq.write_table(table, tmp_path / f"span-{n}" / "events.parquet")
  assert _refusal(spec, tmp_path) == (
      f"{tmp_path}/span-2/events.parquet: its Parquet schema differs from "
      f"{tmp_path}/span-1/events.parquet (the previous span's file): column extra is new "
      "(int64). Write every file of the feed with the same columns and types")


def test_the_check_is_fast_and_loads_neither_tensorflow_nor_pyarrow(ml100k):
  start = time.perf_counter()
  files.check(MOVIELENS, str(ml100k))
  assert time.perf_counter() - start < 0.2
  code = ("import sys; from dataspec import files, spec; "
          f"files.check(spec.load('movielens'), {str(ml100k)!r}); "
          "print(sorted(m for m in ('tensorflow', 'pyarrow', 'apache_beam', 'tfx') "
          "if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
  assert out.stdout.strip() == "[]"


def test_uet_spans_output_is_a_feed_the_check_accepts(tmp_path, ml100k):
  from components.example_gen import spans  # pylint: disable=g-import-not-at-top
  spans.write_time_spans(MOVIELENS, str(ml100k), str(tmp_path / "feed"), num_spans=3)
  found = files.check(MOVIELENS, str(tmp_path / "feed"))
  assert found.pattern == spans.span_pattern(MOVIELENS) == "span-{SPAN}/u.data"
  assert found.files == (str(tmp_path / "feed" / "span-3" / "u.data"),)
  shutil.rmtree(tmp_path / "feed" / "span-3")
  assert files.check(MOVIELENS, str(tmp_path / "feed")).files == (
      str(tmp_path / "feed" / "span-2" / "u.data"),)
