"""Time-window spans: disjoint, in time order, covering every row exactly once, for the
MovieLens preset (u.data lines copied verbatim) and for a CSV with a header or a Parquet
source with ISO 8601 times."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.example_gen import spans
from components.example_gen.reader import DataError
from dataspec import spec as spec_lib
from pipeline import exit_codes
from tools import cli
from tests.test_example_gen_formats import HEADER, make_spec, write

MOVIELENS = spec_lib.load("movielens")


def _lines(path):
  return path.read_text().splitlines()


@pytest.mark.parametrize("kwargs", [dict(num_spans=6), dict(span_days=30)])
def test_spans_are_disjoint_ordered_and_cover_every_rating(tmp_path, ml100k, kwargs):
  written = spans.write_time_spans(MOVIELENS, str(ml100k), str(tmp_path / "s"), **kwargs)
  original = _lines(ml100k / "u.data")
  per_span = [_lines(tmp_path / "s" / f"span-{s.number}" / "u.data") for s in written]
  assert sorted(line for lines in per_span for line in lines) == sorted(original)
  assert [s.number for s in written] == list(range(1, len(written) + 1))
  assert [s.num_rows for s in written] == [len(lines) for lines in per_span]
  bounds = []
  for lines, s in zip(per_span, written):
    stamps = [int(line.split("\t")[3]) for line in lines]
    assert stamps == sorted(stamps)  # each span in time order
    assert s.start <= min(stamps) and max(stamps) <= s.end
    bounds.append((min(stamps), max(stamps)))
  for (_, last), (first, _) in zip(bounds, bounds[1:]):
    assert last <= first  # every rating of span k precedes every rating of span k+1
  assert (tmp_path / "s" / "u.user").read_bytes() == (ml100k / "u.user").read_bytes()
  assert spans.list_spans(str(tmp_path / "s"), MOVIELENS) == [s.number for s in written]


def test_thirty_day_windows_on_movielens(tmp_path, ml100k):
  written = spans.write_time_spans(MOVIELENS, str(ml100k), str(tmp_path / "s"), span_days=30)
  # Sep 1997 .. Apr 1998 is about 7.1 months: 8 windows of 30 days.
  assert len(written) == 8
  assert all(s.end - s.start == 30 * 86_400 for s in written)


def test_bad_arguments_and_bad_timestamp(tmp_path, ml100k):
  with pytest.raises(ValueError, match="exactly one"):
    spans.write_time_spans(MOVIELENS, str(ml100k), str(tmp_path / "s"))
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "u.data").write_text("1\t2\t3\t881250949\n1\t2\t3\tsoon\n")
  (bad / "u.user").write_text("1|24|M|technician|85711\n")
  with pytest.raises(DataError, match=r"u.data:2: timestamp 'soon' is not an integer"):
    spans.write_time_spans(MOVIELENS, str(bad), str(tmp_path / "s"), num_spans=2)
  (bad / "u.data").write_text("1\t2\t3\t881250949\n1\t2\t3\n")
  with pytest.raises(DataError, match=r"u.data:2: expected 4 tab-separated fields"):
    spans.write_time_spans(MOVIELENS, str(bad), str(tmp_path / "s"), num_spans=2)


def test_a_csv_with_a_header_keeps_it_in_every_span(tmp_path):
  rows = [f"u{i},i,1,1,a,red,1,{1600000000 + (9 - i) * 86_400}\n" for i in range(10)]
  write(tmp_path / "data", "events.csv", HEADER + "".join(rows))
  write(tmp_path / "data", "items.csv", "item,color\ni,red\n")
  spec = make_spec(source={"path": "events.csv", "side_tables": [
      {"path": "items.csv", "key": "item", "columns": ["color"]}]})
  written = spans.write_time_spans(spec, str(tmp_path / "data"), str(tmp_path / "feed"),
                                   span_days=5, now=1_700_000_000)
  assert [s.num_rows for s in written] == [5, 5]
  first = (tmp_path / "feed" / "span-1" / "events.csv").read_text()
  assert first == HEADER + "".join(reversed(rows[5:]))
  assert (tmp_path / "feed" / "items.csv").read_text() == "item,color\ni,red\n"


def test_a_parquet_source_with_iso_times(tmp_path):
  times = ["2020-01-03T00:00:00Z", "2020-01-01T00:00:00Z", "2020-01-02T12:00:00Z"]
  (tmp_path / "data").mkdir()
  pq.write_table(pa.table({"user": ["a", "b", "c"], "clicked": [1, 0, 1], "when": times}),
                 tmp_path / "data" / "events.parquet")
  spec = make_spec(source={"format": "parquet", "path": "*.parquet"},
                   time={"column": "when", "format": "iso8601"},
                   features={"user": {"kind": "id"}}, slices=[])
  written = spans.write_time_spans(spec, str(tmp_path / "data"), str(tmp_path / "feed"),
                                   num_spans=2, now=1_700_000_000)
  tables = [pq.read_table(tmp_path / "feed" / f"span-{s.number}" / "part.parquet")
            for s in written]
  assert [t.column("user").to_pylist() for t in tables] == [["b"], ["c", "a"]]
  assert spans.span_pattern(spec) == "span-{SPAN}/*.parquet"


def test_uet_spans_cli(tmp_path, ml100k, capsys):
  assert cli.main(["spans", "--data-dir", str(ml100k), "--out", str(tmp_path / "s"),
                   "--spans", "2"]) == exit_codes.EXIT_OK
  out = capsys.readouterr().out.splitlines()
  assert len(out) == 2 and out[0].startswith("span 1: 1997-09-20 .. ")
  assert cli.main(["spans", "--data-dir", str(tmp_path / "nope"), "--out",
                   str(tmp_path / "t"), "--spans", "2"]) == exit_codes.EXIT_USAGE
  assert f"{tmp_path / 'nope'}: not a directory" in capsys.readouterr().err
