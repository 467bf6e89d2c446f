"""`uet spans`: cut a dataset's source into time-window spans (`span-N/<source file>`).

Writes OUT/span-1/<source>, span-2/..., in time order, by the spec's time column, and copies
the side tables to OUT; `uet run --data-dir OUT` then ingests the newest span. The dataset
is a preset name or a spec file (default: the MovieLens preset, whose spans are
OUT/span-N/u.data beside OUT/u.user).
"""

import argparse
import datetime
import sys

from pipeline.exit_codes import EXIT_OK, EXIT_USAGE


def add_parser(sub) -> None:
  """Registers `uet spans`."""
  p = sub.add_parser("spans", help="cut a dataset's source into time-window spans "
                     "(span-N/<source file>)",
                     description="Writes OUT/span-1/<source>, span-2/..., in time order, by "
                     "the dataset's time column, and copies its side tables to OUT; "
                     "`uet run --data-dir OUT` then ingests the newest span.")
  p.add_argument("--dataset", help="a preset name (movielens, taxi, wide) or a spec file "
                 "(default: movielens)")
  p.add_argument("--data-dir", help="the data directory (default: the spec's "
                 "source.data_dir)")
  p.add_argument("--out", required=True, help="directory to write (replaced)")
  group = p.add_mutually_exclusive_group(required=True)
  group.add_argument("--spans", type=int, help="N windows of equal duration")
  group.add_argument("--span-days", type=float, help="windows of this many days")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  """Writes the spans and lists them; exit code 2 on unusable input."""
  from dataspec import files, spec as spec_lib  # pylint: disable=g-import-not-at-top
  try:
    spec = spec_lib.load(args.dataset)
    data_dir = files.check(spec, args.data_dir).data_dir
  except spec_lib.SpecError as e:
    print(f"uet spans: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  from components.example_gen import spans  # pylint: disable=g-import-not-at-top
  try:
    written = spans.write_time_spans(spec, data_dir, args.out, num_spans=args.spans,
                                     span_days=args.span_days)
  except (ValueError, OSError) as e:
    print(f"uet spans: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  for s in written:
    start = datetime.datetime.utcfromtimestamp(s.start).strftime("%Y-%m-%d")
    end = datetime.datetime.utcfromtimestamp(s.end).strftime("%Y-%m-%d")
    print(f"span {s.number}: {start} .. {end}  {s.num_rows:6d} rows  {s.path}")
  return EXIT_OK
