"""KubeTopology's exec path against FakeKubeApi, a fake of the Kubernetes API server at the client
boundary: exec needs a kubelet running the pods' containers, which cannot run here (cgroups v1,
no container runtime). Everything else KubeTopology does (namespaces, labels, policies,
cluster-scoped refusal, cleanup by labels) is tested against the real kube-apiserver in
tests/kube_real/test_kubeconfig_real.py, and was removed from this file."""

import pytest

from harness.backends.kube import topology as kube_mod
from harness.backends.kube.api import KubeApi
from harness.backends.kube.topology import KubeTopology
from harness.errors import ExecError
from harness.model import Model

RUN = "abc123"


class FakeApiException(Exception):
    def __init__(self, status, reason=""):
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.body = status, reason, reason


class _Client:
    ApiException = FakeApiException


def _match(labels, selector):
    for term in filter(None, (selector or "").split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    return True


class FakeKubeApi:
    """Objects in dicts; pods become Ready with an IP at once; namespaces vanish one poll after
    deletion (Terminating). Reads reuse KubeApi's own code on top of these fakes."""

    client = _Client
    _absent_is_none = KubeApi._absent_is_none
    list_pods = KubeApi.list_pods
    list_nodes = KubeApi.list_nodes

    def __init__(self):
        self.ns = {"kube-system": {"metadata": {"name": "kube-system", "labels": {}}},
                   "prod": {"metadata": {"name": "prod", "labels": {}}},
                   "np-zzz999-x": {"metadata": {"name": "np-zzz999-x", "labels": {
                       "app.kubernetes.io/managed-by": "netpol-proof", "netpol-proof/run": "zzz999"}}}}
        self.terminating: set[str] = set()
        self.pods = {("kube-system", "coredns-1"): {
            "metadata": {"name": "coredns-1", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns"}},
            "status": {"podIP": "10.244.0.3", "conditions": [{"type": "Ready", "status": "True"}]}}}
        self.services = {("kube-system", "kube-dns"): {"spec": {"clusterIP": "10.96.0.10"}}}
        self.netpols: dict = {}
        self.sa_polls: dict[str, int] = {}
        self.store: dict = {}               # custom objects: (group, plural, ns, name) -> body
        self.log: list[tuple] = []
        self.core, self.net, self.custom = self, self, _Custom(self)

    def get_custom_object(self, group, version, plural, name, namespace=None):
        return self.store.get((group, plural, namespace, name))

    def _dict(self, obj):
        return obj

    def exec_core(self):
        return ("exec-core", id(self))

    # core
    def read_namespace(self, name):
        if name not in self.ns:
            raise FakeApiException(404)
        return self.ns[name]

    def create_namespace(self, obj):
        self.log.append(("create", "ns", obj["metadata"]["name"]))
        self.ns[obj["metadata"]["name"]] = obj
        self.sa_polls[obj["metadata"]["name"]] = 0

    def read_namespaced_service_account(self, name, ns):
        """The `default` ServiceAccount appears on the second read (the controller is async)."""
        self.sa_polls[ns] = self.sa_polls.get(ns, 0) + 1
        if self.sa_polls[ns] < 2:
            raise FakeApiException(404)
        return {"metadata": {"name": name, "namespace": ns}}

    def create_namespaced_pod(self, ns, obj):
        if self.sa_polls.get(ns, 2) < 2:
            raise FakeApiException(403, f"error looking up service account {ns}/default")
        self._create_pod(ns, obj)

    def list_namespace(self, label_selector=""):
        for n in list(self.terminating):      # finish deletions one poll later
            self.ns.pop(n, None)
            self.terminating.discard(n)
        return {"items": [o for o in self.ns.values()
                          if _match(o["metadata"].get("labels") or {}, label_selector)]}

    def delete_namespace(self, name):
        self.log.append(("delete", "ns", name))
        self.terminating.add(name)
        for key in [k for k in self.pods if k[0] == name]:
            del self.pods[key]

    def _create_pod(self, ns, obj):
        if ns not in self.ns:
            raise FakeApiException(404, f"namespace {ns} not found")
        n = len(self.pods)
        self.pods[(ns, obj["metadata"]["name"])] = {**obj, "status": {
            "podIP": f"10.244.1.{10 + n}", "conditions": [{"type": "Ready", "status": "True"}]}}

    def create_namespaced_service(self, ns, obj):
        self.services[(ns, obj["metadata"]["name"])] = {**obj, "spec": {
            **obj["spec"], "clusterIP": f"10.96.1.{len(self.services)}"}}

    def read_namespaced_service(self, name, ns):
        return self.services[(ns, name)]

    def list_namespaced_pod(self, ns, label_selector=""):
        return {"items": [p for (n, _), p in self.pods.items()
                          if n == ns and _match(p["metadata"].get("labels") or {}, label_selector)]}

    def list_node(self):
        return {"items": [{"metadata": {"name": "w"}, "status": {"addresses": [
            {"type": "InternalIP", "address": "172.18.0.3"}]}}]}

    def patch_namespace(self, name, body):
        labels = self.ns[name]["metadata"].setdefault("labels", {})
        for k, v in body["metadata"]["labels"].items():
            labels.pop(k, None) if v is None else labels.__setitem__(k, v)

    def patch_namespaced_pod(self, name, ns, body):
        labels = self.pods[(ns, name)]["metadata"].setdefault("labels", {})
        for k, v in body["metadata"]["labels"].items():
            labels.pop(k, None) if v is None else labels.__setitem__(k, v)

    # networking
    def create_namespaced_network_policy(self, ns, body):
        if (ns, body["metadata"]["name"]) in self.netpols:
            raise FakeApiException(409, "AlreadyExists")
        self.log.append(("create", "netpol", ns, body["metadata"]["name"]))
        self.netpols[(ns, body["metadata"]["name"])] = body

    def replace_namespaced_network_policy(self, name, ns, body):
        self.log.append(("replace", "netpol", ns, name))
        self.netpols[(ns, name)] = body

    def delete_namespaced_network_policy(self, name, ns):
        if (ns, name) not in self.netpols:
            raise FakeApiException(404, "NotFound")
        del self.netpols[(ns, name)]

    def list_network_policy_for_all_namespaces(self, label_selector=""):
        return {"items": [p for p in self.netpols.values()
                          if _match(p["metadata"].get("labels") or {}, label_selector)]}


class _Custom:
    def __init__(self, api):
        self.api = api

    def create_namespaced_custom_object(self, group, version, ns, plural, body):
        self.api.store[(group, plural, ns, body["metadata"]["name"])] = body

    def create_cluster_custom_object(self, group, version, plural, body):
        key = (group, plural, None, body["metadata"]["name"])
        if key in self.api.store:
            raise FakeApiException(409)
        self.api.store[key] = {**body, "metadata": {**body["metadata"], "resourceVersion": "7"}}

    def replace_cluster_custom_object(self, group, version, plural, name, body):
        self.api.log.append(("replace", plural, body["metadata"].get("resourceVersion")))
        self.api.store[(group, plural, None, name)] = body

    def get_cluster_custom_object(self, group, version, plural, name):
        if (group, plural, None, name) not in self.api.store:
            raise FakeApiException(404)
        return self.api.store[(group, plural, None, name)]

    def list_cluster_custom_object(self, group, version, plural, label_selector=""):
        return {"items": [b for (g, p, _, _), b in self.api.store.items() if (g, p) == (group, plural)
                          and _match((b.get("metadata") or {}).get("labels") or {}, label_selector)]}

    def delete_namespaced_custom_object(self, group, version, ns, plural, name):
        del self.api.store[(group, plural, ns, name)]

    def delete_cluster_custom_object(self, group, version, plural, name):
        self.api.store.pop((group, plural, None, name), None)


@pytest.fixture
def fake():
    return FakeKubeApi()


def topo(api, allow=True):
    return KubeTopology(api, RUN, allow_cluster_scoped=allow, ready_timeout=2,
                        status=lambda s: None)


def test_exec_targets(fake, monkeypatch):
    calls = []
    monkeypatch.setattr(kube_mod, "stream_exec",
                        lambda core, ns, pod, container, argv, timeout, target="":
                        calls.append((ns, pod, container, target))
                        or ("result" if core == fake.exec_core() else "wrong client"))
    t = topo(fake)
    with pytest.raises(ExecError, match="no topology deployed"):
        t.exec("x/a", ["true"], 1)
    t.deploy(Model.default(namespaces=["x"], pods=["a"]))
    assert t.exec("x/a", ["true"], 1) == "result"
    t.exec("kube-system/coredns", ["true"], 1)
    assert calls == [("np-abc123-x", "a", "client", "x/a"),
                     ("kube-system", "coredns-1", "coredns", "kube-system/coredns")]
    with pytest.raises(ExecError, match="no external hosts"):
        t.exec("ext:web", ["true"], 1)


def test_real_client_gives_each_thread_its_own_exec_api_client(tmp_path):
    import threading

    import yaml
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-t",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "kind-t", "context": {"cluster": "c", "user": "u"}}]}))
    api = KubeApi(str(cfg), "kind-t")           # nothing is contacted until a call
    mine = api.exec_core()
    assert api.exec_core() is mine
    assert mine.api_client is not api.core.api_client
    other = []
    t = threading.Thread(target=lambda: other.append(api.exec_core()))
    t.start()
    t.join()
    assert other[0].api_client is not mine.api_client
    assert other[0].api_client.configuration.host == api.server == "https://127.0.0.1:9"
