"""Shared helpers of the real-engine tests (`--backend local --cni kube-router|calico|none`):
why an engine cannot run here (root, tools, the ComponentMissing reason of a binary), and
snapshots of what the root network namespace holds."""

from __future__ import annotations

import os
import shutil

import pytest

from harness.backends.real import engines
from harness.shell import run


def engine_unavailable(engine: str) -> str | None:
    """Why `engine` cannot run here, or None."""
    if os.geteuid() != 0:
        return "the real engines need root (network namespaces, iptables in them)"
    for tool in ("ip", "nft", "curl", "nslookup", "iptables", "ipset"):
        if shutil.which(tool) is None:
            return f"the real engines need `{tool}` installed (scripts/setup.sh)"
    from harness.components import ComponentMissing

    try:
        engines.binaries(engine)
    except ComponentMissing as exc:
        return str(exc)
    return None


def needs_engine(engine: str):
    why = engine_unavailable(engine)
    return pytest.mark.skipif(why is not None, reason=why or "")


def root_netfilter() -> dict[str, str]:
    """What the root namespace's netfilter holds (nft ruleset, iptables-save, ipsets)."""
    return {"nft": run(["nft", "list", "ruleset"], timeout=30).stdout,
            "iptables": run(["iptables-save"], timeout=30).stdout,
            "ipset": run(["ipset", "list", "-n"], timeout=30).stdout}


def up_and_deployed(engine: str, model):
    """A generator for module fixtures: one backend of `engine`, up, with `model` deployed;
    yields (backend, addresses) and tears everything down after the module."""
    from harness.backends.real.backend import RealBackend

    b = RealBackend(engine, probe_timeout=1.0, status=lambda m: None)
    try:
        b.up()
        yield b, b.deploy(model)
    finally:
        b.down()
