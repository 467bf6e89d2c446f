"""The `uet` command line: usage errors come back before TensorFlow loads, and the local
path never loads the Vertex AI SDK."""

import json
import subprocess
import sys

import pytest

from pipeline import exit_codes, lock
from tests import runs
from tools import cli


def _uet_in_fresh_python(argv, extra=""):
  """Runs `uet ARGV` in a fresh interpreter; returns (exit code, modules it loaded, stderr)."""
  code = ("import sys, json\n"
          "from tools import cli\n"
          "try:\n"
          f"  rc = cli.main({argv!r})\n"
          "except SystemExit as e:\n"
          "  rc = e.code\n"
          f"{extra}"
          "print(json.dumps([rc, sorted(sys.modules)]))\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=runs.python_env())
  rc, modules = json.loads(proc.stdout.strip().splitlines()[-1])
  return rc, set(modules), proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["run", "--data-dir", "/nonexistent"], "--data-dir /nonexistent: not a directory"),
    (["run", "--epochs", "five"], "argument --epochs: invalid int value: 'five'"),
    (["run", "--mirror", "/nonexistent"], "--mirror /nonexistent: not a directory"),
    (["run", "--window-spans", "0"], "window_spans must be >= 1"),
])
def test_usage_errors_exit_2_without_importing_tensorflow(argv, message):
  rc, modules, err = _uet_in_fresh_python(argv)
  assert rc == exit_codes.EXIT_USAGE
  assert message in err
  assert "tensorflow" not in modules and "tfx" not in modules


@pytest.mark.parametrize("values, messages", [
    ({"trainign": {"epochs": 1}}, ["unknown config keys ['trainign']"]),
    # The default candidate pays 3 filters of 8,192 bits (768 parameters) and 3 default
    # vectors of 32 from its budget: 800 cannot also hold a row. Found here, not in the
    # Trainer minutes later.
    ({"candidate": {"embedding_budget": 800}},
     ["training.embedding_budget 800 leaves no room for the unified tables",
      "Set embedding_budget to at least 880", "layout: explicit"]),
])
def test_a_bad_config_file_is_a_usage_error_before_tensorflow(tmp_path, small_movielens,
                                                              values, messages):
  config = tmp_path / "c.json"
  config.write_text(json.dumps(values))
  rc, modules, err = _uet_in_fresh_python(
      ["run", "--config", str(config), "--data-dir", str(small_movielens)])
  assert rc == exit_codes.EXIT_USAGE
  for message in messages:
    assert message in err
  assert "tensorflow" not in modules


def test_a_held_lock_exits_3_without_importing_tensorflow(tmp_path, small_movielens):
  with lock.output_lock(str(tmp_path / "out")):
    rc, modules, err = _uet_in_fresh_python(
        ["run", "--output-dir", str(tmp_path / "out"), "--data-dir", str(small_movielens)])
  assert rc == exit_codes.EXIT_LOCKED
  assert "is in use by uet run" in err
  assert "tensorflow" not in modules


def test_the_lock_is_not_reentrant(tmp_path):
  # Taken once per run: a second holder, even in the same process, is refused.
  with lock.output_lock(str(tmp_path)):
    with pytest.raises(lock.RunLockedError):
      with lock.output_lock(str(tmp_path)):
        pass


def test_the_local_pipeline_never_loads_the_vertex_sdk():
  code = ("import sys\n"
          "from pipeline import config, local_runner, pipeline\n"
          "pipeline.create_pipeline(config.PipelineConfig(data_dir='/d', output_dir='/o'))\n"
          "print('google.cloud.aiplatform' in sys.modules, 'tfx.v1' in sys.modules)\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=runs.python_env(), check=True)
  assert proc.stdout.split() == ["False", "False"]


def test_a_missing_subcommand_module_is_an_error(monkeypatch):
  monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", cli.SUBCOMMAND_MODULES + ("tools.absent",))
  with pytest.raises(ModuleNotFoundError, match="tools.absent"):
    cli.build_parser()


def test_every_subcommand_is_registered_the_same_way():
  parser = cli.build_parser()
  sub = next(a for a in parser._actions if a.dest == "command")  # pylint: disable=protected-access
  assert {"run", "spans", "compile", "schedule", "collisions", "simulate"} <= set(sub.choices)
  for name, subparser in sub.choices.items():
    assert callable(subparser.get_default("func")), name
