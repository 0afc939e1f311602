#!/usr/bin/env bash
# Install everything fedchain needs into ./.venv and ./node_modules. Idempotent:
# a second run with unchanged pins does nothing (a stamp records what was installed).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.fedchain-installed
want=$(cat requirements.txt requirements-flower.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -r requirements.txt
    # the Flower extra (fedchain[flower]), every package pinned there: --no-deps keeps
    # requirements.txt's typer and rich, newer than flwr 1.42.0 asks for (docs/decisions.md)
    .venv/bin/pip install --quiet --no-deps -r requirements-flower.txt
    .venv/bin/pip install --quiet --no-deps -e .
    echo "$want" > "$stamp"
fi

if [ ! -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ]; then
    command -v npm >/dev/null || { echo "npm is needed for anvil (the local EVM node): install Node.js 20" >&2; exit 1; }
    npm install --no-audit --no-fund --silent
fi

# headless Chromium for the dashboard's browser tests (Debian's package; a browser that
# downloads itself does not work everywhere). Only where it is missing and apt-get exists.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
fi
