"""Restarting a CNI's policy agent on a cluster the harness did not create: delete the agent's
pods (gracefully, or with grace period 0 for a kill) and wait until its DaemonSet has replaced
each one with a Ready pod on the same node.

Why only this: on an existing cluster netpol-proof may not change the user's objects, so it
cannot hold an engine down (that would mean editing the DaemonSet); deleting a pod that a
DaemonSet owns is the one fault its controller undoes by itself. On a kind cluster the harness
created the same restart is the fault it offers (AgentRestarts serves both backends): the API
server and the engines run in kind's node containers, out of reach without Docker exec.
Nothing but pods matching the agent's selector in its namespace, each owned by a DaemonSet, is
ever deleted, and each deletion is logged (docs/scenarios.md, "Fault steps"; docs/sources.md §14).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

from harness.backends.kube.topology import KubeBackendBase
from harness.backends.kube.waits import Obj, pod_line, pod_ready
from harness.capabilities import FAULT_CAPABILITIES
from harness.errors import BackendError
from harness.faults.kinds import Target, kind_named
from harness.waits import WaitTimeout, wait_for


@dataclass(frozen=True)
class AgentPods:
    """Where a CNI's agent pods are: a namespace and a label selector."""

    namespace: str
    selector: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.selector}"


#: each CNI's agent pods, tried in order (docs/sources.md §14); --engine-pods overrides them
AGENT_PODS: dict[str, tuple[AgentPods, ...]] = {
    "calico": (AgentPods("calico-system", "k8s-app=calico-node"),     # operator install
               AgentPods("kube-system", "k8s-app=calico-node")),      # manifest install
    "cilium": (AgentPods("kube-system", "k8s-app=cilium"),),
    "kube-router": (AgentPods("kube-system", "k8s-app=kube-router"),),
    "kindnet": (AgentPods("kube-system", "app=kindnet"),),
    "flannel": (AgentPods("kube-flannel", "app=flannel"),),
}


def parse_agent_pods(text: str) -> AgentPods:
    """`NAMESPACE/SELECTOR` (split at the first `/`: a namespace has none, a label key may)."""
    ns, _, selector = text.partition("/")
    if not ns or not selector or "=" not in selector:
        raise ValueError(f"{text!r} is not NAMESPACE/SELECTOR, e.g. kube-system/k8s-app=cilium")
    return AgentPods(ns.strip(), selector.strip())


class AgentOps(Protocol):
    """The calls a restart makes (KubeApi is the real one)."""

    def list_pods(self, namespace: str, label_selector: str = "") -> list[Obj]: ...

    def list_nodes(self) -> list[Obj]: ...

    def delete_pod(self, namespace: str, name: str,
                   grace_period_seconds: int | None = None) -> None: ...


def _name(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name", "?")


def _node_of(pod: Obj) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def _daemonset_owner(pod: Obj) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "DaemonSet" and ref.get("controller"):
            return str(ref.get("name"))
    return None


def node_names(ops: AgentOps) -> list[str]:
    """The cluster's nodes by name: `node: N` of a fault step is the Nth (1-based)."""
    return sorted(_name(n) for n in ops.list_nodes())


def find_agent_pods(ops: AgentOps, candidates: tuple[AgentPods, ...]) -> tuple[AgentPods,
                                                                               list[Obj]]:
    """The first candidate that matches any pod, and its pods; BackendError naming every place
    looked in when none does."""
    for where in candidates:
        pods = ops.list_pods(where.namespace, where.selector)
        if pods:
            return where, pods
    raise BackendError("finding the CNI agent's pods",
                       "no pod matches " + " or ".join(str(c) for c in candidates)
                       + "; name them with --engine-pods NAMESPACE/SELECTOR")


def restart_agent(ops: AgentOps, candidates: tuple[AgentPods, ...], node: int | None,
                  kill: bool, timeout: float, status: Callable[[str], None],
                  interval: float = 1.0, backend: str = "kubeconfig") -> str:
    """Delete the agent's pods on `node` (1-based in node_names; None: every node), with grace
    period 0 when `kill`, then wait until each node has a new Ready agent pod; what was done.
    WaitTimeout names the pods that never came back."""
    how = "grace period 0" if kill else "default grace period"
    doing = ("killing" if kill else "restarting") + " the CNI agent" + \
        (f" on node {node}" if node is not None else " on every node")
    where, pods = find_agent_pods(ops, candidates)
    if node is not None:
        names = node_names(ops)
        if not 1 <= node <= len(names):
            raise BackendError(doing, f"this cluster has {len(names)} node(s)")
        pods = [p for p in pods if _node_of(p) == names[node - 1]]
        if not pods:
            raise BackendError(doing, f"no pod matching {where} runs on node {node} "
                                      f"({names[node - 1]})")
    unowned = [_name(p) for p in pods if _daemonset_owner(p) is None]
    if unowned:
        raise BackendError(doing, f"{', '.join(unowned)} (matching {where}) is not owned by a "
                                  f"DaemonSet, so nothing would bring it back; nothing deleted")
    gone = {(p.get("metadata") or {}).get("uid") for p in pods}
    nodes = {_node_of(p): _name(p) for p in pods}
    t = time.monotonic()
    for p in pods:
        ops.delete_pod(where.namespace, _name(p), 0 if kill else None)
        status(f"  [{backend}] deleted pod {where.namespace}/{_name(p)} on node {_node_of(p)} "
               f"({how}; owned by DaemonSet {_daemonset_owner(p)})")

    def missing(current: list[Obj]) -> dict[str, str]:
        """node -> the deleted pod whose replacement is not Ready there yet."""
        back = {_node_of(p) for p in current
                if (p.get("metadata") or {}).get("uid") not in gone and pod_ready(p)}
        return {n: old for n, old in nodes.items() if n not in back}

    def describe(current: list[Obj]) -> str:
        left = missing(current)
        new = [pod_line(p) for p in current if (p.get("metadata") or {}).get("uid") not in gone
               and _node_of(p) in left]
        return ("not replaced by a Ready pod: "
                + ", ".join(f"{old} (node {n})" for n, old in sorted(left.items()))
                + (f"; their replacements: {'; '.join(new)}" if new else "; no replacement yet"))

    try:
        current = wait_for(lambda: ops.list_pods(where.namespace, where.selector),
                           lambda c: not missing(c), timeout,
                           f"the DaemonSet's replacements of {len(pods)} deleted agent pod(s) "
                           f"({where}) Ready", interval, describe=describe)
    except WaitTimeout as exc:
        raise BackendError(doing, str(exc)) from None
    new = sorted(_name(p) for p in current if (p.get("metadata") or {}).get("uid") not in gone
                 and _node_of(p) in nodes)
    return (f"deleted {', '.join(sorted(nodes.values()))} ({how}); replaced by "
            f"{', '.join(new)}, Ready after {time.monotonic() - t:.1f}s")


class AgentRestarts(KubeBackendBase):
    """Fault steps as restarts of the CNI agent (restart_agent), for a backend on Kubernetes
    that can reach its cluster's pods: the kubeconfig backend once the user allowed it, the
    kind backend always. Only `restart` and `kill-restart` of the engine are done; a backend
    says why everything else is refused (HOLD_REFUSAL, APISERVER_REFUSAL), and its capabilities
    keep such scenarios from running: this is the second lock."""

    HOLD_REFUSAL = "stop, kill and start would hold the engine down: only restarts are offered"
    APISERVER_REFUSAL = "this backend does not stop the API server"
    #: the cluster's nodes, counted at deploy when faults are allowed; `node: N` is the Nth by
    #: name (node_names); 0 (Backend's default) until then, or when faults are refused
    fault_nodes = 0
    agent_pods: tuple[AgentPods, ...] = ()
    fault_timeout = 300.0

    def _engine_fault_refusal(self) -> str | None:
        """Why engine faults are refused on this run, or None."""
        return None if self.agent_pods else "no known place for the CNI agent's pods"

    def declare_faults(self, supported: set[str], notes: dict[str, str], allowed: str) -> None:
        """Into a backend's capabilities: `engine-fault` (its note `allowed`) unless refused,
        never `engine-hold` or `apiserver-fault` (their refusals as the notes)."""
        supported.difference_update(FAULT_CAPABILITIES)
        notes["engine-hold"], notes["apiserver-fault"] = self.HOLD_REFUSAL, self.APISERVER_REFUSAL
        refusal = self._engine_fault_refusal()
        if refusal is None:
            supported.add("engine-fault")
        notes["engine-fault"] = allowed if refusal is None else refusal

    def _agent_ops(self) -> AgentOps:
        """The API the restarts use: the topology's (KubeBackendBase), once deployed."""
        return self._topo().api

    def _fault_where(self) -> str:
        return ""

    def deploy(self, model):
        """Deploy as the backend does, then count the nodes `node: N` may name."""
        addresses = super().deploy(model)
        if self._engine_fault_refusal() is None:
            self.fault_nodes = len(node_names(self._agent_ops()))
        return addresses

    def fault(self, action: str, target: str, node: int | None = None) -> str:
        """Restart (`restart`: delete gracefully) or kill-restart (`kill-restart`: grace
        period 0) the CNI agent on `node` (None: every node) and wait for the DaemonSet's
        Ready replacements; what was done. Everything else is refused."""
        doing = f"{action} {target}" + (f" on node {node}" if node is not None else "") + \
            self._fault_where()
        refusal = self._engine_fault_refusal()
        if refusal is not None:
            raise BackendError(doing, refusal)
        if target != Target.ENGINE:
            raise BackendError(doing, self.APISERVER_REFUSAL)
        try:
            kind = kind_named(action)
        except ValueError as exc:
            raise BackendError(doing, str(exc)) from None
        if kind.holds:       # only a restart: the DaemonSet brings the agent back by itself
            raise BackendError(doing, self.HOLD_REFUSAL)
        return restart_agent(self._agent_ops(), self.agent_pods, node, kind.signal == "KILL",
                             self.fault_timeout, self.status, backend=self.name)

    def restore_faults(self) -> list[str]:
        """Nothing to restore: a restart never leaves the agent down (it waits for the
        DaemonSet's replacements, or fails naming them)."""
        return []

