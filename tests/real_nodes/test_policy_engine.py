"""The policy engine on real nodes: the real kubelet v1.35.8 on each node namespace (over
netpol-cri), the real kube-proxy on each node and the engine started after it, as the
harness-as-kubelet tier starts them: the real kube-router's network-policy controller (pods
wired by the real bridge plugin, bridged like k3s) or the real Felix (pods wired by Calico's
own CNI plugin: `cali<hash>` veths, /32 routes, proxy ARP). A deny-all-ingress NetworkPolicy
made through the API blocks a curl exec'd through the API into a pod on the other node and
into one on the same node, while the server still answers on its own loopback and a pod it
does not select still answers both clients (positive controls); deleting the policy lets both
in again. kube-router refuses (REJECT: curl exit 7), Felix drops (curl times out: exit 28).
"""

from __future__ import annotations

import time

import pytest

from harness.backends.real.nodes import veth_name
from harness.backends.real.realnodes.cluster import RealNodesCluster
from harness.shell import run
from tests.real_nodes.conftest import needs_real_nodes
from tests.real_nodes.test_real_nodes import NS, agnhost_pod, make_namespace, wait_ready

ENGINES = [pytest.param("kube-router", marks=needs_real_nodes("kube-proxy", "kube-router")),
           pytest.param("calico", marks=needs_real_nodes("kube-proxy", "calico-felix", "calico")),
           pytest.param("none", marks=needs_real_nodes("kube-proxy"))]
#: what a blocked curl ends with: kube-router's REJECT refuses (7), Felix's DROP times out (28);
#: None: nothing enforces
BLOCKED = {"kube-router": "exit 7", "calico": "exit 28", "none": None}
#: the node processes each engine adds to kube-proxy
PROCESSES = {"kube-router": ["kube-proxy", "kube-router"], "calico": ["felix", "kube-proxy"],
             "none": ["kube-proxy"]}

POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "deny-ingress-to-srv"},
          "spec": {"podSelector": {"matchLabels": {"app": "srv"}},
                   "policyTypes": ["Ingress"]}}
#: how long kube-router may take to program (or unprogram) a policy
SETTLE = 30.0


def labelled(name: str, node: str, app: str) -> dict:
    pod = agnhost_pod(name, node)
    pod["metadata"]["labels"] = {"app": app}
    return pod


@pytest.mark.parametrize("engine", ENGINES)
def test_the_engine_enforces_a_policy_on_pods_the_kubelet_made(engine):
    """On `none` (kube-proxy only, no engine) the same steps show the policy not enforced:
    the check sees the difference an engine makes, with the same waits."""
    from kubernetes import client
    from kubernetes.stream import stream

    with RealNodesCluster(engine=engine) as c:
        assert c.plane is not None
        api = c.plane.api_client()
        core = client.CoreV1Api(api)
        net = client.NetworkingV1Api(api)
        n0, n1 = (n.name for n in c.nodes)
        make_namespace(core)
        for name, node, app in (("srv", n0, "srv"), ("near", n0, "other"),
                                ("far", n1, "other")):
            core.create_namespaced_pod(NS, labelled(name, node, app))
        ready = wait_ready(core, ["srv", "near", "far"])
        ip = {name: p.status.pod_ip for name, p in ready.items()}  # type: ignore[attr-defined]
        assert {p.spec.node_name for p in ready.values()} == {n0, n1}  # type: ignore[attr-defined]
        if engine == "calico":
            # wired by Calico's plugin: the node side of each pod's veth is named as Felix
            # matches workloads, and carries the pod's /32 route
            for name, node in (("srv", n0), ("near", n0), ("far", n1)):
                res = run(["ip", "-n", node, "route", "show", "dev", veth_name(NS, name)],
                          timeout=10)
                assert res.ok and res.stdout.split()[:1] == [ip[name]], (name, res.stdout, res.stderr)

        def curl(src: str, dst_ip: str) -> str:
            """What `src`'s client container gets from `dst_ip`'s netexec /hostname, or
            `exit N` (curl's status: 7 refused, 28 timed out)."""
            out = stream(core.connect_get_namespaced_pod_exec, src, NS, container="client",
                         command=["sh", "-c", f"curl -sS --max-time 2 "
                                  f"http://{dst_ip}:8080/hostname || echo exit $?"],
                         stderr=False, stdin=False, stdout=True, tty=False)
            return out.strip().splitlines()[-1] if out.strip() else ""

        def observe() -> dict[str, str]:
            return {"far->srv": curl("far", ip["srv"]), "near->srv": curl("near", ip["srv"]),
                    "srv->loopback": curl("srv", "127.0.0.1"),
                    "far->near": curl("far", ip["near"]), "srv->near": curl("srv", ip["near"])}

        open_ = {"far->srv": "srv", "near->srv": "srv", "srv->loopback": "srv",
                 "far->near": "near", "srv->near": "near"}

        def settle(want: dict[str, str]) -> tuple[dict[str, str], str]:
            """The last round and when it ran: the seconds after the call at which it began
            and ended (a change it shows was in place by its end; a blocked curl takes its
            whole 2 s timeout, so under DROP a round lasts longer)."""
            t = time.monotonic()
            began, got = 0.0, observe()
            while got != want and time.monotonic() - t < SETTLE:
                time.sleep(0.5)
                began, got = time.monotonic() - t, observe()
            return got, f"in the round of {began:.1f}-{time.monotonic() - t:.1f}s"

        got, _ = settle(open_)
        assert got == open_, got
        net.create_namespaced_network_policy(NS, POLICY)
        denied = BLOCKED[engine]
        blocked = {**open_, "far->srv": denied or "", "near->srv": denied or ""}
        got, took = settle(blocked)
        # kube-router and calico: blocked from the other node and from the same node, as the
        # engine blocks (BLOCKED), while the controls (the server's loopback, an unselected
        # pod) still answer. none: nothing enforces, everything still answers after the same
        # wait
        assert got == (blocked if denied else open_), (got, took)
        print(f"{engine}: {'enforced' if got == blocked else 'not enforced'} {took}")
        net.delete_namespaced_network_policy(POLICY["metadata"]["name"], NS)
        got, took = settle(open_)
        assert got == open_, (got, took)
        print(f"policy removed, traffic back {took}")
        names = sorted({p.name for _, p in c.node_procs})
        assert names == PROCESSES[engine], names
