"""Readiness waits of a Kubernetes cluster behind a narrow `KubeOps` boundary: CNI rollouts,
TigeraStatus, nodes Ready, CoreDNS Ready, probe pods Ready.

Why a narrow protocol: the readiness and retry logic is the part of cluster bring-up most likely
to be wrong (kubectl wait on a missing object fails at once; kind --wait returns 0 on timeout,
docs/sources.md §1.5, §2.3), and it can only be tested here against a fake. KubeOps returns plain API dicts
(what `kubectl get -o json` shows), so FakeKubeOps in the tests is a dict table. Every wait runs
on harness.waits (tenacity), has a deadline, and names what never became ready.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from harness.backends.cni import Workload
from harness.errors import BackendError
from harness.waits import wait_for

Obj = dict[str, Any]


class KubeOps(Protocol):
    """The few reads readiness needs. Each returns the object as an API dict, or None if absent."""

    def get_workload(self, kind: str, namespace: str, name: str) -> Obj | None: ...

    def get_custom_object(self, group: str, version: str, plural: str, name: str,
                          namespace: str | None = None) -> Obj | None: ...

    def list_nodes(self) -> list[Obj]: ...

    def list_pods(self, namespace: str, label_selector: str = "") -> list[Obj]:
        """Pods of `namespace` ("": of every namespace) matching `label_selector`."""


def _conditions(obj: Obj | None) -> dict[str, Obj]:
    return {c.get("type"): c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def _true(obj: Obj | None, cond: str) -> bool:
    return _conditions(obj).get(cond, {}).get("status") == "True"


def rollout_state(kind: str, obj: Obj | None) -> tuple[bool, str]:
    """(complete, description) with `kubectl rollout status` semantics for a DaemonSet or a
    Deployment: the controller saw the newest spec, and every replica is updated and available."""
    if obj is None:
        return False, "does not exist yet"
    gen = (obj.get("metadata") or {}).get("generation", 0)
    st = obj.get("status") or {}
    if st.get("observedGeneration", 0) < gen:
        return False, f"controller has not observed generation {gen} yet"
    if kind == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        upd, avail = st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0)
    else:
        want = (obj.get("spec") or {}).get("replicas", 1)
        upd, avail = st.get("updatedReplicas", 0), st.get("availableReplicas", 0)
    desc = f"{avail}/{want} available, {upd}/{want} updated"
    return (want > 0 and upd >= want and avail >= want), desc


class WaitFailed(BackendError):
    """A wait met a failure condition (an image that cannot be pulled): waiting on is pointless."""


#: container waiting reasons that do not heal by themselves (after FATAL_AFTER polls in a row)
FATAL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError")
FATAL_AFTER = 3


def _guard(check: Callable[[], Any]) -> Callable[[], Any]:
    """An API error while polling is a state to report ("API error: ..."), not an abort: the API
    server of a fresh cluster refuses connections for a while. WaitFailed passes through."""

    def guarded():
        try:
            return check()
        except WaitFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - any client error is "not ready yet"
            return ApiFailure(f"API error: {type(exc).__name__}: {exc}")
    return guarded


class ApiFailure(str):
    """A poll that failed with an API error (kept as the state the timeout message shows)."""


def wait_rollout(ops: KubeOps, workload: Workload, timeout: float, interval: float = 2.0) -> str:
    """Wait until `workload` exists and has rolled out; returns its final description."""
    def check():
        return rollout_state(workload.kind, ops.get_workload(workload.kind, workload.namespace,
                                                             workload.name))
    state = wait_for(_guard(check), lambda s: not isinstance(s, ApiFailure) and s[0], timeout,
                     f"rollout of {workload}", interval,
                     describe=lambda s: s if isinstance(s, ApiFailure) else s[1])
    return state[1]


def wait_tigerastatus(ops: KubeOps, name: str, timeout: float, interval: float = 5.0) -> None:
    """Wait until TigeraStatus `name` exists (kubectl wait would fail at once, docs/sources.md §2.5 #3),
    then until its Available condition is True; Degraded messages appear in the timeout text."""
    def check():
        return ops.get_custom_object("operator.tigera.io", "v1", "tigerastatuses", name)

    def describe(obj):
        if isinstance(obj, ApiFailure):
            return obj
        if obj is None:
            return "does not exist yet (the operator has not reconciled)"
        conds = _conditions(obj)
        parts = [f"{t}={c.get('status')}" + (f" ({c.get('message')})" if c.get("message") else "")
                 for t, c in sorted(conds.items())]
        return ", ".join(parts) or "no conditions yet"

    wait_for(_guard(check), lambda o: isinstance(o, dict) and _true(o, "Available"), timeout,
             f"TigeraStatus {name} Available", interval, describe=describe)


def _node_line(node: Obj) -> str:
    name = (node.get("metadata") or {}).get("name", "?")
    ready = _conditions(node).get("Ready", {})
    why = ready.get("reason") or ready.get("message") or ""
    return f"{name}={ready.get('status', 'Unknown')}" + (f" ({why})" if why and
                                                          ready.get("status") != "True" else "")


def wait_nodes_ready(ops: KubeOps, count: int, timeout: float, interval: float = 2.0) -> None:
    """Wait until `count` nodes exist and every node is Ready (a CNI-less node stays NotReady)."""
    def done(nodes):
        return (not isinstance(nodes, ApiFailure) and len(nodes) >= count
                and all(_true(n, "Ready") for n in nodes))

    def describe(nodes):
        if isinstance(nodes, ApiFailure):
            return nodes
        return f"{len(nodes)}/{count} nodes: " + ", ".join(_node_line(n) for n in nodes)

    wait_for(_guard(ops.list_nodes), done, timeout, f"{count} nodes Ready", interval,
             describe=describe)


def pod_line(pod: Obj) -> str:
    """`name: phase, not ready: container (reason: message)` — what a stuck pod is doing."""
    name = (pod.get("metadata") or {}).get("name", "?")
    st = pod.get("status") or {}
    parts = [st.get("phase", "Unknown")]
    for cs in st.get("containerStatuses") or []:
        if not cs.get("ready"):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            why = waiting.get("reason", "")
            if waiting.get("message"):
                why += f": {waiting['message']}"
            parts.append(f"{cs.get('name')} not ready" + (f" ({why})" if why else ""))
    return f"{name}: " + ", ".join(parts)


def pod_ready(pod: Obj, optional: tuple[str, ...] = ()) -> bool:
    """Ready, or every container except those named with an `optional` suffix is ready.

    Why optional containers: SCTP needs the host's sctp module [unverified on GitHub runners];
    a pod whose SCTP server cannot listen still serves TCP and UDP, and its SCTP probes become
    probe errors through the positive control instead of failing the whole deployment.
    """
    if _true(pod, "Ready"):
        return True
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if not optional or not statuses:
        return False
    return all(cs.get("ready") for cs in statuses if not cs.get("name", "").endswith(optional))


def not_ready_optional(pods: list[Obj], optional: tuple[str, ...]) -> list[str]:
    """`pod/container` of optional containers that are not ready (to report, not to wait on)."""
    return [f"{(p.get('metadata') or {}).get('name')}/{cs.get('name')}" for p in pods
            for cs in (p.get("status") or {}).get("containerStatuses") or []
            if optional and cs.get("name", "").endswith(optional) and not cs.get("ready")]


def fatal_containers(pods: list[Obj]) -> list[str]:
    """`pod/container: reason: message` of containers waiting for a reason that will not heal."""
    out = []
    for p in pods:
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FATAL_REASONS:
                out.append(f"{(p.get('metadata') or {}).get('name')}/{cs.get('name')}: "
                           f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": "))
    return out


def wait_pods_ready(ops: KubeOps, namespace: str, label_selector: str, timeout: float,
                    what: str, expect: int = 1, interval: float = 1.0,
                    optional: tuple[str, ...] = (),
                    checkpoint: Callable[[], None] | None = None) -> list[Obj]:
    """Wait until at least `expect` pods match and all are Ready (ignoring containers named
    with an `optional` suffix); returns them. A container stuck on an image pull (FATAL_REASONS,
    FATAL_AFTER polls in a row) fails the wait at once, naming pod, container and message.
    `checkpoint` is called before each poll: it raises to end the wait (an interrupted run)."""
    return _wait_ready(ops, namespace, {namespace: expect}, label_selector, timeout, what,
                       interval, optional, checkpoint)


def wait_deploy_ready(ops: KubeOps, expect: dict[str, int], label_selector: str, timeout: float,
                      what: str, interval: float = 0.5, optional: tuple[str, ...] = (),
                      checkpoint: Callable[[], None] | None = None) -> list[Obj]:
    """wait_pods_ready over several namespaces at once: until each namespace of `expect` has at
    least its count of pods matching `label_selector`, all Ready (but `optional` containers);
    returns them. One list of every namespace per poll (`list_pods("")`), the pods of other
    namespaces (an earlier deploy's, still terminating) left out: one call where a wait per
    namespace made one per namespace, one after the other."""
    return _wait_ready(ops, "", expect, label_selector, timeout, what, interval, optional,
                       checkpoint)


def _wait_ready(ops: KubeOps, listed: str, expect: dict[str, int], label_selector: str,
                timeout: float, what: str, interval: float, optional: tuple[str, ...],
                checkpoint: Callable[[], None] | None) -> list[Obj]:
    """The two waits above: list `listed` ("": every namespace, then only `expect`'s pods)."""
    streak = [0]

    def ns_of(pod: Obj) -> str:
        return listed or (pod.get("metadata") or {}).get("namespace", "")

    def check():
        if checkpoint is not None:
            checkpoint()
        pods = [p for p in ops.list_pods(listed, label_selector) if ns_of(p) in expect]
        fatal = fatal_containers(pods)
        streak[0] = streak[0] + 1 if fatal else 0
        if streak[0] >= FATAL_AFTER:
            raise WaitFailed(f"waiting for {what}", "; ".join(fatal))
        return pods

    def done(pods):
        if isinstance(pods, ApiFailure):
            return False
        count = {ns: 0 for ns in expect}
        for p in pods:
            count[ns_of(p)] += 1
        return (all(count[ns] >= n for ns, n in expect.items())
                and all(pod_ready(p, optional) for p in pods))

    def describe(pods):
        if isinstance(pods, ApiFailure):
            return pods
        if not pods:
            return f"no pods match {label_selector!r} in {', '.join(expect)}"
        if listed:
            return "; ".join(pod_line(p) for p in pods)
        return "; ".join(f"{ns_of(p)}/{pod_line(p)}" for p in pods
                         if not pod_ready(p, optional)) or "fewer pods than expected"

    return wait_for(_guard(check), done, timeout, what, interval, describe=describe)


def wait_coredns(ops: KubeOps, timeout: float, interval: float = 2.0) -> None:
    """CoreDNS Ready; a pod stuck in ContainerCreating here is usually the CNI (e.g. Flannel's
    missing `bridge` plugin, docs/sources.md §4.3): a harness error, never a policy result."""
    wait_pods_ready(ops, "kube-system", "k8s-app=kube-dns", timeout,
                    "CoreDNS pods (kube-system, k8s-app=kube-dns) Ready (if they stay "
                    "ContainerCreating, the CNI is not working)", expect=1, interval=interval)


def wait_cni(ops: KubeOps, workloads: Sequence[Workload], tigera: Sequence[str],
             timeout: float, interval: float = 2.0, status: Callable[[str], None] = print) -> None:
    """A CNI's own readiness condition: each workload rolled out in order, then every TigeraStatus
    Available (Calico operator mode, docs/sources.md §2.3)."""
    for w in workloads:
        status(f"  waiting for the rollout of {w}")
        wait_rollout(ops, w, timeout, interval)
    for name in tigera:
        status(f"  waiting for TigeraStatus {name} to exist, then be Available")
        wait_tigerastatus(ops, name, timeout, interval)
