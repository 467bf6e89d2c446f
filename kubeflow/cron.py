"""One cron syntax for both schedulers: Vertex's 5 fields, KFP's 6 (seconds first).

Users write the usual five fields (`minute hour day-of-month month day-of-week`), optionally
prefixed by `TZ=<IANA zone>` (or `CRON_TZ=`), as Vertex AI takes them. For Kubeflow Pipelines
the seconds field is added here: KFP's scheduler (robfig/cron) reads the first of six fields
as seconds, so a 5-field string is either rejected by the server or, shifted by one field,
means another schedule. Every field is checked here, so a typo fails before anything is
sent, with the field named.
"""

import dataclasses
import re
import zoneinfo
from typing import Optional, Tuple

VERTEX = "vertex"
KUBEFLOW = "kubeflow"

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclasses.dataclass(frozen=True)
class _Field:
  name: str
  low: int
  high: int
  names: Tuple[str, ...] = ()
  # The value a name list starts at (JAN = 1, SUN = 0).
  names_start: int = 0


_SECOND = _Field("second", 0, 59)
_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day-of-week", 0, 6, _DAYS, 0),
)
_UTC_NAMES = ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Zulu")
_TZ_PREFIX = re.compile(r"^(CRON_TZ|TZ)=(\S+)$")
FORMAT_HELP = ('expected "[TZ=<IANA zone>] minute hour day-of-month month day-of-week", '
               'e.g. "TZ=UTC 0 3 * * 1" (Mondays at 03:00 UTC)')


class CronError(ValueError):
  """A cron string that would be rejected, or misread, by the target scheduler."""


@dataclasses.dataclass(frozen=True)
class Cron:
  """A validated schedule.

  Attributes:
    fields: minute, hour, day-of-month, month, day-of-week (as written).
    timezone: the IANA zone of a `TZ=`/`CRON_TZ=` prefix, or None.
    seconds: a seconds field given explicitly (KFP's 6-field form), or None.
  """
  fields: Tuple[str, ...]
  timezone: Optional[str] = None
  seconds: Optional[str] = None


def _value(token: str, field: _Field, whole: str) -> int:
  upper = token.upper()
  if field.names and upper in field.names:
    return field.names.index(upper) + field.names_start
  if not token.isdigit():
    hint = f" or one of {','.join(field.names)}" if field.names else ""
    raise CronError(f"cron {whole!r}: {field.name} {token!r} is not a number "
                    f"({field.low}-{field.high}{hint})")
  value = int(token)
  if not field.low <= value <= field.high:
    hint = " (use 0 for Sunday)" if field.name == "day-of-week" and value == 7 else ""
    raise CronError(f"cron {whole!r}: {field.name} {value} is out of range "
                    f"{field.low}-{field.high}{hint}")
  return value


def _check_field(text: str, field: _Field, whole: str) -> None:
  """Accepts `*`, `N`, `A-B`, lists of those, and `/step` on `*` or a range."""
  for part in text.split(","):
    if not part:
      raise CronError(f"cron {whole!r}: empty item in {field.name} {text!r}")
    base, slash, step = part.partition("/")
    if slash:
      if not step.isdigit() or int(step) == 0:
        raise CronError(f"cron {whole!r}: {field.name} step {step!r} must be a positive "
                        "number")
    if base == "*":
      continue
    if base == "?":
      raise CronError(f"cron {whole!r}: '?' in {field.name} is not understood by both "
                      "schedulers; use '*'")
    low, dash, high = base.partition("-")
    first = _value(low, field, whole)
    if dash:
      last = _value(high, field, whole)
      if last < first:
        raise CronError(f"cron {whole!r}: {field.name} range {base!r} runs backwards")
    elif slash:
      raise CronError(f"cron {whole!r}: {field.name} {part!r}: a step needs '*' or a range "
                      "before it (e.g. '*/15' or '0-30/15')")


def parse(expression: str) -> Cron:
  """Validates a cron string.

  Args:
    expression: `[TZ=zone] m h dom mon dow`, or KFP's `s m h dom mon dow`.

  Returns:
    The parsed schedule.

  Raises:
    CronError: the string is malformed; the message names the field and the fix.
  """
  whole = expression.strip()
  if not whole:
    raise CronError(f"empty cron string; {FORMAT_HELP}")
  if whole.startswith("@"):
    raise CronError(f"cron {whole!r}: shortcuts like @daily are not accepted by both "
                    f"schedulers; write the five fields, {FORMAT_HELP}")
  tokens = whole.split()
  timezone = None
  prefix = _TZ_PREFIX.match(tokens[0])
  if prefix:
    timezone = prefix.group(2)
    try:
      zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
      raise CronError(f"cron {whole!r}: unknown time zone {timezone!r}; use an IANA name "
                      "such as UTC or Europe/Berlin") from None
    tokens = tokens[1:]
  elif "=" in tokens[0]:
    raise CronError(f"cron {whole!r}: {tokens[0]!r} is not a time zone prefix; use "
                    "TZ=<IANA zone>")
  seconds = None
  if len(tokens) == 6:
    seconds, tokens = tokens[0], tokens[1:]
    _check_field(seconds, _SECOND, whole)
  elif len(tokens) != 5:
    raise CronError(f"cron {whole!r} has {len(tokens)} fields; {FORMAT_HELP}")
  for text, field in zip(tokens, _FIELDS):
    _check_field(text, field, whole)
  return Cron(fields=tuple(tokens), timezone=timezone, seconds=seconds)


def for_vertex(expression: str) -> str:
  """The cron string for `PipelineJob.create_schedule`: 5 fields, optional `TZ=` prefix.

  Raises:
    CronError: malformed, or a 6-field (KFP) string, which Vertex would reject.
  """
  cron = parse(expression)
  if cron.seconds is not None:
    raise CronError(f"cron {expression!r} has 6 fields (seconds first, KFP's form); Vertex "
                    f"takes 5: drop the seconds, e.g. {' '.join(cron.fields)!r}")
  prefix = f"TZ={cron.timezone} " if cron.timezone else ""
  return prefix + " ".join(cron.fields)


def for_kubeflow(expression: str) -> str:
  """The cron string for `kfp.Client.create_recurring_run`: 6 fields, seconds first.

  KFP's scheduler has no per-schedule time zone (it runs in the controller's zone, UTC by
  default), so only a UTC prefix is accepted; it is dropped.

  Raises:
    CronError: malformed, or a non-UTC time zone.
  """
  cron = parse(expression)
  if cron.timezone and cron.timezone not in _UTC_NAMES:
    raise CronError(
        f"cron {expression!r}: Kubeflow Pipelines recurring runs have no time zone setting "
        f"(the scheduler runs in UTC); rewrite {cron.timezone} times in UTC and use TZ=UTC")
  return " ".join((cron.seconds or "0",) + cron.fields)


def translate(expression: str, target: str) -> str:
  """The cron string to send to `target` ("vertex" or "kubeflow")."""
  if target == VERTEX:
    return for_vertex(expression)
  if target == KUBEFLOW:
    return for_kubeflow(expression)
  raise ValueError(f"unknown target {target!r}; expected {VERTEX!r} or {KUBEFLOW!r}")
