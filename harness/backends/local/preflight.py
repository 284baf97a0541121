"""Preflight checks of the local backend: privileges and the system tools it runs.

Why up front: a missing `nft` discovered halfway through bring-up leaves a half-made cluster and
an obscure error; one line naming the Debian package to install is what a user needs.
"""

from __future__ import annotations

import os
import shutil

from harness.errors import MissingToolError, PrivilegeError

#: tool -> Debian/Ubuntu package that provides it. No `nc`: UDP probes use a python3 client,
#: because OpenBSD nc cannot tell an ICMP reject from silence (see probe_clients.UDP_CLIENT).
TOOLS = {"ip": "iproute2", "nft": "nftables", "curl": "curl", "nslookup": "dnsutils",
         "python3": "python3"}

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def check_privileges() -> None:
    """Raise PrivilegeError unless we may create network namespaces (root or CAP_NET_ADMIN +
    CAP_SYS_ADMIN, which `ip netns add` needs for its bind mount)."""
    if os.geteuid() == 0:
        return
    caps = _effective_caps()
    if caps & (1 << CAP_NET_ADMIN) and caps & (1 << CAP_SYS_ADMIN):
        return
    raise PrivilegeError("starting the local backend (emulated dataplane)",
                         "needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN to create network namespaces; "
                         "run as root (`sudo scripts/test.sh`) or inside a user namespace: "
                         "`python -m harness.backends.local.userns -- <command>`")


def missing_tools(tools: dict[str, str] = TOOLS) -> dict[str, str]:
    """The tools not found on PATH, with their packages."""
    return {t: pkg for t, pkg in tools.items() if shutil.which(t) is None}


def check_tools(tools: dict[str, str] = TOOLS) -> None:
    """Raise MissingToolError naming every missing tool and the package that provides it."""
    missing = missing_tools(tools)
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        names = ", ".join(sorted(missing))
        raise MissingToolError("starting the local backend (emulated dataplane)",
                               f"missing {names}; install with `apt-get install -y {pkgs}` "
                               f"(or run scripts/setup.sh)")
