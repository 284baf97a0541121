"""Calico Felix (Kubernetes datastore) on the two emulated nodes: the same isolating policy as
the kube-router test is enforced for same-node and cross-node sources by DROP (the probe times
out; a positive control proves the server lives), allowed and unselected traffic connects, and
deleting the policy restores it. Skipped with "calico: Felix binary not available: <reason>"
when Felix is not built."""

from __future__ import annotations

import pytest

from harness.prober import probe_round
from harness.probes import Outcome, ProbeSpec
from harness.results import Expectation, Verdict
from harness.shell import run
from harness.verdicts import judge
from harness.waits import poll
from tests.real.conftest import needs_engine, up_and_deployed
from tests.real.test_real_kube_router import ALLOW_Y_B, model

pytestmark = needs_engine("calico")
TCP, UDP = "TCP", "UDP"


@pytest.fixture(scope="module")
def cluster():
    yield from up_and_deployed("calico", model())


def spec(src, dst, proto="TCP"):
    from harness.model import Protocol
    return ProbeSpec(src, dst, 80, Protocol(proto))


def test_felix_programs_its_chains_and_workload_interfaces_inside_each_node(cluster):
    b, addr = cluster
    assert b.capabilities().deny_response == "drop"
    for node in ("n1", "n2"):
        filt = run(["ip", "netns", "exec", f"{b.prefix}{node}", "iptables-save", "-t", "filter"],
                   check=True).stdout
        assert ":cali-FORWARD" in filt and "cali-tw-cali" in filt, filt[:3000]
    assert "real calico-felix v" in b.describe()


def test_felix_drops_denied_same_node_and_cross_node_sources(cluster):
    b, addr = cluster
    same, cross, cross_ns = spec("x/c", "x/a"), spec("x/b", "x/a"), spec("y/a", "x/a")
    cross_udp, allowed = spec("x/b", "x/a", UDP), spec("y/b", "x/a")
    untouched = [spec("x/a", "x/b"), spec("y/a", "x/c", UDP)]
    denied = [same, cross, cross_ns, cross_udp]
    base = poll(lambda: probe_round(b, denied + [allowed] + untouched, addr, 1.0),
                lambda got: all(o.outcome == Outcome.CONNECTED for o in got.values()), 30, 0.5)
    assert base.ok, base.value
    b.apply_policy(ALLOW_Y_B)
    try:
        polled = poll(lambda: probe_round(b, denied + [allowed] + untouched, addr, 1.0),
                      lambda got: all(got[s].outcome != Outcome.CONNECTED for s in denied),
                      30, 0.5)
        got = polled.value
        for s in denied:
            assert got[s].outcome == Outcome.TIMEOUT, (s.label, got[s])
            v = judge(Expectation.DENY, got[s], got[allowed].outcome == Outcome.CONNECTED,
                      b.capabilities().deny_response)
            assert v.verdict == Verdict.PASS, (s.label, v)
        for s in [allowed] + untouched:
            assert (got[s].outcome, got[s].answered_by) == (Outcome.CONNECTED, s.target), got[s]
    finally:
        b.delete_policy("x", "only-y-b")
    polled = poll(lambda: probe_round(b, denied, addr, 1.0),
                  lambda got: all(o.outcome == Outcome.CONNECTED for o in got.values()), 30, 0.5)
    assert polled.ok, polled.value
