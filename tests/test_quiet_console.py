"""`uet run` keeps the libraries' chatter off the terminal and in the run log; `--verbose`
shows it.

Two real `uet run` processes on a small MovieLens slice: quiet, then `--verbose --no-cache`
on the same output (everything runs again). The chatter checked is what TensorFlow, TFMA
print during such a run: Keras' "SavedModel saved prior to TF 2.5" warning when the
Evaluator loads the models, and TensorFlow's deprecation notice for `tf_record_iterator`
(TFMA's writer calls it); and no line of the quiet terminal is a library's log line (Beam's
python-snappy warning, when python-snappy is missing, was one).
"""

import dataclasses
import subprocess
from typing import List

import pytest

from pipeline import progress
from tests import runs
from tests.conftest import REPO, write_movielens_slice

pytestmark = pytest.mark.pipeline

CHATTER = (
    "SavedModel saved prior to TF 2.5 detected when loading Keras model",
    "tf_record_iterator (from tensorflow.python.lib.io.tf_record) is deprecated",
)


@dataclasses.dataclass
class Run:
  process: subprocess.CompletedProcess
  log: str


def _run(data, output, config, *flags) -> Run:
  logs = output / "logs"
  before = set(logs.iterdir()) if logs.exists() else set()
  done = subprocess.run(
      [runs.executable(), "run", "--data-dir", str(data), "--output-dir", str(output),
       "--config", config, *flags], cwd=REPO, env=runs.python_env(), text=True,
      capture_output=True, timeout=1800)
  assert done.returncode == 0, done.stderr
  [log_file] = set(logs.iterdir()) - before
  return Run(done, log_file.read_text())


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> List[Run]:
  root = tmp_path_factory.mktemp("quiet")
  data = write_movielens_slice(root / "ml", 3000, every=25)
  config = runs.write_config(root / "config.json")
  output = root / "out"
  return [_run(data, output, config), _run(data, output, config, "--verbose", "--no-cache")]


def test_chatter_goes_to_the_run_log_not_the_terminal(both):
  quiet = both[0]
  for text in CHATTER:
    assert text not in quiet.process.stderr
    assert text not in quiet.process.stdout
    assert text in quiet.log
  # The terminal has the progress lines and the result, and no library's log lines.
  lines = [l for l in quiet.process.stderr.splitlines() if l.strip()]
  assert any(progress.STARTED_LINE.match(l) for l in lines)
  assert not [l for l in lines if l.startswith(("WARNING:", "INFO:", "W1", "I1"))], lines
  assert "pushed to: " in quiet.process.stdout


def test_verbose_shows_the_chatter_too(both):
  verbose = both[1]
  for text in CHATTER:
    assert text in verbose.process.stderr
    assert text in verbose.log
  assert any(progress.STARTED_LINE.match(l) for l in verbose.process.stderr.splitlines())
