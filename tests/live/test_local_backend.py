"""The local backend end to end: real namespaces, real servers, real DNS, real nftables.

Driven through the backend + prober directly (the runner is tested elsewhere). Skipped with the
reason when not root or when a system tool is missing.
"""

from __future__ import annotations

import os

import pytest

from harness.backends.local import LocalBackend
from harness.backends.local.preflight import missing_tools
from harness.backends.base import Backend
from harness.errors import BackendError
from harness.model import (ContainerPort, Model, Namespace, Pod, Protocol, Service, ServicePort)
from harness.prober import probe_round
from harness.probes import Outcome, ProbeSpec

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root (network namespaces)"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"missing system tools: {missing_tools()}"),
]

T = 1.0
TCP, UDP = Protocol.TCP, Protocol.UDP
PORTS = tuple(ContainerPort.serve(p, proto) for p in (80, 81) for proto in (TCP, UDP))


def web_model() -> Model:
    """x: a, b (app=web, behind Service x/web 8080 -> serve-80-tcp), c; y: a."""
    nss = [Namespace("x", {"ns": "x"}), Namespace("y", {"ns": "y"})]
    pods = [Pod("x", "a", {"pod": "a", "app": "web"}, PORTS),
            Pod("x", "b", {"pod": "b", "app": "web"}, PORTS),
            Pod("x", "c", {"pod": "c"}, PORTS),
            Pod("y", "a", {"pod": "a"}, PORTS)]
    svcs = [Service("x", "web", {"app": "web"}, (ServicePort(8080, "serve-80-tcp", TCP, "http"),)),
            Service("x", "only-a", {"pod": "a", "app": "web"},
                    (ServicePort(9090, 80, TCP, "http"), ServicePort(9091, 81, UDP, "udp")))]
    return Model.build(nss, pods, svcs)


def np(ns, name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


DENY_INGRESS_X = np("x", "deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})
DENY_EGRESS_X = np("x", "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
ALLOW_DNS_X = np("x", "allow-dns", {
    "podSelector": {}, "policyTypes": ["Egress"],
    "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})


@pytest.fixture(scope="module")
def web():
    b = LocalBackend("enforcing", probe_timeout=T)
    with b:
        addresses = b.deploy(web_model())
        yield b, addresses


@pytest.fixture
def clean(web):
    """The module's backend with no policies before and after the test."""
    b, addresses = web
    yield b, addresses
    for key in list(b._policies):
        ns, name = key.split("/")
        b.delete_policy(ns, name)


def one(b, addresses, spec):
    return probe_round(b, [spec], addresses, T)[spec]


def test_is_a_backend_and_declares_capabilities():
    b = LocalBackend("enforcing")
    assert isinstance(b, Backend)
    caps = b.capabilities()
    assert caps.enforces and caps.deny_response == "drop"
    assert "sctp" not in caps.supported and "SCTP" in caps.match(["sctp"])[1]
    assert not LocalBackend("open").capabilities().enforces


def test_every_pod_serves_every_declared_tcp_and_udp_port(clean):
    b, addresses = clean
    model = web_model()
    specs = [ProbeSpec("y/a", p.key, cp.port, cp.protocol) for p in model.pods if not p.system
             for cp in p.ports]
    got = probe_round(b, specs, addresses, T)
    assert {s: (o.outcome, o.answered_by) for s, o in got.items()} == \
        {s: (Outcome.CONNECTED, s.target) for s in specs}


def test_closed_port_is_refused_not_timeout(clean):
    b, addresses = clean
    assert one(b, addresses, ProbeSpec("x/a", "x/b", 82, TCP)).outcome == Outcome.REFUSED
    assert one(b, addresses, ProbeSpec("x/a", "x/b", 82, UDP)).outcome == Outcome.REFUSED


def test_service_translates_to_backing_pods(clean):
    b, addresses = clean
    seen = {one(b, addresses, ProbeSpec("x/c", "svc:x/web", 8080, TCP)).answered_by for _ in range(16)}
    assert seen == {"x/a", "x/b"}  # random over both backends; 16 tries miss one with p=2^-15
    udp = one(b, addresses, ProbeSpec("y/a", "svc:x/only-a", 9091, UDP))
    assert (udp.outcome, udp.answered_by) == (Outcome.CONNECTED, "x/a")


def test_service_is_subject_to_backing_pods_policy(clean):
    b, addresses = clean
    b.apply_policy(np("x", "deny-a", {"podSelector": {"matchLabels": {"pod": "a"}}}))
    assert one(b, addresses, ProbeSpec("y/a", "svc:x/only-a", 9090, TCP)).outcome == Outcome.TIMEOUT
    # the Service with a second, unisolated backend: only x/b ever answers now
    answers = {one(b, addresses, ProbeSpec("y/a", "svc:x/web", 8080, TCP)).answered_by for _ in range(8)}
    assert "x/a" not in answers and "x/b" in answers


def test_pod_reaches_itself_through_its_service(clean):
    b, addresses = clean
    got = one(b, addresses, ProbeSpec("x/a", "svc:x/only-a", 9090, TCP))
    assert (got.outcome, got.answered_by) == (Outcome.CONNECTED, "x/a")


def dns(src, name, proto=UDP):
    return ProbeSpec(src, name, 53, proto, dns_name=name)


def test_dns_resolves_like_a_cluster(clean):
    b, addresses = clean
    web_ip = addresses.service_ips["x/web"]
    cases = {dns("x/a", "web"): (Outcome.DNS_RESOLVED, web_ip),       # search path: x.svc...
             dns("y/a", "web.x"): (Outcome.DNS_RESOLVED, web_ip),
             dns("y/a", "web.x.svc.cluster.local", TCP): (Outcome.DNS_RESOLVED, web_ip),
             dns("y/a", "kubernetes.default"): (Outcome.DNS_RESOLVED, "10.96.0.1"),
             dns("y/a", "kube-dns.kube-system.svc.cluster.local."): (Outcome.DNS_RESOLVED, "10.96.0.10"),
             dns("y/a", "web"): (Outcome.DNS_NXDOMAIN, None),         # no web Service in y
             dns("x/a", "example.com."): (Outcome.DNS_REFUSED, None)}
    got = probe_round(b, list(cases), addresses, T)
    assert {s: (o.outcome, o.answered_by) for s, o in got.items()} == cases


def test_curl_by_service_name_goes_through_dns(clean):
    b, addresses = clean
    got = one(b, addresses, ProbeSpec("x/c", "only-a", 9090, TCP))
    assert (got.outcome, got.answered_by) == (Outcome.CONNECTED, "x/a")


def test_dns_times_out_when_egress_denied_and_works_when_dns_allowed(clean):
    b, addresses = clean
    b.apply_policy(DENY_EGRESS_X)
    assert one(b, addresses, dns("x/a", "web")).outcome == Outcome.DNS_TIMEOUT
    assert one(b, addresses, dns("y/a", "web.x")).outcome == Outcome.DNS_RESOLVED  # y unaffected
    b.apply_policy(ALLOW_DNS_X)
    got = probe_round(b, [dns("x/a", "web"), dns("x/a", "web", TCP),
                          ProbeSpec("x/a", "x/b", 80, TCP)], addresses, T)
    assert [o.outcome for o in got.values()] == [Outcome.DNS_RESOLVED, Outcome.DNS_RESOLVED,
                                                 Outcome.TIMEOUT]


def test_udp_is_filtered_and_replies_are_stateful(clean):
    b, addresses = clean
    b.apply_policy(np("x", "allow-udp-81", {"podSelector": {"matchLabels": {"pod": "b"}},
                                            "ingress": [{"ports": [{"protocol": "UDP", "port": 81}]}]}))
    got = probe_round(b, [ProbeSpec("y/a", "x/b", 81, UDP), ProbeSpec("y/a", "x/b", 80, UDP),
                          ProbeSpec("y/a", "x/b", 81, TCP)], addresses, T)
    assert [o.outcome for o in got.values()] == [Outcome.CONNECTED, Outcome.TIMEOUT, Outcome.TIMEOUT]


def test_named_ports_and_endport(clean):
    b, addresses = clean
    b.apply_policy(np("x", "named", {"podSelector": {"matchLabels": {"pod": "a"}},
                                     "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]}))
    b.apply_policy(np("x", "range", {"podSelector": {"matchLabels": {"pod": "b"}},
                                     "ingress": [{"ports": [{"port": 79, "endPort": 80}]}]}))
    got = probe_round(b, [ProbeSpec("y/a", "x/a", 81, TCP), ProbeSpec("y/a", "x/a", 80, TCP),
                          ProbeSpec("y/a", "x/b", 80, TCP), ProbeSpec("y/a", "x/b", 81, TCP)],
                      addresses, T)
    assert [o.outcome for o in got.values()] == [Outcome.CONNECTED, Outcome.TIMEOUT,
                                                 Outcome.CONNECTED, Outcome.TIMEOUT]


def test_egress_named_port_resolves_on_destination(clean):
    b, addresses = clean
    b.apply_policy(np("y", "egress-named", {"podSelector": {}, "policyTypes": ["Egress"],
                                            "egress": [{"ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}]}))
    got = probe_round(b, [ProbeSpec("y/a", "x/c", 80, UDP), ProbeSpec("y/a", "x/c", 81, UDP)],
                      addresses, T)
    assert [o.outcome for o in got.values()] == [Outcome.CONNECTED, Outcome.TIMEOUT]


def test_label_changes_take_effect(clean):
    b, addresses = clean
    b.apply_policy(np("x", "from-trusted", {"podSelector": {"matchLabels": {"pod": "c"}},
                                            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"trusted": "yes"}}}]}]}))
    spec = ProbeSpec("y/a", "x/c", 80, TCP)
    assert one(b, addresses, spec).outcome == Outcome.TIMEOUT
    b.set_labels({"y": {"trusted": "yes"}}, {})
    try:
        assert one(b, addresses, spec).outcome == Outcome.CONNECTED
    finally:
        b.set_labels({"y": {"trusted": None}}, {})
    assert one(b, addresses, spec).outcome == Outcome.TIMEOUT


def test_policy_delete_restores_traffic_and_count_is_kept(clean):
    b, addresses = clean
    spec = ProbeSpec("y/a", "x/a", 80, TCP)
    b.apply_policy(DENY_INGRESS_X)
    assert b.policy_count() == 1
    assert one(b, addresses, spec).outcome == Outcome.TIMEOUT
    b.delete_policy("x", "deny-ingress")
    assert b.policy_count() == 0
    assert one(b, addresses, spec).outcome == Outcome.CONNECTED


def test_non_networkpolicy_kinds_are_refused(clean):
    b, _ = clean
    with pytest.raises(BackendError, match="only understands networking.k8s.io/v1 NetworkPolicy"):
        b.apply_policy({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                        "metadata": {"name": "p", "namespace": "x"}, "spec": {}})
    with pytest.raises(BackendError, match="spec.policyTypes"):
        b.apply_policy(np("x", "bad", {"podSelector": {}, "policyTypes": ["ingress"]}))
    assert b.policy_count() == 0


def test_exec_in_unknown_endpoint_is_an_error(clean):
    b, addresses = clean
    with pytest.raises(BackendError, match="unknown endpoint 'q/z'"):
        b.exec("q/z", ["true"], 5)
    got = one(b, addresses, ProbeSpec("q/z", "x/a", 80, TCP))
    assert got.outcome == Outcome.TOOL_ERROR and "q/z" in got.detail


def test_full_matrix_with_deny_all_is_correct():
    model = Model.default(protocols=[TCP])
    with LocalBackend("enforcing", probe_timeout=T) as b:
        addresses = b.deploy(model)
        for ns in ("x", "y", "z"):
            b.apply_policy(np(ns, "deny-all", {"podSelector": {}}))
        specs = [ProbeSpec(s, d, 80, TCP) for s in model.pod_keys for d in model.pod_keys]
        got = probe_round(b, specs, addresses, T)
    # loopback: a pod reaching its own IP never leaves its namespace (upstream AllowLoopback)
    want = {s: Outcome.CONNECTED if s.source == s.target else Outcome.TIMEOUT for s in specs}
    assert {s: o.outcome for s, o in got.items()} == want
    # Correctness only. Concurrency is proven without a clock in tests/test_prober.py (barrier);
    # the speed figure (about 1.1-1.3 timeouts here) is bench/bench_local.py's job.


def test_open_profile_stores_but_never_enforces():
    with LocalBackend("open", probe_timeout=T) as b:
        addresses = b.deploy(web_model())
        b.apply_policy(DENY_INGRESS_X)
        b.apply_policy(DENY_EGRESS_X)
        assert b.policy_count() == 2
        got = probe_round(b, [ProbeSpec("y/a", "x/a", 80, TCP), ProbeSpec("x/a", "x/b", 81, UDP),
                              dns("x/a", "web")], addresses, T)
        assert [o.outcome for o in got.values()] == [Outcome.CONNECTED, Outcome.CONNECTED,
                                                     Outcome.DNS_RESOLVED]


def test_service_endpoints_follow_pod_labels(clean):
    b, addresses = clean
    spec = ProbeSpec("y/a", "svc:x/web", 8080, TCP)
    b.set_labels({}, {"x/a": {"app": None}, "x/b": {"app": None}, "x/c": {"app": "web"}})
    try:
        assert {one(b, addresses, spec).answered_by for _ in range(4)} == {"x/c"}
    finally:
        b.set_labels({}, {"x/a": {"app": "web"}, "x/b": {"app": "web"}, "x/c": {"app": None}})
    assert "x/c" not in {one(b, addresses, spec).answered_by for _ in range(6)}


def test_curl_by_name_with_dns_denied_is_a_dns_timeout(clean):
    b, addresses = clean
    b.apply_policy(DENY_EGRESS_X)
    got = one(b, addresses, ProbeSpec("x/c", "only-a", 9090, TCP))
    assert got.outcome == Outcome.DNS_TIMEOUT, got.detail


def test_named_target_port_resolves_per_pod_in_services_and_policies():
    """The same port name means 80 on x/p1 and 81 on x/p2, for the Service and the policy."""
    pods = [Pod("x", "p1", {"app": "api"}, (ContainerPort(80, TCP, "web"),)),
            Pod("x", "p2", {"app": "api"}, (ContainerPort(81, TCP, "web"), ContainerPort(80, TCP, "other"))),
            Pod("x", "client", {"app": "client"}, (ContainerPort(80, TCP, "web"),))]
    svc = Service("x", "api", {"app": "api"}, (ServicePort(8080, "web", TCP, "http"),))
    with LocalBackend("enforcing", probe_timeout=T) as b:
        addresses = b.deploy(Model.build([Namespace("x")], pods, [svc]))
        b.apply_policy(np("x", "only-web", {"podSelector": {"matchLabels": {"app": "api"}},
                                            "ingress": [{"ports": [{"port": "web"}]}]}))
        spec = ProbeSpec("x/client", "svc:x/api", 8080, TCP)
        assert {one(b, addresses, spec).answered_by for _ in range(16)} == {"x/p1", "x/p2"}
        got = probe_round(b, [ProbeSpec("x/client", "x/p2", 81, TCP), ProbeSpec("x/client", "x/p2", 80, TCP),
                              ProbeSpec("x/client", "x/p1", 80, TCP)], addresses, T)
        assert [o.outcome for o in got.values()] == [Outcome.CONNECTED, Outcome.TIMEOUT,
                                                     Outcome.CONNECTED]
