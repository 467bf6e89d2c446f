"""The ExampleGen's reader on a MovieLens-layout directory: seconds per phase, and the executor.

    python bench/ingest_speed.py --data-dir D [--runs 3] [--executor]

Phases, in this process: `scan` (read and convert every unit once, checking every row,
as the launcher does before any Beam work) and `encode` (read and convert again, then
serialize the tf.Examples, as the Beam workers do), each on the whole source. With
`--executor`, also the executor's `Do` (Beam DirectRunner in memory, one worker, as
`uet run` runs it by default: scan, convert, encode, hash split, write gzipped TFRecords).
Prints one JSON line per run: wall seconds (`_s`) and this process's CPU seconds (`_cpu`,
less sensitive than wall time to other processes on a shared machine) and its peak RSS.
`uet synth --ratings N --out D` writes such a directory at any size.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from typing import Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from components.example_gen import encoder, source  # noqa: E402
from dataspec import spec as spec_lib  # noqa: E402


def run_executor(data_dir: str, spec: spec_lib.DatasetSpec, out: str) -> None:
  """The executor's Do, with the exec properties the TFX launcher would give it."""
  from tfx.components.example_gen import utils as example_gen_utils  # pylint: disable=g-import-not-at-top
  from tfx.types import standard_artifacts, standard_component_specs  # pylint: disable=g-import-not-at-top
  from tfx.utils import proto_utils  # pylint: disable=g-import-not-at-top
  from components.example_gen import component, executor  # pylint: disable=g-import-not-at-top
  examples = standard_artifacts.Examples()
  examples.uri = out
  gen = component.DatasetExampleGen(input_base=data_dir, spec_json=spec.to_json())
  props = dict(gen.exec_properties)
  for key in (standard_component_specs.INPUT_CONFIG_KEY,
              standard_component_specs.OUTPUT_CONFIG_KEY,
              standard_component_specs.CUSTOM_CONFIG_KEY):
    if not isinstance(props[key], str):
      props[key] = proto_utils.proto_to_json(props[key])
  props[example_gen_utils.SPAN_PROPERTY_NAME] = 0
  props[example_gen_utils.FINGERPRINT_PROPERTY_NAME] = ""
  executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, props)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", required=True)
  parser.add_argument("--runs", type=int, default=1)
  parser.add_argument("--executor", action="store_true", help="also time the executor's Do")
  args = parser.parse_args(argv)
  spec = spec_lib.load("movielens")
  for _ in range(args.runs):
    result = {}
    start, cpu = time.perf_counter(), time.process_time()
    ingest = source.Ingest(spec, args.data_dir, spec.source.path)
    scanned = source.scan(ingest)
    result.update(scan_s=round(time.perf_counter() - start, 2),
                  scan_cpu=round(time.process_time() - cpu, 2))
    start, cpu = time.perf_counter(), time.process_time()
    count = 0
    for unit in scanned.units:
      for converted in ingest.convert(unit):
        count += len(encoder.serialize_examples(converted.table))
    result.update(encode_s=round(time.perf_counter() - start, 2),
                  encode_cpu=round(time.process_time() - cpu, 2), rows=count)
    if args.executor:
      with tempfile.TemporaryDirectory() as out:
        start, cpu = time.perf_counter(), time.process_time()
        run_executor(args.data_dir, spec, out)
        result.update(executor_s=round(time.perf_counter() - start, 2),
                      executor_cpu=round(time.process_time() - cpu, 2))
    result["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
