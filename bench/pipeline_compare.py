"""This checkout against an older commit: a fresh `uet run` on MovieLens-100K, side by side.

Checks out the reference commit (default 9d8a70f, before issue 10) with `git worktree add`,
then runs the real command from scratch for both, in the same virtual environment and in
one invocation, and prints wall time per component and the ratio. Machine speed cancels out
in the ratio, not in the seconds. Prints numbers; asserts nothing. Target (issue 10): this
checkout's fresh run takes at most 50% of the reference's wall time.

  .venv/bin/python bench/pipeline_compare.py [--data-dir DIR] [--reference COMMIT]
      [--repeat N] [--keep DIR]

With --repeat N the two alternate (reference, this, reference, this, ...) and the medians
are compared, so a burst of load on a shared machine hits both.
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
from typing import Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "ml-100k")
COMPONENTS = ("MovieLensExampleGen", "StatisticsGen", "Transform", "BaselineTrainer",
              "CandidateTrainer", "Evaluator", "ProductionEvaluator")


def run_fresh(checkout: str, data_dir: str, output_dir: str) -> Dict:
  """`uet run` of `checkout` (its own packages first on the path) in a new output dir."""
  shutil.rmtree(output_dir, ignore_errors=True)
  env = dict(os.environ, PYTHONPATH=checkout)
  cmd = [PYTHON, "-m", "tools.cli", "run", "--data-dir", data_dir,
         "--output-dir", output_dir]
  start = time.perf_counter()
  proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if proc.returncode != 0:
    sys.stderr.write(proc.stderr[-4000:])
    raise SystemExit(f"{checkout}: uet run failed with exit code {proc.returncode}")
  with open(os.path.join(output_dir, "last_run.json")) as f:
    summary = json.load(f)
  return {"wall": seconds, "pipeline": summary["seconds"],
          "components": summary.get("component_seconds", {}),
          "candidate_auc": summary.get("candidate_auc"), "blessed": summary.get("blessed")}


def _median(runs: List[Dict], key: str, component: str = "") -> float:
  values = [r["components"].get(component, float("nan")) if component else r[key]
            for r in runs]
  return statistics.median(values)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", default=DEFAULT_DATA, help="MovieLens-100K directory")
  parser.add_argument("--reference", default="9d8a70f", help="commit to compare against")
  parser.add_argument("--repeat", type=int, default=1, help="runs of each (alternating)")
  parser.add_argument("--keep", help="keep the worktree and outputs in this directory")
  args = parser.parse_args()
  work = args.keep or tempfile.mkdtemp(prefix="uet-compare-")
  reference = os.path.join(work, "reference")
  if not os.path.isdir(reference):
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", reference,
                    args.reference], check=True, capture_output=True)
  runs: Dict[str, List[Dict]] = {"reference": [], "this": []}
  try:
    for i in range(args.repeat):
      for label, checkout in (("reference", reference), ("this", REPO)):
        result = run_fresh(checkout, args.data_dir, os.path.join(work, f"out-{label}-{i}"))
        runs[label].append(result)
        print(f"{label} run {i + 1}: {result['wall']:.1f} s wall "
              f"(candidate AUC {result['candidate_auc']:.4f}, blessed={result['blessed']})",
              flush=True)
  finally:
    if not args.keep:
      subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", reference],
                     capture_output=True)
      shutil.rmtree(work, ignore_errors=True)
  print(f"\nfresh `uet run` on {args.data_dir}; reference = {args.reference}; "
        f"median of {args.repeat}; {os.cpu_count()} cores (a shared machine inflates the "
        "seconds, not the ratio)\n")
  print(f"{'':22s} {'reference':>10s} {'this':>10s} {'this/ref':>9s}")
  rows = [("whole run (wall)", "wall", ""), ("pipeline", "pipeline", "")] + [
      (c, "", c) for c in COMPONENTS]
  for name, key, component in rows:
    ref, new = _median(runs["reference"], key, component), _median(runs["this"], key,
                                                                    component)
    print(f"{name:22s} {ref:10.1f} {new:10.1f} {new / ref:9.2f}")
  ratio = _median(runs["this"], "wall") / _median(runs["reference"], "wall")
  print(f"\nthis checkout takes {100 * ratio:.0f}% of the reference's wall time "
        f"(target <= 50%)")


if __name__ == "__main__":
  main()
