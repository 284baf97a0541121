"""Scenarios at once on one Kubernetes cluster: the tenants of a kube backend (issue 20 item 1).

A tenant is a scenario's view of a cluster another backend attached (its host): the same API
server, nodes, CNI and DNS; a run id of its own, so `np-<its run>-<ns>` namespaces carrying its
own run label, created and deleted by it alone. A NetworkPolicy selects pods of its own
namespace only, and every probe starts in a pod of the scenario, so namespaced scenarios
cannot change each other's cells. A scenario that reaches past its namespaces (cluster-scoped
objects, a system namespace's labels, fault steps) runs alone: harness.scenario.sharing says
which, and the host's Sharing holds the cluster's other tenants off while it runs. The
scheduler asks `tenant()` for each extra cluster it would otherwise bring up.

Why one mixin for the kind, kubeconfig and realnodes backends: after the cluster exists they
are the same API calls (harness.backends.kube.topology); so is sharing it. The harness-as-kubelet
tier (harness.backends.real.backend) is not one: its scenarios each get a cluster of their own.
"""

from __future__ import annotations

import threading
from typing import Callable, ContextManager

from harness.backends.kube.topology import KubeBackendBase
from harness.backends.sharing import Sharing
from harness.capabilities import Capabilities
from harness.errors import BackendError

#: the tenants a cluster may have: the run's --netpol-jobs decides how many at once
MAX_TENANTS = 64
#: scenarios at once on one kube cluster, as tenants: the default of --netpol-jobs on the kube
#: backends, measured on this project's 2-core machine with the cluster on it (realnodes): the
#: library on kube-router took 209-277 s at 8 at once (10 runs) and 264 s at 12, its deploys
#: 2.5 times as long (the two cores are the limit), docs/real-nodes.md §14. A scenario's round
#: has one probe exec in flight per source pod (at most 9 in the library), so about 70 at once
SCENARIOS_AT_ONCE = 8

_STATE_LOCK = threading.RLock()


class SharedCluster(KubeBackendBase):
    """The host side: `tenant()`, `sharing()`, interrupts reaching every tenant, and the
    tenants brought down first (`down_tenants()`, which each host's `down()` calls)."""

    max_parallel = MAX_TENANTS

    def _shared(self) -> tuple[Sharing, list[KubeTenant]]:
        with _STATE_LOCK:
            state = self.__dict__.get("_shared_state")
            if state is None:
                state = self.__dict__["_shared_state"] = (Sharing(), [])
            return state

    def tenant(self, run_id: str) -> KubeTenant:
        """A backend on this one's cluster under run id `run_id`; brought up by the scheduler,
        which never brings a second cluster up for it."""
        t = KubeTenant(self, run_id)
        with _STATE_LOCK:
            self._shared()[1].append(t)
        return t

    def sharing(self, alone: bool) -> ContextManager:
        return self._shared()[0].held(alone)

    def interrupt(self) -> None:
        super().interrupt()
        for t in list(self._shared()[1]):
            t.interrupt()

    def down_tenants(self, delete: bool = True) -> list[str]:
        """Bring every tenant down (its namespaces deleted and awaited, unless the run is
        stopping); the failures. `delete=False`: the whole cluster goes next, made by this run
        and by no other (realnodes): nothing is deleted through the API, the tenants are only
        forgotten; the cluster's teardown removes their pods with everything else."""
        with _STATE_LOCK:
            tenants = list(self._shared()[1])
            self._shared()[1].clear()
        if not delete:
            for t in tenants:
                t.topology = None
            return []
        errors = []
        for t in tenants:
            try:
                t.down()
            except BackendError as exc:
                errors.append(str(exc))
        return errors


class KubeTenant(KubeBackendBase):
    """A scenario's view of its host's cluster (see the module docstring): everything but the
    topology is the host's (capabilities, what runs, faults); the topology is its own, on the
    host's API client, with its own run id."""

    def __init__(self, host: SharedCluster, run_id: str):
        self.host, self.run_id = host, run_id
        self.name, self.profile = host.name, host.profile
        self.status: Callable[[str], None] = host.status
        self.topology = None

    @property
    def fault_nodes(self) -> int:    # type: ignore[override]
        return self.host.fault_nodes

    def capabilities(self) -> Capabilities:
        return self.host.capabilities()

    def describe(self) -> str:
        return self.host.describe()

    def probe_tools(self) -> str:
        return self.host.probe_tools()

    def sharing(self, alone: bool) -> ContextManager:
        return self.host.sharing(alone)

    def up(self) -> None:
        if self.topology is not None:
            return
        if self.host.topology is None:
            raise BackendError(f"using the {self.name} cluster of run {self.host.run_id} as "
                               f"tenant {self.run_id}", "that cluster is not up")
        self.topology = self.host.topology.for_run(self.run_id, self._deploying)

    def down(self) -> None:
        """Every namespace of this tenant's run deleted and awaited, a scenario's still
        deployed or kept too (not when the run is stopping: `cleanup` finds them by label)."""
        try:
            if not self.interrupted and self.topology is not None and self.topology.generation:
                self.topology.undeploy(wait=True)
        finally:
            self.topology = None

    def fault(self, action: str, target: str, node: int | None = None) -> str:
        return self.host.fault(action, target, node)

    def restore_faults(self) -> list[str]:
        return self.host.restore_faults()
