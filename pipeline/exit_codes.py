"""Exit codes of every `uet` subcommand (README, "Exit codes").

A leaf module: constants only, importable from anywhere without side effects.
"""

EXIT_OK = 0
EXIT_FAILED = 1      # the run (or a task of it) failed
EXIT_USAGE = 2       # a bad flag, config value, data directory or file
EXIT_LOCKED = 3      # another run holds the output directory
EXIT_METADATA = 4    # the ML Metadata store is damaged (see `uet restore-metadata`)
EXIT_CANCELLED = 143  # SIGTERM cancelled the run (128 + 15, what a shell reports for it)
