"""kube-router's real network-policy controller on the two emulated nodes: a policy that isolates
one pod's ingress is enforced for sources on its own node and on the other node (REJECT: a
refused connection, at once), sources the policy allows still connect, pods it does not select
are untouched, and deleting the policy restores traffic. Observed through the prober and judged
by harness.verdicts with kube-router's declared deny response. Skipped with the
ComponentMissing reason when a binary is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.model import ContainerPort, Model, Namespace, Pod, Protocol
from harness.prober import probe_round
from harness.probes import Outcome, ProbeSpec
from harness.results import Expectation, Verdict
from harness.shell import run
from harness.verdicts import judge
from harness.waits import poll
from tests.real.conftest import assert_dns_blocked_every_round, needs_engine, up_and_deployed

pytestmark = needs_engine("kube-router")

TCP, UDP = Protocol.TCP, Protocol.UDP
PORTS = (ContainerPort.serve(80, TCP), ContainerPort.serve(80, UDP))
#: model order -> node: x/a n1, x/b n2, x/c n1, y/a n2, y/b n1
KEYS = ("x/a", "x/b", "x/c", "y/a", "y/b")
ALLOW_Y_B = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "only-y-b", "namespace": "x"},
             "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"],
                      "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                                             "podSelector": {"matchLabels": {"pod": "b"}}}]}]}}


def model() -> Model:
    nss = [Namespace("x", {"ns": "x"}), Namespace("y", {"ns": "y"})]
    return Model.build(nss, [Pod(k[0], k[2], {"pod": k[2]}, PORTS) for k in KEYS])


@pytest.fixture(scope="module")
def cluster():
    yield from up_and_deployed("kube-router", model())


def observe(b, addr, specs):
    return probe_round(b, specs, addr, 1.0)


def test_kube_router_runs_its_policy_controller_only_inside_each_node(cluster):
    b, _ = cluster
    assert b.capabilities().deny_response == "reject"
    for node in ("n1", "n2"):
        filt = run(["ip", "netns", "exec", f"{b.prefix}{node}", "iptables-save", "-t", "filter"],
                   check=True).stdout
        assert "-A FORWARD -m comment --comment \"kube-router netpol" in filt, filt[:3000]
    assert "real kube-router v" in b.describe() and "no kubelet" in b.describe()


def test_deny_is_rejected_for_same_node_and_cross_node_sources_allowed_sources_connect(cluster):
    b, addr = cluster
    same = ProbeSpec("x/c", "x/a", 80, TCP)        # n1 -> n1
    cross = ProbeSpec("x/b", "x/a", 80, TCP)       # n2 -> n1
    cross_ns = ProbeSpec("y/a", "x/a", 80, TCP)    # n2 -> n1, other namespace, not pod=b
    cross_udp = ProbeSpec("x/b", "x/a", 80, UDP)
    allowed = ProbeSpec("y/b", "x/a", 80, TCP)     # n1 -> n1, the policy's peer
    untouched = [ProbeSpec("x/a", "x/b", 80, TCP), ProbeSpec("y/a", "x/c", 80, UDP)]
    denied = [same, cross, cross_ns, cross_udp]
    before = observe(b, addr, denied + [allowed] + untouched)
    assert all(o.outcome == Outcome.CONNECTED for o in before.values()), before

    b.apply_policy(ALLOW_Y_B)
    try:
        # kube-router programs asynchronously: poll until the denied cells change, with the
        # same rounds for every cell; then judge every cell of the last round
        polled = poll(lambda: observe(b, addr, denied + [allowed] + untouched),
                      lambda got: all(got[s].outcome != Outcome.CONNECTED for s in denied),
                      30, 0.5)
        got = polled.value
        for s in denied:
            assert got[s].outcome == Outcome.REFUSED, (s.label, got[s])
            assert got[s].elapsed < 0.9, "a REJECT answers at once, a drop would time out"
            v = judge(Expectation.DENY, got[s], got[allowed].outcome == Outcome.CONNECTED,
                      b.capabilities().deny_response)
            assert v.verdict == Verdict.PASS, (s.label, v)
        for s in [allowed] + untouched:
            assert got[s].outcome == Outcome.CONNECTED, (s.label, got[s])
            assert got[s].answered_by == s.target
        # the same refusal on a cluster that drops would be no verdict at all
        assert judge(Expectation.DENY, got[same], True, "drop").verdict == Verdict.PROBE_ERROR
    finally:
        b.delete_policy("x", "only-y-b")
    polled = poll(lambda: observe(b, addr, denied),
                  lambda got: all(o.outcome == Outcome.CONNECTED for o in got.values()), 30, 0.5)
    assert polled.ok, polled.value


def test_a_rejected_dns_lookup_is_blocked_every_round_not_a_probe_error(cluster):
    """kube-router REJECTs a denied DNS query: curl gives up at once with "could not resolve"
    (exit 6), or times out when the node's ICMP errors are rate-limited; nslookup reports a
    communications error. Each must read blocked, backed by its control, in every round — not
    flap between pass and probe error (which kept the step unsettled for as long as the two
    outcomes alternated).

    Why dns-pitfall and not a scenario whose target also denies ingress: there a call by name
    whose lookup kube-router let through met the ingress deny (refused) and passed all the
    same, so the test could not tell whether kube-router blocks DNS egress at all. Here the
    call itself is allowed: only a blocked lookup blocks it (assert_dns_blocked_every_round,
    which tests/test_runner_local.py shows failing on a dataplane that leaves DNS open)."""
    from harness.runner import run_scenario
    from harness.scenario import load_scenario
    from harness.settings import build

    b, _ = cluster
    b.undeploy()
    s = build({"cnis": "kube-router"}, env={})
    scenario = load_scenario(Path(__file__).parents[2] / "scenarios" / "real-world" /
                             "dns-pitfall.yaml")
    r = run_scenario(scenario, b, s, log=lambda line: None, enforcing=True)
    assert_dns_blocked_every_round(r)
    by_name = next(c for c in r.steps[1].cells
                   if c.target == "backend.prod.svc.cluster.local" and not c.dns_name)
    # rejected at once, not timed out: the name control is what backs curl's exit 6
    assert "dns-failed" in {a.outcome for a in by_name.attempts}, by_name.attempts
