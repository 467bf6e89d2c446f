# The two commands of the README. Both do all the set-up first (idempotent, cached).
SHELL := /bin/bash
MIRROR ?= $(wildcard ../shared/data/ml-100k)
OUTPUT ?= output

.PHONY: setup run test bench-pipeline bench-startup bench-quality lock

setup:
	@bash scripts/setup.sh

# Runs the whole pipeline on MovieLens-100K (copied from ../shared when present, else
# downloaded from GroupLens; MD5-verified either way).
run: setup
	.venv/bin/uet run --output-dir $(OUTPUT) $(if $(MIRROR),--mirror $(MIRROR))

test: setup
	.venv/bin/python -m pytest

bench-pipeline: setup
	.venv/bin/python bench/pipeline_timing.py $(if $(MIRROR),--mirror $(MIRROR))

bench-startup: setup
	.venv/bin/python bench/startup.py $(if $(MIRROR),--mirror $(MIRROR))

bench-quality: setup
	.venv/bin/python bench/quality.py

# Re-resolves requirements.lock from pyproject.toml (needs network access to PyPI).
lock:
	@bash scripts/lock.sh
