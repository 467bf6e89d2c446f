"""Against stock TFX: the same CSV through the taxi template's pipeline shape and `uet run`.

The stock pipeline is what a TFX user writes from the taxi template, with this product's
model code plugged in where the template plugs in its own:

  CsvExampleGen -> StatisticsGen -> SchemaGen (inferred) -> ExampleValidator
  -> Transform (`trainer.preprocessing.preprocessing_fn`, TFX's defaults otherwise)
  -> Trainer x2 (`trainer.run_fn.run_fn`: the unified candidate and the hash baseline, the
     custom_config `pipeline.pipeline` gives them)
  -> Evaluator (candidate vs hash baseline, `pipeline.pipeline.make_eval_config`: the same
     EvalConfig as `uet run`'s first gate)
  -> Pusher (stock; pushes when the Evaluator blessed),

plus a Resolver with LatestBlessedModelStrategy (as in the template) whose model is the
candidate Trainer's `base_model`: the role `uet run`'s ProductionModel plays (warm start
from the model in production; on a fresh output directory neither finds one). All stock
components, run by TFX's LocalDagRunner with the template's Beam arguments (none: TFX's
defaults). The train/eval split is `uet run`'s 80/20 by hash (CsvExampleGen's default is
2:1), so both pipelines train and evaluate on as many rows.

`uet run --dataset taxi --data-dir DIR` runs on the same file (the taxi preset's source is
one CSV with a header, which CsvExampleGen reads as it is). The rows come from `uet synth
--dataset taxi --rows N` (once per size, reused). For each size both run from scratch in
fresh output directories, one after the other in this one invocation, each in its own
process tree, measured by wall time and peak RSS summed over the tree
(`bench.scale.TreeRssSampler`, Beam workers included).

  nice -n 10 .venv/bin/python bench/stock_tfx.py [--sizes 100000 1000000] [--work DIR]
      [--order stock,uet] [--timeout SECONDS] [--results DIR] [--report-only]

Results accumulate in bench/results/stock_tfx.json (every measured pair is kept: on a
shared machine one pair's ratio moves with the load, so several pairs and both orders are
what the ratio can be read from), and stock_tfx.md is redrawn from it. Target (issue 23): `uet run` at
most 0.6x stock TFX's wall time at 1M rows. Prints numbers; asserts nothing.
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import argparse  # noqa: E402
import datetime  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, Dict, List, Optional  # noqa: E402

from bench.scale import TreeRssSampler  # noqa: E402

UET = os.path.join(REPO, ".venv", "bin", "uet")
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
RESULTS = os.path.join(REPO, "bench", "results")
DATASET = "taxi"
TARGET_RATIO = 0.6  # issue 23: uet run's wall time at most 0.6x stock TFX's at 1M rows
STOCK_PIPELINE_NAME = "stock_taxi"


# ---------------------------------------------------------------------------------------
# The stock pipeline (runs in a child process: `--stock-pipeline`).

def create_stock_pipeline(data_dir: str, output_dir: str):
  """The taxi template's pipeline shape on `data_dir`'s CSV, with this product's modules."""
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  from tfx.components import (CsvExampleGen, Evaluator, ExampleValidator, Pusher,  # pylint: disable=g-import-not-at-top
                              SchemaGen, StatisticsGen, Trainer, Transform)
  from tfx.dsl.components.common.resolver import Resolver  # pylint: disable=g-import-not-at-top
  from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (  # pylint: disable=g-import-not-at-top
      LatestBlessedModelStrategy)
  from tfx.orchestration import metadata, pipeline as tfx_pipeline  # pylint: disable=g-import-not-at-top
  from tfx.proto import pusher_pb2  # pylint: disable=g-import-not-at-top
  from tfx.types import Channel, standard_artifacts  # pylint: disable=g-import-not-at-top

  from components.example_gen.component import make_output_config  # pylint: disable=g-import-not-at-top
  from dataspec import spec as spec_lib  # pylint: disable=g-import-not-at-top
  from pipeline import config as config_lib, pipeline as uet_pipeline  # pylint: disable=g-import-not-at-top

  spec = spec_lib.load(DATASET)
  config = config_lib.from_mapping({"dataset": spec}, data_dir=data_dir,
                                   output_dir=output_dir)
  example_gen = CsvExampleGen(input_base=data_dir, output_config=make_output_config())
  statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
  schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
  example_validator = ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                       schema=schema_gen.outputs["schema"])
  transform = Transform(examples=example_gen.outputs["examples"],
                        schema=schema_gen.outputs["schema"],
                        preprocessing_fn=uet_pipeline.PREPROCESSING_FN,
                        custom_config=uet_pipeline.transform_custom_config(config))
  latest_blessed = Resolver(
      strategy_class=LatestBlessedModelStrategy,
      model=Channel(type=standard_artifacts.Model),
      model_blessing=Channel(type=standard_artifacts.ModelBlessing),
  ).with_id("latest_blessed_model_resolver")

  def trainer(training, component_id, base_model=None):
    return Trainer(
        run_fn=uet_pipeline.RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        base_model=base_model,
        custom_config=uet_pipeline.trainer_custom_config(config, training),
    ).with_id(component_id)

  candidate = trainer(config.candidate, "CandidateTrainer",
                      latest_blessed.outputs["model"] if config.warm_start else None)
  baseline = trainer(config.baseline, "BaselineTrainer")
  evaluator = Evaluator(
      examples=example_gen.outputs["examples"],
      model=candidate.outputs["model"],
      baseline_model=baseline.outputs["model"],
      eval_config=uet_pipeline.make_eval_config(config.evaluation, spec.slices))
  pusher = Pusher(
      model=candidate.outputs["model"],
      model_blessing=evaluator.outputs["blessing"],
      push_destination=pusher_pb2.PushDestination(
          filesystem=pusher_pb2.PushDestination.Filesystem(
              base_directory=os.path.join(output_dir, "serving"))))
  return tfx_pipeline.Pipeline(
      pipeline_name=STOCK_PIPELINE_NAME,
      pipeline_root=os.path.join(output_dir, "tfx"),
      components=[example_gen, statistics_gen, schema_gen, example_validator, transform,
                  latest_blessed, candidate, baseline, evaluator, pusher],
      enable_cache=False,
      metadata_connection_config=metadata.sqlite_metadata_connection_config(
          os.path.join(output_dir, "metadata.sqlite")),
  )


def run_stock_pipeline(data_dir: str, output_dir: str) -> None:
  """Runs the stock pipeline with TFX's LocalDagRunner at INFO verbosity, as the template's
  local_runner.py does (its log says when each component starts and ends)."""
  import logging as py_logging  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from tfx.orchestration.local.local_dag_runner import LocalDagRunner  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)
  # Each line with its time, for `stock_component_seconds`.
  py_logging.basicConfig(format=f"%(created).3f {LOG_FORMAT}", force=True)
  pipeline = create_stock_pipeline(data_dir, output_dir)
  LocalDagRunner().run(pipeline)


# ---------------------------------------------------------------------------------------
# Measuring both.

def synth(size: int, work: str) -> str:
  """The data directory of `size` synthetic taxi rows (written once by `uet synth`)."""
  directory = os.path.join(work, f"data-{size}")
  done = os.path.join(work, f"data-{size}.complete")  # outside: CsvExampleGen reads all
  if os.path.isfile(done):
    return directory
  shutil.rmtree(directory, ignore_errors=True)
  subprocess.run([UET, "synth", "--dataset", DATASET, "--rows", str(size), "--out",
                  directory], check=True)
  open(done, "w").close()
  return directory


LOG_FORMAT = "%(levelname)s:%(name)s:%(message)s"  # Python's default, after the time
# The LocalDagRunner's lines: "1764788701.123 INFO:absl:Component X is running."
_COMPONENT_LINE = re.compile(r"^(\d+\.\d+) INFO:absl:Component (\S+) is (running|finished)\.")


def stock_component_seconds(log_path: str) -> Dict[str, float]:
  """Seconds per component of a stock run, from the LocalDagRunner's log lines."""
  started: Dict[str, float] = {}
  seconds: Dict[str, float] = {}
  with open(log_path, errors="replace") as f:
    for line in f:
      m = _COMPONENT_LINE.match(line)
      if not m:
        continue
      t, component, what = float(m.group(1)), m.group(2), m.group(3)
      if what == "running":
        started[component] = t
      elif component in started:
        seconds[component] = round(t - started[component], 1)
  return seconds


def _stock_outcome(output_dir: str) -> Dict[str, Any]:
  """Blessed (the Evaluator's blessing file) and pushed (a version in serving/)."""
  blessing = glob.glob(os.path.join(output_dir, "tfx", "Evaluator", "blessing", "*", "*"))
  pushed = glob.glob(os.path.join(output_dir, "serving", "*", "saved_model.pb"))
  return {"blessed": any(p.endswith("BLESSED") and not p.endswith("NOT_BLESSED")
                         for p in blessing) if blessing else None,
          "pushed": bool(pushed)}


def _evaluator_aucs(output_dir: str) -> Dict[str, float]:
  """Overall AUC of candidate and baseline from the stock Evaluator's metrics."""
  paths = glob.glob(os.path.join(output_dir, "tfx", "Evaluator", "evaluation", "*"))
  if not paths:
    return {}
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  out = {}
  for model_name in ("candidate", "baseline"):
    try:
      result = tfma.load_eval_result(paths[0], model_name=model_name)
    except Exception:  # pylint: disable=broad-except
      continue
    for slice_key, metrics in result.slicing_metrics:
      if slice_key == ():
        for per_output in metrics.values():
          for per_class in per_output.values():
            if "auc" in per_class:
              out[model_name] = per_class["auc"]["doubleValue"]
  return out


def measure(name: str, cmd: List[str], log_path: str, env=None,
            timeout: Optional[float] = None) -> Dict[str, Any]:
  """Runs `cmd` to completion, sampling the peak RSS of its process tree. With `timeout`
  (seconds), a run still going then is stopped (its own process group, nothing else) and
  recorded as `stopped_after_seconds`: its wall time is at least that."""
  print(f"== {name}: {' '.join(cmd)}", flush=True)
  start = time.perf_counter()
  stopped = False
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                            start_new_session=True)
    with TreeRssSampler(proc.pid) as sampler:
      try:
        returncode = proc.wait(timeout=timeout)
      except subprocess.TimeoutExpired:
        stopped = True
        os.killpg(proc.pid, signal.SIGTERM)
        try:
          proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
          os.killpg(proc.pid, signal.SIGKILL)
          proc.wait()
        returncode = None
  seconds = time.perf_counter() - start
  result = {"exit_code": returncode, "wall_seconds": round(seconds, 1),
            "peak_rss_bytes": sampler.peak_bytes,
            "processes_at_peak": sampler.peak_processes, "log": log_path}
  if stopped:
    result["stopped_after_seconds"] = round(seconds, 1)
  print(f"   {name}: {'stopped' if stopped else f'exit {returncode}'}, {seconds:.1f} s, "
        f"peak RSS {sampler.peak_bytes / 1e9:.2f} GB", flush=True)
  return result


def run_size(size: int, work: str, order: List[str], timeout: Optional[float] = None,
             save: Callable[[Dict[str, Any]], None] = lambda entry: None) -> Dict[str, Any]:
  """Both runs on `size` rows in `order`; `save(entry)` after each (a partial entry when a
  later run does not finish)."""
  data_dir = synth(size, work)
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
  entry: Dict[str, Any] = {"rows": size, "data": data_dir, "order": order,
                           "measured_at": datetime.datetime.now(
                               datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
  for which in order:
    out = os.path.join(work, f"out-{which}-{size}")
    shutil.rmtree(out, ignore_errors=True)
    log_path = os.path.join(work, f"{which}-{size}.log")
    if which == "stock":
      cmd = [PYTHON, os.path.abspath(__file__), "--stock-pipeline", "--data-dir", data_dir,
             "--output-dir", out]
      r = measure("stock TFX", cmd, log_path, env, timeout)
      r.update(_stock_outcome(out))
      r["component_seconds"] = stock_component_seconds(log_path)
      aucs = _evaluator_aucs(out)
      r["candidate_auc"], r["baseline_auc"] = aucs.get("candidate"), aucs.get("baseline")
    else:
      cmd = [UET, "run", "--dataset", DATASET, "--data-dir", data_dir, "--output-dir", out]
      r = measure("uet run", cmd, log_path, env, timeout)
      summary_path = os.path.join(out, "last_run.json")
      summary = json.load(open(summary_path)) if os.path.isfile(summary_path) else {}
      r.update({"component_seconds": summary.get("component_seconds", {}),
                "pipeline_seconds": summary.get("seconds"),
                "blessed": summary.get("blessed"),
                "pushed": bool(summary.get("pushed_model_dir")),
                "candidate_auc": summary.get("candidate_auc"),
                "baseline_auc": summary.get("baseline_auc"),
                "error": summary.get("error")})
    r["command"] = " ".join(cmd)
    entry[which] = r
    s_run, u_run = entry.get("stock"), entry.get("uet")
    if s_run and u_run and u_run["exit_code"] == 0:
      ratio = round(u_run["wall_seconds"] / s_run["wall_seconds"], 3)
      if s_run["exit_code"] == 0:
        entry["wall_ratio_uet_over_stock"] = ratio
        entry["peak_rss_ratio_uet_over_stock"] = round(
            u_run["peak_rss_bytes"] / s_run["peak_rss_bytes"], 3)
      elif "stopped_after_seconds" in s_run:
        # Stock was stopped unfinished: its wall time is at least what it ran.
        entry["wall_ratio_uet_over_stock_at_most"] = ratio
    save(entry)
  return entry


# ---------------------------------------------------------------------------------------
# Report.

def _git(*args: str) -> str:
  return subprocess.run(["git", "-C", REPO, *args], capture_output=True,
                        text=True).stdout.strip()


def _fmt_auc(x) -> str:
  return "n/a" if x is None else f"{x:.4f}"


WHAT_EACH_RUNS = [
    "stock TFX: CsvExampleGen (80/20 hash split) -> StatisticsGen -> SchemaGen (inferred) -> "
    "ExampleValidator -> Transform (our preprocessing_fn; TFX's default pre- and "
    "post-transform statistics) -> Resolver (LatestBlessedModelStrategy, the candidate's "
    "base model) -> CandidateTrainer + BaselineTrainer (our run_fn, the same custom_config) "
    "-> Evaluator (the same EvalConfig as uet run's first gate: candidate vs hash baseline, "
    "sliced by the preset's slices) -> Pusher (when blessed). LocalDagRunner, one component "
    "at a time, no Beam arguments (the template's): Beam's in-memory DirectRunner with "
    "one worker, as uet run's defaults, and no sdist of TFX (TFX builds one only when "
    "Beam arguments are given).",
    "uet run: its ExampleGen (typed by the spec, bad rows named, time bounds) -> "
    "StatisticsGen -> the preset's curated schema -> ExampleValidator -> DriftBaseline + "
    "ValidationGate -> Transform (statistics off) -> ProductionModel -> CandidateTrainer + "
    "BaselineTrainer -> Evaluator (gate 1) and ProductionEvaluator (gate 2, beside it) -> "
    "AtomicPusher (when both gates blessed) -> last_run.json and the report.",
]


def _seconds(r: Optional[Dict[str, Any]]) -> str:
  if not r:
    return "not run"
  if "stopped_after_seconds" in r:
    return f"> {r['stopped_after_seconds']:.0f} (stopped)"
  return f"{r['wall_seconds']:.0f}"


def _peak(r: Optional[Dict[str, Any]]) -> str:
  if not r:
    return "n/a"
  return f"{r['peak_rss_bytes'] / 1e9:.2f}" + (" (until stopped)"
                                               if "stopped_after_seconds" in r else "")


def _outcome(r: Optional[Dict[str, Any]]) -> str:
  if not r:
    return "not run"
  if "stopped_after_seconds" in r:
    return "stopped unfinished"
  if r["exit_code"] != 0:
    return f"FAILED (exit {r['exit_code']})"
  return (f"{r.get('blessed')}, {r.get('pushed')}, {_fmt_auc(r.get('candidate_auc'))}"
          f"/{_fmt_auc(r.get('baseline_auc'))}")


def _ratio(e: Dict[str, Any]) -> str:
  if e.get("wall_ratio_uet_over_stock") is not None:
    return f"{e['wall_ratio_uet_over_stock']:.2f}x"
  if e.get("wall_ratio_uet_over_stock_at_most") is not None:
    return f"< {e['wall_ratio_uet_over_stock_at_most']:.2f}x"
  return "n/a"


def report(data: Dict[str, Any]) -> str:
  """stock_tfx.md from the accumulated results."""
  runs = sorted(data["runs"], key=lambda e: (e["rows"], e["measured_at"]))
  lines = ["# Against stock TFX: the taxi template's pipeline vs `uet run` (`bench/stock_tfx.py`)",
           "",
           "Same CSV (`uet synth --dataset taxi --rows N`), both from scratch in fresh output "
           "directories, one after the other in one invocation per size. Wall time of the "
           "whole command; peak RSS summed over its process tree (sampled every 0.5 s). "
           "Seconds depend on the machine and its load (2 cores shared with other sessions): "
           "compare the ratio within a row, not seconds across rows.", "",
           "| rows | measured | commit | order | stock TFX wall (s) | uet run wall (s) | "
           "uet / stock wall | stock peak RSS (GB) | uet peak RSS (GB) | stock: blessed, "
           "pushed, AUC cand/base | uet: blessed, pushed, AUC cand/base |",
           "|---:|---|---|---|---:|---:|---:|---:|---:|---|---|"]
  for e in runs:
    s, u = e.get("stock"), e.get("uet")
    lines.append(
        f"| {e['rows']:,} | {e['measured_at']} | {e['commit']} | {' then '.join(e['order'])} "
        f"| {_seconds(s)} | {_seconds(u)} | {_ratio(e)} | {_peak(s)} | {_peak(u)} | "
        f"{_outcome(s)} | {_outcome(u)} |")
  by_size: Dict[int, List[float]] = {}
  for e in runs:
    if e.get("wall_ratio_uet_over_stock") is not None:
      by_size.setdefault(e["rows"], []).append(e["wall_ratio_uet_over_stock"])
  if by_size:
    lines += ["", "uet / stock wall over every complete pair: " + "; ".join(
        f"{rows:,} rows: median {statistics.median(r):.2f}x, "
        f"range {min(r):.2f}x to {max(r):.2f}x over {len(r)} pairs"
        for rows, r in sorted(by_size.items()))]
  lines += ["", "Seconds per component:", ""]
  for e in runs:
    for which, label in (("stock", "stock TFX"), ("uet", "uet run")):
      if e.get(which):
        parts = ", ".join(f"{k} {v:.0f}" for k, v in e[which]["component_seconds"].items())
        lines.append(f"- {e['rows']:,} rows ({' then '.join(e['order'])}), {label}: "
                     f"{parts or 'n/a'}")
  lines += ["", "What each runs:", ""] + [f"- {w}" for w in WHAT_EACH_RUNS]
  lines += ["", f"Target (issue 23): uet run at most {TARGET_RATIO}x stock TFX's wall time "
            "at 1M rows."]
  million = next((e for e in runs if e["rows"] == 1_000_000), None)
  if million and million.get("wall_ratio_uet_over_stock") is not None:
    r = million["wall_ratio_uet_over_stock"]
    lines.append(f"At 1M: {r:.2f}x, target {'met' if r <= TARGET_RATIO else 'missed'}.")
  elif million and million.get("wall_ratio_uet_over_stock_at_most") is not None:
    r = million["wall_ratio_uet_over_stock_at_most"]
    lines.append(f"At 1M: below {r:.2f}x (stock stopped unfinished), target "
                 f"{'met' if r <= TARGET_RATIO else 'not decided by this bound'}.")
  else:
    lines.append("At 1M: not measured (see the rows above for what ran).")
  lines += ["", "Machine: " + data.get("machine", ""), "",
            "Commands: " + ", ".join(f"`{c}`" for c in sorted({e.get("invocation")
                                                                  for e in runs} - {None}))]
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
  parser.add_argument("--work", default=os.path.join("/tmp", "uet-stock-tfx"))
  parser.add_argument("--order", default="stock,uet",
                      help="which runs first, comma-separated (stock,uet)")
  parser.add_argument("--results", default=RESULTS)
  parser.add_argument("--timeout", type=float,
                      help="stop a run still going after this many seconds (recorded as a "
                      "lower bound of its wall time)")
  parser.add_argument("--report-only", action="store_true",
                      help="redraw stock_tfx.md from stock_tfx.json, run nothing")
  parser.add_argument("--stock-pipeline", action="store_true",
                      help="(internal) run the stock pipeline on --data-dir in this process")
  parser.add_argument("--data-dir")
  parser.add_argument("--output-dir")
  args = parser.parse_args()
  if args.stock_pipeline:
    run_stock_pipeline(os.path.abspath(args.data_dir), os.path.abspath(args.output_dir))
    return
  path = os.path.join(args.results, "stock_tfx.json")
  data = json.load(open(path)) if os.path.isfile(path) else {"runs": []}
  if args.report_only:
    md = report(data)
    with open(os.path.join(args.results, "stock_tfx.md"), "w") as f:
      f.write(md)
    print(md)
    return
  os.makedirs(args.work, exist_ok=True)
  data["machine"] = f"{os.cpu_count()} cores, {platform.machine()}, {platform.node()}"
  def save(entry: Dict[str, Any]) -> None:
    entry["commit"] = _git("rev-parse", "--short", "HEAD")
    entry["invocation"] = "nice -n 10 .venv/bin/python bench/stock_tfx.py " + " ".join(
        sys.argv[1:])
    # The entry of this run (saved again after its second half), beside all earlier ones.
    data["runs"] = [e for e in data["runs"] if e is not entry] + [entry]
    os.makedirs(args.results, exist_ok=True)
    with open(path, "w") as f:
      json.dump(data, f, indent=2)
    with open(os.path.join(args.results, "stock_tfx.md"), "w") as f:
      f.write(report(data))

  for size in args.sizes:
    run_size(size, args.work, args.order.split(","), args.timeout, save)
    print(report(data), flush=True)


if __name__ == "__main__":
  main()
