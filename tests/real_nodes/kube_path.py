"""The kube path on real nodes, set up once for a test or a capture: RealNodesCluster with
kube-router's policy controller, the kube-dns Service the model names (no CoreDNS behind it),
and the kubeconfig backend's code deploying a model, as test_kube_path.py does."""

from __future__ import annotations

import contextlib
from typing import Iterator

from harness.backends.kubeconfig import KubeconfigBackend
from harness.backends.real.realnodes.cluster import RealNodesCluster
from harness.backends.real.realnodes.node import AGNHOST_REF
from harness.model import Addresses, Model


@contextlib.contextmanager
def kube_path(model: Model, engine: str = "kube-router"
              ) -> Iterator[tuple[RealNodesCluster, KubeconfigBackend, Addresses]]:
    from kubernetes import client

    with RealNodesCluster(engine=engine) as c:
        assert c.plane is not None
        client.CoreV1Api(c.plane.api_client()).create_namespaced_service("kube-system", {
            "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53,
                                                          "protocol": "UDP"}]}})
        b = KubeconfigBackend(context=c.plane.context, allow_context=c.plane.context,
                              kubeconfig=str(c.plane.kubeconfig), ready_timeout=180,
                              status=lambda m: None, image=AGNHOST_REF)
        b.up()
        try:
            yield c, b, b.deploy(model)
        finally:
            b.down()
