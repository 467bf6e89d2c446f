"""Odd times: a row dated after the ingest, or before the feed's first span, is a bad row named
by file and line (or quarantined under --max-bad-rows)."""

import time

import pytest

from components.example_gen import executor, spans, timestamps
from components.example_gen.reader import DataError
from dataspec import spec as spec_lib

MOVIELENS = spec_lib.load("movielens")
USERS = "1|24|M|technician|85711\n2|53|F|other|94043\n"
FAR_FUTURE = 99999999999
SPAN_PATTERN = "span-{SPAN}/u.data"


def _write(directory, ratings, users=USERS):
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "u.data").write_text(ratings)
  if users is not None:
    (directory / "u.user").write_text(users)
  return directory


def _read_span(feed, number, **kwargs):
  return executor.read_examples(MOVIELENS, str(feed), pattern=f"span-{number}/u.data",
                                span_pattern=SPAN_PATTERN, span=number, **kwargs)


def test_a_rating_dated_after_the_ingest_names_file_and_line(tmp_path):
  d = _write(tmp_path, f"1\t242\t3\t881250949\n2\t302\t5\t{FAR_FUTURE}\n")
  with pytest.raises(DataError) as e:
    executor.read_examples(MOVIELENS, str(d))
  message = str(e.value)
  assert message.startswith(f"{d}/u.data:2: timestamp {FAR_FUTURE} (5138-11-16 09:46:39 UTC) "
                            "is after the time of ingestion (")
  assert "fix the clock or the field upstream, or drop the row" in message


def test_the_bound_is_the_time_of_ingestion(tmp_path):
  now = int(time.time())
  d = _write(tmp_path, f"1\t242\t3\t{now - 5}\n")
  assert len(executor.read_examples(MOVIELENS, str(d))) == 1
  bounds = timestamps.bounds(now)
  assert bounds == timestamps.TimestampBounds(now)   # no spans: no lower bound
  assert bounds.problem("timestamp", now) is None
  assert "after the time of ingestion" in bounds.problem("timestamp", now + 1)
  assert bounds.problem("timestamp", 0) is None  # the schema's minimum applies
  with pytest.raises(DataError, match=r"u.data:1: timestamp \d+ .* is after the time of "
                                      r"ingestion"):
    executor.read_examples(MOVIELENS, str(d), now=now - 6)


def _feed(tmp_path):
  feed = tmp_path / "feed"
  _write(feed, "", users=USERS)
  (feed / "u.data").unlink()
  _write(feed / "span-1", "1\t10\t4\t881250949\n2\t11\t3\t881000000\nbroken line\n",
         users=None)
  return feed


def test_a_rating_before_the_feeds_first_span_names_file_line_and_the_span(tmp_path):
  feed = _feed(tmp_path)
  _write(feed / "span-2", "1\t12\t5\t881300000\n2\t13\t2\t880999999\n", users=None)
  with pytest.raises(DataError) as e:
    _read_span(feed, 2)
  assert str(e.value) == (
      f"{feed}/span-2/u.data:2: timestamp 880999999 (1997-12-01 18:13:19 UTC) is before the "
      "feed's first span (its earliest time is 881000000, 1997-12-01 18:13:20 UTC, in "
      f"{feed}/span-1/u.data); fix the field upstream, or drop the row")
  # Late ratings from within the feed's history are fine; so is the first span itself.
  _write(feed / "span-2", "1\t12\t5\t881000000\n", users=None)
  assert len(_read_span(feed, 2)) == 1
  assert len(_read_span(feed, 1, max_bad_rows=1)) == 2


def test_the_first_span_is_the_lowest_numbered_one_present(tmp_path):
  feed = _feed(tmp_path)
  (feed / "span-1" / "u.data").rename(tmp_path / "gone")
  (feed / "span-1").rmdir()
  _write(feed / "span-10", "1\t12\t5\t881400000\n", users=None)
  _write(feed / "span-9", "1\t12\t5\t881300000\n2\t12\t5\t881200000\n", users=None)
  with pytest.raises(DataError, match=r"span-10/u.data:1: timestamp 881100000 .* before the "
                                      r"feed's first span \(its earliest time is 881200000, "
                                      r".* in .*/span-9/u.data\)"):
    _write(feed / "span-10", "1\t12\t5\t881100000\n", users=None)
    _read_span(feed, 10)


def test_odd_timestamps_are_quarantined_under_max_bad_rows(tmp_path):
  feed = _feed(tmp_path)
  _write(feed / "span-2",
         f"1\t12\t5\t881300000\n2\t13\t2\t{FAR_FUTURE}\n1\t14\t4\t5\n2\t15\t3\t881300001\n",
         users=None)
  quarantine = tmp_path / "quarantine.tsv"
  examples = _read_span(feed, 2, max_bad_rows=2, quarantine_path=str(quarantine))
  assert len(examples) == 2
  rows = [line.split("\t") for line in quarantine.read_text().splitlines()[1:]]
  assert [int(r[1]) for r in rows] == [2, 3]
  assert "after the time of ingestion" in rows[0][2]
  assert "before the feed's first span" in rows[1][2]
  with pytest.raises(DataError,
                     match=r"span-2/u.data:3: .*\(more than --max-bad-rows=1 bad rows\)"):
    _read_span(feed, 2, max_bad_rows=1)


def test_uet_spans_refuses_a_rating_dated_in_the_future(tmp_path):
  d = _write(tmp_path / "ml", f"1\t242\t3\t881250949\n1\t243\t3\t{FAR_FUTURE}\n")
  with pytest.raises(DataError, match=r"u.data:2: timestamp 99999999999 \(5138-11-16 "
                                      r"09:46:39 UTC\) is after the time of ingestion"):
    spans.write_time_spans(MOVIELENS, str(d), str(tmp_path / "s"), num_spans=2)
