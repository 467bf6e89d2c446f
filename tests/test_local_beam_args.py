"""The local runner tells TFX the DirectRunner needs no tfx sdist (built per Beam component
otherwise), and leaves remote runners and explicit dependency flags alone."""

from pipeline import local_runner
from pipeline.config import DEFAULT_BEAM_ARGS


def test_direct_runner_gets_a_dependency_flag_once():
  args = local_runner.local_beam_args(DEFAULT_BEAM_ARGS)
  assert args[:len(DEFAULT_BEAM_ARGS)] == list(DEFAULT_BEAM_ARGS)
  assert sum(a.startswith("--sdk_container_image=") for a in args) == 1
  assert local_runner.local_beam_args(args) == args


def test_explicit_dependency_flags_and_other_runners_are_left_alone():
  own = ["--runner=DirectRunner", "--setup_file=./setup.py"]
  assert local_runner.local_beam_args(own) == own
  dataflow = ["--runner=DataflowRunner", "--project=p"]
  assert local_runner.local_beam_args(dataflow) == dataflow
