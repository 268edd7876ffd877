#!/usr/bin/env bash
# Install what the gateway needs into ./.venv and start it on the embedded defaults:
# SQLite under ./var/, in-process delivery, sandbox providers when no credentials are set.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/gateway serve "$@"
