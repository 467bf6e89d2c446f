"""Cost curve: the real `uet run` on synthetic data of growing size, for a dataset spec.

For a dataset (`--dataset`: a preset such as movielens or wide, or a spec file), each size
and each seed, it writes a data set with `uet synth --dataset D --rows N --seed SEED`
(once; reused), runs `uet run --dataset D` from scratch in a fresh output directory (with
`--config FILE` when given) and records whether it
passed (and, if not, which component failed and why), wall time of the run and of each
component, rows/s, the peak RSS summed over every process of the run (sampled with psutil
over the whole process tree, Beam workers included), the embedding parameters of the
candidate (fixed by the budget), both models' AUCs, and what a collisionless model would
need at the vocabulary of the train split. Prints numbers; asserts nothing. The seed
changes the data (ids, their lengths, who interacts with what): one seed is one input, and
a size is measured on several (`--seeds`) so that a result does not hang on one input.
Targets (`TARGETS`, on 2 cores): MovieLens layout (issue 10): 1M ratings in <= 10 min, 10M
in <= 60 min with <= 8 GB peak RSS, 1M -> 10M time <= 11x; the wide preset (issue 23, 26
categorical + 13 numeric features): 1M rows in <= 10 min, 10M in <= 60 min, <= 8 GB.

The wide preset is measured with `--config bench/configs/scale_wide.json`: an embedding
budget of 2,600,000 parameters, one unified row (dimension 8) per open-vocabulary id that
`uet synth` declares at 1M rows (323,000 over its ten id features). The default 24,000
resolves too (the smallest budget `trainer.config.resolve` accepts for wide is 2,912: the
admission filter and defaults of the ten id features, 2,896, plus one row), but gives 39
features 2,600 rows.

  .venv/bin/python bench/scale.py [--dataset movielens] [--config FILE]
      [--sizes 100000,1000000] [--seeds 0 1 2] [--work DIR] [--results DIR]
      [--beam-modes SIZE] [--note TEXT] [--only-report]

Results accumulate in bench/results/scale.json (one entry per dataset, size, Beam mode and
seed; a new measurement replaces the old one, a failed run included: it is that seed's
outcome; each entry carries the commit, the machine and `--note`), and scale.md /
scale.png (scale-<dataset>.png for other datasets) are redrawn from it, so datasets, sizes
and seeds can be measured in separate invocations (10M takes up to an hour).
"""

import argparse
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import psutil

from pipeline import ids
from pipeline.progress import STARTED_LINE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UET = os.path.join(REPO, ".venv", "bin", "uet")
RESULTS = os.path.join(REPO, "bench", "results")
DEFAULT_MODE = "in_memory"
# The seed of every entry measured before there was --seeds.
DEFAULT_SEED = 0
# The dataset of every entry measured before there was --dataset.
DEFAULT_DATASET = "movielens"
# The ExampleGen's node id in entries measured when it read MovieLens only.
OLD_EXAMPLE_GEN = "MovieLensExampleGen"
# dataset -> (1M rows max seconds, 10M rows max seconds, 10M max peak RSS bytes, max 1M ->
# 10M time ratio or None, the issue that sets them).
TARGETS = {
    "movielens": (600, 3600, 8e9, 11.0, "issue 10"),
    "wide": (600, 3600, 8e9, None, "issue 23"),
}
# Beam arguments of each DirectRunner mode measured (`--beam-modes`).
BEAM_MODES = {
    DEFAULT_MODE: None,  # the config's defaults: in_memory, 1 worker
    "multi_processing_2": ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                           "--direct_num_workers=2"],
    "multi_threading_2": ["--runner=DirectRunner", "--direct_running_mode=multi_threading",
                          "--direct_num_workers=2"],
}
# A component's end in the run's progress lines (`pipeline.progress`).
DONE_LINE = re.compile(r"^\[\s*[0-9.]+s\] (\S+) done in ([0-9.]+)s")
# Order of the components in the tables (the pipeline's order).
COMPONENTS = (ids.EXAMPLE_GEN, ids.STATISTICS_GEN, ids.TRANSFORM, ids.BASELINE_TRAINER,
              ids.CANDIDATE_TRAINER, ids.EVALUATOR, ids.PRODUCTION_EVALUATOR)


class TreeRssSampler:
  """Peak of the summed RSS of a process and all its descendants, sampled every `period`,
  and the CPU seconds (user + system) they used.

  With `log_path` (where the run's progress lines go), each sample is also charged to the
  component that started last, so the peak and the CPU seconds are known per component.
  CPU seconds count the live processes and the exited children the root has waited for;
  on a shared machine they say what the run cost when wall seconds say how long it waited.
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
    self.cpu_seconds = 0.0
    self.cpu_seconds_by_component: Dict[str, float] = {}
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
      cpu = 0.0
      for p in procs:
        try:
          total += p.memory_info().rss
          times = p.cpu_times()
          cpu += times.user + times.system
          if p is self._root:
            cpu += times.children_user + times.children_system
        except psutil.NoSuchProcess:
          pass
      if total > self.peak_bytes:
        self.peak_bytes, self.peak_processes = total, len(procs)
      if cpu > self.cpu_seconds:  # a child that exited unwaited takes its seconds along
        # Charged to the component that ran since the last sample.
        self.cpu_seconds_by_component[self._component] = round(
            self.cpu_seconds_by_component.get(self._component, 0.0) + cpu - self.cpu_seconds,
            1)
        self.cpu_seconds = cpu
      self._follow_log()
      if total > self.peak_by_component.get(self._component, 0):
        self.peak_by_component[self._component] = total
      self._stop.wait(self._period)


def _tag(dataset: str) -> str:
  """The dataset's part of file names: none for MovieLens (the names measured before
  --dataset), else `<name>-`."""
  return "" if dataset == DEFAULT_DATASET else f"{os.path.basename(dataset)}-"


def synth(size: int, work: str, seed: int = DEFAULT_SEED,
          dataset: str = DEFAULT_DATASET) -> str:
  """The data directory of `size` rows of `dataset` (written once with `uet synth --dataset
  DATASET --rows SIZE --seed SEED`)."""
  suffix = f"-seed{seed}" if seed != DEFAULT_SEED or dataset != DEFAULT_DATASET else ""
  directory = os.path.join(work, f"data-{_tag(dataset)}{size}{suffix}")
  if os.path.isfile(os.path.join(directory, ".complete")):
    return directory
  shutil.rmtree(directory, ignore_errors=True)
  start = time.perf_counter()
  subprocess.run([UET, "synth", "--dataset", dataset, "--rows", str(size), "--out",
                  directory, "--seed", str(seed)], check=True)
  open(os.path.join(directory, ".complete"), "w").close()
  print(f"synth {dataset} {size} (seed {seed}): {time.perf_counter() - start:.1f} s",
        flush=True)
  return directory


def _vocabulary_sizes(output_dir: str, dataset: str) -> Dict[str, int]:
  """Distinct values per model feature in the train split (what Transform analyzes).

  From the dataset spec: a feature with a closed domain after Transform (a numeric
  feature's buckets, a categorical feature's `domain_size`) counts its domain (an upper
  bound); the others count StatisticsGen's exact unique values of their raw string column.
  Transform writes the vocabularies themselves only for the collisionless model (`uet run
  --collisionless`).
  """
  from tensorflow_data_validation import load_stats_binary  # pylint: disable=g-import-not-at-top
  from dataspec import spec as spec_lib  # pylint: disable=g-import-not-at-top
  paths = glob.glob(os.path.join(output_dir, "tfx", "StatisticsGen", "statistics", "*",
                                 "Split-train", "FeatureStats.pb"))
  if not paths:
    return {}
  unique = {f.path.step[0]: f.string_stats.unique
            for f in load_stats_binary(paths[0]).datasets[0].features
            if f.HasField("string_stats")}
  sizes = {}
  for feature in spec_lib.with_schema_domains(spec_lib.load(dataset)).features:
    if feature.closed_domain_size is not None:
      sizes[feature.name] = feature.closed_domain_size
    elif feature.column in unique:
      sizes[feature.name] = unique[feature.column]
  return sizes


def _commit() -> str:
  try:
    return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def _machine() -> str:
  return f"{os.cpu_count()} cores, {platform.machine()}"


def _component_seconds_from_log(log_path: str) -> Dict[str, float]:
  """Seconds of each component that ended, from the run's progress lines: the times of a
  run that stopped without writing its summary (killed, or out of memory)."""
  if not os.path.isfile(log_path):
    return {}
  seconds = {}
  with open(log_path, encoding="utf-8", errors="replace") as f:
    for line in f:
      match = DONE_LINE.match(line.strip())
      if match:
        seconds[match.group(1)] = float(match.group(2))
  return seconds


def _training_result(output_dir: str, trainer: str) -> Dict[str, Any]:
  paths = glob.glob(os.path.join(output_dir, "tfx", trainer, "model_run", "*",
                                 "training_result.json"))
  if not paths:
    return {}
  with open(paths[0]) as f:
    return json.load(f)


def _error_line(summary: Dict[str, Any], returncode: int, log_path: str) -> Optional[str]:
  """What stopped a failed run, in one line (the summary's error, else the exit code)."""
  if returncode == 0:
    return None
  error = (summary.get("error") or "").strip()
  if error:
    return error.splitlines()[0][:300]
  return f"exit code {returncode} without a summary; see {log_path}"


def run_size(size: int, work: str, mode: str, seed: int = DEFAULT_SEED,
             dataset: str = DEFAULT_DATASET, config: Optional[str] = None,
             note: str = "") -> Dict[str, Any]:
  """Runs `uet run` from scratch on `size` synthetic rows of `dataset` and `seed` (with the
  config file `config`, if any); returns the measurements, and the outcome (passed or
  failed) with what failed."""
  data_dir = synth(size, work, seed, dataset)
  output_dir = os.path.join(work, f"out-{_tag(dataset)}{size}-{mode}-seed{seed}")
  shutil.rmtree(output_dir, ignore_errors=True)
  cmd = [UET, "run", "--dataset", dataset, "--data-dir", data_dir, "--output-dir",
         output_dir]
  if config:
    cmd += ["--config", config]
  for arg in BEAM_MODES[mode] or []:
    cmd.append(f"--beam-arg={arg}")
  print(f"== {dataset}, {size} rows, {mode}, seed {seed}: {' '.join(cmd)}", flush=True)
  start = time.perf_counter()
  log_path = os.path.join(work, f"uet-run-{_tag(dataset)}{size}-{mode}-seed{seed}.log")
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    with TreeRssSampler(proc.pid, log_path=log_path) as sampler:
      returncode = proc.wait()
  seconds = time.perf_counter() - start
  summary: Dict[str, Any] = {}
  if os.path.isfile(os.path.join(output_dir, "last_run.json")):
    with open(os.path.join(output_dir, "last_run.json")) as f:
      summary = json.load(f)
  vocab = _vocabulary_sizes(output_dir, dataset)
  candidate = _training_result(output_dir, "CandidateTrainer")
  candidate_config = (summary.get("config") or {}).get("candidate", {})
  embedding_dim = candidate_config.get("embedding_dim")
  if embedding_dim is None:
    from trainer.config import TrainingConfig  # pylint: disable=g-import-not-at-top
    embedding_dim = TrainingConfig().embedding_dim
  config_values = None
  if config:
    with open(config) as f:
      config_values = json.load(f)
  result = {
      "dataset": dataset,
      "rows": size,
      "mode": mode,
      "seed": seed,
      "outcome": "passed" if returncode == 0 else "failed",
      "failed_component": summary.get("failed_component"),
      "error": _error_line(summary, returncode, log_path),
      "exit_code": returncode,
      "wall_seconds": round(seconds, 1),
      "pipeline_seconds": summary.get("seconds"),
      "component_seconds": (summary.get("component_seconds")
                            or _component_seconds_from_log(log_path)),
      "rows_per_second": round(size / seconds, 1),
      "config_file": config,
      "config": config_values,
      "embedding_budget": candidate_config.get("embedding_budget"),
      "peak_rss_bytes": sampler.peak_bytes,
      "processes_at_peak": sampler.peak_processes,
      "peak_rss_bytes_by_component": sampler.peak_by_component,
      "cpu_seconds": round(sampler.cpu_seconds, 1),
      "cpu_seconds_by_component": sampler.cpu_seconds_by_component,
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
      "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
      "commit": _commit(),
      "machine": _machine(),
      "note": note,
  }
  print(json.dumps({k: v for k, v in result.items() if k != "vocabulary_sizes"}), flush=True)
  return result


def _key(r: Dict[str, Any]):
  return (r["dataset"] != DEFAULT_DATASET, r["dataset"], r["rows"], r["mode"], r["seed"])


def _load(results: str) -> List[Dict[str, Any]]:
  path = os.path.join(results, "scale.json")
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    runs = json.load(f)["runs"]
  for r in runs:
    # Entries measured before --seeds: seed 0, and only runs that passed were kept.
    r.setdefault("seed", DEFAULT_SEED)
    r.setdefault("outcome", "passed" if r["exit_code"] == 0 else "failed")
    # Entries measured before --dataset: MovieLens ratings, counted in "ratings".
    r.setdefault("dataset", DEFAULT_DATASET)
    if "rows" not in r:
      r["rows"] = r.pop("ratings")
    if not r.get("component_seconds") and r.get("log"):
      r["component_seconds"] = _component_seconds_from_log(r["log"])
    # The ExampleGen's node id before it ingested any dataset.
    for field in ("component_seconds", "peak_rss_bytes_by_component"):
      if OLD_EXAMPLE_GEN in r.get(field, {}):
        r[field][ids.EXAMPLE_GEN] = r[field].pop(OLD_EXAMPLE_GEN)
  return runs


def _save(runs: List[Dict[str, Any]], results: str) -> None:
  with open(os.path.join(results, "scale.json"), "w") as f:
    json.dump({"machine": f"{os.cpu_count()} cores (each run's commit, machine and note are "
                          "in its entry; what else ran beside the earlier MovieLens runs is "
                          "noted in docs/measured.md, Scale)",
               "runs": runs}, f, indent=2)


def _gb(n: Optional[int]) -> str:
  return "n/a" if not n else f"{n / 1e9:.2f}"


def _count(n: Optional[int]) -> str:
  return "n/a" if n is None else f"{n:,}"


def _auc(x: Optional[float]) -> str:
  return "n/a" if x is None else f"{x:.4f}"


def _passed(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  return [r for r in runs if r["outcome"] == "passed"]


def _median(values: List[float]) -> float:
  values = sorted(values)
  middle = len(values) // 2
  return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def _by_size(runs: List[Dict[str, Any]]) -> Dict[int, List[Dict[str, Any]]]:
  """The default mode's runs of each size (of one dataset), every seed, in seed order."""
  sizes: Dict[int, List[Dict[str, Any]]] = {}
  for r in sorted(runs, key=_key):
    if r["mode"] == DEFAULT_MODE:
      sizes.setdefault(r["rows"], []).append(r)
  return sizes


def _representative(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """One run per size for the plot: the passed run of median wall time."""
  chosen = []
  for size_runs in _by_size(runs).values():
    passed = sorted(_passed(size_runs), key=lambda r: r["wall_seconds"])
    if passed:
      chosen.append(passed[(len(passed) - 1) // 2])
  return chosen


def _datasets(runs: List[Dict[str, Any]]) -> List[str]:
  """The datasets measured, MovieLens first."""
  return sorted({r["dataset"] for r in runs}, key=lambda d: (d != DEFAULT_DATASET, d))


def _largest_components(r: Dict[str, Any], count: int = 3) -> str:
  """The components that took longest in a run: their wall seconds, share of the run and
  (when sampled) CPU seconds."""
  seconds = sorted(r["component_seconds"].items(), key=lambda kv: -kv[1])[:count]
  total = r.get("pipeline_seconds") or r["wall_seconds"]
  cpu = r.get("cpu_seconds_by_component") or {}
  return ", ".join(f"{c} {s:.0f} s ({100 * s / total:.0f}%"
                   + (f", {cpu[c]:.0f} CPU s" if c in cpu else "") + ")" for c, s in seconds)


def _report_dataset(dataset: str, runs: List[Dict[str, Any]]) -> List[str]:
  """scale.md's section of one dataset: the tables, the targets and what the numbers say."""
  base = [r for r in sorted(runs, key=_key) if r["mode"] == DEFAULT_MODE]
  by_size = _by_size(runs)
  unit = "ratings" if dataset == DEFAULT_DATASET else "rows"
  lines = [f"## {dataset}", ""]
  configs = sorted({json.dumps(r.get("config")) for r in runs if r.get("config")})
  if configs:
    lines += [f"Runs with `--config`: {', '.join(f'`{c}`' for c in configs)} (each run's "
              "file and values are in scale.json).", ""]
  notes = [r for r in base if r.get("commit") or r.get("note")]
  if notes:
    lines += ["Where each run was measured:", ""]
    for r in notes:
      lines.append(f"- {r['rows']:,} {unit}, seed {r['seed']}: {r['measured_at']}, commit "
                   f"{r.get('commit', '?')}, {r.get('machine', '?')}"
                   + (f"; {r['note']}" if r.get("note") else "") + ".")
    lines.append("")
  lines += ["Every size, over its seeds:", "",
            f"| {unit} | seeds | passed | wall (s), median [min, max] of passed | peak RSS, "
            "all processes (GB), max of passed | candidate AUC [min, max] | baseline AUC "
            "[min, max] |",
            "|---:|---|---:|---|---:|---|---|"]
  for size, size_runs in by_size.items():
    passed = _passed(size_runs)
    seeds = ", ".join(str(r["seed"]) for r in size_runs)
    if passed:
      walls = [r["wall_seconds"] for r in passed]
      wall = f"{_median(walls):.0f} [{min(walls):.0f}, {max(walls):.0f}]"
      peak = _gb(max(r["peak_rss_bytes"] for r in passed))
      aucs = {}
      for model in ("candidate_auc", "baseline_auc"):
        values = [r[model] for r in passed if r.get(model) is not None]
        aucs[model] = (f"{_auc(min(values))}, {_auc(max(values))}" if values else "n/a")
      candidate, baseline = f"[{aucs['candidate_auc']}]", f"[{aucs['baseline_auc']}]"
    else:
      wall = peak = candidate = baseline = "n/a"
    lines.append(f"| {size:,} | {seeds} | {len(passed)} of {len(size_runs)} | {wall} | "
                 f"{peak} | {candidate} | {baseline} |")
  lines += ["", "Every seed:", "",
            f"| {unit} | seed | outcome | wall (s) | rows/s | peak RSS, all processes (GB) | "
            "candidate AUC | baseline AUC | embedding params (candidate) | collisionless "
            "params at this vocabulary | what failed |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
  for r in base:
    failure = (f"{r.get('failed_component') or '?'}: {r.get('error') or ''}"
               if r["outcome"] != "passed" else "")
    lines.append(f"| {r['rows']:,} | {r['seed']} | {r['outcome']} | "
                 f"{r['wall_seconds']:.0f} | {r['rows_per_second']:,.0f} | "
                 f"{_gb(r['peak_rss_bytes'])} | {_auc(r.get('candidate_auc'))} | "
                 f"{_auc(r.get('baseline_auc'))} | {_count(r['embedding_parameters'])} | "
                 f"{_count(r['collisionless_parameters'])} | "
                 f"{failure.replace('|', '/')} |")
  other = [r for r in runs if r["mode"] != DEFAULT_MODE]
  if other:
    lines += ["", "DirectRunner modes (same data, `--beam-arg` as in BEAM_MODES):", "",
              f"| {unit} | seed | mode | outcome | wall (s) | peak RSS (GB) | processes at "
              "peak |",
              "|---:|---:|---|---|---:|---:|---:|"]
    compared = {(o["rows"], o["seed"]) for o in other}
    for r in sorted(other + [b for b in base if (b["rows"], b["seed"]) in compared],
                    key=lambda r: (r["rows"], r["seed"], r["mode"])):
      lines.append(f"| {r['rows']:,} | {r['seed']} | {r['mode']} | {r['outcome']} | "
                   f"{r['wall_seconds']:.0f} | {_gb(r['peak_rss_bytes'])} | "
                   f"{r['processes_at_peak']} |")
  lines += ["", "Seconds per component (a failed run stops at its failed component):", "",
            f"| {unit} | seed | mode | " + " | ".join(COMPONENTS) + " |",
            "|---:|---:|---|" + "---:|" * len(COMPONENTS)]
  for r in sorted(runs, key=_key):
    cells = [f"{r['component_seconds'].get(c, float('nan')):.0f}" for c in COMPONENTS]
    lines.append(f"| {r['rows']:,} | {r['seed']} | {r['mode']} | " + " | ".join(cells)
                 + " |")
  cpu_rows = [r for r in runs if r.get("cpu_seconds_by_component")]
  if cpu_rows:
    lines += ["", "CPU seconds (user + system, all processes) per component: what a run cost, "
              "whatever else shared the machine:", "",
              f"| {unit} | seed | mode | total | " + " | ".join(COMPONENTS) + " |",
              "|---:|---:|---|---:|" + "---:|" * len(COMPONENTS)]
    for r in sorted(cpu_rows, key=_key):
      cells = [f"{r['cpu_seconds_by_component'].get(c, float('nan')):.0f}"
               for c in COMPONENTS]
      lines.append(f"| {r['rows']:,} | {r['seed']} | {r['mode']} | {r['cpu_seconds']:.0f} | "
                   + " | ".join(cells) + " |")
  rss_rows = [r for r in runs if r.get("peak_rss_bytes_by_component")]
  if rss_rows:
    lines += ["", "Peak RSS while each component ran, all processes (GB; a sample is charged "
              "to the component that started last):", "",
              f"| {unit} | seed | mode | " + " | ".join(COMPONENTS) + " |",
              "|---:|---:|---|" + "---:|" * len(COMPONENTS)]
    for r in sorted(rss_rows, key=_key):
      cells = [_gb(r["peak_rss_bytes_by_component"].get(c)) for c in COMPONENTS]
      lines.append(f"| {r['rows']:,} | {r['seed']} | {r['mode']} | " + " | ".join(cells)
                   + " |")
  vocab_rows = [r for r in base if r.get("vocabulary_sizes")]
  if vocab_rows:
    names = list(vocab_rows[0]["vocabulary_sizes"])
    lines += ["", "Vocabulary per feature (train split: distinct values from StatisticsGen; "
              "a closed domain, numeric buckets included, counts its size):", "",
              f"| {unit} | seed | " + " | ".join(names) + " |",
              "|---:|---:|" + "---:|" * len(names)]
    for r in vocab_rows:
      lines.append(f"| {r['rows']:,} | {r['seed']} | " + " | ".join(
          f"{r['vocabulary_sizes'].get(n, 0):,}" for n in names) + " |")
  if dataset not in TARGETS:
    return lines
  max_1m, max_10m, max_rss, max_ratio, issue = TARGETS[dataset]
  lines += ["", f"Against the targets ({issue}, 2 cores; a target is met when every seed "
            "passed within it; where one is missed, the components that took longest):", ""]

  def slowest(size: int) -> Optional[Dict[str, Any]]:
    runs_of_size = by_size.get(size, [])
    if not runs_of_size or len(_passed(runs_of_size)) < len(runs_of_size):
      return None
    return max(runs_of_size, key=lambda r: r["wall_seconds"])

  def outcome(size: int) -> str:
    runs_of_size = by_size[size]
    return (f"{len(_passed(runs_of_size))} of {len(runs_of_size)} seeds passed "
            f"({', '.join(str(r['seed']) for r in runs_of_size)})")

  if 1_000_000 in by_size:
    r = slowest(1_000_000)
    if r is None:
      lines.append(f"- 1M {unit} end to end: {outcome(1_000_000)}; NOT met: a seed failed.")
    else:
      t = r["wall_seconds"]
      met = t <= max_1m
      lines.append(f"- 1M {unit} end to end: {outcome(1_000_000)}; slowest {t / 60:.1f} min "
                   f"(target <= {max_1m / 60:.0f} min): {'met' if met else 'NOT met'}"
                   + ("." if met else f"; longest components: {_largest_components(r)}."))
  if 10_000_000 in by_size:
    r = slowest(10_000_000)
    peak = max((x["peak_rss_bytes"] for x in _passed(by_size[10_000_000])), default=None)
    if r is None:
      lines.append(f"- 10M {unit}: {outcome(10_000_000)}; NOT met: a seed failed.")
    else:
      t = r["wall_seconds"]
      met = t <= max_10m and peak <= max_rss
      lines.append(f"- 10M {unit}: {outcome(10_000_000)}; slowest {t / 60:.1f} min (target "
                   f"<= {max_10m / 60:.0f}), peak RSS {_gb(peak)} GB (target <= "
                   f"{max_rss / 1e9:.0f}): {'met' if met else 'NOT met'}"
                   + ("." if met else f"; longest components: {_largest_components(r)}."))
    if max_ratio is not None and r is not None and slowest(1_000_000) is not None:
      medians = [_median([x["wall_seconds"] for x in by_size[s]])
                 for s in (1_000_000, 10_000_000)]
      lines.append(f"- 1M -> 10M time, median over seeds: {medians[1] / medians[0]:.1f}x "
                   f"(target <= {max_ratio:.0f}x).")
  else:
    flags = "" if dataset == DEFAULT_DATASET else f"--dataset {dataset} "
    lines.append(f"- 10M: not measured yet; run `.venv/bin/python bench/scale.py {flags}"
                 "--sizes 10000000` (up to an hour on 2 cores).")
  return lines


def report(runs: List[Dict[str, Any]]) -> str:
  """scale.md: per dataset, the tables, the targets and what the numbers say against them."""
  lines = ["# Cost curve: `uet run` on synthetic data (`bench/scale.py`)", "",
           f"{os.cpu_count()} cores. Seconds depend on the machine and on what else ran "
           "beside each run (noted per run below, or for the earlier MovieLens runs in "
           "docs/measured.md, Scale); ratios carry over better than seconds. Each seed is "
           "one input (`uet synth --dataset D --rows N --seed S`).", ""]
  for dataset in _datasets(runs):
    lines += _report_dataset(dataset, [r for r in runs if r["dataset"] == dataset]) + [""]
  return "\n".join(lines)


def plot_path(results: str, dataset: str) -> str:
  """scale.png for MovieLens (the plot measured before --dataset), else scale-<name>.png."""
  return os.path.join(results, "scale.png" if dataset == DEFAULT_DATASET
                      else f"scale-{_tag(dataset)[:-1]}.png")


def plot(runs: List[Dict[str, Any]], path: str) -> None:
  """The plot of one dataset's runs: seconds per component and peak RSS against rows."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  # Per size, the passed run of median wall time.
  base = [r for r in _representative(runs) if r["component_seconds"]]
  if not base:
    return
  sizes = [r["rows"] for r in base]
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
  for component in COMPONENTS:
    left.plot(sizes, [r["component_seconds"].get(component, 0) for r in base], marker="o",
              label=component)
  left.plot(sizes, [r["wall_seconds"] for r in base], marker="s", color="black",
            linewidth=2, label="whole run (wall)")
  left.set(xscale="log", yscale="log", xlabel="rows", ylabel="seconds",
           title=f"{base[0]['dataset']}: wall time per component (median seed)")
  left.legend(fontsize=7, loc="lower right")
  right.plot(sizes, [r["peak_rss_bytes"] / 1e9 for r in base], marker="o")
  right.axhline(8, color="red", linestyle="--", label="target at 10M: 8 GB")
  right.set(xscale="log", xlabel="rows", ylabel="GB",
            title="Peak RSS, all processes of the run")
  right.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default=DEFAULT_DATASET,
                      help="a preset (movielens, wide, ...) or a dataset spec file: what "
                      f"`uet synth` writes and `uet run` trains on (default {DEFAULT_DATASET})")
  parser.add_argument("--config", help="a `uet run --config` JSON file passed to every run "
                      "(e.g. a larger embedding budget); recorded with each result")
  parser.add_argument("--note", default="",
                      help="recorded with each result and shown in scale.md (e.g. what else "
                      "ran on the machine)")
  parser.add_argument("--sizes", default="100000,1000000",
                      help="comma-separated numbers of rows (default 100000,1000000)")
  parser.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED],
                      help="`uet synth` seeds: each size runs on the data of each (default "
                      f"{DEFAULT_SEED})")
  parser.add_argument("--work", default=os.path.join(REPO, "bench", "scale-work"),
                      help="where data sets and run outputs go (not committed)")
  parser.add_argument("--results", default=RESULTS,
                      help="where scale.json, scale.md and scale.png go (default "
                      "bench/results)")
  parser.add_argument("--beam-modes", type=int, metavar="SIZE",
                      help="also run SIZE with each other DirectRunner mode of BEAM_MODES")
  parser.add_argument("--modes", default=",".join(m for m in BEAM_MODES if m != DEFAULT_MODE),
                      help="the modes --beam-modes measures")
  parser.add_argument("--only-report", action="store_true",
                      help="redraw scale.md and scale.png from scale.json")
  args = parser.parse_args()
  os.makedirs(args.work, exist_ok=True)
  os.makedirs(args.results, exist_ok=True)
  if args.config:
    args.config = os.path.abspath(args.config)
  runs = _load(args.results)
  plan = [] if args.only_report else [(int(s), DEFAULT_MODE, seed)
                                      for s in args.sizes.split(",") if s
                                      for seed in args.seeds]
  if args.beam_modes and not args.only_report:
    plan += [(args.beam_modes, m, seed) for m in args.modes.split(",") for seed in args.seeds]
  failed = []
  for size, mode, seed in plan:
    result = run_size(size, args.work, mode, seed, args.dataset, args.config, args.note)
    if result["exit_code"]:
      # Recorded all the same: a failure is that seed's outcome.
      failed.append(f"{args.dataset} {size} rows ({mode}, seed {seed}) exited "
                    f"{result['exit_code']}: {result['error']} (log: {result['log']})")
    # Kept by dataset, size and seed (and saved so): scale.md's tables and the plots follow
    # the order.
    runs = sorted([r for r in runs if _key(r) != _key(result)] + [result], key=_key)
    _save(runs, args.results)  # after every run: a later failure keeps what was measured
  _save(runs, args.results)
  text = report(runs)
  with open(os.path.join(args.results, "scale.md"), "w") as f:
    f.write(text)
  for dataset in _datasets(runs):
    plot([r for r in runs if r["dataset"] == dataset], plot_path(args.results, dataset))
  print(text)
  if failed:
    sys.exit("failed (recorded as such):\n" + "\n".join(failed))


if __name__ == "__main__":
  sys.path.insert(0, REPO)
  main()
