"""The kube path on real nodes, a first step: the kubeconfig backend's code (harness/backends/
kubeconfig.py and kube/, unchanged) against a cluster of real kubelets over netpol-cri, with the
real kube-scheduler placing the pods. It deploys agnhost pods, waits until the kubelets report
them Ready (their readiness probes, run by the kubelets), execs probes through the API's stream
and removes its namespaces. Not yet: CoreDNS, a policy engine, the library (docs/real-nodes.md,
"What is left")."""

from __future__ import annotations

import time
from pathlib import Path

from harness.backends.kubeconfig import KubeconfigBackend
from harness.backends.real.realnodes.cluster import RealNodesCluster
from harness.backends.real.realnodes.node import AGNHOST_REF
from harness.model import Model, Protocol
from tests.real_nodes.conftest import needs_real_nodes

pytestmark = needs_real_nodes("kube-scheduler")


def test_the_kubeconfig_backend_deploys_execs_and_cleans_up_on_real_nodes():
    with RealNodesCluster() as c:
        assert c.plane is not None
        assert "real kube-scheduler v1.35.8" in c.plane.describe()
        # the Service a DNS add-on makes, which the model names; no CoreDNS behind it yet
        from kubernetes import client

        client.CoreV1Api(c.plane.api_client()).create_namespaced_service("kube-system", {
            "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53,
                                                          "protocol": "UDP"}]}})
        b = KubeconfigBackend(context=c.plane.context, allow_context=c.plane.context,
                              kubeconfig=str(c.plane.kubeconfig), ready_timeout=120,
                              status=lambda m: None, image=AGNHOST_REF)
        b.up()
        try:
            t = time.monotonic()
            addr = b.deploy(Model.default(namespaces=["x", "y"], pods=["a", "b"], ports=[80],
                                          protocols=[Protocol.TCP, Protocol.UDP]))
            assert time.monotonic() - t < 120
            assert set(addr.pod_ips) == {"x/a", "x/b", "y/a", "y/b"}
            cidrs = tuple(n.pod_cidr.rsplit(".", 2)[0] + "." for n in c.nodes)
            assert all(ip.startswith(cidrs) for ip in addr.pod_ips.values())
            assert sorted(addr.node_ips) == sorted(n.address for n in c.nodes)
            target = addr.pod_ips["y/b"]
            got = b.exec("x/a", ["curl", "-s", "--max-time", "3", f"http://{target}:80/"], 10)
            assert got.returncode == 0 and got.stdout.strip() == "y-b", got
            udp = b.exec("x/a", ["/agnhost", "connect", "--protocol=udp", "--timeout=1s",
                                 f"{target}:80"], 10)
            assert udp.returncode == 0, udp
            refused = b.exec("x/a", ["/agnhost", "connect", "--protocol=tcp", "--timeout=1s",
                                     f"{target}:81"], 10)     # nothing listens there
            assert refused.returncode != 0, refused
        finally:
            b.down()
        assert b.topology is None


def test_the_kubeconfig_backend_runs_scenarios_at_once_as_tenants_on_real_nodes(tmp_path,
                                                                                monkeypatch):
    """Issue 20 item 1 on the users' path: `--backend kubeconfig -j 2` against a cluster of
    real kubelets with Calico's Felix enforcing (brought up by the realnodes backend, then
    used as any existing cluster is): the scenarios run as tenants of the one cluster, each
    under a run id of its own, a scenario's pods serve the next of the same model, every
    verdict passes, and nothing of the run is left in the cluster."""
    import json

    from kubernetes import client

    from harness import naming
    from harness.backends.real.realnodes.backend import RealNodesBackend
    from harness.cli import main

    lib = Path(__file__).resolve().parents[2] / "scenarios" / "conformance"
    paths = [str(lib / f"{name}.yaml") for name in (
        "deny-all-ingress", "pod-selector-ingress", "namespace-isolation",
        "allow-from-all-namespaces")]
    host = RealNodesBackend("calico", status=lambda m: None)
    host.up()
    try:
        assert host.cluster is not None and host.cluster.plane is not None
        plane = host.cluster.plane
        out = tmp_path / "r.json"
        monkeypatch.setenv("KUBECONFIG", str(plane.kubeconfig))
        code = main(["run", *paths, "--backend", "kubeconfig", "--cni", "calico",
                     "--context", plane.context, "--allow-context", plane.context,
                     "--agnhost-image", AGNHOST_REF,
                     "-j", "2", "--json", str(out)])
        doc = json.loads(out.read_text())
        assert code == 0 and [s["outcome"] for s in doc["scenarios"]] == ["passed"] * 4, \
            [(s["scenario"], s["outcome"], s["infra_error"]) for s in doc["scenarios"]]
        tenants = {s["run_id"] for s in doc["scenarios"]}
        assert len(tenants) == 2 and doc["meta"]["run_id"] not in tenants  # -j 2: two tenants
        assert doc["meta"]["jobs"] == 2
        left = client.CoreV1Api(plane.api_client()).list_namespace(
            label_selector=naming.MANAGED_BY_LABEL + "=" + naming.PROJECT).items
        assert [n.metadata.name for n in left
                if n.metadata.labels.get(naming.RUN_LABEL, "").startswith(
                    doc["meta"]["run_id"][:5])] == []
    finally:
        host.down()
