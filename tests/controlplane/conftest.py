"""Shared helpers of the control plane tests: why the real tier cannot run here (root, the
pinned binaries), a module-wide plane, and network namespaces claimed for the plane's run."""

from __future__ import annotations

import os
import shutil

import pytest

from harness import naming
from harness.backends.local import netns as nsx
from harness.backends.local.backend import claim_run, release_run
from tests.conftest import live

PLANE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")


def plane_unavailable() -> str | None:
    """Why a real control plane cannot run here, or None: the ComponentMissing reason when a
    binary is absent."""
    if os.geteuid() != 0:
        return "the control plane tests need root (network namespaces, /run/netpol-proof)"
    for tool in ("ip", "ss"):
        if shutil.which(tool) is None:
            return f"the control plane tests need `{tool}` installed"
    from harness.components import ComponentMissing, find

    for name in PLANE_BINARIES:
        try:
            find(name)
        except ComponentMissing as exc:
            return str(exc)
    return None


needs_root = live(None if os.geteuid() == 0 else "needs root (network namespaces, /run/netpol-proof)")
needs_plane = live(plane_unavailable())


class ClaimedNetns:
    """Network namespaces np-<run>-<name> of a run this test process claims, so that a
    concurrent `python -m harness cleanup` leaves them alone; deleted and released at close."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.names: list[str] = []
        claim_run(run_id, purpose="control plane tests")

    def add(self, name: str) -> str:
        full = f"{naming.local_prefix(self.run_id)}{name}"
        nsx.add_netns([full])
        self.names.append(full)
        return full

    def close(self) -> None:
        for name in self.names:
            nsx.delete_netns(name)
        self.names.clear()
        release_run(self.run_id)


@pytest.fixture(scope="session")
def plane():
    """One real control plane for the session's tests (bring-up costs seconds of two shared
    cores); tests that need their own plane make it."""
    from harness.backends.real.controlplane import ControlPlane

    with ControlPlane() as p:
        yield p


@pytest.fixture
def claimed_netns(plane):
    claimed = ClaimedNetns(plane.run_id)
    try:
        yield claimed
    finally:
        claimed.close()
