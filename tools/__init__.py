"""Tools around the pipeline: reports, replays and offline readers of MovieLens files.

Nothing in `pipeline/`, `components/` or `trainer/` imports this package; it imports them.
"""
