#!/usr/bin/env bash
# What a person with Docker runs to see netpol-proof enforce (or not) on a real kind cluster:
#   scripts/live.sh calico [--keep-cluster] [--reuse-cluster]     (or: make live CNI=calico)
# Brings up kind cluster netpol-proof-<cni> (pinned node image, CNI, probe image), runs the
# scenario library against it, writes reports/<cni>.json and .html, and deletes the cluster at
# the end unless --keep-cluster. Expected durations per step: docs/kind.md.
# Nothing here has been run live on the project's own machines (no Docker engine there).
set -euo pipefail
cd "$(dirname "$0")/.."

CNI="${1:-calico}"
case "$CNI" in
  kindnet|calico|cilium|flannel) ;;
  *) echo "usage: $0 kindnet|calico|cilium|flannel [pytest options]" >&2; exit 2 ;;
esac
shift || true

fail() { echo "netpol-proof live: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || fail "the kind backend needs Docker (docker not on PATH)"
docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable (is it running? are you in the docker group?)"
cgroup="$(docker info --format '{{.CgroupVersion}}' 2>/dev/null || echo '?')"
[ "$cgroup" = "2" ] || fail "node image kindest/node:v1.35.8 needs a cgroup v2 host; Docker reports cgroup version '$cgroup'"

if [ -r /proc/sys/fs/inotify/max_user_watches ]; then
  watches="$(cat /proc/sys/fs/inotify/max_user_watches)"
  if [ "$watches" -lt 524288 ]; then
    echo "warning: fs.inotify.max_user_watches=$watches; a 3-node kind cluster wants 524288:" >&2
    echo "  sudo sysctl -w fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512" >&2
  fi
fi
if [ "$CNI" = flannel ] && [ "$(uname -s)" = Linux ] \
   && [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
  fail "Flannel needs the br_netfilter module on this host: sudo modprobe br_netfilter"
fi

PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" -c 'import harness.backends.kind.backend' 2>/dev/null || fail "install netpol-proof first: make setup (or pip install -e .)"

mkdir -p reports
echo "netpol-proof live: kind + $CNI (cluster netpol-proof-$CNI); reports in reports/$CNI.{json,html}"
exec "$PY" -m pytest scenarios/ -v --backend kind --cni "$CNI" \
  --netpol-json "reports/$CNI.json" --netpol-html "reports/$CNI.html" "$@"
