"""The real-engine local backend with `none`: a real API server, real kube-proxy and CoreDNS, the
harness as kubelet on two nodes, and no policy engine. What must be real here: Node and Pod
objects as the API server stores them (status written through the status subresource), packets
between pod namespaces on the same and on different nodes, a ClusterIP forwarded by kube-proxy
from real EndpointSlices, a Service name answered by CoreDNS, and policies the API accepts while
nothing enforces them. Skipped with the ComponentMissing reason when a binary is absent."""

from __future__ import annotations

import ipaddress

import pytest

from harness.backends.real import nodes as nodesx
from harness.model import (
    POD_CIDR,
    ContainerPort,
    ExternalHost,
    Model,
    Namespace,
    Pod,
    Protocol,
    Service,
    ServicePort,
)
from harness.prober import probe_round
from harness.probes import Outcome, ProbeSpec
from harness.shell import run
from tests.real.conftest import needs_engine, up_and_deployed

pytestmark = needs_engine("none")

TCP, UDP = Protocol.TCP, Protocol.UDP
PORTS = (ContainerPort.serve(80, TCP), ContainerPort.serve(80, UDP),
         ContainerPort.serve(81, Protocol.SCTP))
N1, N2 = "n1", "n2"
#: model order -> node: x/a n1, x/b n2, x/c n1, y/a n2, y/b n1
PLACED = {"x/a": N1, "x/b": N2, "x/c": N1, "y/a": N2, "y/b": N1}


def model() -> Model:
    nss = [Namespace("x", {"ns": "x"}), Namespace("y", {"ns": "y"})]
    pods = [Pod(k.split("/")[0], k.split("/")[1], {"pod": k.split("/")[1]}, PORTS)
            for k in PLACED]
    svcs = [Service("y", "web", {"pod": "a"}, (ServicePort(8080, "serve-80-tcp", TCP, "http"),))]
    return Model.build(nss, pods, svcs, [ExternalHost("outside", "192.0.2.20")])


@pytest.fixture(scope="module")
def cluster():
    yield from up_and_deployed("none", model())


def obj(b, call, *args):
    return b.api._dict(call(*args))


def tcp(src, dst, port=80):
    return ProbeSpec(src, dst, port, TCP)


def test_nodes_are_registered_with_pod_cidrs_internal_ips_and_ready(cluster):
    b, addr = cluster
    nodes = {n["metadata"]["name"]: n for n in b.api.list_nodes()}
    assert sorted(nodes) == [f"{b.prefix}n1", f"{b.prefix}n2"]
    for k, name in ((1, f"{b.prefix}n1"), (2, f"{b.prefix}n2")):
        n = nodes[name]
        assert n["spec"]["podCIDR"] == f"10.244.{k}.0/24"
        assert ipaddress.ip_network(n["spec"]["podCIDR"]).subnet_of(ipaddress.ip_network(POD_CIDR))
        ips = [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
        assert ips == [f"172.18.0.{k + 1}"]
        ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
        # the node's address is on an interface of its namespace, and it routes the other pod CIDR
        out = run(["ip", "-n", name, "-o", "addr", "show", "dev", "eth0"], check=True).stdout
        assert f"172.18.0.{k + 1}/24" in out
        routes = run(["ip", "-n", name, "route"], check=True).stdout
        assert f"10.244.{3 - k}.0/24 via 172.18.0.{4 - k} dev eth0" in routes
        assert "default" not in routes
    assert sorted(addr.node_ips) == ["172.18.0.2", "172.18.0.3"]


def test_pods_are_bound_spread_and_their_status_written_through_the_status_subresource(cluster):
    b, addr = cluster
    for key, node in PLACED.items():
        ns, name = key.split("/")
        real = b.topology.names.real(ns)
        pod = obj(b, b.api.core.read_namespaced_pod, name, real)
        k = 1 if node == N1 else 2
        assert pod["spec"]["nodeName"] == f"{b.prefix}{node}"
        st = pod["status"]
        assert st["phase"] == "Running" and st["hostIP"] == f"172.18.0.{k + 1}"
        assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(f"10.244.{k}.0/24")
        assert [p["ip"] for p in st["podIPs"]] == [st["podIP"]] == [addr.pod_ips[key]]
        assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
        # written by the status subresource, not by an update of the whole object
        status_writes = [m for m in pod["metadata"]["managedFields"]
                         if m.get("subresource") == "status"]
        assert status_writes, pod["metadata"]["managedFields"]
        # no SCTP in this kernel: the pod is created without its SCTP container
        assert {c["ports"][0]["protocol"] for c in pod["spec"]["containers"]
                if c.get("ports")} == {"TCP", "UDP"}
    dns = b.api.list_pods("kube-system", "k8s-app=kube-dns")
    assert [p["spec"]["nodeName"] for p in dns] == [f"{b.prefix}n1"]
    assert addr.pod_ips["kube-system/coredns"] == dns[0]["status"]["podIP"]


def test_pod_namespaces_are_wired_the_way_felix_expects(cluster):
    b, addr = cluster
    real = b.topology.names.real("x")
    netns = b.kubelets[0].netns_of(real, "a")
    veth = nodesx.veth_name(real, "a")
    assert veth.startswith("cali") and len(veth) == 15
    node_links = run(["ip", "-n", f"{b.prefix}n1", "-o", "link", "show", veth], check=True).stdout
    assert "ee:ee:ee:ee:ee:ee" in node_links
    routes = run(["ip", "-n", f"{b.prefix}n1", "route"], check=True).stdout
    assert f"{addr.pod_ips['x/a']} dev {veth}" in routes
    proxy = run(["ip", "netns", "exec", f"{b.prefix}n1", "sysctl", "-n",
                 f"net.ipv4.conf.{veth}.proxy_arp"], check=True).stdout.strip()
    assert proxy == "1"
    pod_routes = run(["ip", "-n", netns, "route"], check=True).stdout
    assert "default via 169.254.1.1 dev eth0" in pod_routes
    pod_addr = run(["ip", "-n", netns, "-o", "addr", "show", "dev", "eth0"], check=True).stdout
    assert f"{addr.pod_ips['x/a']}/32" in pod_addr
    with open(f"/etc/netns/{netns}/resolv.conf") as fh:
        resolv = fh.read()
    assert f"search {real}.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "nameserver 10.96.0.10" in resolv


def test_pods_reach_pods_on_the_same_node_and_on_the_other_node(cluster):
    b, addr = cluster
    specs = [tcp("x/a", "x/c"), tcp("x/a", "x/b"), tcp("x/b", "y/a"), tcp("x/b", "y/b"),
             ProbeSpec("x/a", "y/a", 80, UDP), ProbeSpec("x/c", "x/a", 80, UDP)]
    got = probe_round(b, specs, addr, 1.0)
    for s in specs:
        assert got[s].outcome == Outcome.CONNECTED, (s.label, got[s])
        assert got[s].answered_by == s.target, (s.label, got[s])
    # an external host (a namespace behind node 1) is reached from both nodes, and reaches pods
    ext = [ProbeSpec("x/a", "ext:outside", 80, TCP), ProbeSpec("x/b", "ext:outside", 80, UDP),
           ProbeSpec("ext:outside", "y/a", 80, TCP)]
    got = probe_round(b, ext, addr, 1.0)
    assert addr.external_ips == {"outside": "192.0.2.20"}
    assert [got[s].outcome for s in ext] == [Outcome.CONNECTED] * 3, got
    assert [got[s].answered_by for s in ext] == ["ext:outside", "ext:outside", "y/a"]
    # nothing routes out of the cluster: the host's own network is unreachable from a pod
    res = b.exec("x/a", ["curl", "-sS", "--connect-timeout", "1", "http://192.0.2.1/"], 10)
    assert res.returncode != 0


def test_cluster_ip_is_answered_through_real_kube_proxy_from_real_endpointslices(cluster):
    b, addr = cluster
    cip = addr.service_ips["y/web"]
    assert ipaddress.ip_address(cip) in ipaddress.ip_network("10.96.0.0/16")
    slices = b.api._dict(b.api.client.DiscoveryV1Api(b.api.api_client).list_namespaced_endpoint_slice(
        b.topology.names.real("y"), label_selector="kubernetes.io/service-name=web"))["items"]
    assert [a for s in slices for e in s["endpoints"] for a in e["addresses"]] == \
        [addr.pod_ips["y/a"]]
    for node in ("n1", "n2"):
        nat = run(["ip", "netns", "exec", f"{b.prefix}{node}", "iptables-save", "-t", "nat"],
                  check=True).stdout
        assert f"-d {cip}/32" in nat and "KUBE-SVC-" in nat, nat[-2000:]
    # from a pod on each node; the answer names the backing pod
    specs = [ProbeSpec("x/a", "svc:y/web", 8080, TCP), ProbeSpec("x/b", "svc:y/web", 8080, TCP)]
    got = probe_round(b, specs, addr, 1.0)
    for s in specs:
        assert (got[s].outcome, got[s].answered_by) == (Outcome.CONNECTED, "y/a"), got[s]


def test_real_coredns_answers_service_names_in_the_runs_real_namespaces(cluster):
    b, addr = cluster
    cip = addr.service_ips["y/web"]
    dns = [ProbeSpec(src, "dns", 53, UDP, "web.y.svc.cluster.local") for src in ("x/a", "x/b")]
    dns += [ProbeSpec("x/a", "dns", 53, TCP, "kubernetes.default.svc.cluster.local"),
            ProbeSpec("x/a", "dns", 53, UDP, "nothing.y.svc.cluster.local")]
    got = probe_round(b, dns, addr, 1.0)
    assert (got[dns[0]].outcome, got[dns[0]].answered_by) == (Outcome.DNS_RESOLVED, cip)
    assert (got[dns[1]].outcome, got[dns[1]].answered_by) == (Outcome.DNS_RESOLVED, cip)
    assert (got[dns[2]].outcome, got[dns[2]].answered_by) == (Outcome.DNS_RESOLVED, "10.96.0.1")
    assert got[dns[3]].outcome == Outcome.DNS_NXDOMAIN
    # an application calling a short name and a <svc>.<ns> name through the search path
    by_name = [ProbeSpec("y/b", "web", 8080, TCP), ProbeSpec("x/c", "web.y", 8080, TCP)]
    got = probe_round(b, by_name, addr, 1.0, toolkit=b.toolkit, batch=False)
    for s in by_name:
        assert (got[s].outcome, got[s].answered_by) == (Outcome.CONNECTED, "y/a"), got[s]


def test_none_stores_every_policy_and_enforces_nothing(cluster):
    b, addr = cluster
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-all", "namespace": "x"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    b.apply_policy(deny)
    try:
        assert b.policy_count() == 1
        import time
        time.sleep(2)
        specs = [tcp("x/b", "x/a"), tcp("x/c", "x/a"), tcp("y/a", "x/c"), tcp("x/a", "y/b")]
        got = probe_round(b, specs, addr, 1.0)
        assert all(got[s].outcome == Outcome.CONNECTED for s in specs), got
    finally:
        b.delete_policy("x", "deny-all")
    assert b.policy_count() == 0
