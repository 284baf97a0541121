"""Real nodes, live: the real kubelet v1.35.8 on each of the two node namespaces, over netpol-cri,
with the real CNI plugins, registered with the run's real API server under its own node
certificate. A pod bound to each node goes Ready (the kubelet writes the status and runs the
readiness probe), `exec` through the API answers from inside the pod (its hostname, its
resolv.conf as the kubelet wrote it), a pod on one node reaches the other's across the nodes'
routes; and nothing of it created a cgroup or moved a process into one. After a SIGKILL of
the run, `cleanup` finds and removes everything (namespaces, processes, mounts, directories).
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import naming
from harness.backends.local import netns as nsx
from harness.backends.local.backend import STATE_DIR, state_path
from harness.backends.local.mounts import mounts_under
from harness.backends.real.controlplane.procs import is_zombie
from harness.backends.real.nodes import plan_nodes, veth_name
from harness.backends.real.realnodes import cgroups
from harness.backends.real.realnodes.cluster import RealNodesCluster
from harness.backends.real.realnodes.node import AGNHOST_REF
from harness.cleanup import CLEANERS, find_leftovers
from tests.real_nodes.conftest import needs_real_nodes

pytestmark = needs_real_nodes()
NS = "demo"


def agnhost_pod(name: str, node: str) -> dict:
    probe = {"exec": {"command": ["/agnhost", "connect", "--protocol=tcp", "--timeout=1s",
                                  "127.0.0.1:8080"]}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "hostname": name, "terminationGracePeriodSeconds": 2,
                     "containers": [
                         {"name": "serve", "image": AGNHOST_REF, "readinessProbe": probe,
                          "args": ["netexec", "--http-port=8080", "--udp-port=8081"]},
                         {"name": "client", "image": AGNHOST_REF, "args": ["pause"]}]}}


def make_namespace(core) -> None:
    """The test's namespace, once its default ServiceAccount exists (the controller manager
    makes it; a pod created before it is refused)."""
    from kubernetes import client

    core.create_namespace({"metadata": {"name": NS}})
    deadline = time.monotonic() + 60
    while True:
        try:
            core.read_namespaced_service_account("default", NS)
            return
        except client.ApiException:
            assert time.monotonic() < deadline, "no default ServiceAccount"
            time.sleep(0.2)


def wait_ready(core, names: list[str], timeout: float = 120.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    ready: dict[str, object] = {}
    while time.monotonic() < deadline and len(ready) < len(names):
        for p in core.list_namespaced_pod(NS).items:
            conds = {c.type: c.status for c in (p.status.conditions or [])}
            if conds.get("Ready") == "True":
                ready[p.metadata.name] = p
        time.sleep(0.2)
    assert sorted(ready) == sorted(names), [
        (p.metadata.name, p.status.phase, p.status.container_statuses)
        for p in core.list_namespaced_pod(NS).items]
    return ready


def run_pids(run_id: str) -> list[int]:
    prefix = naming.local_prefix(run_id)
    spaces = [n for n in nsx.list_netns() if n.startswith(prefix)]
    return [pid for pids in nsx.netns_pids(spaces).values() for pid in pids]


def test_pods_go_ready_exec_works_through_the_api_and_no_cgroup_is_made():
    from kubernetes import client
    from kubernetes.stream import stream

    before = cgroups.snapshot()
    with RealNodesCluster() as c:
        assert c.plane is not None
        core = client.CoreV1Api(c.plane.api_client())
        nodes = {n.metadata.name: n for n in core.list_node().items}
        assert sorted(nodes) == [n.name for n in c.nodes]
        for n in nodes.values():            # written by the kubelets, not the harness
            assert n.status.node_info.kubelet_version == "v1.35.8"
            assert n.status.node_info.container_runtime_version == "netpol-cri://0.1.0"
        make_namespace(core)
        core.create_namespaced_pod(NS, agnhost_pod("a", c.nodes[0].name))
        core.create_namespaced_pod(NS, agnhost_pod("b", c.nodes[1].name))
        ready = wait_ready(core, ["a", "b"])
        ip_a = ready["a"].status.pod_ip     # type: ignore[attr-defined]
        assert ip_a.startswith(c.nodes[0].pod_cidr.rsplit(".", 2)[0] + ".")

        def exec_(pod: str, cmd: list[str]) -> str:
            return stream(core.connect_get_namespaced_pod_exec, pod, NS, container="client",
                          command=cmd, stderr=True, stdin=False, stdout=True, tty=False)

        assert exec_("a", ["hostname"]) == "a\n"
        resolv = exec_("a", ["cat", "/etc/resolv.conf"])
        assert "nameserver 10.96.0.10" in resolv and f"search {NS}.svc.cluster.local" in resolv
        assert exec_("b", ["curl", "-s", "--max-time", "5", f"http://{ip_a}:8080/hostname"]) == "a"
        pids = run_pids(c.run_id)
        assert len(pids) >= 2 * 2 + 4      # kubelet + runtime per node, two containers per pod
        assert cgroups.moved(pids) == {}
    assert cgroups.created(before, cgroups.snapshot()) == []


SCRIPT = """
import sys, time
from kubernetes import client
from harness.backends.real.realnodes.cluster import RealNodesCluster
from tests.real_nodes.test_real_nodes import agnhost_pod, wait_ready, NS
c = RealNodesCluster(run_id=sys.argv[1], engine=sys.argv[2] or None)
c.up()
core = client.CoreV1Api(c.plane.api_client())
core.create_namespace({"metadata": {"name": NS}})
time.sleep(2)
core.create_namespaced_pod(NS, agnhost_pod("a", c.nodes[0].name))
wait_ready(core, ["a"])
print("READY", flush=True)
time.sleep(600)
"""


#: where Calico's CNI plugin, Felix and host-local write by default; the run points every
#: one of them into its own directory, so none may appear on the host
HOST_CNI_STATE = ("/var/lib/cni", "/var/lib/calico", "/var/run/calico", "/var/log/calico")


@pytest.mark.parametrize("engine", [
    pytest.param("", id="no-engine"),
    pytest.param("calico", marks=needs_real_nodes("kube-proxy", "calico-felix", "calico"))])
def test_cleanup_removes_a_killed_real_node_run(engine):
    """With calico the pods are wired by Calico's CNI plugin: its host-local files (under the
    run directory) and its cali veths and routes (in the node namespaces) are left by the
    killed run, and go with the run directory and the namespaces."""
    run_id = naming.new_run_id()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    absent = [p for p in HOST_CNI_STATE if not os.path.lexists(p)]
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, run_id, engine],
                            stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.strip() == "READY", line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    run_dir = os.path.join(STATE_DIR, run_id)
    pids = run_pids(run_id)
    assert pids and mounts_under(run_dir), "the killed run left no processes or mounts"
    node = plan_nodes(run_id)[0].netns
    if engine == "calico":
        ipam = glob.glob(os.path.join(run_dir, node, "cni", "ipam", "*", "10.244.1.*"))
        assert len(ipam) == 1, ipam                       # pod a's address, host-local's file
        assert veth_name(NS, "a") in nsx.links(node)
    found = [x for x in find_leftovers() if x.run_id == run_id]
    kinds = {x.kind for x in found}
    assert {"netns", "workdir", "controlplane-dir"} <= kinds, found
    by_name = {c.name: c for c in CLEANERS}
    errors = [e for x in found if (e := by_name[x.cleaner].remove(x))]
    assert not errors, errors
    assert not [x for x in find_leftovers() if x.run_id == run_id]
    assert not [n for n in nsx.list_netns() if n.startswith(naming.local_prefix(run_id))]
    assert not os.path.exists(run_dir) and not os.path.exists(state_path(run_id))
    assert not mounts_under(run_dir)
    assert not [p for p in absent if os.path.lexists(p)]
    time.sleep(0.5)
    assert not [p for p in pids if not is_zombie(p)]      # gone (or dead, not yet reaped)
