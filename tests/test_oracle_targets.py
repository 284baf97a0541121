"""The oracle on targets other than pod-to-pod: Services, DNS, external hosts, undefined cases.

Expected values are written from the Kubernetes docs; each assertion says which sentence it
follows where that is not obvious.
"""

from __future__ import annotations

import pytest
from test_oracle_helpers import np

from harness.model import ContainerPort, ExternalHost, Model, Namespace, Pod, Protocol, Service, ServicePort
from harness.oracle import NXDOMAIN_TEXT, Oracle
from harness.results import Expectation

ALLOW, DENY, UNDEF = Expectation.ALLOW, Expectation.DENY, Expectation.UNDEFINED
TCP, UDP = Protocol.TCP, Protocol.UDP


def shop() -> Model:
    """The article's shape: frontend, two backends giving `http` different numbers, a db, two
    Services (one without backends), and two external hosts."""
    def tcp(port, name=None):
        return ContainerPort(port, TCP, name)
    return Model.build(
        [Namespace("prod", {"env": "prod"}), Namespace("ops", {"env": "ops"})],
        [Pod("prod", "frontend", {"app": "frontend"}, (tcp(80, "http"),)),
         Pod("prod", "backend-1", {"app": "backend"}, (tcp(80, "http"), tcp(9000, "metrics"))),
         Pod("prod", "backend-2", {"app": "backend"}, (tcp(8080, "http"),)),
         Pod("prod", "db", {"app": "db"}, (tcp(5432, "pg"),)),
         Pod("ops", "monitor", {"app": "monitor"}, (tcp(80),))],
        [Service("prod", "backend", {"app": "backend"}, (ServicePort(8080, "http", TCP, "web"),)),
         Service("prod", "cache", {"app": "cache"}, (ServicePort(6379, 6379),))],
        [ExternalHost("inside", "10.0.0.10", (tcp(80, "http"),)),
         ExternalHost("outside", "192.0.2.10", (tcp(80),))])


def reasons(d) -> str:
    return " | ".join(r.text for r in d.reasons)


# -- Services ---------------------------------------------------------------------------------
def test_service_resolves_named_target_port_per_backend():
    d = Oracle(shop(), []).decide("prod/frontend", "svc:prod/backend", 8080, TCP)
    assert d.expectation is ALLOW
    assert "forwards to prod/backend-1:80, prod/backend-2:8080" in reasons(d)
    # the Service port may be named too
    assert Oracle(shop(), []).decide("prod/frontend", "svc:prod/backend", "web", TCP
                                     ).expectation is ALLOW


def test_backends_that_disagree_make_the_service_undefined():
    o = Oracle(shop(), [np("prod", "backend-80", {
        "podSelector": {"matchLabels": {"app": "backend"}},
        "ingress": [{"ports": [{"port": 80}]}]})])
    d = o.decide("prod/frontend", "svc:prod/backend", 8080, TCP)
    assert d.expectation is UNDEF
    assert "backend-1: allow, prod/backend-2: deny" in reasons(d)
    # the same policy by port *name* resolves on each backend: both allow
    o2 = Oracle(shop(), [np("prod", "backend-http", {
        "podSelector": {"matchLabels": {"app": "backend"}},
        "ingress": [{"ports": [{"port": "http"}]}]})])
    assert o2.decide("prod/frontend", "svc:prod/backend", 8080, TCP).expectation is ALLOW


def test_service_without_backends_or_port_is_undefined_with_reason():
    # nothing forwards the connection with or without a policy: not a policy verdict, and an
    # asserted block would fail the no-policy baseline of every run
    o = Oracle(shop(), [])
    d = o.decide("prod/frontend", "svc:prod/cache", 6379, TCP)
    assert d.expectation is UNDEF and "has no backends" in reasons(d)
    d = o.decide("prod/frontend", "svc:prod/backend", 80, TCP)
    assert d.expectation is UNDEF and "has no port 80 on TCP" in reasons(d)
    with pytest.raises(KeyError, match="unknown Service svc:prod/nope"):
        o.decide("prod/frontend", "svc:prod/nope", 80, TCP)


def test_egress_ipblock_on_the_cluster_ip_is_undefined():
    # "connections from pods to Service IPs ... may or may not be subject to ipBlock-based
    # policies": an ipBlock holding only the ClusterIP (not the backends) is not decidable.
    o = Oracle(shop(), [np("prod", "to-services", {
        "podSelector": {"matchLabels": {"app": "frontend"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.0/16"}}]}]})])
    d = o.decide("prod/frontend", "svc:prod/backend", 8080, TCP)
    assert d.expectation is UNDEF and "before or after NAT" in reasons(d)
    # directly to the pod there is no NAT: plainly denied
    assert o.decide("prod/frontend", "prod/backend-2", 8080, TCP).expectation is DENY
    # when the backends' own ingress denies, NAT on the egress side changes nothing: DENY
    closed = Oracle(shop(), [
        np("prod", "to-services", {"podSelector": {"matchLabels": {"app": "frontend"}},
                                   "policyTypes": ["Egress"],
                                   "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.0/16"}}]}]}),
        np("prod", "backends-closed", {"podSelector": {"matchLabels": {"app": "backend"}}})])
    d = closed.decide("prod/frontend", "svc:prod/backend", 8080, TCP)
    assert d.expectation is DENY and "NAT" not in reasons(d)


def test_external_host_to_a_service_is_undefined():
    d = Oracle(shop(), []).decide("ext:outside", "svc:prod/backend", 8080, TCP)
    assert d.expectation is UNDEF and "NAT" in reasons(d)


# -- DNS --------------------------------------------------------------------------------------
DENY_EGRESS = np("prod", "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
ALLOW_DNS = np("prod", "allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
             "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
     "ports": [{"port": 53, "protocol": "UDP"}]}]})


def test_dns_names_resolve_or_do_not_exist():
    o = Oracle(shop(), [])
    for name in ("backend", "backend.prod", "backend.prod.svc", "backend.prod.svc.cluster.local.",
                 "kubernetes.default.svc.cluster.local", "kube-dns.kube-system"):
        assert o.decide_dns("prod/frontend", name).expectation is ALLOW, name
    # short names follow the pod's own namespace: `backend` does not exist from ops
    for name in ("backend", "nope.example.com", "inside", "outside"):
        d = o.decide_dns("ops/monitor", name)
        assert d.expectation is DENY and d.nxdomain, name
        assert d.reasons[0].text.startswith(NXDOMAIN_TEXT)


def test_dns_blocked_is_told_apart_from_no_such_name():
    o = Oracle(shop(), [DENY_EGRESS])
    for name in ("backend", "nope.example.com"):
        d = o.decide_dns("prod/frontend", name)
        assert d.expectation is DENY and not d.nxdomain
        assert any(r.policy == "prod/deny-egress" for r in d.reasons)
    assert o.decide_dns("ops/monitor", "backend.prod").expectation is ALLOW


def test_allow_dns_policy_opens_dns_and_nothing_else():
    o = Oracle(shop(), [DENY_EGRESS, ALLOW_DNS])
    assert o.decide_dns("prod/frontend", "backend").expectation is ALLOW
    d = o.decide("prod/frontend", "backend", 8080, TCP)   # resolves, but egress to it is denied
    assert d.expectation is DENY and any(r.policy == "prod/deny-egress" for r in d.reasons)
    d = o.decide("prod/frontend", "nope.example.com", 80, TCP)
    assert d.expectation is DENY and d.nxdomain
    # a DNS rule written for TCP only does not open the UDP lookup
    tcp_only = np("prod", "allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"ports": [{"port": 53}]}]})
    assert Oracle(shop(), [DENY_EGRESS, tcp_only]).decide_dns(
        "prod/frontend", "backend").expectation is DENY


def test_dns_by_named_port_and_isolated_coredns():
    named = np("prod", "allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"ports": [{"port": "dns", "protocol": "UDP"}]}]})
    assert Oracle(shop(), [DENY_EGRESS, named]).decide_dns("prod/db", "backend"
                                                           ).expectation is ALLOW
    coredns_closed = np("kube-system", "deny-all", {"podSelector": {}})
    d = Oracle(shop(), [coredns_closed]).decide_dns("prod/db", "backend")
    assert d.expectation is DENY and not d.nxdomain
    assert any(r.direction == "ingress" and r.policy == "kube-system/deny-all" for r in d.reasons)


def test_connection_by_dns_name_goes_to_the_service():
    o = Oracle(shop(), [])
    assert o.decide("prod/frontend", "backend", 8080, TCP).expectation is ALLOW
    assert o.decide("ops/monitor", "backend.prod.svc.cluster.local", 8080, TCP
                    ).expectation is ALLOW
    # the API server lives on the node network: undefined
    assert o.decide("prod/db", "kubernetes.default", 443, TCP).expectation is UNDEF


# -- external hosts ---------------------------------------------------------------------------
def test_egress_to_external_hosts_by_ipblock():
    o = Oracle(shop(), [np("prod", "egress-inside", {
        "podSelector": {"matchLabels": {"app": "frontend"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}]}]})])
    assert o.decide("prod/frontend", "ext:inside", 80, TCP).expectation is ALLOW
    assert o.decide("prod/frontend", "ext:outside", 80, TCP).expectation is DENY
    assert o.decide("prod/db", "ext:outside", 80, TCP).expectation is ALLOW   # db not isolated
    # pod and namespace selectors never match a host outside the cluster
    o2 = Oracle(shop(), [np("prod", "egress-everywhere-in-cluster", {
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {}}]}]})])
    assert o2.decide("prod/frontend", "ext:inside", 80, TCP).expectation is DENY
    assert o2.decide("prod/frontend", "ops/monitor", 80, TCP).expectation is ALLOW


def test_named_ports_never_match_an_external_host():
    o = Oracle(shop(), [np("prod", "egress-http", {
        "podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]})])
    assert o.decide("prod/db", "ext:inside", 80, TCP).expectation is DENY
    assert o.decide("prod/db", "prod/frontend", 80, TCP).expectation is ALLOW


def test_external_source_meets_only_the_ingress_side():
    o = Oracle(shop(), [np("prod", "from-testnet", {
        "podSelector": {"matchLabels": {"app": "frontend"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}]})])
    assert o.decide("ext:outside", "prod/frontend", 80, TCP).expectation is ALLOW
    d = o.decide("ext:inside", "prod/frontend", 80, TCP)
    assert d.expectation is DENY and any(r.policy == "prod/from-testnet" for r in d.reasons)
    assert "outside the cluster" in reasons(o.decide("ext:inside", "prod/db", 5432, TCP))
    assert o.decide("ext:inside", "ext:outside", 80, TCP).expectation is UNDEF


# -- undefined --------------------------------------------------------------------------------
def test_undefined_cases_carry_their_reason():
    o = Oracle(shop(), [])
    for src, dst, port, why in [
        ("prod/db", "prod/db", 5432, "to itself"),
        ("node", "prod/db", 5432, "node"),
        ("prod/db", "node", 10250, "node"),
        ("node:worker-1", "prod/db", 5432, "node"),
        ("prod/frontend", "prod/db", 80, "serves nothing on TCP 80"),
        ("prod/frontend", "prod/db", "http", "no TCP port named 'http'"),
        ("prod/db", "ext:outside", 443, "serves nothing on TCP 443"),
    ]:
        d = o.decide(src, dst, port, TCP)
        assert d.expectation is UNDEF and why in reasons(d), (src, dst, reasons(d))


def test_unmodelled_policy_kinds_make_their_namespace_undefined():
    cilium = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
              "metadata": {"name": "l7", "namespace": "prod"}, "spec": {}}
    o = Oracle(shop(), [cilium])
    d = o.decide("ops/monitor", "prod/frontend", 80, TCP)
    assert d.expectation is UNDEF and "CiliumNetworkPolicy prod/l7" in reasons(d)
    assert o.decide("ext:inside", "ops/monitor", 80, TCP).expectation is ALLOW
    anp = {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
           "metadata": {"name": "deny-everything"}, "spec": {}}
    assert Oracle(shop(), [anp]).decide("ext:inside", "ops/monitor", 80, TCP
                                        ).expectation is UNDEF


def test_bad_inputs_are_named():
    o = Oracle(shop(), [])
    with pytest.raises(KeyError, match="unknown source 'prod/nope'"):
        o.decide("prod/nope", "prod/db", 80, TCP)
    with pytest.raises(KeyError, match="unknown target 'prod/nope'"):
        o.decide("prod/db", "prod/nope", 80, TCP)
    # a DNS name that merely starts with "node" is a name, not the node
    d = o.decide("prod/db", "node-exporter", 9100, TCP)
    assert d.expectation is DENY and d.nxdomain
    with pytest.raises(KeyError, match="unknown external host 'nope'"):
        o.decide("ext:nope", "prod/db", 80, TCP)
    with pytest.raises(ValueError, match="policy prod/p is given twice"):
        Oracle(shop(), [np("prod", "p", {"podSelector": {}})] * 2)
    with pytest.raises(ValueError, match=r"policy #0 prod/p: spec.ingress\[0\].from\[0\]"):
        Oracle(shop(), [np("prod", "p", {"podSelector": {}, "ingress": [{"from": [{}]}]})])
