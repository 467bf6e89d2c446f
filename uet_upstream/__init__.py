"""Every place this project relies on upstream internals, one module per upstream library.

Public APIs of TFX, TFMA, Beam, Keras and KFP are used anywhere. What is not public lives
here and only here: private symbols, functions replaced at run time, TFX internals this
project re-implements, and repairs of what TFX's compiler writes. Each touchpoint says why
it exists, and `tests/test_upstream_<module>.py` pins it: a test fails, naming the
touchpoint, when the installed release is not the one it was checked against (`pins.py`)
or when the private symbol, signature or reproduced source it relies on has moved.

  pins.py    the releases every touchpoint was checked against; `replaced()`
  tfx.py     TFX's local orchestration (launch one node), Pusher executor internals,
             swapping a built component's executor, ExampleGen's split writer, the
             Beam flags by which TFX skips packaging itself
  kfp.py     the pipeline spec TFX's Kubeflow V2 compiler writes: what it cannot compile,
             and the repairs it needs
  tfma.py    a faster label/prediction lookup for TFMA's metrics
  keras.py   a model's checkpoint children (the warm start reads all but its optimizer)

A runtime replacement (tfma.py) stays only while `bench/upstream.py` shows what it
saves (bench/results/upstream.md).

This package imports upstream libraries only, never the project's own packages.
"""
