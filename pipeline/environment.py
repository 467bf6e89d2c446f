"""The process environment TensorFlow must find when it is first imported.

`configure()` is called explicitly at the top of each entry point of a process that runs
project code, before anything imports TensorFlow: the `uet` command (`tools/cli.py`) and
the local runner's child process (`pipeline/node_process.py`). Beam workers and `uet
run-spec` tasks are processes these start, and inherit it; the container image sets
`REQUIRED` itself (kubeflow/Dockerfile, checked by tests/test_dockerfile.py).
"""

import os
import warnings

# Keras 2 for TFRS, TFT and TFMA: TensorFlow 2.16 picks Keras 3 unless this is set before
# it is first imported.
REQUIRED = {"TF_USE_LEGACY_KERAS": "1"}
# Quiet C++ logs (TensorFlow 2.16 prints "Unable to register cuDNN factory" errors at import
# on every machine); a value the user set wins (0 shows all of them).
DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def configure() -> None:
  """Sets `REQUIRED` and `DEFAULTS` in this process's environment, and silences the Python
  3.10 deprecation warnings Google's client libraries print on import (TFX 1.16 requires
  Python 3.10)."""
  os.environ.update(REQUIRED)
  for name, value in DEFAULTS.items():
    os.environ.setdefault(name, value)
  warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\..*")
