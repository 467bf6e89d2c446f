"""`uet schema`: a raw schema derived from a dataset spec and its first span's statistics.

    uet schema --dataset SPEC [--data-dir D] --out FILE [--max-rows N]

Reads the first span (or the file or glob) through the pipeline's own ingestion, computes
TFDV statistics, and writes what the spec implies (types, required columns, the label's
absence from serving requests: `dataspec.schema.derive`) with the value domains of its
categorical features as the statistics show them (`dataspec.schema.refine`). Review it, then freeze it: name the file as `schema:` in the
spec, and the validation gate holds every later span to it.
"""

import argparse
import os
import sys
import tempfile

from pipeline.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def add_parser(sub) -> None:
  """Registers `uet schema`."""
  p = sub.add_parser("schema", help="derive a raw schema from a dataset spec and its first "
                     "span's statistics, for review",
                     description="Writes the raw schema of a dataset: the spec's types and "
                     "required columns, and the value domains of its categorical features as "
                     "its first span shows them. Review it, then set `schema: FILE` in the "
                     "spec.")
  p.add_argument("--dataset", help="a preset name or a spec file (default: movielens)")
  p.add_argument("--data-dir", help="the data directory (default: the spec's "
                 "source.data_dir)")
  p.add_argument("--out", required=True, help="the schema.pbtxt to write")
  p.add_argument("--max-rows", type=int, default=None,
                 help="read at most this many rows of the first span (default: all)")
  p.set_defaults(func=run)


def first_span_pattern(data_dir: str, pattern: str) -> str:
  """`pattern` with `{SPAN}` set to the lowest span present (unchanged without `{SPAN}`)."""
  from dataspec import files  # pylint: disable=g-import-not-at-top
  if files.SPAN not in pattern:
    return pattern
  return pattern.replace(files.SPAN, str(min(files.span_files(data_dir, pattern))))


def derive(spec, data_dir: str, max_rows=None):
  """The refined schema of `spec` over its first span in `data_dir`.

  Returns:
    (Schema proto, notes on columns left without a domain, rows read, the pattern read).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top
  from components.example_gen import executor  # pylint: disable=g-import-not-at-top
  from dataspec import files  # pylint: disable=g-import-not-at-top
  from dataspec import schema as schema_lib  # pylint: disable=g-import-not-at-top
  pattern = first_span_pattern(data_dir, files.source_pattern(spec, data_dir))
  examples = executor.read_examples(spec, data_dir, pattern)
  if max_rows:
    examples = examples[:max_rows]
  with tempfile.TemporaryDirectory(prefix="uet-schema-") as tmp:
    path = os.path.join(tmp, "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
      for example in examples:
        writer.write(example)
    statistics = tfdv.generate_statistics_from_tfrecord(
        path, stats_options=tfdv.StatsOptions(num_top_values=schema_lib.MAX_DOMAIN_VALUES))
  schema, notes = schema_lib.refine(schema_lib.derive(spec), statistics.datasets[0], spec)
  return schema, notes, len(examples), pattern


def run(args: argparse.Namespace) -> int:
  """Writes the schema; exit 2 on a bad spec or data directory, 1 on unreadable rows."""
  from dataspec import files, spec as spec_lib  # pylint: disable=g-import-not-at-top
  try:
    spec = spec_lib.load(args.dataset)
    data_dir = files.check(spec, args.data_dir).data_dir
    if args.max_rows is not None and args.max_rows < 1:
      raise spec_lib.SpecError(f"--max-rows must be at least 1, got {args.max_rows}")
  except spec_lib.SpecError as e:
    print(f"uet schema: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  from components.example_gen import reader  # pylint: disable=g-import-not-at-top
  from dataspec import schema as schema_lib  # pylint: disable=g-import-not-at-top
  try:
    schema, notes, rows, pattern = derive(spec, data_dir, args.max_rows)
  except reader.DataError as e:
    print(f"uet schema: error: {e}", file=sys.stderr)
    return EXIT_FAILED
  header = (f"The raw schema of dataset {spec.name}, derived by `uet schema`\n"
            f"from {rows} rows of {pattern} in the data directory.\n"
            "Review it (the domains of categorical features come from those rows), then\n"
            "name this file as `schema:` in the spec to hold every later span to it.")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w", encoding="utf-8") as f:
    f.write(schema_lib.to_text(schema, header))
  domains = sum(1 for feature in schema.feature if feature.HasField("domain"))
  print(f"wrote {args.out}: {len(schema.feature)} columns, {domains} categorical domains, "
        f"from {rows} rows of {pattern}")
  for note in notes:
    print(f"  note: {note}")
  return EXIT_OK
