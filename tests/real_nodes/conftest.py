"""What the real-node tests need: root, nsenter, and the pinned components (control plane,
kubelet, agnhost, CNI plugins, netpol-cri); each missing piece is a skip that says why."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import live

NEEDED = ("etcd", "kube-apiserver", "kube-controller-manager", "kubelet", "agnhost",
          "netpol-cri", "bridge", "host-local", "loopback", "portmap")


def real_nodes_unavailable(extra: tuple[str, ...] = ()) -> str | None:
    """Why real nodes cannot run here, or None."""
    if os.geteuid() != 0:
        return "real nodes need root (network namespaces, mounts)"
    for tool in ("ip", "nsenter", "umount", "curl", "nslookup"):
        if shutil.which(tool) is None:
            return f"real nodes need `{tool}` installed (scripts/setup.sh)"
    from harness.components import available

    for name in NEEDED + extra:
        ok, why = available(name)
        if not ok:
            return why
    return None


def needs_real_nodes(*extra: str) -> pytest.MarkDecorator:
    return live(real_nodes_unavailable(tuple(extra)))
