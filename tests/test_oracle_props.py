"""Property tests of the oracle: laws the spec implies for every set of policies.

Why: hand-written tables cover the classic cases; these laws (additivity, non-isolated pods are
open, order does not matter) must hold for any policy set, so hypothesis searches for a policy
set that breaks them. `random_policy` is also used by bench/bench_oracle.py.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_oracle_helpers import np

from harness.model import Model, Protocol
from harness.oracle import Oracle
from harness.results import Expectation

M = Model.default(protocols=(Protocol.TCP, Protocol.UDP))
PROBES = [(80, Protocol.TCP), (81, Protocol.UDP), ("serve-81-tcp", Protocol.TCP)]


def _selector(rng: random.Random, key: str, values: list[str]) -> dict:
    kind = rng.randrange(5)
    if kind == 0:
        return {}
    if kind == 1:
        return {"matchLabels": {key: rng.choice(values)}}
    op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
    if op in ("Exists", "DoesNotExist"):
        return {"matchExpressions": [{"key": rng.choice([key, "other"]), "operator": op}]}
    return {"matchExpressions": [{"key": key, "operator": op,
                                  "values": rng.sample(values, rng.randint(1, 2))}]}


def _peer(rng: random.Random) -> dict:
    kind = rng.randrange(4)
    if kind == 0:
        return {"podSelector": _selector(rng, "pod", ["a", "b", "c"])}
    if kind == 1:
        return {"namespaceSelector": _selector(rng, "ns", ["x", "y", "z"])}
    if kind == 2:
        return {"podSelector": _selector(rng, "pod", ["a", "b", "c"]),
                "namespaceSelector": _selector(rng, "ns", ["x", "y", "z"])}
    host = rng.randint(8, 19)
    block = {"cidr": f"10.244.1.{host & ~7}/29"}
    if rng.random() < 0.5:
        block["except"] = [f"10.244.1.{host}/32"]
    return {"ipBlock": block}


def _ports(rng: random.Random) -> list[dict] | None:
    kind = rng.randrange(4)
    if kind == 0:
        return None
    if kind == 1:
        return []
    choices = [{"port": 80}, {"port": 81, "protocol": "UDP"}, {"port": "serve-81-tcp"},
               {"protocol": "UDP"}, {"port": 80, "endPort": 81}, {"protocol": "SCTP", "port": 80}]
    return rng.sample(choices, rng.randint(1, 2))


def _rules(rng: random.Random, peers_field: str) -> list[dict]:
    rules = []
    for _ in range(rng.randint(0, 2)):
        rule: dict = {}
        k = rng.randrange(3)
        if k == 1:
            rule[peers_field] = []
        elif k == 2:
            rule[peers_field] = [_peer(rng) for _ in range(rng.randint(1, 2))]
        ports = _ports(rng)
        if ports is not None:
            rule["ports"] = ports
        rules.append(rule)
    return rules


def random_policy(rng: random.Random, name: str, namespaces=("x", "y", "z")) -> dict:
    """A valid, random NetworkPolicy over the conformance model's labels."""
    spec: dict = {"podSelector": _selector(rng, "pod", ["a", "b", "c"])}
    if rng.random() < 0.7:
        spec["ingress"] = _rules(rng, "from")
    if rng.random() < 0.6:
        spec["egress"] = _rules(rng, "to")
    if rng.random() < 0.6:
        spec["policyTypes"] = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
    return np(rng.choice(namespaces), name, spec)


policy_sets = st.builds(lambda r, n: [random_policy(r, f"p{i}") for i in range(n)],
                        st.randoms(use_true_random=False), st.integers(0, 6))
one_policy = st.builds(lambda r: random_policy(r, "extra"), st.randoms(use_true_random=False))
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _side_allows(decision, direction: str) -> bool:
    return any(r.direction == direction and r.allowed for r in decision.reasons)


@SETTINGS
@given(policy_sets, one_policy)
def test_adding_a_policy_never_narrows_an_isolated_direction(base, extra):
    before, after = Oracle(M, base), Oracle(M, base + [extra])
    for port, proto in PROBES:
        for s in M.pod_keys:
            for d in M.pod_keys:
                if s == d:
                    continue
                b, a = before.decide(s, d, port, proto), after.decide(s, d, port, proto)
                if before.isolation(s)["egress"] and _side_allows(b, "egress"):
                    assert _side_allows(a, "egress"), (s, d, port, proto, a.reasons)
                if before.isolation(d)["ingress"] and _side_allows(b, "ingress"):
                    assert _side_allows(a, "ingress"), (s, d, port, proto, a.reasons)


@SETTINGS
@given(policy_sets)
def test_a_connection_between_unselected_pods_is_allowed(policies):
    o = Oracle(M, policies)
    for port, proto in PROBES:
        for s in M.pod_keys:
            for d in M.pod_keys:
                if s != d and not o.isolation(s)["egress"] and not o.isolation(d)["ingress"]:
                    dec = o.decide(s, d, port, proto)
                    assert dec.expectation is Expectation.ALLOW, (s, d, dec.reasons)


@SETTINGS
@given(policy_sets, st.randoms(use_true_random=False))
def test_the_order_of_policies_never_matters(policies, rng):
    shuffled = list(policies)
    rng.shuffle(shuffled)
    a, b = Oracle(M, policies), Oracle(M, shuffled)
    for port, proto in PROBES:
        assert a.matrix(port, proto) == b.matrix(port, proto)


@SETTINGS
@given(policy_sets)
def test_every_decision_has_a_reason_and_self_is_undefined(policies):
    o = Oracle(M, policies)
    table = o.matrix(80, Protocol.TCP)
    for s, d, dec in table.items():
        assert dec.reasons
        assert (dec.expectation is Expectation.UNDEFINED) == (s == d)
        if dec.expectation is Expectation.DENY:
            # a denial always names the policies that isolate without a matching rule
            assert any(r.policy and not r.allowed for r in dec.reasons)


def _model_with_service() -> Model:
    from harness.model import Service, ServicePort
    return Model.build(M.namespaces, M.pods, [Service(
        "x", "svc-a", {"pod": "a"}, (ServicePort(8080, "serve-80-tcp", Protocol.TCP),))])


@SETTINGS
@given(policy_sets)
def test_a_single_backend_service_decides_like_its_pod(policies):
    # Policies act on the backend after DNAT: svc:x/svc-a:8080 is x/a:80 (the random ipBlocks
    # stay inside the pod range, away from the ClusterIP, so NAT never makes it undefined).
    o = Oracle(_model_with_service(), policies)
    for s in M.pod_keys:
        via = o.decide(s, "svc:x/svc-a", 8080, Protocol.TCP).expectation
        direct = o.decide(s, "x/a", 80, Protocol.TCP).expectation
        assert via is direct, (s, via, direct)


@SETTINGS
@given(policy_sets)
def test_the_oracle_does_not_change_the_manifests_it_reads(policies):
    import copy
    before = copy.deepcopy(policies)
    Oracle(M, policies).matrix(80, Protocol.TCP)
    assert policies == before
