"""`uet`: the command line of the product.

Each subcommand is a module with `add_parser(subparsers)`, which declares its flags and sets
`func`; modules import only argparse and light code at the top, and load TensorFlow and TFX
inside `func`, so `uet --help` and usage errors are fast. `main` sets the process's
environment (`pipeline.environment`) before any of them runs.
"""

import argparse
import importlib
import sys
from typing import List, Optional

from pipeline import environment

SUBCOMMAND_MODULES = (
    "tools.run_command",     # uet run
    "tools.spans",           # uet spans
    "kubeflow.cli",          # uet compile, uet schedule, uet run-spec
    "tools.collisions",      # uet collisions
    "tools.simulate",        # uet simulate
    "pipeline.metadata_backup",  # uet restore-metadata
    "tools.report.cli",      # uet runs, uet report
    "tools.synth",           # uet synth
    "tools.schema",          # uet schema
)


def build_parser() -> argparse.ArgumentParser:
  """The `uet` parser with every subcommand of SUBCOMMAND_MODULES.

  Raises:
    ModuleNotFoundError: a listed module is missing (a broken install, never skipped).
  """
  parser = argparse.ArgumentParser(
      prog="uet", description="Unified-embedding recommender pipeline on TFX.")
  sub = parser.add_subparsers(dest="command", required=True)
  for name in SUBCOMMAND_MODULES:
    importlib.import_module(name).add_parser(sub)
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  """Runs `uet ARGV`; returns its exit code (`pipeline.exit_codes`)."""
  environment.configure()
  args = build_parser().parse_args(argv)
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
