"""Endpoints, servers and the cells a step probes (harness.model.Endpoint, Model.server_of,
harness.plan), without a cluster: the spelling is parsed in one place, cells that reach the same
server by any path share one positive control, and each blocked cell knows its loopback probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.expected import ExpectedCell, expected_cells, model_at
from harness.model import DNS_SERVICE_ENDPOINT, Addresses, Endpoint, EndpointKind, Model, Protocol, Server
from harness.oracle import Oracle
from harness.plan import Loopback, plan_cells
from harness.results import Expectation
from harness.scenario import load_scenario

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
