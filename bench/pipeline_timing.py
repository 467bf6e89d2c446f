"""Wall time of each component and of the whole `uet run` on MovieLens-100K.

Runs the real command twice in a fresh output directory: once from scratch, once fully
cached. Prints numbers; asserts nothing (targets: < 180 s and < 30 s on 2 cores).

  .venv/bin/python bench/pipeline_timing.py [--mirror DIR | --data-dir DIR] [--keep DIR]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UET = os.path.join(REPO, ".venv", "bin", "uet")


def run_once(args, output_dir):
  cmd = [UET, "run", "--output-dir", output_dir]
  if args.data_dir:
    cmd += ["--data-dir", args.data_dir]
  elif args.mirror:
    cmd += ["--mirror", args.mirror]
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if proc.returncode != 0:
    sys.stderr.write(proc.stderr[-4000:])
    raise SystemExit(f"uet run failed with exit code {proc.returncode}")
  with open(os.path.join(output_dir, "last_run.json")) as f:
    return seconds, json.load(f)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mirror", help="local copy of ml-100k")
  parser.add_argument("--data-dir", help="a MovieLens-layout directory")
  parser.add_argument("--keep", help="output directory to use and keep (default: a temp dir)")
  args = parser.parse_args()
  output_dir = args.keep or tempfile.mkdtemp(prefix="uet-bench-")
  try:
    for label in ("fresh", "cached"):
      seconds, summary = run_once(args, output_dir)
      print(f"== {label} run: {seconds:.1f} s wall for the whole `uet run` "
            f"(pipeline {summary['seconds']:.1f} s, the rest is Python/TF start-up and "
            f"dataset check)")
      for component, t in summary["component_seconds"].items():
        cached = " (cached)" if component in summary["cached_components"] else ""
        print(f"   {component:22s} {t:6.1f} s{cached}")
      print(f"   candidate AUC {summary['candidate_auc']:.4f}, baseline AUC "
            f"{summary['baseline_auc']:.4f}, blessed={summary['blessed']}")
  finally:
    if not args.keep:
      shutil.rmtree(output_dir, ignore_errors=True)


if __name__ == "__main__":
  main()
