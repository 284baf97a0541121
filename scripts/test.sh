#!/usr/bin/env bash
# The project's test command (README's second command, and what .ci/run calls).
# Installs what is missing, then runs the unit tests, the local-backend tests (root) and the
# scenario library on the local backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-browser
PY=.venv/bin/python
$PY -m pytest tests -q -n 2 "$@"
