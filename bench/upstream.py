"""What each runtime replacement of `uet_upstream` saves: the Evaluator, each on and off.

Re-runs the Evaluator (gate 1: candidate against hash baseline) of a finished `uet run` on
its own artifacts, with TFX's stock Evaluator executor.

1. Per call: one run with every replaced function counted, and the calls it made (its
   real inputs, up to a sample per function) timed again through the upstream function
   and through the replacement: calls per Evaluator times the difference per call is what
   the replacement saves, whatever else runs on the machine.
2. End to end: in a fresh process per measurement, under each setting:

  none        TFMA as released
  lookup      uet_upstream.tfma.fast_label_lookup (what `uet run` installs)

Settings alternate within each repeat, so a neighbour's load on a shared machine spreads
over all of them. Each measurement records the CPU time of the process (all its threads:
the in-memory DirectRunner runs TFMA in this process) and the wall time of the executor's
`Do`; on a busy machine the CPU time is the one to compare. Prints a Markdown table (the
medians of the repeats) and checks that every setting computes the same metrics.

  .venv/bin/python bench/upstream.py --output-dir OUTPUT [--repeats 3] [--calls-only]

OUTPUT is the output directory of a `uet run` (e.g. `make run`'s `output/`).
"""

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ("none", "lookup")
NODE = "Evaluator"


def _inputs(output_dir: str, pipeline_name: str):
  """(input artifacts, exec properties) of the newest execution of NODE, from ML Metadata."""
  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2
  from tfx.types import artifact_utils

  from pipeline import config as config_lib, store as store_lib
  # pylint: enable=g-import-not-at-top
  store = store_lib.open_readonly(config_lib.output_path(output_dir, config_lib.METADATA_FILE))
  context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{NODE}")
  if context is None:
    raise SystemExit(f"{output_dir}: no {NODE} in ML Metadata; run `uet run` first")
  execution = max(store.get_executions_by_context(context.id), key=lambda e: e.id)
  inputs: Dict[str, list] = {}
  for event in store.get_events_by_execution_ids([execution.id]):
    if event.type != metadata_store_pb2.Event.INPUT:
      continue
    [artifact] = store.get_artifacts_by_id([event.artifact_id])
    [artifact_type] = store.get_artifact_types_by_id([artifact.type_id])
    inputs.setdefault(event.path.steps[0].key, []).append(
        artifact_utils.deserialize_artifact(artifact_type, artifact))
  properties = {}
  for key, value in execution.custom_properties.items():
    kind = value.WhichOneof("value")
    properties[key] = getattr(value, kind) if kind else None
  return inputs, properties


def _evaluate(output_dir: str, pipeline_name: str, replacements) -> Dict:
  """Runs the Evaluator once in this process with `replacements` (context managers that
  yield whether they installed); returns seconds, CPU seconds and metrics."""
  # pylint: disable=g-import-not-at-top
  from tfx.components.evaluator import executor as evaluator_executor
  from tfx.dsl.components.base import base_beam_executor
  from tfx.types import standard_artifacts

  from pipeline import config as config_lib, results
  # pylint: enable=g-import-not-at-top
  inputs, properties = _inputs(output_dir, pipeline_name)
  with tempfile.TemporaryDirectory(prefix="uet-bench-upstream-") as tmp:
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = os.path.join(tmp, "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = os.path.join(tmp, "blessing")
    for artifact in (evaluation, blessing):
      os.makedirs(artifact.uri)
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=list(config_lib.DEFAULT_BEAM_ARGS), tmp_dir=tmp,
        unique_id="bench")
    with contextlib.ExitStack() as stack:
      for replacement in replacements:
        if not stack.enter_context(replacement()):
          raise SystemExit(f"{replacement.__module__}.{replacement.__name__} is not "
                           "installed on this release (uet_upstream/pins.py)")
      start, cpu_start = time.perf_counter(), time.process_time()
      evaluator_executor.Executor(context).Do(
          inputs, {"evaluation": [evaluation], "blessing": [blessing]}, properties)
      seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    metrics = results.evaluation_metrics(evaluation.uri)
  return {"seconds": seconds, "cpu": cpu, "metrics": metrics}


def measure_one(output_dir: str, pipeline_name: str, setting: str) -> Dict:
  """Runs the Evaluator once in this process under `setting`."""
  from uet_upstream import tfma as upstream_tfma  # pylint: disable=g-import-not-at-top
  replacements = {"lookup": [upstream_tfma.fast_label_lookup]}.get(setting, [])
  return _evaluate(output_dir, pipeline_name, replacements)


class _Recorder:
  """Counts the calls of one upstream function and keeps the first `keep` argument lists."""

  def __init__(self, original, keep: int):
    self.original, self.keep, self.calls, self.samples = original, keep, 0, []

  def __call__(self, *args, **kwargs):
    self.calls += 1
    if len(self.samples) < self.keep:
      self.samples.append((args, kwargs))
    return self.original(*args, **kwargs)


def _per_call(call, samples, repeats: int = 3) -> float:
  """CPU seconds of this thread per call of `call(sample)` over `samples` (the fastest of
  `repeats` passes): what the call costs, however busy the machine is."""
  best = float("inf")
  for _ in range(repeats):
    start = time.thread_time()
    for sample in samples:
      call(sample)
    best = min(best, time.thread_time() - start)
  return best / len(samples)


def measure_calls(output_dir: str, pipeline_name: str) -> Dict:
  """One Evaluator with every replaced function counted, then its calls timed both ways."""
  # pylint: disable=g-import-not-at-top
  from tensorflow_model_analysis.metrics import metric_util

  from uet_upstream import tfma as upstream_tfma
  # pylint: enable=g-import-not-at-top
  lookup = _Recorder(metric_util.to_label_prediction_example_weight, keep=20_000)

  @contextlib.contextmanager
  def counting():
    metric_util.to_label_prediction_example_weight = lookup
    try:
      yield True
    finally:
      metric_util.to_label_prediction_example_weight = lookup.original

  run = _evaluate(output_dir, pipeline_name, [counting])

  def both(name, calls, upstream, replacement, samples):
    before, after = _per_call(upstream, samples), _per_call(replacement, samples)
    return {"replacement": name, "calls": calls, "upstream_us": before * 1e6,
            "replacement_us": after * 1e6, "saved_s": calls * (before - after)}

  rows = [
      both("tfma.fast_label_lookup", lookup.calls,
           lambda s: list(lookup.original(*s[0], **s[1])),
           lambda s: list(upstream_tfma.to_label_prediction_example_weight(*s[0], **s[1])),
           lookup.samples),
  ]
  return {"cpu": run["cpu"], "seconds": run["seconds"], "rows": rows}


def _child(output_dir: str, pipeline_name: str, setting: str) -> Dict:
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=REPO)
  proc = subprocess.run(
      [sys.executable, os.path.abspath(__file__), "--output-dir", output_dir,
       "--pipeline-name", pipeline_name, "--one", setting],
      capture_output=True, text=True, env=env, cwd=REPO)
  if proc.returncode != 0:
    sys.stderr.write(proc.stderr[-4000:])
    raise SystemExit(f"the {setting} measurement failed (exit code {proc.returncode})")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _same(a, b, tolerance=1e-6) -> bool:
  if isinstance(a, dict):
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
  return abs(a - b) <= tolerance * max(1.0, abs(a))


def main(argv: List[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output-dir", required=True, help="the output directory of a uet run")
  parser.add_argument("--pipeline-name", default="uet-movielens")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--calls-only", action="store_true", help="only the per-call part")
  parser.add_argument("--one", choices=SETTINGS + ("calls",), help=argparse.SUPPRESS)  # a child
  args = parser.parse_args(argv)
  output_dir = os.path.abspath(args.output_dir)
  if args.one == "calls":
    print(json.dumps(measure_calls(output_dir, args.pipeline_name)))
    return 0
  if args.one:
    print(json.dumps(measure_one(output_dir, args.pipeline_name, args.one)))
    return 0
  calls = _child(output_dir, args.pipeline_name, "calls")
  print(f"Evaluator ({NODE}: candidate and baseline, 3 slicings) on the artifacts of "
        f"{output_dir}; {os.cpu_count()} CPUs, Python {platform.python_version()}.\n")
  print(f"Per call: one Evaluator run with the upstream functions counted ({calls['cpu']:.1f} "
        f"s CPU, {calls['seconds']:.1f} s wall), then a sample of its own calls timed again "
        "through each function (CPU time of the calling thread, the fastest of 3 passes).\n")
  print("| replacement | calls per Evaluator | upstream us/call | replacement us/call "
        "| saved per Evaluator |")
  print("|---|---|---|---|---|")
  for row in calls["rows"]:
    print(f"| {row['replacement']} | {row['calls']:,} | {row['upstream_us']:.1f} | "
          f"{row['replacement_us']:.1f} | {row['saved_s']:+.1f} s "
          f"({row['saved_s'] / calls['cpu']:+.0%} of its CPU time) |")
  if args.calls_only:
    return 0
  seconds: Dict[str, List[float]] = {s: [] for s in SETTINGS}
  cpu: Dict[str, List[float]] = {s: [] for s in SETTINGS}
  reference = None
  for repeat in range(args.repeats):
    for setting in SETTINGS:
      result = _child(output_dir, args.pipeline_name, setting)
      seconds[setting].append(result["seconds"])
      cpu[setting].append(result["cpu"])
      print(f"repeat {repeat + 1}, {setting}: {result['cpu']:.1f} s CPU, "
            f"{result['seconds']:.1f} s wall", file=sys.stderr)
      if reference is None:
        reference = result["metrics"]
      elif not _same(reference, result["metrics"]):
        raise SystemExit(f"{setting}: the metrics differ from the first measurement's")
  none = statistics.median(cpu["none"])
  print(f"\nEnd to end: medians of {args.repeats} runs, each in a fresh process.\n")
  print("| setting | CPU s (median) | CPU s of each run | saved against none (CPU) "
        "| wall s (median) |")
  print("|---|---|---|---|---|")
  for setting in SETTINGS:
    median = statistics.median(cpu[setting])
    runs = ", ".join(f"{s:.1f}" for s in cpu[setting])
    print(f"| {setting} | {median:.1f} | {runs} | {none - median:+.1f} s "
          f"({(none - median) / none:+.0%}) | {statistics.median(seconds[setting]):.1f} |")
  print("\nEvery setting computed the same metrics (to 1e-6).")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
