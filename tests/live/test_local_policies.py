"""The seed article's five policies on the emulated dataplanes: enforced on `enforcing`, merely
stored on `open` (where every probe the spec says must be blocked connects: false security).

Topology: namespace `shop` with pods frontend (app=frontend), backend (app=backend) and other
(app=other); external hosts `inside` (10.0.0.10, inside the article's 10.0.0.0/16) and
`outside` (192.0.2.10). Expectations are written by hand from the NetworkPolicy spec.
"""

from __future__ import annotations

import os

import pytest

from harness.backends.local import LocalBackend
from harness.backends.local.preflight import missing_tools
from harness.model import ContainerPort, ExternalHost, Model, Namespace, Pod, Protocol
from harness.prober import probe_round
from harness.probes import Outcome, ProbeSpec
from harness.shell import run

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root (network namespaces)"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"missing system tools: {missing_tools()}"),
]

T = 1.0
TCP, UDP = Protocol.TCP, Protocol.UDP
C, TO, OK_DNS, DNS_TO = Outcome.CONNECTED, Outcome.TIMEOUT, Outcome.DNS_RESOLVED, Outcome.DNS_TIMEOUT
PORTS = tuple(ContainerPort.serve(p, proto) for p in (80, 81) for proto in (TCP, UDP))


def shop_model() -> Model:
    pods = [Pod("shop", n, {"app": n}, PORTS) for n in ("frontend", "backend", "other")]
    ext_ports = (ContainerPort(80, TCP, "http"),)
    return Model.build([Namespace("shop", {"env": "prod"})], pods, [],
                       [ExternalHost("inside", "10.0.0.10", ext_ports),
                        ExternalHost("outside", "192.0.2.10", ext_ports)])


def policy(name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


DENY_ALL_INGRESS = policy("deny-all-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})
DENY_ALL_EGRESS = policy("deny-all-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
ALLOW_FRONTEND_TO_BACKEND = policy("allow-frontend-to-backend", {
    "podSelector": {"matchLabels": {"app": "backend"}},
    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                 "ports": [{"protocol": "TCP", "port": 80}]}]})
RESTRICT_EGRESS = policy("restrict-egress", {
    "podSelector": {"matchLabels": {"app": "backend"}}, "policyTypes": ["Egress"],
    "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}]}]})
ALLOW_DNS = policy("allow-dns", {
    "podSelector": {}, "policyTypes": ["Egress"],
    "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})


def p(src, dst, port=80, proto=TCP):
    return ProbeSpec(f"shop/{src}", dst if dst.startswith("ext:") else f"shop/{dst}", port, proto)


def d(src, name="kubernetes.default", proto=UDP):
    return ProbeSpec(f"shop/{src}", name, 53, proto, dns_name=name)


#: (policies applied together, {probe: outcome on enforcing})
CASES = {
    "deny-all-ingress": ([DENY_ALL_INGRESS], {
        p("frontend", "backend"): TO, p("other", "frontend", 81, UDP): TO,
        p("backend", "ext:outside"): C,            # egress is not affected
        d("frontend"): OK_DNS}),
    "deny-all-egress": ([DENY_ALL_EGRESS], {
        p("frontend", "backend"): TO, p("backend", "ext:inside"): TO,
        d("frontend"): DNS_TO}),                   # the article's DNS pitfall
    "allow-frontend-to-backend": ([ALLOW_FRONTEND_TO_BACKEND], {
        p("frontend", "backend"): C, p("other", "backend"): TO,
        p("frontend", "backend", 81): TO, p("frontend", "backend", 80, UDP): TO,
        p("backend", "frontend"): C}),             # frontend is not isolated
    "restrict-egress": ([RESTRICT_EGRESS], {
        p("backend", "ext:inside"): C, p("backend", "ext:outside"): TO,
        p("backend", "frontend"): TO,              # pod IPs are outside 10.0.0.0/16
        d("backend"): DNS_TO,                      # ...and so is kube-dns
        p("frontend", "ext:outside"): C}),
    "allow-dns": ([DENY_ALL_EGRESS, ALLOW_DNS], {
        d("frontend"): OK_DNS, d("backend", "kubernetes.default", TCP): OK_DNS,
        p("frontend", "backend"): TO, p("frontend", "ext:inside"): TO}),
}


@pytest.fixture(scope="module", params=["enforcing", "open"])
def shop(request):
    with LocalBackend(request.param, probe_timeout=T) as b:
        addresses = b.deploy(shop_model())
        yield b, addresses


@pytest.mark.parametrize("case", list(CASES))
def test_seed_article_policy(shop, case):
    b, addresses = shop
    policies, expected = CASES[case]
    for pol in policies:
        b.apply_policy(pol)
    try:
        assert b.policy_count() == len(policies)  # accepted on both profiles
        got = probe_round(b, list(expected), addresses, T)
    finally:
        for pol in policies:
            b.delete_policy("shop", pol["metadata"]["name"])
    observed = {s.label: o.outcome for s, o in got.items()}
    if b.profile == "enforcing":
        assert observed == {s.label: o for s, o in expected.items()}
    else:
        # nothing is enforced: every probe gets through, including those that must be blocked
        assert observed == {s.label: OK_DNS if s.is_dns else C for s in expected}
        assert any(o in (TO, DNS_TO) for o in expected.values())


def test_external_hosts_have_no_way_out(shop):
    """Nothing routes beyond the emulated cluster: an address no namespace owns is unreachable."""
    b, addresses = shop
    got = probe_round(b, [ProbeSpec("shop/frontend", "198.51.100.7", 80, TCP)], addresses, T)
    assert list(got.values())[0].outcome in (Outcome.REFUSED, Outcome.TIMEOUT)
    node_routes = run(["ip", "-n", b.node, "route"], check=True).stdout
    assert "default" not in node_routes and "10.0.0.10 dev" in node_routes
    # the node's only links: lo, one veth per pod (3 + coredns) and per external host (2)
    links = [ln.split(":")[1].strip().split("@")[0]
             for ln in run(["ip", "-n", b.node, "-o", "link"], check=True).stdout.splitlines()]
    assert sorted(links) == ["lo", "vp0", "vp1", "vp2", "vp3", "vx0", "vx1"]


def test_ipblock_except_and_ingress_from_external_hosts():
    """Beyond the article: `except` carves a hole in a cidr; externals initiate to pods."""
    with LocalBackend("enforcing", probe_timeout=T) as b:
        addresses = b.deploy(shop_model())
        b.apply_policy(policy("egress-except", {
            "podSelector": {"matchLabels": {"app": "backend"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/24"]}}]}]}))
        b.apply_policy(policy("ingress-from-testnet", {
            "podSelector": {"matchLabels": {"app": "frontend"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}]}))
        expected = {p("backend", "ext:inside"): TO, p("backend", "ext:outside"): C,
                    p("backend", "other"): C,                 # pod IPs are inside 0.0.0.0/0
                    ProbeSpec("ext:outside", "shop/frontend", 80, TCP): C,
                    ProbeSpec("ext:inside", "shop/frontend", 80, TCP): TO,
                    ProbeSpec("ext:inside", "shop/other", 81, UDP): C}
        got = probe_round(b, list(expected), addresses, T)
        assert {s.label: o.outcome for s, o in got.items()} == {s.label: o for s, o in expected.items()}
