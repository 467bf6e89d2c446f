"""`uet spans`: cut a ratings file into time-window spans (`span-N/u.data`).

Writes OUT/u.user and OUT/span-1/u.data, span-2/..., in time order; `uet run --data-dir OUT`
then ingests the newest span.
"""

import argparse
import datetime
import sys

from pipeline.exit_codes import EXIT_OK, EXIT_USAGE


def add_parser(sub) -> None:
  """Registers `uet spans`."""
  p = sub.add_parser("spans", help="cut a ratings file into time-window spans (span-N/u.data)",
                     description="Writes OUT/u.user and OUT/span-1/u.data, span-2/..., in "
                     "time order; `uet run --data-dir OUT` then ingests the newest span.")
  p.add_argument("--data-dir", required=True, help="a MovieLens directory (u.data, u.user)")
  p.add_argument("--out", required=True, help="directory to write (replaced)")
  group = p.add_mutually_exclusive_group(required=True)
  group.add_argument("--spans", type=int, help="N windows of equal duration")
  group.add_argument("--span-days", type=float, help="windows of this many days")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  """Writes the spans and lists them; exit code 2 on unusable input."""
  from components.movielens_example_gen import spans  # pylint: disable=g-import-not-at-top
  try:
    written = spans.write_time_spans(args.data_dir, args.out, num_spans=args.spans,
                                     span_days=args.span_days)
  except (ValueError, OSError) as e:
    print(f"uet spans: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  for s in written:
    start = datetime.datetime.utcfromtimestamp(s.start).strftime("%Y-%m-%d")
    end = datetime.datetime.utcfromtimestamp(s.end).strftime("%Y-%m-%d")
    print(f"span {s.number}: {start} .. {end}  {s.num_ratings:6d} ratings  {s.path}")
  return EXIT_OK
