"""The top layer: the `uet` command line (`cli.py`, `run_command.py` for `uet run`), the run
report, replays and offline readers of MovieLens files.

Nothing else of the project imports this package; it imports the others (docs/design.md,
"Layers").
"""
