"""Cost curve: the real `uet run` on synthetic ratings of growing size.

For each size it writes a data set with `uet synth` (once; reused), runs `uet run` from
scratch in a fresh output directory and records: wall time of the run and of each
component, rows/s, the peak RSS summed over every process of the run (sampled with psutil
over the whole process tree, Beam workers included), the embedding parameters of the
candidate (fixed by the budget) and what a collisionless model would need at the
vocabulary of the train split. Prints numbers; asserts nothing. Targets (issue 10, 2 cores):
1M ratings in <= 10 min, 10M in <= 60 min with <= 8 GB peak RSS, 1M -> 10M time <= 11x.

  .venv/bin/python bench/scale.py [--sizes 100000,1000000] [--work DIR]
      [--beam-modes SIZE] [--only-report]

Results accumulate in bench/results/scale.json (one entry per size and Beam mode, a new
measurement replaces the old one), and scale.md / scale.png are redrawn from it, so the
sizes can be measured in separate invocations (10M takes up to an hour).
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import psutil

from pipeline.progress import STARTED_LINE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UET = os.path.join(REPO, ".venv", "bin", "uet")
RESULTS = os.path.join(REPO, "bench", "results")
DEFAULT_MODE = "in_memory"
# Beam arguments of each DirectRunner mode measured (`--beam-modes`).
BEAM_MODES = {
    DEFAULT_MODE: None,  # the config's defaults: in_memory, 1 worker
    "multi_processing_2": ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                           "--direct_num_workers=2"],
    "multi_threading_2": ["--runner=DirectRunner", "--direct_running_mode=multi_threading",
                          "--direct_num_workers=2"],
}
# Order of the components in the tables (the pipeline's order).
COMPONENTS = ("MovieLensExampleGen", "StatisticsGen", "Transform", "BaselineTrainer",
              "CandidateTrainer", "Evaluator", "ProductionEvaluator")


class TreeRssSampler:
  """Peak of the summed RSS of a process and all its descendants, sampled every `period`.

  With `log_path` (where the run's progress lines go), each sample is also charged to the
  component that started last, so the peak is known per component.
  """

  def __init__(self, pid: int, period: float = 0.5, log_path: Optional[str] = None):
    self._root = psutil.Process(pid)
    self._period = period
    self._log_path = log_path
    self._log_offset = 0
    self._component = "(start-up)"
    self.peak_bytes = 0
    self.peak_processes = 0
    self.peak_by_component: Dict[str, int] = {}
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True)

  def __enter__(self) -> "TreeRssSampler":
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    self._thread.join()

  def _follow_log(self) -> None:
    """Moves `_component` to the last component the log says started."""
    if not self._log_path or not os.path.exists(self._log_path):
      return
    with open(self._log_path, "rb") as f:
      f.seek(self._log_offset)
      data = f.read()
    complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits
    self._log_offset += len(complete)
    for line in complete.decode("utf-8", "replace").splitlines():
      match = STARTED_LINE.match(line.strip())
      if match:
        self._component = match.group(1)

  def _loop(self) -> None:
    while not self._stop.is_set():
      try:
        procs = [self._root] + self._root.children(recursive=True)
      except psutil.NoSuchProcess:
        return
      total = 0
      for p in procs:
        try:
          total += p.memory_info().rss
        except psutil.NoSuchProcess:
          pass
      if total > self.peak_bytes:
        self.peak_bytes, self.peak_processes = total, len(procs)
      self._follow_log()
      if total > self.peak_by_component.get(self._component, 0):
        self.peak_by_component[self._component] = total
      self._stop.wait(self._period)


def synth(size: int, work: str) -> str:
  """The data directory of `size` ratings (written once with `uet synth --seed 0`)."""
  directory = os.path.join(work, f"data-{size}")
  if os.path.isfile(os.path.join(directory, "u.user")) and os.path.isfile(
      os.path.join(directory, ".complete")):
    return directory
  shutil.rmtree(directory, ignore_errors=True)
  start = time.perf_counter()
  subprocess.run([UET, "synth", "--ratings", str(size), "--out", directory, "--seed", "0"],
                 check=True)
  open(os.path.join(directory, ".complete"), "w").close()
  print(f"synth {size}: {time.perf_counter() - start:.1f} s", flush=True)
  return directory


def _vocabulary_sizes(output_dir: str) -> Dict[str, int]:
  """Distinct values per model feature in the train split (what Transform analyzes).

  Read from StatisticsGen's exact unique counts of the raw string features. The age bucket
  is derived, so it counts as its number of buckets (an upper bound). Transform writes the
  vocabularies themselves only for the collisionless model (`uet run --collisionless`).
  """
  from tensorflow_data_validation import load_stats_binary  # pylint: disable=g-import-not-at-top
  from trainer import features  # pylint: disable=g-import-not-at-top
  paths = glob.glob(os.path.join(output_dir, "tfx", "StatisticsGen", "statistics", "*",
                                 "Split-train", "FeatureStats.pb"))
  if not paths:
    return {}
  unique = {f.path.step[0]: f.string_stats.unique
            for f in load_stats_binary(paths[0]).datasets[0].features
            if f.HasField("string_stats")}
  sizes = {name: unique[name] for name in features.MODEL_FEATURES if name in unique}
  sizes[features.USER_AGE_BUCKET] = len(features.AGE_BUCKET_LOWER_BOUNDS)
  return sizes


def _training_result(output_dir: str, trainer: str) -> Dict[str, Any]:
  paths = glob.glob(os.path.join(output_dir, "tfx", trainer, "model_run", "*",
                                 "training_result.json"))
  if not paths:
    return {}
  with open(paths[0]) as f:
    return json.load(f)


def run_size(size: int, work: str, mode: str) -> Dict[str, Any]:
  """Runs `uet run` from scratch on `size` synthetic ratings; returns the measurements."""
  data_dir = synth(size, work)
  output_dir = os.path.join(work, f"out-{size}-{mode}")
  shutil.rmtree(output_dir, ignore_errors=True)
  cmd = [UET, "run", "--data-dir", data_dir, "--output-dir", output_dir]
  for arg in BEAM_MODES[mode] or []:
    cmd.append(f"--beam-arg={arg}")
  print(f"== {size} ratings, {mode}: {' '.join(cmd)}", flush=True)
  start = time.perf_counter()
  log_path = os.path.join(work, f"uet-run-{size}-{mode}.log")
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    with TreeRssSampler(proc.pid, log_path=log_path) as sampler:
      returncode = proc.wait()
  seconds = time.perf_counter() - start
  summary: Dict[str, Any] = {}
  if os.path.isfile(os.path.join(output_dir, "last_run.json")):
    with open(os.path.join(output_dir, "last_run.json")) as f:
      summary = json.load(f)
  vocab = _vocabulary_sizes(output_dir)
  candidate = _training_result(output_dir, "CandidateTrainer")
  embedding_dim = (summary.get("config") or {}).get("candidate", {}).get("embedding_dim")
  if embedding_dim is None:
    from trainer.config import TrainingConfig  # pylint: disable=g-import-not-at-top
    embedding_dim = TrainingConfig().embedding_dim
  result = {
      "ratings": size,
      "mode": mode,
      "exit_code": returncode,
      "wall_seconds": round(seconds, 1),
      "pipeline_seconds": summary.get("seconds"),
      "component_seconds": summary.get("component_seconds", {}),
      "rows_per_second": round(size / seconds, 1),
      "peak_rss_bytes": sampler.peak_bytes,
      "processes_at_peak": sampler.peak_processes,
      "peak_rss_bytes_by_component": sampler.peak_by_component,
      "embedding_parameters": candidate.get("embedding_parameters"),
      "vocabulary_sizes": vocab,
      # One exact row per value plus an out-of-vocabulary row, per feature, as
      # trainer.embeddings.collisionless_spec builds it.
      "collisionless_parameters": (sum((n + 1) * embedding_dim for n in vocab.values())
                                   if vocab else None),
      "candidate_auc": summary.get("candidate_auc"),
      "baseline_auc": summary.get("baseline_auc"),
      "blessed": summary.get("blessed"),
      "log": log_path,
      "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
  }
  print(json.dumps({k: v for k, v in result.items() if k != "vocabulary_sizes"}), flush=True)
  return result


def _load() -> List[Dict[str, Any]]:
  path = os.path.join(RESULTS, "scale.json")
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return json.load(f)["runs"]


def _save(runs: List[Dict[str, Any]]) -> None:
  with open(os.path.join(RESULTS, "scale.json"), "w") as f:
    json.dump({"machine": f"{os.cpu_count()} cores (what else ran beside each run is noted "
                          "in the README's Scale section)",
               "runs": runs}, f, indent=2)


def _gb(n: Optional[int]) -> str:
  return "n/a" if not n else f"{n / 1e9:.2f}"


def _count(n: Optional[int]) -> str:
  return "n/a" if n is None else f"{n:,}"


def report(runs: List[Dict[str, Any]]) -> str:
  """scale.md: the tables, the targets and what the numbers say against them."""
  base = [r for r in runs if r["mode"] == DEFAULT_MODE]
  lines = ["# Cost curve: `uet run` on synthetic ratings (`bench/scale.py`)", "",
           f"{os.cpu_count()} cores. Seconds depend on the machine and on what else ran "
           "beside each run (noted per row in the README's Scale section); ratios carry "
           "over better than seconds.", "",
           "| ratings | wall (s) | rows/s | peak RSS, all processes (GB) | embedding params "
           "(candidate) | collisionless params at this vocabulary | exit |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
  for r in base:
    lines.append(f"| {r['ratings']:,} | {r['wall_seconds']:.0f} | {r['rows_per_second']:,.0f} "
                 f"| {_gb(r['peak_rss_bytes'])} | {_count(r['embedding_parameters'])} | "
                 f"{_count(r['collisionless_parameters'])} | {r['exit_code']} |")
  other = [r for r in runs if r["mode"] != DEFAULT_MODE]
  if other:
    lines += ["", "DirectRunner modes (same data, `--beam-arg` as in BEAM_MODES):", "",
              "| ratings | mode | wall (s) | peak RSS (GB) | processes at peak |",
              "|---:|---|---:|---:|---:|"]
    for r in sorted(other + [b for b in base if b["ratings"] in {o["ratings"] for o in other}],
                    key=lambda r: (r["ratings"], r["mode"])):
      lines.append(f"| {r['ratings']:,} | {r['mode']} | {r['wall_seconds']:.0f} | "
                   f"{_gb(r['peak_rss_bytes'])} | {r['processes_at_peak']} |")
  lines += ["", "Seconds per component:", "",
            "| ratings | mode | " + " | ".join(COMPONENTS) + " |",
            "|---:|---|" + "---:|" * len(COMPONENTS)]
  for r in runs:
    cells = [f"{r['component_seconds'].get(c, float('nan')):.0f}" for c in COMPONENTS]
    lines.append(f"| {r['ratings']:,} | {r['mode']} | " + " | ".join(cells) + " |")
  rss_rows = [r for r in runs if r.get("peak_rss_bytes_by_component")]
  if rss_rows:
    lines += ["", "Peak RSS while each component ran, all processes (GB; a sample is charged "
              "to the component that started last):", "",
              "| ratings | mode | " + " | ".join(COMPONENTS) + " |",
              "|---:|---|" + "---:|" * len(COMPONENTS)]
    for r in rss_rows:
      cells = [_gb(r["peak_rss_bytes_by_component"].get(c)) for c in COMPONENTS]
      lines.append(f"| {r['ratings']:,} | {r['mode']} | " + " | ".join(cells) + " |")
  vocab_rows = [r for r in base if r.get("vocabulary_sizes")]
  if vocab_rows:
    names = sorted(vocab_rows[0]["vocabulary_sizes"])
    lines += ["", "Vocabulary per feature (train split, from StatisticsGen; the age bucket counts its buckets):", "",
              "| ratings | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for r in vocab_rows:
      lines.append(f"| {r['ratings']:,} | " + " | ".join(
          f"{r['vocabulary_sizes'].get(n, 0):,}" for n in names) + " |")
  by_size = {r["ratings"]: r for r in base}
  lines += ["", "Against the targets (2 cores):", ""]
  if 1_000_000 in by_size:
    t = by_size[1_000_000]["wall_seconds"]
    lines.append(f"- 1M ratings end to end: {t / 60:.1f} min (target <= 10 min): "
                 f"{'met' if t <= 600 else 'NOT met'}.")
  if 10_000_000 in by_size:
    r10 = by_size[10_000_000]
    lines.append(f"- 10M ratings: {r10['wall_seconds'] / 60:.1f} min (target <= 60), peak RSS "
                 f"{_gb(r10['peak_rss_bytes'])} GB (target <= 8).")
    if 1_000_000 in by_size:
      ratio = r10["wall_seconds"] / by_size[1_000_000]["wall_seconds"]
      lines.append(f"- 1M -> 10M time: {ratio:.1f}x (target <= 11x).")
  else:
    lines.append("- 10M: not measured yet; run `.venv/bin/python bench/scale.py --sizes "
                 "10000000` (up to an hour on 2 cores).")
  return "\n".join(lines) + "\n"


def plot(runs: List[Dict[str, Any]], path: str) -> None:
  """scale.png: seconds per component and peak RSS against the number of ratings."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  base = [r for r in runs if r["mode"] == DEFAULT_MODE and r["component_seconds"]]
  if not base:
    return
  sizes = [r["ratings"] for r in base]
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
  for component in COMPONENTS:
    left.plot(sizes, [r["component_seconds"].get(component, 0) for r in base], marker="o",
              label=component)
  left.plot(sizes, [r["wall_seconds"] for r in base], marker="s", color="black",
            linewidth=2, label="whole run (wall)")
  left.set(xscale="log", yscale="log", xlabel="ratings", ylabel="seconds",
           title="Wall time per component")
  left.legend(fontsize=7, loc="lower right")
  right.plot(sizes, [r["peak_rss_bytes"] / 1e9 for r in base], marker="o")
  right.axhline(8, color="red", linestyle="--", label="target at 10M: 8 GB")
  right.set(xscale="log", xlabel="ratings", ylabel="GB",
            title="Peak RSS, all processes of the run")
  right.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="100000,1000000",
                      help="comma-separated numbers of ratings (default 100000,1000000)")
  parser.add_argument("--work", default=os.path.join(REPO, "bench", "scale-work"),
                      help="where data sets and run outputs go (not committed)")
  parser.add_argument("--beam-modes", type=int, metavar="SIZE",
                      help="also run SIZE with each other DirectRunner mode of BEAM_MODES")
  parser.add_argument("--modes", default=",".join(m for m in BEAM_MODES if m != DEFAULT_MODE),
                      help="the modes --beam-modes measures")
  parser.add_argument("--only-report", action="store_true",
                      help="redraw scale.md and scale.png from scale.json")
  args = parser.parse_args()
  os.makedirs(args.work, exist_ok=True)
  runs = _load()
  plan = [] if args.only_report else [(int(s), DEFAULT_MODE) for s in args.sizes.split(",")
                                      if s]
  if args.beam_modes and not args.only_report:
    plan += [(args.beam_modes, m) for m in args.modes.split(",")]
  failed = []
  for size, mode in plan:
    result = run_size(size, args.work, mode)
    if result["exit_code"]:
      # Not a measurement: it would replace the last good one in scale.json.
      failed.append(f"{size} ratings ({mode}) exited {result['exit_code']}: see {result['log']}")
      continue
    # Kept by size (and saved so): scale.md's tables and the plot's lines follow the order.
    runs = sorted([r for r in runs if (r["ratings"], r["mode"]) != (size, mode)] + [result],
                  key=lambda r: (r["ratings"], r["mode"]))
    _save(runs)  # after every run: a later failure keeps what was measured
  _save(runs)
  text = report(runs)
  with open(os.path.join(RESULTS, "scale.md"), "w") as f:
    f.write(text)
  plot(runs, os.path.join(RESULTS, "scale.png"))
  print(text)
  if failed:
    sys.exit("not recorded:\n" + "\n".join(failed))


if __name__ == "__main__":
  sys.path.insert(0, REPO)
  main()
