"""Canal on real nodes (issue 21 item 2): real flanneld's VXLAN between the nodes, Calico's
CNI plugin (host-local usePodCidr) wiring the pods with cali veths, Felix enforcing with
canal.yaml's environment (harness.backends.real.realnodes.canal).

Live: pods on two nodes talk over flannel.1 (its counters rise with the cross-node requests, not
with the same-node ones, which go node-to-veth); a NetworkPolicy is enforced by Felix (curl
times out: Felix drops), the controls answer, deleting it restores traffic. A SIGKILLed Canal
run is found and removed by `cleanup`.
"""

from __future__ import annotations

import ipaddress
import json
import time

import pytest

from harness.backends.real import engines as enginesx
from harness.backends.real.realnodes import canal as canalx
from harness.backends.real.realnodes import flannel as fl
from harness.backends.real.realnodes.cluster import RealNodesCluster
from tests.real_nodes.conftest import needs_real_nodes
from tests.real_nodes.flannel_pods import OPEN, assert_vxlan_carries
from tests.real_nodes.flannel_pods import blocked as blocked_by
from tests.real_nodes.flannel_pods import observe as observe_pods
from tests.real_nodes.test_flannel import POLICY, SETTLE, _labelled, _route_dev, kill_and_clean
from tests.real_nodes.test_real_nodes import NS, make_namespace, wait_ready

live = needs_real_nodes("flanneld", "calico-felix", "calico")


def test_canals_felix_environment_is_added_to_felixs_own():
    p = enginesx.NodeProcess("felix", ("felix",), lambda: (True, ""),
                             {"PATH": "/bin", "FELIX_DEFAULTENDPOINTTOHOSTACTION": "DROP"},
                             engine=True)
    q = canalx.felix(p)
    assert q.env == {"PATH": "/bin", "CALICO_NETWORKING_BACKEND": "none",
                     "USE_POD_CIDR": "true", "FELIX_DEFAULTENDPOINTTOHOSTACTION": "ACCEPT"}
    assert q.engine and q.argv == p.argv
    with pytest.raises(ValueError, match="not kube-proxy's"):
        canalx.felix(enginesx.NodeProcess("kube-proxy", (), lambda: (True, "")))


@live
def test_canal_carries_cross_node_traffic_over_vxlan_and_felix_enforces():
    from kubernetes import client

    from harness.shell import run

    with RealNodesCluster(network="flannel", engine="calico") as c:
        assert c.plane is not None
        api = c.plane.api_client()
        core = client.CoreV1Api(api)
        n1, n2 = c.nodes
        cidrs = {n.metadata.name: n.spec.pod_cidr for n in core.list_node().items}
        for rn in c.real:
            env = c.subnet_env(rn)
            assert env.subnet_network == cidrs[rn.node.name] and env.mtu == canalx.MTU
            conf = json.loads(next(rn.cni_conf_dir.glob("*.conflist")).read_text())
            calico = conf["plugins"][0]
            assert calico["type"] == "calico" and calico["mtu"] == canalx.MTU
            assert calico["ipam"]["subnet"] == "usePodCidr", calico
        for me, other in ((n1, n2), (n2, n1)):
            routes = run(["ip", "-n", me.netns, "-j", "route", "show"], timeout=10,
                         check=True).stdout
            assert {r["dst"]: r["dev"] for r in json.loads(routes)}.get(cidrs[other.name]) \
                == fl.VXLAN_DEVICE, routes
        make_namespace(core)
        for name, node, app in (("srv", n1, "srv"), ("near", n1, "other"), ("far", n2, "other")):
            core.create_namespaced_pod(NS, _labelled(name, node.name, app))
        ready = wait_ready(core, ["srv", "near", "far"])
        ip = {name: p.status.pod_ip for name, p in ready.items()}  # type: ignore[attr-defined]
        for name, node in (("srv", n1), ("far", n2)):
            assert ipaddress.ip_address(ip[name]) in ipaddress.ip_network(cidrs[node.name])
        assert _route_dev(n2.netns, ip["srv"]) == fl.VXLAN_DEVICE
        assert _route_dev(n1.netns, ip["srv"]).startswith("cali")

        assert_vxlan_carries(core, (n1, n2), ip, "canal")
        open_ = OPEN
        blocked = blocked_by("exit 28")     # Felix drops: a denied connect times out

        def observe() -> dict[str, str]:
            return observe_pods(core, ip)

        assert observe() == open_
        net = client.NetworkingV1Api(api)

        def watch(want: dict[str, str]) -> int:
            """Observations for SETTLE seconds; the index of the first equal to `want`, all
            after it equal too (the same window whichever way the policy went)."""
            t = time.monotonic()
            seen = [observe()]
            while time.monotonic() - t < SETTLE:
                time.sleep(1.0)
                seen.append(observe())
            first = next((i for i, s in enumerate(seen) if s == want), None)
            assert first is not None and all(s == want for s in seen[first:]), seen
            return first

        net.create_namespaced_network_policy(NS, POLICY)
        first = watch(blocked)
        net.delete_namespaced_network_policy(POLICY["metadata"]["name"], NS)
        back = watch(open_)
        print(f"canal: enforced within {first + 1} observations, restored within {back + 1}")
        assert sorted({p.name for _, p in c.node_procs}) == ["felix", "flanneld", "kube-proxy"]
        felix_env = [p.env for _, p in c.node_procs if p.name == "felix"]
        assert all(e and e["FELIX_DEFAULTENDPOINTTOHOSTACTION"] == "ACCEPT" for e in felix_env)


@live
def test_cleanup_removes_a_killed_canal_run():
    """As flannel's (tests/real_nodes/test_flannel.py), with a cali veth in place of cni0."""
    kill_and_clean('network="flannel", engine="calico"', {fl.VXLAN_DEVICE})


def test_the_realnodes_row_canal_says_flannel_routes_and_felix_polices():
    """`--backend realnodes --cni canal`: the run header names flanneld, Calico's CNI plugin in
    host-local mode and Felix; it declares Felix's enforcement (a dropping engine); the cluster
    it asks for is flannel's network with the calico engine."""
    from harness.backends import capabilities, get_backend
    from harness.backends.real.realnodes import cnis

    text = get_backend("realnodes", "canal", run_id="abcd12").describe()
    assert "real Calico Felix v3.31.0 + real Calico CNI plugin v3.31.0 (host-local IPAM, " \
           "usePodCidr) + real flanneld v0.28.10 (VXLAN)" in text, text
    assert text.endswith("routed by flannel's VXLAN") and "bridge" not in text, text
    row = cnis.spec("canal")
    assert (row.network, row.engine_row) == ("flannel", "calico")
    caps = capabilities("realnodes", "canal")
    assert caps.enforces and caps.deny_response == "drop"
