#!/usr/bin/env bash
# Re-resolves requirements.lock (Python 3.10, every package pinned) from pyproject.toml.
# The current pins are kept wherever they still satisfy pyproject.toml (uv reads the output
# file's pins as preferences): adding a dependency adds its pins and moves nothing else.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh >/dev/null
grep -v '^#' requirements.lock > requirements.lock.new
.venv/bin/uv pip compile pyproject.toml --extra test --python-version 3.10 \
  --python .venv/bin/python --no-header --quiet -o requirements.lock.new
{
  echo "# Fully pinned lock for Python 3.10 (linux x86_64). Regenerate with: make lock"
  cat requirements.lock.new
} > requirements.lock
rm requirements.lock.new
echo "requirements.lock updated; run 'make setup' to build the new environment" >&2
