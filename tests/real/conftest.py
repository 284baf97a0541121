"""Shared helpers of the real-engine tests (`--backend local --cni kube-router|calico|none`):
why an engine cannot run here (root, tools, the ComponentMissing reason of a binary), and
snapshots of what the root network namespace holds."""

from __future__ import annotations

import os
import shutil

import pytest

from harness.backends.real import engines
from harness.shell import run
from tests.conftest import live


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


def needs_engine(engine: str) -> pytest.MarkDecorator:
    return live(engine_unavailable(engine))


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


#: how a blocked lookup ends: curl "could not resolve" (rejected) or a resolver/nslookup timeout
DNS_BLOCKED = {"dns-failed", "dns-timeout"}


def assert_dns_blocked_every_round(result) -> None:
    """scenarios/real-world/dns-pitfall.yaml's step 2 (deny all egress of prod, allow frontend
    -> backend on TCP 80) passed because the lookups were blocked, round after round.

    Why this step: the call by Service IP is allowed and must connect, so the call by name can
    only be blocked by its lookup; were DNS left open, it would connect (not enforced). Every
    round from the first blocked one on must have failed in the lookup itself, never after
    resolving (a refused or dropped connection would be another rule's doing), each backed by
    its control."""
    assert result.outcome == "passed", (result.infra_error, result.verdict_counts())
    cells = {(c.source, c.dns_name or c.target): c for c in result.steps[1].cells}
    by_ip = cells[("prod/frontend", "svc:prod/backend")]
    assert by_ip.verdict == "pass" and by_ip.attempts[-1].outcome == "connected", by_ip.attempts
    keys = {("prod/frontend", "backend.prod.svc.cluster.local"),    # the call and the lookup
            ("prod/backend", "db.prod.svc.cluster.local")}          # a lookup
    looked = [c for c in result.steps[1].cells if (c.source, c.dns_name or c.target) in keys]
    assert len(looked) == 3, [(c.source, c.target, c.dns_name) for c in looked]
    for c in looked:
        key = (c.source, c.target, c.dns_name)
        seen = [a.outcome for a in c.attempts]
        assert c.verdict == "pass", (key, c.reason, seen)
        first = next((i for i, o in enumerate(seen) if o in DNS_BLOCKED), None)
        assert first is not None, (key, "no round failed in the lookup", seen)
        # before the deny was programmed the name resolved (and the call connected)
        assert set(seen[:first]) <= {"connected", "dns-resolved"}, (key, seen)
        assert all(o in DNS_BLOCKED for o in seen[first:]), (key, seen)
        assert all(a.positive_control for a in c.attempts[first:]), (key, c.attempts)
