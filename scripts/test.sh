#!/usr/bin/env bash
# The project's test command (README's second command, and what .ci/run calls).
# Installs what is missing, then runs the unit tests, the local-backend tests (root) and the
# scenario library on the local backend.
set -euo pipefail
cd "$(dirname "$0")/.."
# The local backend creates network namespaces: it needs root. Re-run through sudo when not root.
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then exec sudo -E bash "$0" "$@"; fi
bash scripts/setup.sh --with-browser
PY=.venv/bin/python
$PY -m pytest tests -q -n 2 "$@"
