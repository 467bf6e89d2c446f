"""Bad input, planted in a copy of a good MovieLens slice: what each case must stop at and say.

One table for both runners: `uet run` (tests/test_bad_input.py) and the compiled pipeline
through `uet run-spec` (tests/test_run_spec_failures.py) must stop at the same component with
the same message, so the expectations live here once.
"""

import dataclasses
import pathlib
import shutil
from typing import Callable, List, Optional, Tuple

from pipeline import ids
from pipeline.exit_codes import EXIT_FAILED, EXIT_USAGE

RatingsEdit = Callable[[List[str]], List[str]]
UsersEdit = Callable[[bytes], Optional[bytes]]


def plant(good: pathlib.Path, directory: pathlib.Path, ratings: Optional[RatingsEdit] = None,
          users: Optional[UsersEdit] = None) -> pathlib.Path:
  """A copy of `good` in `directory` with `ratings` applied to u.data's lines and `users` to
  u.user's bytes (None deletes the file)."""
  shutil.copytree(good, directory)
  if ratings:
    lines = (directory / "u.data").read_text().splitlines()
    (directory / "u.data").write_text("".join(f"{line}\n" for line in ratings(lines)))
  if users:
    data = users((directory / "u.user").read_bytes())
    if data is None:
      (directory / "u.user").unlink()
    else:
      (directory / "u.user").write_bytes(data)
  return directory


def set_field(line_number: int, field: int, value: str) -> RatingsEdit:
  """A `ratings` edit: field `field` (0-based) of line `line_number` (1-based) := value."""
  def edit(lines: List[str]) -> List[str]:
    fields = lines[line_number - 1].split("\t")
    fields[field] = value
    lines[line_number - 1] = "\t".join(fields)
    return lines
  return edit


def _user_field(field: int, bad: bytes) -> UsersEdit:
  """A `users` edit: field `field` of the first user := `bad` bytes."""
  def edit(data: bytes) -> bytes:
    lines = data.split(b"\n")
    fields = lines[0].split(b"|")
    fields[field] = bad
    lines[0] = b"|".join(fields)
    return b"\n".join(lines)
  return edit


@dataclasses.dataclass(frozen=True)
class Case:
  """One kind of bad input.

  Attributes:
    name: the test id (and the planted directory's name).
    stops_at: the component that fails (None: refused before any component runs).
    says: fragments of the error output; `{data}` is the planted directory.
    never_says: fragments that must not appear.
    exit_code: the exit code of `uet run` (and `uet run-spec`).
  """
  name: str
  stops_at: Optional[str]
  says: Tuple[str, ...]
  ratings: Optional[RatingsEdit] = None
  users: Optional[UsersEdit] = None
  never_says: Tuple[str, ...] = ()
  exit_code: int = EXIT_FAILED

  def messages(self, data: pathlib.Path) -> List[str]:
    return [fragment.format(data=data) for fragment in self.says]


CASES = [
    Case("truncated", ids.EXAMPLE_GEN,
         ("{data}/u.data:17: expected 4 tab-separated fields (user_id, movie_id, rating, "
          "timestamp), found 2",),
         ratings=lambda lines: lines[:16] + ["\t".join(lines[16].split("\t")[:2])] + lines[17:]),
    Case("non_numeric", ids.EXAMPLE_GEN, ("u.data:5: rating '4.5' is not an integer",),
         ratings=set_field(5, 2, "4.5")),
    Case("future", ids.EXAMPLE_GEN,
         ("{data}/u.data:12: timestamp 99999999999 (5138-11-16 09:46:39 UTC) is after the "
          "time of ingestion (", "fix the clock or the field upstream, or drop the row"),
         ratings=set_field(12, 3, "99999999999")),
    Case("unknown_user", ids.EXAMPLE_GEN,
         ("u.data:8: user_id '9999' is not in u.user (the side table joined on user_id); add "
          "a row for it there, or remove this row",),
         ratings=set_field(8, 0, "9999")),
    # An empty file is refused at plan time, before any component runs.
    Case("empty", None, ("{data}/u.data: the file is empty (source.path of dataset spec ",),
         ratings=lambda lines: [], exit_code=EXIT_USAGE),
    Case("non_utf8_age", ids.EXAMPLE_GEN,
         ("u.user:1: not valid UTF-8", "re-encode the file as UTF-8"),
         users=_user_field(4, b"85\xff11")),
    Case("non_utf8_occupation", ids.EXAMPLE_GEN,
         ("u.user:1: not valid UTF-8", "re-encode the file as UTF-8"),
         users=_user_field(3, b"techn\xe9cian")),
    Case("no_users", None,
         ("{data}/u.user: missing; source.side_tables[0] of dataset spec ",
          "names it: put the file in {data}, or fix source.side_tables[0].path"),
         users=lambda data: None, exit_code=EXIT_USAGE),
    # Values the schema forbids: the ValidationGate stops the run. One out-of-range value
    # is the schema anomaly it is, not drift (schema: rating int_domain is_categorical).
    Case("rating_0", ids.VALIDATION_GATE,
         ("feature=rating kind=INT_TYPE_SMALL_INT", "Fix the input data"),
         ratings=set_field(3, 2, "0"), never_says=("COMPARATOR_",)),
    Case("rating_6", ids.VALIDATION_GATE,
         ("feature=rating kind=INT_TYPE_BIG_INT", "Fix the input data"),
         ratings=set_field(3, 2, "6"), never_says=("COMPARATOR_",)),
]
