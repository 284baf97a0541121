#!/usr/bin/env bash
# README's first command: the seed article's policies on the local backend, enforced and not.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m harness run scenarios/real-world --backend local --cni enforcing,open "$@"
