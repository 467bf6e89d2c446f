#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment at .venv/ and installs the lock
# and the project into it. With --with-browser (make test) it also installs Debian's Chromium,
# which the run-report test renders pages in, when it can (root and apt-get); never fatal.
#
# The environment itself lives in a cache keyed by the hash of requirements.lock and the
# Python version, and .venv is a symlink to it: a second checkout (or CI's fresh clone) with
# the same lock reuses the ~3 GB install instead of repeating it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

find_python310() {
  local candidates=("${UET_PYTHON:-}" python3.10)
  if command -v pyenv >/dev/null 2>&1; then
    local root
    root="$(pyenv root)"
    for d in "$root"/versions/3.10*; do candidates+=("$d/bin/python"); done
  fi
  candidates+=(/usr/bin/python3.10 /usr/local/bin/python3.10 python3)
  local c
  for c in "${candidates[@]}"; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && \
       "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}

if ! py="$(find_python310)"; then
  cat >&2 <<'MSG'
error: Python 3.10 was not found.
  TFX 1.16 (and so this project) needs Python 3.10 exactly. Install it, e.g.
    pyenv install 3.10        (then re-run this command), or
    apt-get install python3.10 python3.10-venv
  or point UET_PYTHON at a Python 3.10 interpreter.
MSG
  exit 1
fi

pyver="$("$py" -c 'import platform; print(platform.python_version())')"
key="$( { cat requirements.lock; echo "$pyver"; uname -m; } | sha256sum | cut -c1-16)"
cache="${UET_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uet/venvs}"
venv="$cache/$key"

if [ ! -f "$venv/.complete" ]; then
  echo "setup: creating environment $venv (Python $pyver); this installs ~3 GB once" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade "pip==24.2"
  # uv installs the ~250 pinned wheels far faster than pip; it is pinned too.
  "$venv/bin/python" -m pip install --quiet "uv==0.13.9"
  VIRTUAL_ENV="$venv" "$venv/bin/uv" pip install --python "$venv/bin/python" \
    --no-deps -r requirements.lock
  touch "$venv/.complete"
else
  echo "setup: reusing environment $venv" >&2
fi

# Bytecode for every installed module, written once. uv installs without it, and where
# PYTHONDONTWRITEBYTECODE is set (as on our CI machines) Python never caches it either: every
# process then compiles TensorFlow, TFX, Beam, ... from source again (what that costs:
# README, Measured, "Bytecode"; bench/startup.py times both). py_compile writes the files
# whatever PYTHONDONTWRITEBYTECODE says.
if [ ! -f "$venv/.bytecode" ]; then
  echo "setup: compiling the environment's bytecode (once)" >&2
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # A module that does not compile stays without bytecode (-qq: its import reports it, not
  # setup); everything else is compiled.
  "$venv/bin/python" -m compileall -qq -j 0 "$site" || true
  touch "$venv/.bytecode"
fi

# .venv -> the cached environment (replace a stale link, refuse to clobber a real directory).
if [ -L .venv ] || [ ! -e .venv ]; then
  ln -sfn "$venv" .venv
elif [ "$(readlink -f .venv)" != "$(readlink -f "$venv")" ]; then
  echo "error: .venv exists and is not a link to $venv; remove it and re-run" >&2
  exit 1
fi

# The project itself is installed editable, every time: it is cheap, and the cached
# environment may have last pointed at another checkout.
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$repo"

# The report test renders a real run's page in headless Chromium. Only where installing it is
# ours to do (root, apt-get: a CI container); elsewhere, or offline, that test skips and says
# why. Quiet, and never a reason for setup to fail.
if [ "${1:-}" = "--with-browser" ] && ! command -v chromium >/dev/null 2>&1 && \
   [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing chromium (apt-get) for the run-report test" >&2
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends chromium fonts-liberation; } >/dev/null 2>&1; then
    echo "setup: could not install chromium (offline?); the report's browser tests will skip" >&2
  fi
fi
echo "setup: ready: $repo/.venv/bin/uet" >&2
