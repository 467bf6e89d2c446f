"""Start-up cost of `uet`: usage errors and a fully cached `uet run`, against `import tensorflow`.

Everything is measured in this one invocation, so the ratios hold across machines of
different speed (seconds do not). Prints numbers; asserts nothing. Targets (issue 10): a
usage error in under 2 s; a fully cached `uet run` in at most 1.5x `import tensorflow`.

  .venv/bin/python bench/startup.py [--mirror DIR | --data-dir DIR] [--output-dir O] [--repeat N]

Without --output-dir it first runs the pipeline once in a temporary directory (minutes),
so that the timed runs are fully cached. A re-run with nothing changed is timed twice: as
`uet run` does it (its up-to-date check finds the key the last run recorded and stops
before TensorFlow loads, pipeline/up_to_date.py), and with that key removed first, so that
TFX builds the pipeline and finds every component in its cache.

`import tensorflow` and the cached run are also timed without bytecode (Python pointed at
an empty bytecode cache and told not to write one), which is how every process ran before
scripts/setup.sh compiled the environment's bytecode: uv installs without it, and
PYTHONDONTWRITEBYTECODE is set on our machines.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
UET = os.path.join(REPO, ".venv", "bin", "uet")

from pipeline import lock  # noqa: E402  (light: no TensorFlow)


def timed(cmd, expect_code=None, env=None):
  """Wall seconds of one command; checks its exit code when `expect_code` is given."""
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
  seconds = time.perf_counter() - start
  if expect_code is not None and proc.returncode != expect_code:
    sys.stderr.write(proc.stderr[-3000:])
    raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}, expected {expect_code}")
  return seconds, proc


def median_of(repeat, cmd, expect_code=None, env=None):
  return statistics.median(timed(cmd, expect_code, env)[0] for _ in range(repeat))


def has_bytecode() -> bool:
  """Whether TensorFlow's `__init__` has compiled bytecode in this environment."""
  proc = subprocess.run([PYTHON, "-c", "import importlib.util, os; "
                         "s = importlib.util.find_spec('tensorflow').origin; "
                         "print(os.path.exists(importlib.util.cache_from_source(s)))"],
                        capture_output=True, text=True, check=True)
  return proc.stdout.strip() == "True"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mirror", help="local copy of ml-100k")
  parser.add_argument("--data-dir", help="a MovieLens-layout directory")
  parser.add_argument("--output-dir", help="an output directory of a completed run of the "
                      "same data (default: run once in a temporary directory first)")
  parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
  args = parser.parse_args()
  data = ["--data-dir", args.data_dir] if args.data_dir else (
      ["--mirror", args.mirror] if args.mirror else [])
  output_dir = args.output_dir or tempfile.mkdtemp(prefix="uet-startup-")
  empty_cache = tempfile.mkdtemp(prefix="uet-no-bytecode-")  # nothing is written to it
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
  try:
    if not args.output_dir:
      seconds, _ = timed([UET, "run", "--output-dir", output_dir, *data], 0)
      print(f"(preparing: a fresh run took {seconds:.1f} s)")
    rows = []
    tf_seconds = median_of(args.repeat, [PYTHON, "-c", "import tensorflow"], 0, env)
    rows.append(("python -c 'import tensorflow'", tf_seconds))
    no_bytecode = dict(env, PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=empty_cache)
    rows.append(("  the same without bytecode",
                 median_of(args.repeat, [PYTHON, "-c", "import tensorflow"], 0, no_bytecode)))
    rows.append(("uet run --data-dir /nonexistent (exit 2)",
                 median_of(args.repeat, [UET, "run", "--data-dir", "/nonexistent"], 2)))
    rows.append(("uet run --epochs five (exit 2)",
                 median_of(args.repeat, [UET, "run", "--epochs", "five"], 2)))
    bad_config = os.path.join(output_dir, "bad-config.json")
    with open(bad_config, "w") as f:
      json.dump({"trainign": {"epochs": 1}}, f)
    rows.append(("uet run --config (unknown key) (exit 2)",
                 median_of(args.repeat, [UET, "run", "--config", bad_config, *data], 2)))
    locked = tempfile.mkdtemp(prefix="uet-locked-")
    with lock.output_lock(locked):
      rows.append(("uet run on a locked output (exit 3)",
                   median_of(args.repeat, [UET, "run", "--output-dir", locked, *data], 3)))
    shutil.rmtree(locked, ignore_errors=True)
    run_cmd = [UET, "run", "--output-dir", output_dir, *data]
    summary_path = os.path.join(output_dir, "last_run.json")
    timed(run_cmd, 0)  # records the up-to-date key, if a run before this code did not

    def skipped(env=None):
      seconds, proc = timed(run_cmd, 0, env)
      if "nothing changed since the last run" not in proc.stderr:
        raise SystemExit(f"the timed run was not skipped as up to date:\n{proc.stderr[-2000:]}")
      return seconds

    def tfx_cached(env=None):
      """A run whose up-to-date key was removed first: TFX's cache decides (and the run
      records the key again)."""
      with open(summary_path) as f:
        summary = json.load(f)
      summary.pop("up_to_date_key", None)
      with open(summary_path, "w") as f:
        json.dump(summary, f)
      seconds, _ = timed(run_cmd, 0, env)
      with open(summary_path) as f:
        summary = json.load(f)
      not_cached = [c for c, s in summary["components"].items() if s != "cached"]
      if not_cached:
        raise SystemExit(f"the timed run was not fully cached: {not_cached} ran")
      return seconds, summary

    rows.append(("uet run, nothing changed (up to date)",
                 statistics.median(skipped() for _ in range(args.repeat))))
    rows.append(("  the same without bytecode",
                 statistics.median(skipped(no_bytecode) for _ in range(args.repeat))))
    cached = [tfx_cached() for _ in range(args.repeat)]
    summary = cached[-1][1]
    rows.append(("uet run, fully cached by TFX (key removed)",
                 statistics.median(s for s, _ in cached)))
    rows.append(("  the same without bytecode", statistics.median(
        tfx_cached(no_bytecode)[0] for _ in range(args.repeat))))
    print(f"\n{'command':45s} {'seconds':>8s} {'x import tensorflow':>20s}")
    for name, seconds in rows:
      print(f"{name:45s} {seconds:8.2f} {seconds / tf_seconds:20.2f}")
    print(f"(median of {args.repeat}; pipeline part of the TFX-cached run: "
          f"{summary['seconds']:.1f} s; environment has bytecode: {has_bytecode()})")
  finally:
    shutil.rmtree(empty_cache, ignore_errors=True)
    if not args.output_dir:
      shutil.rmtree(output_dir, ignore_errors=True)


if __name__ == "__main__":
  main()
