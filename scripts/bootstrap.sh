#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for vaxqr: system libraries, then a virtual
# environment with the package and its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_pkgs=()
ldconfig -p 2>/dev/null | grep 'libzbar\.so' >/dev/null || need_pkgs+=(libzbar0)  # no -q: no SIGPIPE under pipefail
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_pkgs+=(fonts-dejavu-core)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "vaxqr setup: installing ${need_pkgs[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "vaxqr setup: missing system packages: ${need_pkgs[*]}" >&2
    echo "  run: sudo apt-get update && sudo apt-get install -y ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

# git does not keep file modes: the demo keys must not be readable by others after a clone
find keys/examples -name '*.key' -exec chmod 600 {} + 2>/dev/null || true

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.vaxqr-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  # the versions the suite passed with (constraints.txt); where they cannot be installed
  # (a Python with no wheels for them), the newest versions pyproject.toml allows
  if ! "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[test]"; then
    echo "vaxqr setup: the tested versions in constraints.txt could not be installed here;" >&2
    echo "  installing the newest versions pyproject.toml allows instead (untested combination)" >&2
    "$VENV/bin/python" -m pip install -q -e ".[test]"
  fi
  touch "$stamp"
fi
# Compile the verify and sign paths with mypyc when a C compiler is present (skipped when
# up to date; vaxqr stays pure Python if it cannot be built, and never runs a stale build).
"$VENV/bin/python" scripts/build_native.py
# Byte-compile the package: where PYTHONDONTWRITEBYTECODE is set (it is on these machines)
# every run would otherwise compile vaxqr's sources again, ~25 ms of a ~90 ms one-shot
# `vaxqr verify`. Only changed files are compiled again.
"$VENV/bin/python" -m compileall -q vaxqr _vaxqr_entry.py >/dev/null
