#!/usr/bin/env bash
# The project's test command (README's second command, and what .ci/run calls).
# Installs what is missing, then runs the linters (make lint), the unit tests, the local-backend
# tests (root) and the scenario library on the local backend.
set -euo pipefail
cd "$(dirname "$0")/.."
# The local backend creates network namespaces: it needs root. Re-run through sudo when not root.
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then exec sudo -E bash "$0" "$@"; fi
bash scripts/setup.sh --with-browser --with-components
PY=.venv/bin/python
mkdir -p reports-out
# 0. ruff, mypy and the import contracts (one definition: the Makefile's lint target)
make -s lint
# setup.sh installed NCA: its comparison must run here, never skip
export NETPOL_PROOF_REQUIRE_NCA=1
# 1. the project's own tests: unit, live local backend (root), plugin, labs, HTML in Chromium
$PY -m pytest tests -q -n 2 --dist loadgroup "$@"
# 2. the scenario library through the pytest plugin on both local profiles: passes on
#    `enforcing`, shows `open`'s false security as strict expected failures, writes every report
#    (scenarios run at once, each on a local cluster of its own: the plugin's --netpol-jobs,
#    default from the CPU count; no xdist needed)
$PY -m pytest scenarios/ --backend local --cni enforcing,open -q \
    --netpol-json reports-out/results.json --netpol-html reports-out/report.html \
    --junitxml reports-out/junit.xml
# 3. the whole library on the kube path on real kubelets (`--backend realnodes`: the real
#    control plane with kube-scheduler, a real kubelet per node over netpol-cri, real CNI
#    plugins, real kube-proxy, CoreDNS as a pod, and the CNI's own processes): passes on
#    kube-router, calico, canal and k3s (flannel + kube-router), strict expected failures on
#    `none` and `flannel` (real flanneld, no engine: the canary's false-security banner).
#    Scenarios run at once as tenants of one cluster per CNI, 12 in flight over the six
#    clusters; fault scenarios run alone on their cluster (harness/scenario/sharing.py).
#    The harness-as-kubelet tier (`--backend local --cni kube-router,calico,none`) is no longer
#    run here: the same library on it gave the same verdicts cell by cell (docs/real-nodes.md);
#    its own tests (tests/real) still run in step 1. Skipped, saying why, when the components
#    are missing.
if missing=$($PY -m harness.components missing); then
  $PY -m pytest scenarios/ --backend realnodes --cni kube-router,calico,none,flannel,canal,k3s \
      -q --netpol-jobs 12 \
      --netpol-json reports-out/realnodes.json --netpol-html reports-out/realnodes.html \
      --junitxml reports-out/junit-realnodes.xml
else
  echo "netpol-proof: realnodes library SKIPPED: $missing"
fi
