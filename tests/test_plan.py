"""Endpoints, servers and the cells a step probes (harness.model.Endpoint, Model.server_of,
harness.plan), without a cluster: the spelling is parsed in one place, cells that reach the same
server by any path share one positive control, and each blocked cell knows its loopback probe."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.expected import ExpectedCell, decisions_before, expected_cells, model_at
from harness.model import (
    DNS_SERVICE_ENDPOINT,
    Addresses,
    Endpoint,
    EndpointKind,
    Model,
    Protocol,
    Server,
    plan_addresses,
)
from harness.oracle import Oracle
from harness.plan import Loopback, plan_cells, plan_steps
from harness.results import Expectation, Verdict
from harness.scenario import find_scenarios, load_scenario

SHOP = Path(__file__).parent / "data" / "scenarios" / "valid-custom-model.yaml"


@pytest.mark.parametrize("text,kind,key", [
    ("x/a", EndpointKind.POD, "x/a"),
    ("svc:prod/backend", EndpointKind.SERVICE, "prod/backend"),
    ("ext:outside", EndpointKind.EXTERNAL, "outside"),
    ("backend.prod.svc.cluster.local", EndpointKind.NAME, "backend.prod.svc.cluster.local"),
    ("10.244.1.10", EndpointKind.NAME, "10.244.1.10"),
    ("node", EndpointKind.NODE, "node"),
    ("node:worker", EndpointKind.NODE, "node:worker"),
    ("node/a", EndpointKind.POD, "node/a"),            # a pod in namespace "node"
])
def test_endpoint_parse_and_spelling_round_trip(text, kind, key):
    ep = Endpoint.parse(text)
    assert (ep.kind, ep.key) == (kind, key)
    assert str(ep) == text
    assert Endpoint.parse(ep) is ep


def test_dns_service_endpoint_is_the_kube_dns_service():
    ep = Endpoint.parse(DNS_SERVICE_ENDPOINT)
    assert ep.is_service and ep.key == "kube-system/kube-dns"


def test_addresses_ip_of_each_kind():
    a = Addresses({"x/a": "10.244.1.10"}, {"x/s": "10.96.1.10"}, {"out": "203.0.113.10"})
    assert a.ip_of("x/a") == "10.244.1.10"
    assert a.ip_of("svc:x/s") == "10.96.1.10"
    assert a.ip_of(Endpoint.external("out")) == "203.0.113.10"
    with pytest.raises(KeyError):
        a.ip_of("some.name")


def test_server_of_follows_services_and_their_dns_names_to_the_backend_pod():
    model = load_scenario(SHOP).model
    direct = model.server_of("prod/frontend", "prod/backend", 80, Protocol.TCP)
    assert direct == Server("prod/backend", 80, Protocol.TCP)
    # the Service's port 8080 targets the named port http (80) on the backend pod
    assert model.server_of("prod/frontend", "svc:prod/backend", 8080, Protocol.TCP) == direct
    assert model.server_of("dev/tool", "backend.prod.svc.cluster.local", 8080,
                           Protocol.TCP) == direct
    assert model.server_of("prod/backend", "ext:outside", 80, Protocol.TCP) == \
        Server("ext:outside", 80, Protocol.TCP)
    assert model.server_of("prod/backend", "ext:outside", "http", Protocol.TCP) is None
    assert model.server_of("x/a", "no.such.name", 80, Protocol.TCP) is None
    assert model.server_of("prod/frontend", "svc:prod/backend", 9999, Protocol.TCP) is None


def test_cells_reaching_one_server_share_its_control_and_loopback():
    scenario = load_scenario(SHOP)
    cells = {(c.spec.source, c.spec.target, c.spec.dns_name): c
             for c in plan_cells(model_at(scenario, 0), expected_cells(scenario, 0))}
    backend = Server("prod/backend", 80, Protocol.TCP)
    via_pod = cells[("prod/frontend", "prod/backend", None)]
    via_svc = cells[("prod/frontend", "svc:prod/backend", None)]
    via_name = cells[("dev/tool", "backend.prod.svc.cluster.local", None)]
    for c in (via_pod, via_svc, via_name):
        assert c.control_key == backend
        assert c.loopback == Loopback(backend)
    # a probe by name also knows the DNS server that decides a round where the lookup timed out
    assert via_name.dns_loopback == Loopback(Server("kube-system/coredns", 53, Protocol.UDP),
                                             "backend.prod.svc.cluster.local")
    assert via_pod.dns_key is None and via_pod.dns_loopback is None
    # a DNS probe is backed by the DNS pod answering the same lookup on loopback
    lookup = cells[("prod/backend", DNS_SERVICE_ENDPOINT, "backend.prod.svc.cluster.local")]
    assert lookup.loopback == Loopback(Server("kube-system/coredns", 53, Protocol.UDP),
                                       "backend.prod.svc.cluster.local")
    # db has no port named http: nothing serves, so there is no loopback to ask
    unserved = cells[("prod/frontend", "prod/db", None)]
    assert unserved.served is False and unserved.loopback is None


def test_a_model_without_the_pod_does_not_invent_a_server():
    model = Model.default(namespaces=["x"], pods=["a", "b"], ports=[80], protocols=[Protocol.TCP])
    assert model.server_of("x/a", "x/zz", 80, Protocol.TCP) is None
    # a numeric port names the server even where nothing listens; the cell says it is not served
    assert model.server_of("x/a", "x/b", 81, Protocol.TCP) == Server("x/b", 81, Protocol.TCP)

    decision = Oracle(model, []).decide("x/a", "x/b", 81, Protocol.TCP)
    (cell,) = plan_cells(model, [ExpectedCell("x/a", "x/b", 81, Protocol.TCP, Expectation.DENY,
                                              decision)])
    assert cell.served is False and cell.loopback is None
    assert cell.control_key == Server("x/b", 81, Protocol.TCP)


RUN = Path(__file__).parent / "data" / "run"


def _old_states(path: Path) -> list[dict[tuple, frozenset]]:
    scenario = load_scenario(path)
    steps = plan_steps(scenario, plan_addresses(scenario.model))
    assert not isinstance(steps, str), steps
    return [{(c.spec.source, c.spec.target, c.spec.dns_name): c.old for c in cells}
            for cells in steps]


def test_each_cell_knows_whether_its_expectation_changed_at_its_step():
    """What verdicts.over_rounds forgives: one change, old -> new, only where this step changed
    the cell's expectation (the oracle before the change, against the step's)."""
    step1, step2 = _old_states(RUN / "unrelated-change.yaml")
    opened, steady = frozenset({Verdict.NOT_ENFORCED}), frozenset()
    # step 1 isolates x: its cells connected before (no policy) and must be blocked now
    assert step1[("y/a", "x/a", None)] == opened
    assert step1[("x/a", "x/b", None)] == opened
    assert step1[("y/a", "y/b", None)] == steady
    assert step1[("x/a", "x/a", None)] == steady          # '-': not asserted
    # step 2 applies a policy in y that changes no connection: every cell is steady
    assert set(step2.values()) == {steady}
    # deleting the policy opens x again: blocked before, must connect now
    _, deleted = _old_states(RUN / "deny-ingress-small.yaml")
    assert deleted[("y/a", "x/a", None)] == frozenset({Verdict.OVER_BLOCKED})
    assert deleted[("y/a", "y/b", None)] == steady


def test_a_lookup_blocked_from_a_step_on_was_answered_nxdomain_before(tmp_path):
    path = tmp_path / "dns-egress.yaml"
    path.write_text(textwrap.dedent("""\
        kind: Scenario
        name: dns-egress
        description: A lookup of a name that does not exist, before and after an egress deny.
        requires: [networkpolicy, egress]
        model: {namespaces: [x], pods: [a, b], ports: [80], protocols: [TCP]}
        steps:
          - title: no policy
            probes:
              - {from: x/a, dns: nothing.x.svc.cluster.local, expect: fails}
          - title: deny all egress in x
            apply:
              - apiVersion: networking.k8s.io/v1
                kind: NetworkPolicy
                metadata: {name: deny-egress, namespace: x}
                spec: {podSelector: {}, policyTypes: [Egress]}
            probes:
              - {from: x/a, dns: nothing.x.svc.cluster.local, expect: fails}
        """))
    step1, step2 = _old_states(path)
    lookup = ("x/a", DNS_SERVICE_ENDPOINT, "nothing.x.svc.cluster.local")
    # the same word ("fails", DENY) at both steps, but NXDOMAIN first and blocked after: the
    # old answer reads not enforced against the new spec
    assert step1[lookup] == frozenset()
    assert step2[lookup] == frozenset({Verdict.NOT_ENFORCED})


def test_the_state_before_a_step_is_the_previous_steps_decision_across_the_library():
    """decisions_before re-decides a step's cells with the previous step's oracle: on every
    cell the two steps share, it must be what the previous step decided (a wrong "before"
    would forgive a transient, or call late programming unstable). And most asserted cells
    are steady: the rule that forgives one change must not be the rule for them."""
    steady = changed = 0
    for path in find_scenarios([str(Path(__file__).parent.parent / "scenarios")]):
        scenario = load_scenario(path)
        addresses = plan_addresses(scenario.model)
        previous: dict[tuple, Expectation] = {}
        for i in range(len(scenario.steps)):
            cells = expected_cells(scenario, i, addresses)
            before = decisions_before(scenario, i, addresses)
            assert len(before) == len(cells)
            for c, b in zip(cells, before, strict=True):
                key = (c.source, c.target, str(c.port), c.protocol, c.dns_name)
                if key in previous:
                    assert b.expectation == previous[key], (path, i, key)
                if c.expectation is not Expectation.UNDEFINED:
                    moved = b.expectation != c.decision.expectation or \
                        b.nxdomain != c.decision.nxdomain
                    changed += moved
                    steady += not moved
            previous = {(c.source, c.target, str(c.port), c.protocol, c.dns_name):
                        c.decision.expectation for c in cells}
    assert steady > 4 * changed > 0, (steady, changed)


def test_a_step_that_applies_two_policies_may_show_the_state_between_them():
    """delete-restores-traffic's first step applies a deny-all in x, then the allow from y to
    x/a, one after the other (Run.change): for a moment only the deny-all is in force, so y ->
    x/a, allowed before the step and after it, may be blocked first. That is the step's own
    change programmed late, not a transient regression (the real tier on calico showed exactly
    this: a timeout in round 1, connected from round 2): the cell's old states include the
    between state, and a history blocked-then-connected is a pass. A cell that no state of the
    change blocks (y -> y/a) stays steady: a blocked round there is still unstable."""
    from harness.scenario import load_scenario as load
    from harness.verdicts import Judgement, over_rounds

    scenario = load(Path(__file__).parent.parent / "scenarios/conformance/delete-restores-traffic.yaml")
    addresses = plan_addresses(scenario.model)
    cells = {(c.spec.source, c.spec.target, c.spec.port): c
             for c in plan_steps(scenario, addresses)[0] if c.spec.protocol.value == "TCP"}
    between = cells[("y/a", "x/a", 80)]
    assert between.expectation is Expectation.ALLOW
    assert between.old == frozenset({Verdict.OVER_BLOCKED})
    steady = cells[("y/b", "y/a", 80)]
    assert steady.old == frozenset()

    def j(v: Verdict) -> Judgement:
        return Judgement(v, v.value, "")

    history = [j(Verdict.OVER_BLOCKED), j(Verdict.PASS), j(Verdict.PASS), j(Verdict.PASS)]
    assert over_rounds(history, between.old).verdict is Verdict.PASS
    assert over_rounds(history, steady.old).verdict is Verdict.UNSTABLE
