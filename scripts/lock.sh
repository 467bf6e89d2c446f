#!/usr/bin/env bash
# Re-resolves requirements.lock (Python 3.10, every package pinned) from pyproject.toml.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh >/dev/null
{
  echo "# Fully pinned lock for Python 3.10 (linux x86_64). Regenerate with: make lock"
  .venv/bin/uv pip compile pyproject.toml --extra test --python-version 3.10 \
    --python .venv/bin/python --no-header
} > requirements.lock.new
mv requirements.lock.new requirements.lock
echo "requirements.lock updated; run 'make setup' to build the new environment" >&2
