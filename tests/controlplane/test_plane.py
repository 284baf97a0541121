"""A real control plane (the pinned etcd, kube-apiserver and kube-controller-manager binaries)
answers like a cluster's: objects round-trip and are validated, the Service allocator hands out
ClusterIPs, the controller manager makes ServiceAccounts and EndpointSlices and finishes
namespace deletion, clients inside a harness namespace reach it through the relay, and every
port it opens is on 127.0.0.1. Skipped with the ComponentMissing reason without the binaries."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import ssl
import sys
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from harness import naming
from harness.shell import run
from harness.waits import poll

from tests.controlplane.conftest import needs_plane

pytestmark = needs_plane


@pytest.fixture(scope="module")
def api(plane):
    return plane.api_client()


@pytest.fixture
def ns(api, plane):
    """A fresh namespace named by the run, deleted (and waited for) afterwards."""
    core = client.CoreV1Api(api)
    name = f"{naming.local_prefix(plane.run_id)}{os.urandom(2).hex()}"
    core.create_namespace({"metadata": {"name": name, "labels": naming.ownership_labels(plane.run_id)}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def absent(call) -> bool:
    try:
        call()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_the_plane_is_up_and_says_what_runs(plane, api):
    assert plane.server.startswith("https://127.0.0.1:")
    assert re.fullmatch(r"v1\.35\.\d+", plane.versions["kube-apiserver"])
    assert re.fullmatch(r"v1\.35\.\d+", plane.versions["kube-controller-manager"])
    assert re.fullmatch(r"3\.6\.\d+", plane.versions["etcd"])
    assert plane.describe().startswith(f"real etcd {plane.versions['etcd']} + real kube-apiserver")
    assert "no kubelet" in plane.describe()
    names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert {"default", "kube-system", "kube-public"} <= names
    # the state directory is named by the run and records every process
    assert plane.dir.name == f"cp-{plane.run_id}"
    record = json.loads((plane.dir / "plane.json").read_text())
    assert [p["name"] for p in record["processes"]] == ["etcd", "kube-apiserver",
                                                        "kube-controller-manager"]
    assert record["owner"]["pid"] == os.getpid()


def test_requests_without_a_client_certificate_are_not_authorized(plane):
    ctx = ssl.create_default_context(cafile=str(plane.ca.cert))
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{plane.server}/api/v1/namespaces", context=ctx, timeout=10)
    assert info.value.code in (401, 403)     # anonymous: RBAC gives it nothing


def test_namespace_pod_service_networkpolicy_round_trip(api, ns):
    core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
    wait_default_sa(core, ns)
    pod = core.create_namespaced_pod(ns, {
        "metadata": {"name": "a", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1",
                                 "ports": [{"containerPort": 80}]}]}})
    assert pod.metadata.uid and pod.spec.service_account_name == "default"   # admission ran
    svc = core.create_namespaced_service(ns, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 80}]}})
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "allow-web"},
              "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                       "policyTypes": ["Ingress"],
                       "ingress": [{"from": [{"namespaceSelector": {"matchLabels":
                                                                    {"kubernetes.io/metadata.name": ns}}}],
                                    "ports": [{"port": 80, "protocol": "TCP"}]}]}}
    net.create_namespaced_network_policy(ns, policy)
    got = api.sanitize_for_serialization(net.read_namespaced_network_policy("allow-web", ns))
    assert got["spec"]["ingress"] == policy["spec"]["ingress"]
    assert got["spec"]["podSelector"] == policy["spec"]["podSelector"]
    assert core.read_namespaced_pod("a", ns).metadata.labels == {"app": "web"}
    assert core.read_namespaced_service("web", ns).spec.ports[0].port == svc.spec.ports[0].port
    # the namespace got its name label from the API server
    assert core.read_namespace(ns).metadata.labels["kubernetes.io/metadata.name"] == ns
    # the server validates: a port out of range is refused, nothing is stored
    bad = json.loads(json.dumps(policy))
    bad["metadata"]["name"] = "bad"
    bad["spec"]["ingress"][0]["ports"][0]["port"] = 70000
    with pytest.raises(ApiException) as info:
        net.create_namespaced_network_policy(ns, bad)
    assert info.value.status == 422
    assert absent(lambda: net.read_namespaced_network_policy("bad", ns))
    net.delete_namespaced_network_policy("allow-web", ns)
    assert absent(lambda: net.read_namespaced_network_policy("allow-web", ns))


def test_services_get_cluster_ips_from_the_real_allocator(api, plane, ns):
    core = client.CoreV1Api(api)
    cidr = ipaddress.ip_network(plane.service_cidr)
    assert plane.service_cidr == "10.96.0.0/16"
    kube = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert kube == "10.96.0.1"
    ips = set()
    for i in range(3):
        svc = core.create_namespaced_service(ns, {"metadata": {"name": f"s{i}"},
                                                  "spec": {"ports": [{"port": 80}]}})
        ips.add(svc.spec.cluster_ip)
    assert len(ips) == 3 and kube not in ips
    assert all(ipaddress.ip_address(ip) in cidr for ip in ips)
    fixed = core.create_namespaced_service(ns, {"metadata": {"name": "dns"}, "spec": {
        "clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}})
    assert fixed.spec.cluster_ip == "10.96.0.10"
    with pytest.raises(ApiException) as info:     # taken
        core.create_namespaced_service(ns, {"metadata": {"name": "dup"}, "spec": {
            "clusterIP": "10.96.0.10", "ports": [{"port": 53}]}})
    assert info.value.status == 422
    with pytest.raises(ApiException) as info:     # outside the range
        core.create_namespaced_service(ns, {"metadata": {"name": "out"}, "spec": {
            "clusterIP": "10.97.0.5", "ports": [{"port": 53}]}})
    assert info.value.status == 422


def wait_default_sa(core, ns: str, timeout: float = 60):
    polled = poll(lambda: not absent(lambda: core.read_namespaced_service_account("default", ns)),
                  bool, timeout, 0.2)
    assert polled.ok, f"the controller manager made no ServiceAccount {ns}/default in {timeout}s"
    return polled.elapsed


def test_the_controller_manager_makes_the_default_service_account_and_root_ca(api, plane, ns):
    core = client.CoreV1Api(api)
    wait_default_sa(core, ns)
    polled = poll(lambda: not absent(lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns)),
                  bool, 60, 0.2)
    assert polled.ok
    ca = core.read_namespaced_config_map("kube-root-ca.crt", ns).data["ca.crt"]
    assert ca.strip() == plane.ca.cert.read_text().strip()
    # each controller runs under its own service account (--use-service-account-credentials)
    sas = {s.metadata.name for s in core.list_namespaced_service_account("kube-system").items}
    assert {"namespace-controller", "endpointslice-controller"} <= sas
    # the node lifecycle controller (service account node-controller) is off: no kubelet here
    assert "node-controller" not in sas


def test_endpoint_slices_follow_pod_readiness_written_through_the_status_subresource(api, plane, ns):
    core, disc = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    wait_default_sa(core, ns)
    node = f"{naming.local_prefix(plane.run_id)}node-{os.urandom(2).hex()}"
    core.create_node({"metadata": {"name": node, "labels": naming.ownership_labels(plane.run_id)},
                      "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}})
    try:
        core.create_namespaced_pod(ns, {
            "metadata": {"name": "backend", "labels": {"app": "backend"}},
            "spec": {"nodeName": node,
                     "containers": [{"name": "c", "image": "registry.invalid/none:1",
                                     "ports": [{"containerPort": 80, "name": "http"}]}]}})
        core.create_namespaced_service(ns, {"metadata": {"name": "backend"}, "spec": {
            "selector": {"app": "backend"}, "ports": [{"port": 8080, "targetPort": "http"}]}})

        def set_ready(ready: bool):
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            cond = "True" if ready else "False"
            core.patch_namespaced_pod_status("backend", ns, {"status": {
                "phase": "Running", "hostIP": "10.244.1.1", "hostIPs": [{"ip": "10.244.1.1"}],
                "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}], "startTime": now,
                "conditions": [{"type": t, "status": cond, "lastTransitionTime": now}
                               for t in ("Ready", "ContainersReady")]}})

        def endpoints():
            slices = disc.list_namespaced_endpoint_slice(
                ns, label_selector="kubernetes.io/service-name=backend").items
            return [(a, e.conditions.ready, s.ports[0].port if s.ports else None)
                    for s in slices for e in (s.endpoints or []) for a in e.addresses]

        set_ready(True)
        polled = poll(endpoints, lambda eps: eps == [("10.244.1.7", True, 80)], 60, 0.2)
        assert polled.ok, f"EndpointSlice never showed the Ready pod: {polled.value}"
        set_ready(False)
        polled = poll(endpoints, lambda eps: eps == [("10.244.1.7", False, 80)], 60, 0.2)
        assert polled.ok, f"EndpointSlice never showed the pod not ready: {polled.value}"
        core.delete_namespaced_pod("backend", ns, grace_period_seconds=0)
    finally:
        core.delete_node(node)


def test_namespace_deletion_completes(api, ns):
    core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
    wait_default_sa(core, ns)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    core.create_namespaced_service(ns, {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    core.create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "registry.invalid/none:1"}]}})
    net.create_namespaced_network_policy(ns, {"metadata": {"name": "deny"},
                                              "spec": {"podSelector": {}}})
    core.delete_namespace(ns)
    assert core.read_namespace(ns).status.phase == "Terminating"
    polled = poll(lambda: absent(lambda: core.read_namespace(ns)), bool, 90, 0.25)
    assert polled.ok, f"namespace {ns} still exists: {core.read_namespace(ns).status}"
    # its contents went with it (the namespace controller deleted them)
    assert not core.list_namespaced_config_map(ns).items
    assert not core.list_namespaced_pod(ns).items


IN_NETNS_CLIENT = """
import sys
from kubernetes import client, config
api = config.new_client_from_config(config_file=sys.argv[1])
print(api.configuration.host)
print(" ".join(sorted(n.metadata.name for n in client.CoreV1Api(api).list_namespace().items)))
"""


def test_a_client_inside_a_harness_namespace_reaches_the_api_server_through_the_relay(
        plane, claimed_netns):
    ns = claimed_netns.add("n1")
    kc = plane.kubeconfig_for_netns(ns)
    assert plane.kubeconfig_for_netns(ns) == kc
    before = plane.relay.accepted(ns)
    out = run(["ip", "netns", "exec", ns, sys.executable, "-c", IN_NETNS_CLIENT, str(kc)],
              timeout=60)
    assert out.returncode == 0, out.stderr
    host, names = out.stdout.splitlines()
    assert host == "https://127.0.0.1:6443"
    assert {"default", "kube-system"} <= set(names.split())
    assert plane.relay.accepted(ns) > before
    # the API server's own port is not reachable from inside: only the relay is
    api_port = plane.server.rsplit(":", 1)[1]
    direct = run(["ip", "netns", "exec", ns, "curl", "-sk", "--max-time", "3",
                  f"https://127.0.0.1:{api_port}/"], timeout=30)
    assert direct.returncode == 7        # connection refused
    plane.release_netns(ns)
    gone = run(["ip", "netns", "exec", ns, sys.executable, "-c", IN_NETNS_CLIENT, str(kc)], timeout=60)
    assert gone.returncode != 0


def listening(pids: set[int]) -> list[tuple[str, int]]:
    """(local address, pid) of every listening TCP/UDP socket of `pids` in the root namespace."""
    out = run(["ss", "-Hltunp"], check=True).stdout
    found = []
    for line in out.splitlines():
        for pid in map(int, re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                found.append((line.split()[4], pid))
    return found


def test_every_port_of_the_plane_is_on_127_0_0_1(plane):
    record = json.loads((plane.dir / "plane.json").read_text())
    by_pid = {p["pid"]: p["name"] for p in record["processes"]}
    socks = listening(set(by_pid))
    names = {by_pid[pid] for _, pid in socks}
    assert names == {"etcd", "kube-apiserver", "kube-controller-manager"}, socks
    assert len([1 for _, pid in socks if by_pid[pid] == "etcd"]) >= 2      # client + peer
    for addr, pid in socks:
        assert addr.startswith("127.0.0.1:"), f"{by_pid[pid]} listens on {addr}"


RBAC_CLIENT = """
import sys
from kubernetes import client, config
from kubernetes.client.rest import ApiException
api = config.new_client_from_config(config_file=sys.argv[1])
try:
    client.CoreV1Api(api).list_namespace()
    print("allowed")
except ApiException as exc:
    print(exc.status)
"""


def test_an_engine_identity_through_the_relay_gets_what_rbac_grants_and_nothing_more(
        plane, api, claimed_netns):
    ns = claimed_netns.add("n2")
    user = f"np-{plane.run_id}-engine"
    kc = plane.kubeconfig_for_netns(ns, user=user, groups=["netpol-proof:engines"])
    assert kc != plane.kubeconfig_for_netns(ns)            # the admin's is another file

    def as_engine() -> str:
        out = run(["ip", "netns", "exec", ns, sys.executable, "-c", RBAC_CLIENT, str(kc)],
                  timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert as_engine() == "403"        # authenticated, but RBAC grants this user nothing
    rbac = client.RbacAuthorizationV1Api(api)
    name = f"np-{plane.run_id}-engine-list-ns"
    labels = naming.ownership_labels(plane.run_id)
    rbac.create_cluster_role({"metadata": {"name": name, "labels": labels}, "rules": [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]})
    try:
        rbac.create_cluster_role_binding({
            "metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "Group", "name": "netpol-proof:engines",
                          "apiGroup": "rbac.authorization.k8s.io"}]})
        polled = poll(as_engine, lambda r: r == "allowed", 30, 0.5)   # the group from O= counts
        assert polled.ok, polled.value
    finally:
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            try:
                delete(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
