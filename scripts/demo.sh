#!/usr/bin/env bash
# README's first command: the seed article's policies on the local backend, enforced and not.
set -euo pipefail
cd "$(dirname "$0")/.."
# The local backend creates network namespaces: it needs root. Re-run through sudo when not root.
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then exec sudo -E bash "$0" "$@"; fi
bash scripts/setup.sh
exec .venv/bin/python -m harness run scenarios/real-world --backend local --cni enforcing,open "$@"
