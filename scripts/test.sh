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
# 3. the whole library on the kube path on real kubelets (`--backend realnodes`: real etcd,
#    kube-apiserver, kube-controller-manager, kube-scheduler; a real kubelet per node over
#    netpol-cri, real CNI plugins, real kube-proxy, CoreDNS as a pod, and the CNI's own
#    processes) on all six of its CNIs: passes on kube-router, calico, canal (real flanneld +
#    Felix) and k3s (real flanneld + kube-router), strict expected failures with the canary's
#    false-security banner on `none` and `flannel` (real flanneld, no engine). 8 scenarios in
#    flight as tenants of the CNI's cluster, a scenario's pods kept for the next of the same
#    model, those that must run alone (fault steps) on two clusters apart (harness.backends.
#    alone_apart); one CNI per run, about 3-5 min each on two cores (docs/real-nodes.md §13:
#    two CNIs side by side, 16 at once, overloaded the two cores into unstable cells).
#    Skipped, saying why, when the components could not be built (no Go).
if missing=$($PY -m harness.components missing); then
  for cni in kube-router calico canal k3s none flannel; do
    $PY -m pytest scenarios/ --backend realnodes --cni "$cni" -q \
        --netpol-json "reports-out/realnodes-$cni.json" \
        --netpol-html "reports-out/realnodes-$cni.html" \
        --junitxml "reports-out/junit-realnodes-$cni.xml"
  done
else
  echo "netpol-proof: realnodes SKIPPED: $missing"
fi
