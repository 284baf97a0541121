#!/usr/bin/env bash
# README's first command: the seed article's policies on the local backend, enforced and not.
set -euo pipefail
cd "$(dirname "$0")/.."
# The local backend creates network namespaces: it needs root. Re-run through sudo when not root.
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then exec sudo -E bash "$0" "$@"; fi
bash scripts/setup.sh
# The emulated pair (enforcing, open) always; the real pair (a real API server with no engine,
# beside real kube-router) too when the real components are built (scripts/setup.sh
# --with-components builds them from the Go module proxy; see docs/components.md).
cnis=enforcing,open
if missing=$(.venv/bin/python -m harness.components missing); then
  cnis=enforcing,open,none,kube-router
else
  echo "netpol-proof demo: the real pair (none, kube-router) is left out: $missing" >&2
  echo "netpol-proof demo: build it with: bash scripts/setup.sh --with-components" >&2
fi
exec .venv/bin/python -m harness run scenarios/real-world --backend local --cni "$cnis" "$@"
