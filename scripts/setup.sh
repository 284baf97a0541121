#!/usr/bin/env bash
# Install what netpol-proof needs on Debian/Ubuntu, idempotently:
#   system tools (ip, nft, curl, nslookup/dig, nc) through apt-get when missing,
#   a virtualenv in .venv with the package and its test extras.
# Usage: scripts/setup.sh [--with-browser] [--with-components]
#   --with-browser     adds Debian's chromium for the HTML test
#   --with-components  adds iptables, ipset and conntrack (kube-router and Felix need them) and
#                      builds, or reuses from the cache, the pinned real components with Go
#                      (python -m harness.components build; docs/components.md)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "netpol-proof setup: needs root (or sudo) to install system packages" >&2; exit 1; fi
fi

want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need ip iproute2
need nft nftables
need curl curl
need nslookup dnsutils
need dig dnsutils
need nc netcat-openbsd
need make make
# the probes' curl, built HTTP-only from Debian's curl source (harness/backends/local/curl.py)
need cc gcc
need patch patch
need xz xz-utils
# the real engines of `--backend local --cni kube-router,calico` (kube-proxy, kube-router and
# Felix program iptables and ipsets inside the harness's node namespaces)
need iptables iptables
need ipset ipset
need conntrack conntrack
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || want+=("python3-venv")
with_components=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) need chromium chromium ;;
    --with-components)
      with_components=1
      need iptables iptables
      need ipset ipset
      need conntrack conntrack ;;
    *) echo "netpol-proof setup: unknown option $arg (use --with-browser, --with-components)" >&2
       exit 2 ;;
  esac
done

if [ "${#want[@]}" -gt 0 ]; then
  # de-duplicate
  mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
  echo "netpol-proof setup: installing ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.netpol-proof-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi

# the probes' curl: built once (about a minute) and cached outside the repo; without it the
# probes run the system curl, slower (python -m harness.backends.local.curlbuild says which)
.venv/bin/python -m harness.backends.local.curlbuild || true

if [ "$with_components" = 1 ]; then
  # Builds with the machine's Go only (GOTOOLCHAIN=local); a cold build of everything takes
  # about 18 minutes on an idle two-core machine (33 on a shared one), a cached one a
  # second (docs/components.md).
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  fi
  if command -v go >/dev/null 2>&1; then
    .venv/bin/python -m harness.components build
  else
    echo "netpol-proof setup: no Go toolchain on PATH: the real components (kube-apiserver," \
         "kube-router, Felix, ...) cannot be built; the real-engine tier is skipped" >&2
  fi
  .venv/bin/python -m harness.components list || true
fi

# IBM's Network Config Analyzer, the oracle's independent comparison (tests/test_oracle_nca.py):
# from PyPI into its own venv .venv-nca, as it pins old dependencies (tools/compare_nca.py)
if [ ! -x .venv-nca/bin/nca ]; then
  .venv/bin/python tools/compare_nca.py --install
fi
