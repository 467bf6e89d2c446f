"""`uet`: the command line of the product.

Each subcommand is a module with `add_parser(subparsers)`, which declares its flags and sets
`func`; modules import only argparse and light code at the top, and load TensorFlow and TFX
inside `func`, so `uet --help` and usage errors are fast.
"""

import argparse
import importlib
import os
import sys
import warnings
from typing import List, Optional

# The one place the `uet` process sets these, before anything imports TensorFlow: Keras 2 for
# TFRS/TFT/TFMA (TensorFlow 2.16 picks Keras 3 otherwise; Beam workers and `uet run-spec`
# tasks inherit it), and quiet C++ logs (TF 2.16 prints "Unable to register cuDNN factory"
# errors at import on every machine; set TF_CPP_MIN_LOG_LEVEL=0 to see all of them).
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Google client libraries warn about Python 3.10 on import; TFX 1.16 requires it.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\..*")

# Exit codes of every subcommand (README, "Exit codes").
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
# The ML Metadata store is damaged (see `uet restore-metadata`); SIGTERM cancelled the run
# (128 + 15, what a shell reports for a process that SIGTERM ended).
EXIT_METADATA, EXIT_CANCELLED = 4, 143

SUBCOMMAND_MODULES = (
    "pipeline.run_command",  # uet run
    "tools.spans",           # uet spans
    "kubeflow.cli",          # uet compile, uet schedule
    "tools.collisions",      # uet collisions
    "tools.simulate",        # uet simulate
    "pipeline.metadata_backup",  # uet restore-metadata
    "tools.report.cli",      # uet runs, uet report
    "tools.synth",           # uet synth
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
  args = build_parser().parse_args(argv)
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
