"""`uet synth`: synthetic data for any dataset spec, at any size.

    uet synth --dataset SPEC --rows N --out DIR [--seed S] [--profile FILE]
              [--cardinality FEATURE=N ...]
    uet synth --ratings N --out DIR [--users U] [--movies M] [--seed S]

writes, in DIR, the files SPEC names (the source in its format, split as a glob or a
`{SPAN}` layout asks, and its side tables), which `uet run --dataset SPEC --data-dir DIR`
ingests: the spec's columns and types, its CSV options, missing values where the spec
allows them, the time column in time order and in its format, and a label its rule maps.
`--ratings N` is `--dataset movielens --rows N` (u.data + u.user, the MovieLens-100K
layout); `--users`/`--movies` fix the cardinality of the spec's user and item ids.

What a spec does not say (how many ids, how skewed, how often missing, which features carry
the planted signal) comes from a synthesis profile (`tools.synth.profile`): `--profile`, or
the `<spec>.synth.yaml` beside the spec (the presets ship theirs), else built-in defaults.
How values, the signal and the label are made: `tools.synth.world`; how files are written:
`tools.synth.writers`. The same seed gives byte-identical files whatever the chunk size;
rows are generated and written `CHUNK` at a time, so memory is the per-id tables (which grow
with the ids' cardinalities, up to the profile's caps) plus one chunk, not the rows. numpy
and pyarrow load when the command runs, so `uet` itself starts fast.
"""

import argparse
import dataclasses
import os
import shutil
import sys
from typing import Dict, Mapping, Optional, Union

from dataspec import spec as spec_lib
from pipeline.exit_codes import EXIT_OK, EXIT_USAGE
from tools.synth import profile as profile_lib

CHUNK = 262_144  # rows generated and written at a time (rounded up to whole blocks)
MOVIELENS = "movielens"


@dataclasses.dataclass(frozen=True)
class Written:
  """What `write` wrote.

  Attributes:
    rows: source rows.
    positives: rows whose label maps to 1.
    files: each file written (relative to the output directory) -> its rows.
    cardinalities: each id/categorical/multivalent feature -> its number of values.
  """
  rows: int
  positives: int
  files: Mapping[str, int]
  cardinalities: Mapping[str, int]


def write(out_dir: str, rows: int, dataset: Union[str, spec_lib.DatasetSpec, None] = None,
          seed: int = 0, profile: Union[str, profile_lib.Profile, None] = None,
          cardinalities: Optional[Mapping[str, int]] = None,
          chunk_rows: int = CHUNK) -> Written:
  """Writes a synthetic dataset for a spec.

  Args:
    out_dir: the data directory to create (must not exist, or be empty).
    rows: source rows (>= 1).
    dataset: a spec, a preset name or a spec file (None: movielens).
    seed: the same seed (spec, profile and rows) gives the same bytes.
    profile: a loaded profile or a profile file (None: the one beside the spec, else the
      defaults).
    cardinalities: feature -> a fixed number of values, over the profile's.
    chunk_rows: rows per generated chunk (memory; the bytes do not depend on it).

  Returns:
    What was written.

  Raises:
    spec_lib.SpecError, profile_lib.ProfileError: an invalid spec or profile.
    world.SynthError (a ValueError): a layout `uet synth` cannot write, bad sizes, or an
      `out_dir` that is not empty.
  """
  from tools.synth import world as world_lib  # pylint: disable=g-import-not-at-top

  spec = dataset if isinstance(dataset, spec_lib.DatasetSpec) else spec_lib.load(dataset)
  if not isinstance(profile, profile_lib.Profile):
    profile = profile_lib.load(spec, profile)
  if cardinalities:
    profile = profile_lib.with_cardinalities(profile, spec, cardinalities)
  if rows < 1:
    raise world_lib.SynthError(f"--rows must be >= 1, got {rows}")
  if spec.source.format not in spec_lib.SIDE_TABLE_FORMATS:
    raise world_lib.SynthError(
        f"dataset {spec.name}: source.format {spec.source.format}: uet synth writes csv and "
        "parquet sources; declare one of them (TFRecord data can be converted from either)")
  if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
    raise world_lib.SynthError(f"--out {out_dir}: exists and is not an empty directory; pass "
                               "a new directory (synth never overwrites data)")

  world = world_lib.World(spec, profile, rows, seed)
  # Written beside, then renamed: an interrupted run leaves no half-written data directory.
  out_dir = os.path.abspath(out_dir)
  partial = f"{out_dir}.partial-{os.getpid()}"
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  try:
    files = _write_all(world, partial, chunk_rows)
    if os.path.isdir(out_dir):
      os.rmdir(out_dir)  # empty (checked above)
    os.rename(partial, out_dir)
  except BaseException:
    shutil.rmtree(partial, ignore_errors=True)
    raise
  return Written(rows=rows, positives=files.pop("\0positives"), files=files,
                 cardinalities={c.name: c.size for c in world.columns.values()
                                if c.kind in ("id", "categorical", "multivalent")})


def _write_all(world, out_dir: str, chunk_rows: int) -> Dict[str, int]:
  """Writes the side tables and the source; returns file -> rows (and the positives)."""
  from tools.synth import world as world_lib  # pylint: disable=g-import-not-at-top
  from tools.synth import writers  # pylint: disable=g-import-not-at-top
  spec = world.spec
  separators = {f.column: f.separator for f in spec.features if f.kind == "multivalent"}
  alphabets = {name: world.column_alphabet(name) for name in
               list(world.source_order) + [c for t in world.tables for c in t.order]}
  profile = world.profile
  source = writers.source_files(spec.source, world.rows, profile.spans, profile.rows_per_file)
  written: Dict[str, int] = {}
  for i, table in enumerate(world.tables):
    columns = [(c, world.arrow_type(c)) for c in table.order]
    for path in writers.side_table_paths(table.spec, source):
      writer = writers.open_writer(os.path.join(out_dir, path), table.spec.format, columns,
                                   table.spec.csv, alphabets, f"source.side_tables[{i}]")
      for start in range(0, table.rows, chunk_rows):
        writer.write(table.chunk(start, min(start + chunk_rows, table.rows)), separators)
      writer.close()
      written[path] = table.rows

  columns = [(c, world.arrow_type(c)) for c in world.source_order]
  blocks_per_chunk = max(1, -(-chunk_rows // world_lib.BLOCK))
  positives = 0
  current, writer = 0, None
  for first in range(0, world.blocks, blocks_per_chunk):
    stop_block = min(first + blocks_per_chunk, world.blocks)
    chunk = world.chunk(first, stop_block)
    positives += int(chunk.pop("_positive").to_numpy(zero_copy_only=False).sum())
    chunk_start = first * world_lib.BLOCK
    chunk_stop = min(stop_block * world_lib.BLOCK, world.rows)
    while current < len(source) and source[current].start < chunk_stop:
      target = source[current]
      if writer is None:
        writer = writers.open_writer(os.path.join(out_dir, target.path), spec.source.format,
                                     columns, spec.source.csv, alphabets, "source")
      start = max(target.start, chunk_start) - chunk_start
      stop = min(target.stop, chunk_stop) - chunk_start
      if stop > start:
        writer.write({k: v.slice(start, stop - start) for k, v in chunk.items()}, separators)
      if target.stop > chunk_stop:
        break
      writer.close()
      writer = None
      written[target.path] = target.stop - target.start
      current += 1
  # Files of no rows (more parts or spans than rows) still exist, with a header.
  while current < len(source):
    target = source[current]
    writers.open_writer(os.path.join(out_dir, target.path), spec.source.format, columns,
                        spec.source.csv, alphabets, "source").close()
    written[target.path] = 0
    current += 1
  written["\0positives"] = positives
  return written


def add_parser(sub) -> None:
  """Registers `uet synth`."""
  p = sub.add_parser(
      "synth", help="write synthetic data for a dataset spec, at any size",
      description="Writes the files a dataset spec names, in its formats, with ids of "
      "heavy-tailed popularity arriving over time, timestamps in order, missing values where "
      "the spec allows them and a label with a planted, learnable signal. The same seed gives "
      "the same files; memory grows with the number of ids, not with --rows. --ratings N is "
      "the MovieLens layout (--dataset movielens --rows N).")
  p.add_argument("--dataset", help="a preset (" + ", ".join(spec_lib.preset_names()) +
                 ") or a dataset spec file (.yaml/.json); default: movielens")
  p.add_argument("--rows", type=int, help="rows of the source")
  p.add_argument("--ratings", type=int, help="MovieLens layout: --dataset movielens --rows N")
  p.add_argument("--out", required=True, help="directory to create (new or empty)")
  p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  p.add_argument("--profile", help="synthesis profile (.yaml/.json; default: the spec's "
                 "<name>.synth.yaml beside it, else built-in defaults)")
  p.add_argument("--cardinality", action="append", default=[], metavar="FEATURE=N",
                 help="fix the number of values of an id (or domain-less categorical) "
                 "feature (repeatable)")
  p.add_argument("--users", type=int, help="number of users: the cardinality of the spec's "
                 "user id (role user)")
  p.add_argument("--movies", type=int, help="number of items: the cardinality of the spec's "
                 "item id (role item)")
  p.set_defaults(func=run)


def _cardinalities(args: argparse.Namespace, spec: spec_lib.DatasetSpec) -> Dict[str, int]:
  sizes: Dict[str, int] = {}
  for text in args.cardinality:
    name, sep, value = text.partition("=")
    try:
      sizes[name.strip()] = int(value)
    except ValueError:
      raise ValueError(f"--cardinality {text}: expected FEATURE=N, e.g. "
                       f"{spec.feature_names[0]}=10000") from None
    if not sep:
      raise ValueError(f"--cardinality {text}: expected FEATURE=N")
  for flag, role, value in (("--users", "user", args.users), ("--movies", "item", args.movies)):
    if value is None:
      continue
    if value < 1:
      raise ValueError(f"{flag} must be >= 1, got {value}")
    ids = [f.name for f in spec.features
           if f.kind == "id" and f.role == role and f.attribute_of is None]
    if not ids:
      raise ValueError(f"{flag}: dataset {spec.name} has no id feature with role {role}; "
                       "use --cardinality FEATURE=N")
    sizes[ids[0]] = value
  return sizes


def run(args: argparse.Namespace) -> int:
  """Writes the directory and says what it holds; exit code 2 on bad arguments."""
  try:
    if (args.rows is None) == (args.ratings is None):
      raise ValueError("give --rows N (with --dataset) or --ratings N (the MovieLens layout)")
    if args.ratings is not None:
      if args.dataset not in (None, MOVIELENS):
        raise ValueError(f"--ratings is the MovieLens layout (--dataset {MOVIELENS}); for "
                         f"--dataset {args.dataset} give --rows")
      if args.ratings < 1:
        raise ValueError(f"--ratings must be >= 1, got {args.ratings}")
    spec = spec_lib.load(args.dataset or MOVIELENS)
    rows = args.rows if args.rows is not None else args.ratings
    written = write(args.out, rows, spec, seed=args.seed, profile=args.profile,
                    cardinalities=_cardinalities(args, spec))
  except (ValueError, OSError) as e:  # SpecError, ProfileError and SynthError among them
    print(f"uet synth: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  ids = ", ".join(f"{f.name} {written.cardinalities[f.column]:,}" for f in spec.features
                  if f.kind == "id" and f.column in written.cardinalities)
  files = ", ".join(f"{path} ({n:,} rows)" for path, n in written.files.items())
  print(f"wrote {written.rows:,} rows of dataset {spec.name} "
        f"({written.positives / written.rows:.1%} positive) to {args.out}: {files}"
        + (f"; ids: {ids}" if ids else ""))
  return EXIT_OK

