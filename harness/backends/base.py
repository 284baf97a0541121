"""The backend interface: all the runner, the prober and the canary know about a cluster.

Why small: the local netns dataplane, kind clusters and existing clusters must be
interchangeable under the same runner. A backend knows how to make the topology exist, change
labels, store policies and run a command inside a pod; it knows nothing of expectations or
verdicts (kind's providers/provider.go has eight methods for the same reason).

Lifecycle: `up()` once per cluster (a CNI profile, a kind cluster), then per scenario
`deploy(model)` ... `undeploy()`, then `down()`. Everything a backend creates is named through
harness.naming so that `cleanup` can find leftovers.

Names a backend receives are *logical*: namespace `x`, pod `x/a`, external host `ext:name`.
A backend that runs on a shared cluster maps them to real names (and rewrites the automatic
`kubernetes.io/metadata.name` label in policies accordingly); callers never see real names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

from harness.capabilities import Capabilities
from harness.errors import ExecResult
from harness.model import Addresses, Model

__all__ = ["Backend", "FaultInjector", "Capabilities", "ExecResult", "Addresses", "Leftover",
           "Cleaner"]


@runtime_checkable
class Backend(Protocol):
    #: "local", "kind" or "kubeconfig"
    name: str
    #: the CNI or dataplane profile: "enforcing", "open", "calico", "cilium", "flannel", "kindnet"
    profile: str
    #: the probe tools its pods carry, for probes.argv_for: "debian" (curl, nslookup, python3
    #: in the local backend's namespaces) or "agnhost" (the kube backends' client image)
    toolkit: str

    def capabilities(self) -> Capabilities:
        """What this backend/profile supports and how it answers denied packets."""

    def up(self) -> None:
        """Bring the cluster up (or attach to it) and wait until it is ready. Idempotent."""

    def down(self) -> None:
        """Remove everything `up` and `deploy` created. Safe to call twice and after a failure."""

    def deploy(self, model: Model) -> Addresses:
        """Create namespaces, pods (serving their ports), Services and external hosts; wait until
        every pod serves; return the real addresses."""

    def undeploy(self) -> None:
        """Remove the topology of the current scenario (namespaces, pods, policies)."""

    def set_labels(self, namespace_labels: Mapping[str, Mapping[str, str | None]],
                   pod_labels: Mapping[str, Mapping[str, str | None]]) -> None:
        """Change labels; None removes a label. Takes effect for policy selection."""

    def apply_policy(self, manifest: Mapping) -> None:
        """Create, or replace by name, one policy (NetworkPolicy or a CNI's own kind)."""

    def delete_policy(self, namespace: str, name: str, kind: str = "NetworkPolicy") -> None:
        """Delete one policy by name."""

    def policy_count(self) -> int:
        """How many policies the cluster's API currently holds for this run (proof of acceptance)."""

    def exec(self, endpoint: str, argv: Sequence[str], timeout: float) -> ExecResult:
        """Run argv inside a pod (`x/a`) or an external host (`ext:name`).

        Returns the real exit status; raises harness.errors.ExecError when the status is unknown
        (the exec transport failed), never a made-up exit code.
        """


@runtime_checkable
class FaultInjector(Protocol):
    """A backend that fault steps can act on (docs/scenarios.md, "Fault steps"): only one that
    created its cluster itself, and it declares the matching capabilities (engine-fault,
    engine-hold, apiserver-fault)."""

    #: how many nodes `node: N` may name (1..fault_nodes)
    fault_nodes: int

    def fault(self, action: str, target: str, node: int | None = None) -> str:
        """Do `action` (stop | kill | start | restart | kill-restart) to `target` (engine |
        apiserver) on `node` (1-based; None: every node); returns what was done, in words."""

    def restore_faults(self) -> list[str]:
        """Start again whatever `fault` stopped; what was restored. Safe to call any time."""


# -- what `python -m harness cleanup` finds: each backend's cleaner returns these ------------
@dataclass(frozen=True)
class Leftover:
    """One object of a dead run: what it is, its name, and the run it belonged to."""

    kind: str          # "netns", "etc-netns", "state-file", "workdir", "kind-cluster", ...
    name: str
    run_id: str
    cleaner: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name} (run {self.run_id})"


@dataclass(frozen=True)
class Cleaner:
    name: str
    find: Callable[[], list[Leftover]]
    remove: Callable[[Leftover], str | None]   # an error text, or None
