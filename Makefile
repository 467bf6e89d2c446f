# The two commands of the README. Both do all the set-up first (idempotent, cached).
SHELL := /bin/bash
MIRROR ?= $(wildcard ../shared/data/ml-100k)
OUTPUT ?= output

.PHONY: setup run test bench-pipeline bench-startup bench-quality bench-compare bench-scale lock

setup:
	@bash scripts/setup.sh

# Runs the whole pipeline on MovieLens-100K (copied from ../shared when present, else
# downloaded from GroupLens; MD5-verified either way).
run: setup
	.venv/bin/uet run --output-dir $(OUTPUT) $(if $(MIRROR),--mirror $(MIRROR))

# The run-report test needs Chromium: setup installs it when it can (see scripts/setup.sh).
# Two workers, one file each at a time: a file's shared pipeline run stays in one worker.
test:
	@bash scripts/setup.sh --with-browser
	.venv/bin/python -m pytest -n 2 --dist loadfile

bench-pipeline: setup
	.venv/bin/python bench/pipeline_timing.py $(if $(MIRROR),--mirror $(MIRROR))

bench-startup: setup
	.venv/bin/python bench/startup.py $(if $(MIRROR),--mirror $(MIRROR))

bench-quality: setup
	.venv/bin/python bench/quality.py

bench-compare: setup
	.venv/bin/python bench/pipeline_compare.py

bench-scale: setup
	.venv/bin/python bench/scale.py $(if $(SIZES),--sizes $(SIZES)) $(if $(SEEDS),--seeds $(SEEDS))

# Re-resolves requirements.lock from pyproject.toml (needs network access to PyPI).
lock:
	@bash scripts/lock.sh
