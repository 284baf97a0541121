"""explain(): the decision told in sentences, deciding reasons first."""

from test_oracle_helpers import np

from harness.explain import explain
from harness.model import Model, Protocol
from harness.oracle import Oracle

M = Model.default()
ORACLE = Oracle(M, [np("x", "deny-all", {"podSelector": {}}),
               np("x", "to-a", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
                   {"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}]}]})])


def say(src, dst, port=80, proto=Protocol.TCP):
    return explain(ORACLE.decide(src, dst, port, proto), src, dst, port, proto)


def test_blocked_names_every_isolating_policy_and_sums_up():
    assert say("y/b", "x/a") == (
        "y/b -> x/a on TCP 80: BLOCKED. "
        "x/deny-all isolates x/a for ingress (podSelector {} selects every pod in x) and has no "
        "ingress rule, so it allows nothing. "
        "x/to-a isolates x/a for ingress (podSelector pod=a), but its only rule does not allow "
        "traffic from y/b on TCP 80. "
        "So x/a is isolated for ingress and no ingress rule of any of the 2 policies selecting "
        "it (x/deny-all, x/to-a) matches this connection. "
        "Also: No policy selects y/b for egress: not isolated.")


def test_allowed_names_the_rule():
    assert say("z/b", "x/a", 81, Protocol.UDP) == (
        "z/b -> x/a on UDP 81: ALLOWED. No policy selects z/b for egress: not isolated. "
        "x/to-a ingress rule 0 allows z/b -> x/a on UDP 81 (from every pod in namespaces "
        "matching ns=z; ports: every port).")


def test_undefined_gives_the_spec_reason():
    text = say("x/a", "x/a")
    assert text.startswith("x/a -> x/a on TCP 80: UNDEFINED")
    assert "x/a to itself: the docs say a pod cannot block access to itself" in text


def test_dns_no_such_name_reads_differently_from_blocked():
    nx = explain(ORACLE.decide_dns("y/a", "nope"), "y/a", "nope", 53, "udp")
    assert nx.startswith("y/a -> nope on UDP 53: BLOCKED. Name does not exist: nope is not a "
                         "Service of the cluster")
    closed = Oracle(M, [np("y", "no-egress", {"podSelector": {}, "policyTypes": ["Egress"]})])
    blocked = explain(closed.decide_dns("y/a", "nope"), "y/a", "nope", 53, "UDP")
    assert "cannot reach the cluster DNS" in blocked and "y/no-egress isolates y/a for egress" \
        in blocked and "Name does not exist" not in blocked


def test_undefined_through_nat_leads_with_the_nat_reason():
    from harness.model import Service, ServicePort
    m = Model.build(M.namespaces, M.pods, [Service("x", "web", {"pod": "b"},
                                                   (ServicePort(8080, 80),))])
    o = Oracle(m, [np("y", "to-service-range", {
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.0/16"}}]}]})])
    text = explain(o.decide("y/a", "svc:x/web", 8080, Protocol.TCP), "y/a", "svc:x/web", 8080,
                   Protocol.TCP)
    assert text.startswith("y/a -> svc:x/web on TCP 8080: UNDEFINED (the spec does not say; not "
                           "asserted). An egress ipBlock of a policy selecting y/a contains the "
                           "ClusterIP"), text
    assert "Also: Service x/web port 8080/TCP forwards to x/b:80." in text
