"""The oracle on the finer points of the spec, one rule per test, on the conformance model.

Each expectation is written from the Kubernetes docs (quoted where the point is subtle).
"""

from __future__ import annotations

from test_oracle_helpers import np

from harness.model import Model, Protocol
from harness.oracle import Oracle
from harness.results import Expectation

M = Model.default()
ALLOW, DENY = Expectation.ALLOW, Expectation.DENY
TCP, UDP, SCTP = Protocol.TCP, Protocol.UDP, Protocol.SCTP


def sources_allowed_into(o: Oracle, dst: str, port=80, proto=TCP) -> list[str]:
    return [s for s in M.pod_keys if s != dst
            and o.decide(s, dst, port, proto).expectation is ALLOW]


def ingress_to_a(*rules, types=None) -> dict:
    spec = {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": list(rules)}
    if types:
        spec["policyTypes"] = types
    return np("x", "to-a", spec)


EVERYONE_BUT_XA = ["x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c"]


def test_empty_and_missing_from_both_allow_every_source():
    for rule in ({}, {"from": []}, {"from": [], "ports": []}):
        assert sources_allowed_into(Oracle(M, [ingress_to_a(rule)]), "x/a") == EVERYONE_BUT_XA


def test_empty_rule_list_allows_nothing():
    assert sources_allowed_into(Oracle(M, [ingress_to_a()]), "x/a") == []


def test_a_peer_selector_that_matches_no_pod_allows_nothing():
    o = Oracle(M, [ingress_to_a({"from": [{"podSelector": {"matchLabels": {"pod": "nope"}}}]})])
    assert sources_allowed_into(o, "x/a") == []
    o = Oracle(M, [ingress_to_a({"from": [{"namespaceSelector": {"matchLabels": {"ns": "q"}}}]})])
    assert sources_allowed_into(o, "x/a") == []


def test_pod_selector_alone_means_the_policy_namespace():
    o = Oracle(M, [ingress_to_a({"from": [{"podSelector": {}}]})])
    assert sources_allowed_into(o, "x/a") == ["x/b", "x/c"]


def test_namespace_selector_empty_means_every_namespace():
    o = Oracle(M, [ingress_to_a({"from": [{"namespaceSelector": {}}]})])
    assert sources_allowed_into(o, "x/a") == EVERYONE_BUT_XA
    o = Oracle(M, [ingress_to_a({"from": [{"namespaceSelector": {},
                                           "podSelector": {"matchLabels": {"pod": "b"}}}]})])
    assert sources_allowed_into(o, "x/a") == ["x/b", "y/b", "z/b"]


def test_match_expressions_on_namespaces_and_pods():
    o = Oracle(M, [ingress_to_a({"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "ns", "operator": "NotIn", "values": ["x", "y"]}]},
        "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In",
                                              "values": ["a", "c"]}]}}]})])
    assert sources_allowed_into(o, "x/a") == ["z/a", "z/c"]
    o = Oracle(M, [ingress_to_a({"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "Exists"}]},
        "podSelector": {"matchExpressions": [{"key": "pod", "operator": "DoesNotExist"}]}}]})])
    assert sources_allowed_into(o, "x/a") == []


def test_the_automatic_namespace_name_label_is_selectable():
    o = Oracle(M, [ingress_to_a({"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "y"}}}]})])
    assert sources_allowed_into(o, "x/a") == ["y/a", "y/b", "y/c"]


def test_sctp_rule_opens_nothing_on_tcp_and_default_protocol_is_tcp():
    o = Oracle(M, [ingress_to_a({"ports": [{"protocol": "SCTP", "port": 80}]})])
    assert sources_allowed_into(o, "x/a", 80, TCP) == []
    assert sources_allowed_into(o, "x/a", 80, UDP) == []
    assert sources_allowed_into(o, "x/a", 80, SCTP) == EVERYONE_BUT_XA
    assert sources_allowed_into(o, "x/a", 81, SCTP) == []
    o = Oracle(M, [ingress_to_a({"ports": [{"port": 81}]})])
    assert sources_allowed_into(o, "x/a", 81, TCP) == EVERYONE_BUT_XA
    assert sources_allowed_into(o, "x/a", 81, UDP) == []
    o = Oracle(M, [ingress_to_a({"ports": [{"protocol": "UDP"}]})])   # every UDP port
    assert sources_allowed_into(o, "x/a", 81, UDP) == EVERYONE_BUT_XA
    assert sources_allowed_into(o, "x/a", 81, TCP) == []


def test_peers_and_ports_of_one_rule_are_anded_rules_are_ored():
    o = Oracle(M, [ingress_to_a(
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 80}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}], "ports": [{"port": 81}]})])
    assert sources_allowed_into(o, "x/a", 80) == ["y/a", "y/b", "y/c"]
    assert sources_allowed_into(o, "x/a", 81) == ["z/a", "z/b", "z/c"]


def test_policy_types_egress_only_ignores_ingress_rules():
    o = Oracle(M, [ingress_to_a(types=["Egress"])])
    assert sources_allowed_into(o, "x/a") == EVERYONE_BUT_XA
    assert o.isolation("x/a") == {"ingress": [], "egress": ["x/to-a"]}
    assert o.decide("x/a", "y/b", 80, TCP).expectation is DENY


def test_egress_rules_without_policy_types_isolate_both_directions():
    o = Oracle(M, [np("x", "eg", {"podSelector": {"matchLabels": {"pod": "a"}},
                                  "egress": [{"to": [{"podSelector": {}}]}]})])
    assert o.isolation("x/a") == {"ingress": ["x/eg"], "egress": ["x/eg"]}
    assert sources_allowed_into(o, "x/a") == []
    assert [d for d in M.pod_keys if d != "x/a"
            and o.decide("x/a", d, 80, TCP).expectation is ALLOW] == ["x/b", "x/c"]


def test_a_policy_selects_only_pods_of_its_own_namespace():
    o = Oracle(M, [np("y", "deny", {"podSelector": {"matchLabels": {"pod": "a"}}})])
    assert sources_allowed_into(o, "x/a") == EVERYONE_BUT_XA
    assert o.isolation("y/a")["ingress"] == ["y/deny"] and o.isolation("z/a")["ingress"] == []


def test_end_port_range_bounds_are_inclusive():
    m = Model.default(namespaces=["x"], pods=["a", "b"], ports=(79, 80, 81, 82))
    o = Oracle(m, [np("x", "r", {"podSelector": {"matchLabels": {"pod": "a"}},
                                 "ingress": [{"ports": [{"port": 80, "endPort": 81}]}]})])
    got = [p for p in (79, 80, 81, 82) if o.decide("x/b", "x/a", p, TCP).expectation is ALLOW]
    assert got == [80, 81]


def test_reasons_name_the_deciding_rule():
    o = Oracle(M, [np("x", "deny-all", {"podSelector": {}}), ingress_to_a(
        {"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]})])
    d = o.decide("y/c", "x/a", 80, TCP)
    assert d.expectation is ALLOW
    allowing = [(r.direction, r.policy, r.rule) for r in d.reasons if r.allowed]
    assert allowing == [("egress", None, None), ("ingress", "x/to-a", 1)]
    assert d.reasons[0].text == "no policy selects y/c for egress: not isolated"
    d = o.decide("z/c", "x/a", 80, TCP)
    assert d.expectation is DENY
    assert sorted(r.policy for r in d.reasons if not r.allowed) == ["x/deny-all", "x/to-a"]
