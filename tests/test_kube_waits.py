"""Readiness and retry logic against FakeKubeOps, a fake of the narrow KubeOps boundary (no
cluster here): objects appearing late, rollouts completing, API errors while the server starts,
a TigeraStatus that never becomes Available, nodes NotReady, CoreDNS stuck."""

import pytest

from harness.backends.cni import SPECS, Workload
from harness.backends.kube import waits as kw
from harness.waits import WaitTimeout

FAST = dict(interval=0.01)


class FakeKubeOps:
    """A fake KubeOps: each read returns the next state of a per-object script; the last state
    repeats. A state that is an Exception is raised (an API error while polling)."""

    def __init__(self, scripts):
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.calls: dict[str, int] = {}

    def _next(self, key):
        self.calls[key] = self.calls.get(key, 0) + 1
        script = self.scripts.get(key, [None])
        state = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(state, Exception):
            raise state
        return state

    def get_workload(self, kind, namespace, name):
        return self._next(f"{kind}/{namespace}/{name}")

    def get_custom_object(self, group, version, plural, name, namespace=None):
        return self._next(f"{plural}/{name}")

    def list_nodes(self):
        return self._next("nodes")

    def list_pods(self, namespace, label_selector=""):
        return self._next(f"pods/{namespace}/{label_selector}")


def ds(desired, updated, available, gen=1, observed=1):
    return {"metadata": {"generation": gen}, "status": {
        "observedGeneration": observed, "desiredNumberScheduled": desired,
        "updatedNumberScheduled": updated, "numberAvailable": available}}


def deploy(replicas, updated, available):
    return {"metadata": {"generation": 1}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": 1, "updatedReplicas": updated,
                       "availableReplicas": available}}


def cond(obj_name, **conds):
    return {"metadata": {"name": obj_name}, "status": {"conditions": [
        {"type": t, "status": s if isinstance(s, str) else s[0],
         **({"message": s[1]} if isinstance(s, tuple) else {})} for t, s in conds.items()]}}


def node(name, ready, reason=""):
    return {"metadata": {"name": name}, "status": {"conditions": [
        {"type": "Ready", "status": ready, "reason": reason}]}}


CALICO_NODE = Workload("DaemonSet", "calico-system", "calico-node")


@pytest.mark.parametrize("kind, obj, done, text", [
    ("DaemonSet", None, False, "does not exist yet"),
    ("DaemonSet", ds(3, 3, 3, gen=2, observed=1), False, "not observed generation 2"),
    ("DaemonSet", ds(3, 3, 2), False, "2/3 available, 3/3 updated"),
    ("DaemonSet", ds(3, 1, 3), False, "3/3 available, 1/3 updated"),
    ("DaemonSet", ds(0, 0, 0), False, "0/0"),
    ("DaemonSet", ds(3, 3, 3), True, "3/3 available"),
    ("Deployment", deploy(1, 1, 0), False, "0/1 available"),
    ("Deployment", deploy(1, 1, 1), True, "1/1 available"),
])
def test_rollout_state_follows_kubectl_rollout_status(kind, obj, done, text):
    ok, desc = kw.rollout_state(kind, obj)
    assert ok is done and text in desc


def test_rollout_waits_for_a_daemonset_that_appears_late_and_completes():
    ops = FakeKubeOps({"DaemonSet/calico-system/calico-node":
                       [None, None, ConnectionRefusedError("api starting"), ds(3, 1, 0),
                        ds(3, 3, 2), ds(3, 3, 3)]})
    assert kw.wait_rollout(ops, CALICO_NODE, timeout=5, **FAST) == "3/3 available, 3/3 updated"
    assert ops.calls["DaemonSet/calico-system/calico-node"] == 6


def test_rollout_timeout_names_the_workload_and_its_last_state():
    ops = FakeKubeOps({"DaemonSet/calico-system/calico-node": [ds(3, 3, 1)]})
    with pytest.raises(WaitTimeout) as err:
        kw.wait_rollout(ops, CALICO_NODE, timeout=0.2, **FAST)
    msg = str(err.value)
    assert "rollout of daemonset calico-system/calico-node" in msg and "1/3 available" in msg


def test_rollout_timeout_reports_an_api_error_as_the_last_state():
    ops = FakeKubeOps({"DaemonSet/calico-system/calico-node": [ConnectionRefusedError("refused")]})
    with pytest.raises(WaitTimeout, match="API error: ConnectionRefusedError: refused"):
        kw.wait_rollout(ops, CALICO_NODE, timeout=0.1, **FAST)


def test_tigerastatus_is_polled_for_existence_before_availability():
    ops = FakeKubeOps({"tigerastatuses/calico": [None, None, cond("calico", Available="False"),
                                                 cond("calico", Available="True")]})
    kw.wait_tigerastatus(ops, "calico", timeout=5, **FAST)
    assert ops.calls["tigerastatuses/calico"] == 4


def test_tigerastatus_never_available_times_out_naming_it_and_its_conditions():
    ops = FakeKubeOps({"tigerastatuses/calico": [
        cond("calico", Available="False", Degraded=("True", "calico-node not ready"))]})
    with pytest.raises(WaitTimeout) as err:
        kw.wait_tigerastatus(ops, "calico", timeout=0.2, **FAST)
    msg = str(err.value)
    assert "TigeraStatus calico Available did not happen" in msg
    assert "Degraded=True (calico-node not ready)" in msg and "Available=False" in msg


def test_tigerastatus_that_never_appears_says_the_operator_has_not_reconciled():
    ops = FakeKubeOps({"tigerastatuses/calico": [None]})
    with pytest.raises(WaitTimeout, match="operator has not reconciled"):
        kw.wait_tigerastatus(ops, "calico", timeout=0.1, **FAST)


def test_nodes_notready_then_ready():
    ops = FakeKubeOps({"nodes": [[node("c", "False", "KubeletNotReady")],
                                 [node("c", "True"), node("w", "False"), node("w2", "False")],
                                 [node("c", "True"), node("w", "True"), node("w2", "True")]]})
    kw.wait_nodes_ready(ops, 3, timeout=5, **FAST)
    assert ops.calls["nodes"] == 3


def test_nodes_notready_timeout_names_each_node():
    ops = FakeKubeOps({"nodes": [[node("np-control-plane", "True"),
                                  node("np-worker", "False", "NetworkPluginNotReady")]]})
    with pytest.raises(WaitTimeout) as err:
        kw.wait_nodes_ready(ops, 3, timeout=0.1, **FAST)
    msg = str(err.value)
    assert "3 nodes Ready" in msg and "2/3 nodes" in msg
    assert "np-worker=False (NetworkPluginNotReady)" in msg and "np-control-plane=True" in msg


def _pod(name, ready, waiting=None):
    cs = {"name": "coredns", "ready": ready,
          "state": {"waiting": waiting} if waiting else {"running": {}}}
    return {"metadata": {"name": name}, "status": {
        "phase": "Running" if ready else "Pending", "containerStatuses": [cs],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_coredns_stuck_containercreating_is_named_with_its_reason():
    stuck = _pod("coredns-1", False, {"reason": "ContainerCreating"})
    ops = FakeKubeOps({"pods/kube-system/k8s-app=kube-dns": [[stuck]]})
    with pytest.raises(WaitTimeout) as err:
        kw.wait_coredns(ops, timeout=0.1, **FAST)
    msg = str(err.value)
    assert "CoreDNS pods" in msg and "coredns-1: Pending, coredns not ready (ContainerCreating)" in msg


def test_coredns_no_pods_yet_then_ready():
    ops = FakeKubeOps({"pods/kube-system/k8s-app=kube-dns": [[], [_pod("c1", True)]]})
    kw.wait_coredns(ops, timeout=5, **FAST)


def test_wait_cni_calico_order_rollouts_then_tigerastatus():
    spec = SPECS["calico"]
    ops = FakeKubeOps({"Deployment/tigera-operator/tigera-operator": [deploy(1, 1, 1)],
                       "DaemonSet/calico-system/calico-node": [None, ds(3, 3, 3)],
                       "tigerastatuses/calico": [cond("calico", Available="True")],
                       "tigerastatuses/apiserver": [None, cond("apiserver", Available="True")]})
    said = []
    kw.wait_cni(ops, spec.workloads, spec.tigera_status, 5, interval=0.01, status=said.append)
    assert [s.strip() for s in said] == [
        "waiting for the rollout of deployment tigera-operator/tigera-operator",
        "waiting for the rollout of daemonset calico-system/calico-node",
        "waiting for TigeraStatus calico to exist, then be Available",
        "waiting for TigeraStatus apiserver to exist, then be Available"]


def _pod_cs(name, ready_by_container):
    return {"metadata": {"name": name}, "status": {
        "conditions": [{"type": "Ready", "status": "True" if all(ready_by_container.values())
                        else "False"}],
        "containerStatuses": [{"name": c, "ready": r} for c, r in ready_by_container.items()]}}


def test_pods_ready_ignoring_sctp_containers_that_cannot_listen():
    pod = _pod_cs("a", {"serve-80-tcp": True, "serve-80-udp": True, "serve-80-sctp": False,
                        "client": True})
    assert kw.pod_ready(pod) is False
    assert kw.pod_ready(pod, ("-sctp",)) is True
    assert kw.not_ready_optional([pod], ("-sctp",)) == ["a/serve-80-sctp"]
    ops = FakeKubeOps({"pods/ns/run=1": [[pod]]})
    assert kw.wait_pods_ready(ops, "ns", "run=1", 1, "pods", optional=("-sctp",), **FAST) == [pod]


def test_a_tcp_container_not_ready_is_still_waited_on():
    pod = _pod_cs("a", {"serve-80-tcp": False, "serve-80-sctp": True})
    assert kw.pod_ready(pod, ("-sctp",)) is False
    ops = FakeKubeOps({"pods/ns/run=1": [[pod]]})
    with pytest.raises(WaitTimeout, match="pods did not happen"):
        kw.wait_pods_ready(ops, "ns", "run=1", 0.1, "pods", expect=1, optional=("-sctp",), **FAST)


def test_image_that_cannot_be_pulled_fails_the_wait_early_naming_it():
    bad = _pod("a", False, {"reason": "ErrImagePull",
                            "message": "failed to resolve reference agnhost@sha256:dead: not found"})
    backoff = _pod("a", False, {"reason": "ImagePullBackOff", "message": "Back-off pulling image"})
    ops = FakeKubeOps({"pods/ns/run=1": [[bad], [backoff], [bad]]})
    with pytest.raises(kw.WaitFailed) as err:
        kw.wait_pods_ready(ops, "ns", "run=1", 30, "probe pods of ns", **FAST)
    assert "waiting for probe pods of ns" in str(err.value)
    assert "a/coredns: ErrImagePull: failed to resolve reference" in str(err.value)
    assert ops.calls["pods/ns/run=1"] == kw.FATAL_AFTER          # no 30 s wasted


def test_a_transient_pull_error_that_heals_is_waited_through():
    bad = _pod("a", False, {"reason": "ErrImagePull", "message": "i/o timeout"})
    ops = FakeKubeOps({"pods/ns/run=1": [[bad], [bad], [_pod("a", True)]]})
    assert kw.wait_pods_ready(ops, "ns", "run=1", 5, "pods", **FAST)[0]["metadata"]["name"] == "a"


def _in(ns, pod):
    return {**pod, "metadata": {**pod["metadata"], "namespace": ns}}


def test_a_deploy_waits_for_every_namespace_in_one_list_per_poll_and_ignores_the_others():
    """wait_deploy_ready: each namespace's count, all Ready; a pod of another namespace (an
    earlier deploy's, terminating and never Ready) neither counts nor holds the wait up."""
    old = _in("np-r-1-x", _pod("a", False))
    x_a, x_b, y_a = _in("np-r-2-x", _pod("a", True)), _in("np-r-2-x", _pod("b", True)), \
        _in("np-r-2-y", _pod("a", True))
    y_slow = _in("np-r-2-y", _pod("a", False))
    ops = FakeKubeOps({"pods//run=1": [[old, x_a], [old, x_a, x_b, y_slow],
                                       [old, x_a, x_b, y_a]]})
    got = kw.wait_deploy_ready(ops, {"np-r-2-x": 2, "np-r-2-y": 1}, "run=1", 5, "pods", **FAST)
    assert got == [x_a, x_b, y_a] and ops.calls == {"pods//run=1": 3}
    ops = FakeKubeOps({"pods//run=1": [[x_a, x_b]]})
    with pytest.raises(WaitTimeout, match="no pods match|fewer pods"):
        kw.wait_deploy_ready(ops, {"np-r-2-x": 2, "np-r-2-y": 1}, "run=1", 0.1, "pods", **FAST)
