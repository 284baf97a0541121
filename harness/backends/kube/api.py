"""The Kubernetes API client bound to one private kubeconfig file and context (KubeApi, the
real KubeOps), shared by the kind and kubeconfig backends.

Why its own file: the client is built from the harness's own kubeconfig file and an explicit
context, never from ~/.kube/config or the current context (docs/sources.md §8 rule 2); everything that
deploys and probes through it lives in topology.py.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

Obj = dict[str, Any]


def status_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class KubeApi:
    """The kubernetes client for one kubeconfig file + context; reads return API dicts."""

    def __init__(self, kubeconfig: str, context: str):
        # the kubernetes client (~1 s) loads for kube backends only
        from kubernetes import client, config

        self.kubeconfig, self.context = kubeconfig, context
        self.client = client
        self.api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.net = client.NetworkingV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self._local = threading.local()

    def exec_core(self):
        """A CoreV1Api for exec on this thread only. Why: kubernetes.stream.stream swaps
        `api_client.call_api` for the websocket transport while it runs, so concurrent probes
        (and list calls) sharing one ApiClient would use each other's transport."""
        core = getattr(self._local, "core", None)
        if core is None:
            core = self.client.CoreV1Api(self.client.ApiClient(self.api_client.configuration))
            self._local.core = core
        return core

    @property
    def server(self) -> str:
        return self.api_client.configuration.host

    def _dict(self, obj: Any) -> Obj:
        return self.api_client.sanitize_for_serialization(obj)

    def _absent_is_none(self, call: Callable[[], Any]) -> Obj | None:
        try:
            out = call()
        except self.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return out if isinstance(out, dict) else self._dict(out)

    # -- KubeOps ----------------------------------------------------------------------------
    def get_workload(self, kind: str, namespace: str, name: str) -> Obj | None:
        read = (self.apps.read_namespaced_daemon_set if kind == "DaemonSet"
                else self.apps.read_namespaced_deployment)
        return self._absent_is_none(lambda: read(name, namespace))

    def get_custom_object(self, group, version, plural, name, namespace=None) -> Obj | None:
        if namespace:
            return self._absent_is_none(lambda: self.custom.get_namespaced_custom_object(
                group, version, namespace, plural, name))
        return self._absent_is_none(lambda: self.custom.get_cluster_custom_object(
            group, version, plural, name))

    def list_nodes(self) -> list[Obj]:
        return self._dict(self.core.list_node()).get("items", [])

    def list_pods(self, namespace: str, label_selector: str = "") -> list[Obj]:
        """Pods of `namespace` ("": of every namespace) matching `label_selector`."""
        if not namespace:
            return self._dict(self.core.list_pod_for_all_namespaces(
                label_selector=label_selector)).get("items", [])
        return self._dict(self.core.list_namespaced_pod(
            namespace, label_selector=label_selector)).get("items", [])

    def delete_pod(self, namespace: str, name: str,
                   grace_period_seconds: int | None = None) -> None:
        """Delete one pod; `grace_period_seconds` None keeps the pod's own grace period."""
        self.core.delete_namespaced_pod(name, namespace,
                                        grace_period_seconds=grace_period_seconds)
