"""Fault steps on the kubeconfig backend (an existing cluster), at the Kubernetes boundary:
FakeAgentCluster, a fake of the Kubernetes API server (tests/test_kube_topology.FakeKubeApi)
with a DaemonSet controller that replaces a deleted agent pod, since no cluster runs here.
The request the real client sends (KubeApi.delete_pod) runs on top of the fake.

What is checked: without --allow-faults-on-context every fault is refused with the flag to
pass; a flag naming another context is an error before anything is deployed; with it, a
restart deletes exactly the agent pods of the chosen node (kill: grace period 0) and waits
for the DaemonSet's Ready replacements; holding the engine down and API server faults stay
refused; nothing outside the agent's selector is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.kube.api import KubeApi
from harness.backends.kube.topology import KubeTopology
from harness.backends.kubeconfig import KubeconfigBackend
from harness.errors import BackendError, UsageError
from harness.scenario import load_scenario
from harness.session import Session
from harness.settings import SettingsError, build
from tests.test_kube_topology import FakeKubeApi
from tests.test_kubeconfig_guard import CONTEXTS, write_config

RUN = "abc123"
LIBRARY = Path(__file__).parents[1] / "scenarios" / "faults"
OWNER = [{"kind": "DaemonSet", "name": "calico-node", "controller": True}]


def _pod(ns, name, node, labels, owner=OWNER, ready=True, uid=None):
    return {"metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{name}",
                         "labels": labels, "ownerReferences": owner},
            "spec": {"nodeName": node},
            "status": {"podIP": "172.18.0.9", "phase": "Running", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


class FakeAgentCluster(FakeKubeApi):
    """Two nodes (w0, w1) each running a calico-node pod in calico-system, plus pods that must
    never be touched. A deleted DaemonSet pod is replaced on its node: NotReady on the first
    list after the deletion, Ready on the next (unless `replaces` is False)."""

    delete_pod = KubeApi.delete_pod     # the real request, on top of this fake's core

    def __init__(self, replaces=True):
        super().__init__()
        self.replaces = replaces
        self.deleted: list[tuple[str, str, int | None]] = []
        self._pending: list[dict] = []
        agent = {"k8s-app": "calico-node"}
        for key, pod in {
            ("calico-system", "calico-node-a"): _pod("calico-system", "calico-node-a", "w0", agent),
            ("calico-system", "calico-node-b"): _pod("calico-system", "calico-node-b", "w1", agent),
            # the same label elsewhere, another workload beside it, a user's pod: never touched
            ("kube-system", "calico-node-old"): _pod("kube-system", "calico-node-old", "w0", agent),
            ("calico-system", "calico-typha-1"): _pod(
                "calico-system", "calico-typha-1", "w0", {"k8s-app": "calico-typha"},
                owner=[{"kind": "ReplicaSet", "name": "calico-typha-1", "controller": True}]),
            ("prod", "web-1"): _pod("prod", "web-1", "w0", {"app": "web"}, owner=[]),
        }.items():
            self.pods[key] = pod

    def delete_namespaced_pod(self, name, ns, grace_period_seconds=None):
        pod = self.pods.pop((ns, name))
        self.deleted.append((ns, name, grace_period_seconds))
        owned = any(r.get("kind") == "DaemonSet" for r in pod["metadata"]["ownerReferences"])
        if owned and self.replaces:
            n = len(self.deleted)
            new = _pod(ns, f"{name.rsplit('-', 1)[0]}-new{n}", pod["spec"]["nodeName"],
                       dict(pod["metadata"]["labels"]), ready=False, uid=f"uid-new{n}")
            self.pods[(ns, new["metadata"]["name"])] = new
            self._pending.append(new)

    def list_namespaced_pod(self, ns, label_selector=""):
        out = super().list_namespaced_pod(ns, label_selector)
        for new in self._pending:       # Ready one list after it appeared
            new["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        self._pending = []
        return out


def backend(api=None, allow="prod-eks", context="prod-eks", cni="calico", **kw):
    log: list[str] = []
    b = KubeconfigBackend(cni, RUN, context=context, allow_context=context,
                          allow_faults_on_context=allow, status=log.append, **kw)
    if api is not None:
        b.topology = KubeTopology(api, RUN, ready_timeout=2, status=log.append)
    return b, log


def test_without_the_flag_every_fault_is_refused_with_what_to_pass():
    b, _ = backend(allow=None)
    caps = b.capabilities()
    restart = load_scenario(LIBRARY / "engine-restart.yaml")
    ok, why = caps.match(restart.needs)
    assert not ok
    assert "engine-fault (refused on an existing cluster unless named: pass " \
           "--allow-faults-on-context prod-eks" in why
    session = Session(build({"backend": "kubeconfig", "cnis": "calico", "context": "prod-eks",
                             "allow_context": "prod-eks"}, env={}), log=lambda line: None)
    assert session.plan(restart, "calico").skip == why
    api = FakeAgentCluster()
    b.topology = KubeTopology(api, RUN, ready_timeout=2, status=lambda s: None)
    with pytest.raises(BackendError, match="--allow-faults-on-context prod-eks"):
        b.fault("restart", "engine", 1)
    assert api.deleted == []


def test_a_flag_naming_another_context_is_an_error_before_anything_is_deployed(tmp_path):
    with pytest.raises(SettingsError) as err:
        build({"backend": "kubeconfig", "cnis": "calico", "context": "prod-eks",
               "allow_context": "prod-eks", "allow_faults_on_context": "kind-dev"}, env={})
    assert "names context 'kind-dev', but this run uses context 'prod-eks'" in str(err.value)
    assert "--allow-faults-on-context prod-eks" in str(err.value)
    # the backend itself refuses too, before it writes or contacts anything
    path = write_config(tmp_path / "config", CONTEXTS)
    b = KubeconfigBackend("calico", RUN, context="prod-eks", allow_context="prod-eks",
                          allow_faults_on_context="kind-dev", kubeconfig=str(path),
                          status=lambda s: None)
    with pytest.raises(UsageError, match="names context 'kind-dev', but this run uses context "
                                         "'prod-eks'"):
        b.up()
    assert b.private_dir is None and b.topology is None
    assert not b.capabilities().match(["engine-fault"])[0]


def test_the_flags_belong_to_the_kubeconfig_backend_only():
    for key, value in (("allow_faults_on_context", "x"), ("engine_pods", "kube-system/a=b")):
        with pytest.raises(SettingsError, match="only the kubeconfig backend takes it"):
            build({"cnis": "enforcing", key: value}, env={})
    with pytest.raises(SettingsError, match="is not NAMESPACE/SELECTOR"):
        build({"backend": "kubeconfig", "cnis": "calico", "context": "c", "allow_context": "c",
               "engine_pods": "k8s-app=cilium"}, env={})
    s = build({"backend": "kubeconfig", "cnis": "calico", "context": "c", "allow_context": "c"},
              env={"NETPOL_ALLOW_FAULTS_ON_CONTEXT": "c"})
    assert s.backend_options()["allow_faults_on_context"] == "c"


def test_with_the_flag_a_restart_deletes_only_the_agent_pod_of_the_chosen_node_and_waits():
    api = FakeAgentCluster()
    b, log = backend(api)
    caps = b.capabilities()
    assert caps.match(load_scenario(LIBRARY / "engine-restart.yaml").needs) == (True, "")
    before = set(api.pods)
    said = b.fault("restart", "engine", 1)              # node 1 is w0, the first by name
    assert api.deleted == [("calico-system", "calico-node-a", None)]   # the pod's own grace
    assert set(api.pods) == before - {("calico-system", "calico-node-a")} | \
        {("calico-system", "calico-node-new1")}
    assert "deleted calico-node-a (default grace period); replaced by calico-node-new1, Ready" \
        in said
    assert log == ["  [kubeconfig] deleted pod calico-system/calico-node-a on node w0 (default "
                   "grace period; owned by DaemonSet calico-node)"]
    assert b.restore_faults() == []


def test_a_kill_restart_uses_grace_period_0_on_every_node():
    api = FakeAgentCluster()
    b, log = backend(api)
    said = b.fault("kill-restart", "engine", None)
    assert api.deleted == [("calico-system", "calico-node-a", 0),
                           ("calico-system", "calico-node-b", 0)]
    assert [line.split(" (")[1] for line in log] == ["grace period 0; owned by DaemonSet "
                                                     "calico-node)"] * 2
    assert "replaced by calico-node-new1, calico-node-new2" in said
    untouched = {("kube-system", "calico-node-old"), ("calico-system", "calico-typha-1"),
                 ("prod", "web-1"), ("kube-system", "coredns-1")}
    assert untouched <= set(api.pods)


def test_holding_the_engine_down_and_api_server_faults_stay_refused():
    api = FakeAgentCluster()
    b, _ = backend(api)
    caps = b.capabilities()
    for name, capability in (("engine-stop", "engine-hold"), ("engine-kill", "engine-hold"),
                             ("apiserver-down", "apiserver-fault")):
        ok, why = caps.match(load_scenario(LIBRARY / f"{name}.yaml").needs)
        assert not ok and capability in why, name
    assert "would mean changing the user's DaemonSet" in caps.notes["engine-hold"]
    assert "never stops an API server it did not start" in caps.notes["apiserver-fault"]
    for action, target in (("stop", "engine"), ("kill", "engine"), ("start", "engine"),
                           ("stop", "apiserver")):
        with pytest.raises(BackendError, match=f"{action} {target}"):
            b.fault(action, target, None)
    assert api.deleted == []


def test_a_replacement_that_never_comes_is_an_error_naming_the_pod():
    api = FakeAgentCluster(replaces=False)
    b, _ = backend(api, fault_timeout=0.5)
    with pytest.raises(BackendError) as err:
        b.fault("restart", "engine", 2)
    assert "not replaced by a Ready pod: calico-node-b (node w1)" in str(err.value)
    assert "restarting the CNI agent on node 2" in str(err.value)


def test_a_pod_no_daemonset_owns_is_never_deleted():
    api = FakeAgentCluster()
    api.pods[("calico-system", "calico-node-a")]["metadata"]["ownerReferences"] = []
    b, _ = backend(api)
    with pytest.raises(BackendError, match="calico-node-a .* is not owned by a DaemonSet"):
        b.fault("restart", "engine", None)
    assert api.deleted == []


def test_the_agent_is_found_where_the_cni_puts_it_or_where_the_user_says():
    api = FakeAgentCluster()
    for key in [k for k in api.pods if k[0] == "calico-system"]:
        del api.pods[key]                   # a manifest install: calico-node in kube-system
    b, _ = backend(api)
    b.fault("restart", "engine", 1)
    assert api.deleted == [("kube-system", "calico-node-old", None)]
    other, _ = backend(FakeAgentCluster(), cni="my-cni")
    assert "pass --engine-pods NAMESPACE/SELECTOR" in other.capabilities().notes["engine-fault"]
    api = FakeAgentCluster()
    chosen, _ = backend(api, cni="my-cni", engine_pods="calico-system/k8s-app=calico-typha",
                        fault_timeout=0.5)
    assert "engine-fault" in chosen.capabilities().supported
    with pytest.raises(BackendError, match="calico-typha-1 .* not owned by a DaemonSet"):
        chosen.fault("restart", "engine", 1)    # typha is owned by a ReplicaSet here: refused
    assert api.deleted == []


# -- the kind backend: the harness created the cluster, so restarts need no flag ------------
def kind_backend(api, cni="calico"):
    from harness.backends.kind.backend import KindBackend
    log: list[str] = []
    b = KindBackend(cni, RUN, status=log.append)
    b.topology = KubeTopology(api, RUN, ready_timeout=2, status=log.append)
    return b, log


def test_kind_offers_restarts_of_the_cni_agent_and_nothing_else():
    api = FakeAgentCluster()
    b, log = kind_backend(api)
    caps = b.capabilities()
    assert caps.match(load_scenario(LIBRARY / "engine-restart.yaml").needs) == (True, "")
    for name, capability in (("engine-stop", "engine-hold"), ("apiserver-down", "apiserver-fault")):
        ok, why = caps.match(load_scenario(LIBRARY / f"{name}.yaml").needs)
        assert not ok and capability in why, name
    said = b.fault("kill-restart", "engine", 2)         # node 2 is w1
    assert api.deleted == [("calico-system", "calico-node-b", 0)]
    assert "replaced by calico-node-new1" in said
    assert log == ["  [kind] deleted pod calico-system/calico-node-b on node w1 (grace period "
                   "0; owned by DaemonSet calico-node)"]
    with pytest.raises(BackendError, match="stop engine on kind cluster netpol-proof-calico: "
                                           "not on kind"):
        b.fault("stop", "engine", None)
    assert len(api.deleted) == 1


def test_kind_has_no_engine_to_restart_on_flannel():
    b, _ = kind_backend(FakeAgentCluster(), cni="flannel")
    assert "engine-fault" not in b.capabilities().supported
    assert "nothing enforces on flannel" in b.capabilities().notes["engine-fault"]
    with pytest.raises(BackendError, match="nothing enforces on flannel"):
        b.fault("restart", "engine", None)
