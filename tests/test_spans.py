"""Time-window spans: disjoint, in time order, covering every rating exactly once."""

import pytest

from components.movielens_example_gen import reader, spans


def _lines(path):
  return path.read_text().splitlines()


@pytest.mark.parametrize("kwargs", [dict(num_spans=6), dict(span_days=30)])
def test_spans_are_disjoint_ordered_and_cover_every_rating(tmp_path, ml100k, kwargs):
  written = spans.write_time_spans(str(ml100k), str(tmp_path / "s"), **kwargs)
  original = _lines(ml100k / "u.data")
  per_span = [_lines(tmp_path / "s" / f"span-{s.number}" / "u.data") for s in written]
  assert sorted(line for lines in per_span for line in lines) == sorted(original)
  assert [s.number for s in written] == list(range(1, len(written) + 1))
  assert [s.num_ratings for s in written] == [len(lines) for lines in per_span]
  bounds = []
  for lines, s in zip(per_span, written):
    stamps = [int(line.split("\t")[3]) for line in lines]
    assert s.start <= min(stamps) and max(stamps) <= s.end
    bounds.append((min(stamps), max(stamps)))
  for (_, last), (first, _) in zip(bounds, bounds[1:]):
    assert last <= first  # every rating of span k precedes every rating of span k+1
  assert (tmp_path / "s" / reader.USERS_FILE).read_bytes() == (ml100k / "u.user").read_bytes()
  assert spans.list_spans(str(tmp_path / "s")) == [s.number for s in written]


def test_thirty_day_windows_on_movielens(tmp_path, ml100k):
  written = spans.write_time_spans(str(ml100k), str(tmp_path / "s"), span_days=30)
  # Sep 1997 .. Apr 1998 is about 7.1 months: 8 windows of 30 days.
  assert len(written) == 8
  assert all(s.end - s.start == 30 * 86_400 for s in written)


def test_bad_arguments_and_bad_timestamp(tmp_path, ml100k):
  with pytest.raises(ValueError, match="exactly one"):
    spans.write_time_spans(str(ml100k), str(tmp_path / "s"))
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "u.data").write_text("1\t2\t3\t881250949\n1\t2\t3\tsoon\n")
  (bad / "u.user").write_text("1|24|M|technician|85711\n")
  with pytest.raises(ValueError, match=r"u.data:2: no integer timestamp"):
    spans.write_time_spans(str(bad), str(tmp_path / "s"), num_spans=2)
