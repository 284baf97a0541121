"""The real-engine local backend's pure parts, without a cluster: node plan, Felix's interface
names, pod addresses, what the emulated kubelet writes (valid against the Kubernetes 1.35
schema), the CoreDNS objects, engine declarations and pod placement. The live behaviour is in
tests/real/."""

from __future__ import annotations

import ipaddress

import kubernetes_validate as kv
import pytest

from harness.backends.kube import manifests as km
from harness.backends.real import engines, kubelet, nodes
from harness.backends.real.backend import RealBackend, dns_objects, without_sctp
from harness.errors import BackendError
from harness.model import DNS_SERVICE_IP, POD_CIDR, Model, Protocol, plan_addresses

RUN = "abc123"


def test_nodes_are_named_by_the_run_with_pod_cidrs_inside_the_models():
    n1, n2 = nodes.plan_nodes(RUN)
    assert (n1.name, n1.address, n1.pod_cidr) == ("np-abc123-n1", "172.18.0.2", "10.244.1.0/24")
    assert (n2.name, n2.address, n2.pod_cidr) == ("np-abc123-n2", "172.18.0.3", "10.244.2.0/24")
    for n in (n1, n2):
        assert ipaddress.ip_network(n.pod_cidr).subnet_of(ipaddress.ip_network(POD_CIDR))
        assert ipaddress.ip_address(n.address) not in ipaddress.ip_network(POD_CIDR)
    # the offline address plan puts pods where node 1's kubelet does
    plan = plan_addresses(Model.default(namespaces=["x"], pods=["a"]))
    assert plan.pod_ips["x/a"] == "10.244.1.10"


def test_felix_interface_names():
    # the value Calico's own conversion test expects for pod default/podA (docs/sources.md)
    assert nodes.veth_name("default", "podA") == "cali7f94ce7c295"
    assert len(nodes.veth_name("np-abc123-a-very-long-namespace", "pod")) == 15


def test_pod_addresses_start_at_10_and_are_reused_after_release():
    ipam = nodes.PodAddresses(nodes.plan_nodes(RUN)[1])
    a, b = ipam.allocate(), ipam.allocate()
    assert (a, b) == ("10.244.2.10", "10.244.2.11")
    ipam.release(a)
    assert ipam.allocate() == a
    for _ in range(256):
        try:
            ipam.allocate()
        except BackendError as exc:
            assert "exhausted" in str(exc)
            break
    else:
        pytest.fail("a /24 must run out")


def test_what_the_kubelet_writes_is_valid_kubernetes():
    node = nodes.plan_nodes(RUN)[0]
    kv.validate(kubelet.node_manifest(node, RUN), "1.35.0", strict=True)
    kv.validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.name},
                 **kubelet.node_status(node)}, "1.35.0", strict=True)
    model = Model.default(namespaces=["x"], pods=["a"])
    pod = km.pod_manifest(model.pod("x/a"), km.NameMap(RUN, ["x"]), node=node.name)
    assert pod["spec"]["nodeName"] == node.name
    rp = kubelet.RealisedPod("uid", "np-abc123-x", "a", "np-abc123-p0", "cali0", "10.244.1.10",
                             pod)
    for ready in (False, True):
        body = kubelet.pod_status(node, rp, kubelet.now(), ready, "" if ready else "starting")
        kv.validate({**pod, **body}, "1.35.0", strict=True)
        st = body["status"]
        assert st["hostIP"] == node.address and st["podIPs"] == [{"ip": "10.244.1.10"}]
        conds = {c["type"]: c["status"] for c in st["conditions"]}
        assert conds["Ready"] == conds["ContainersReady"] == ("True" if ready else "False")
        assert {c["name"] for c in st["containerStatuses"]} == \
            {c["name"] for c in pod["spec"]["containers"]}


def test_coredns_objects_put_kube_dns_at_the_models_cluster_ip():
    svc, pod = dns_objects(RUN, "np-abc123-n1", "v1.15.0")
    for o in (svc, pod):
        kv.validate(o, "1.35.0", strict=True)
    assert svc["spec"]["clusterIP"] == DNS_SERVICE_IP
    assert pod["spec"]["nodeName"] == "np-abc123-n1"
    assert pod["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert {p["name"] for p in pod["spec"]["containers"][0]["ports"]} == {"dns", "dns-tcp"}
    conf = engines.corefile("/k/config", "ctx")
    assert "kubeconfig /k/config ctx" in conf and "forward" not in conf


def test_engine_declarations():
    kr, none = engines.capabilities("kube-router"), engines.capabilities("none")
    assert kr.deny_response == "reject" and kr.enforces
    # fault steps: the engines' processes (restarted, or held down between a stop or kill and a
    # start) and the run's own API server; nothing to stop on none
    faults = {"engine-fault", "apiserver-fault", "engine-hold"}
    assert not none.enforces and none.supported == kr.supported - faults
    assert faults <= kr.supported and faults <= engines.capabilities("calico").supported
    assert "no policy engine runs on `none`" in none.match(["engine-fault"])[1]
    assert "sctp" not in kr.supported and "external-hosts" in kr.supported
    assert engines.capabilities("calico").deny_response == "drop"
    with pytest.raises(BackendError, match="kube-router, calico, none"):
        RealBackend("flannel")


def test_sctp_containers_are_left_out_and_pods_alternate_between_nodes():
    model = Model.default(namespaces=["x", "y"], pods=["a", "b"])
    stripped = without_sctp(model)
    assert all(cp.protocol != Protocol.SCTP for p in stripped.pods for cp in p.ports)
    assert [len(p.ports) for p in stripped.user_pods] == [4] * 4
    b = RealBackend("none", run_id=RUN)
    placed = [b._place(model, p) for p in model.user_pods]
    assert placed == ["np-abc123-n1", "np-abc123-n2", "np-abc123-n1", "np-abc123-n2"]
    # every source has a same-node and a cross-node destination
    for i, p in enumerate(placed):
        others = placed[:i] + placed[i + 1:]
        assert p in others and set(others) - {p}


def test_an_engine_declares_faults_exactly_when_it_runs_an_engine_process():
    """engines.SPECS: each fact of an engine once; what it declares follows from what it runs."""
    for name, spec in engines.SPECS.items():
        runs = spec.node_process is not None
        assert ("engine-fault" in spec.caps.supported) == runs, name
        assert spec.caps.enforces == runs, name
    assert engines.ENGINES == tuple(engines.SPECS) == ("kube-router", "calico", "none")
