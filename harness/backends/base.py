"""The backend interface: all the runner, the prober, the canary and the session know about a
cluster, declared whole on one base class that every backend derives from.

Why small: the local netns dataplane, the real engines, kind clusters and existing clusters must
be interchangeable under the same runner. A backend knows how to make the topology exist, change
labels, store policies and run a command inside a pod; it knows nothing of expectations or
verdicts (kind's providers/provider.go has eight methods for the same reason).

Why one base with defaults: callers never ask a backend whether it has a member (no `getattr`,
`hasattr` or protocol `isinstance`; tests/test_layers.py keeps it so). What every backend must
do is abstract; what only some can do has a default here that is either neutral (says nothing
more, maps nothing, restores nothing) or refuses with a HarnessError naming the backend and what
it cannot do, the way the upstream e2e framework's NullProvider answers for providers that lack
a feature (docs/sources.md §16).

Lifecycle: `up()` once per cluster (a CNI profile, a kind cluster), then per scenario
`deploy(model)` ... `undeploy()`, then `down()`. Everything a backend creates is named through
harness.naming so that `cleanup` can find leftovers.

Names a backend receives are *logical*: namespace `x`, pod `x/a`, external host `ext:name`.
A backend that runs on a shared cluster maps them to real names (and rewrites the automatic
`kubernetes.io/metadata.name` label in policies accordingly); callers never see real names.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager, Mapping, Sequence

from harness.capabilities import Capabilities
from harness.errors import BackendError, ExecResult
from harness.lifecycle import Terminated
from harness.model import Addresses, Model

__all__ = ["Backend", "Capabilities", "ExecResult", "Addresses", "Leftover", "Cleaner"]


class Backend(abc.ABC):
    """The base of every backend: the abstract members each must have, and the optional ones
    with their defaults (see the module docstring). An optional member is overridden by the
    backends that have it; a caller just calls it."""

    # -- what every backend says of itself -------------------------------------------------
    #: "local", "kind", "kubeconfig" or "realnodes"
    name: str
    #: the CNI or dataplane profile: "enforcing", "open", "kube-router", "calico", "cilium", ...
    profile: str
    #: the probe tools its pods carry, for probes.argv_for: "debian" (curl, nslookup, python3
    #: in the local backend's namespaces) or "agnhost" (the kube backends' client image)
    toolkit: str
    #: the run id naming everything this cluster creates (harness.naming); every cluster of a
    #: run has one of its own (harness.scheduler names the extra ones)
    run_id: str
    #: clusters of this backend that can exist side by side in one run (harness.scheduler):
    #: 1 means the run's scenarios share one cluster, one at a time
    max_parallel: int = 1
    #: how many nodes a fault step's `node: N` may name (1..fault_nodes); 0: this backend runs
    #: no fault steps at all (harness.faults.step refuses before anything is watched)
    fault_nodes: int = 0
    #: set by `interrupt()`: the run is stopping
    interrupted: bool = False

    # -- what every backend must do ------------------------------------------------------------
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this backend/profile supports and how it answers denied packets."""

    @abc.abstractmethod
    def up(self) -> None:
        """Bring the cluster up (or attach to it) and wait until it is ready. Idempotent."""

    @abc.abstractmethod
    def down(self) -> None:
        """Remove everything `up` and `deploy` created. Safe to call twice and after a failure."""

    @abc.abstractmethod
    def deploy(self, model: Model) -> Addresses:
        """Create namespaces, pods (serving their ports), Services and external hosts; wait until
        every pod serves; return the real addresses."""

    @abc.abstractmethod
    def undeploy(self) -> None:
        """Remove the topology of the current scenario (namespaces, pods, policies)."""

    @abc.abstractmethod
    def set_labels(self, namespace_labels: Mapping[str, Mapping[str, str | None]],
                   pod_labels: Mapping[str, Mapping[str, str | None]]) -> None:
        """Change labels; None removes a label. Takes effect for policy selection."""

    @abc.abstractmethod
    def apply_policy(self, manifest: Mapping) -> None:
        """Create, or replace by name, one policy (NetworkPolicy or a CNI's own kind)."""

    @abc.abstractmethod
    def delete_policy(self, namespace: str, name: str, kind: str = "NetworkPolicy") -> None:
        """Delete one policy by name."""

    @abc.abstractmethod
    def policy_count(self) -> int:
        """How many policies the cluster's API currently holds for this run (proof of acceptance)."""

    @abc.abstractmethod
    def exec(self, endpoint: str, argv: Sequence[str], timeout: float) -> ExecResult:
        """Run argv inside a pod (`x/a`) or an external host (`ext:name`).

        Returns the real exit status; raises harness.errors.ExecError when the status is unknown
        (the exec transport failed), never a made-up exit code. After `interrupt()` it raises
        Terminated instead (`stop_if_interrupted`).
        """

    # -- optional, neutral: a backend that has nothing to say says nothing ----------------------
    def describe(self) -> str:
        """Exactly what runs, in words, for the run's header and the reports' meta
        ("dataplanes"); "" when the backend and CNI names say it all (a kube cluster)."""
        return ""

    def probe_tools(self) -> str:
        """Which probe binaries run, for the reports' meta; "" when they are the pods' own
        (the kube backends' client image)."""
        return ""

    def real_dns_name(self, name: str) -> str:
        """A DNS name as this cluster knows it (prober.real_name): the name as written, unless
        the backend maps the scenario's logical namespaces to real ones."""
        return name

    def dns_control(self) -> tuple[str, str] | None:
        """(endpoint, DNS server address) of a client that asks the cluster DNS for the
        loopback control of a DNS probe (prober.loopback_probe), or None: the DNS pod itself
        is asked on 127.0.0.1."""
        return None

    def sharing(self, alone: bool) -> ContextManager:
        """Held while one scenario runs on this cluster: where scenarios run as tenants of one
        cluster, one that must run `alone` (harness.scenario.sharing) waits for the others and
        keeps them off (harness.backends.sharing); elsewhere nothing to wait for."""
        return contextlib.nullcontext()

    def park(self) -> None:
        """The scenario ended without an error: where this backend can, its topology is kept
        for a later scenario of the same model (`keeps`), without the scenario's policies;
        elsewhere (this default) it is undeployed."""
        self.undeploy()

    def keeps(self, model: Model) -> bool:
        """Whether `deploy(model)` would reuse a topology `park` kept (the scheduler hands such
        a scenario this cluster first); this default keeps none."""
        return False

    def tenant(self, run_id: str) -> Backend | None:
        """A backend on this one's cluster under run id `run_id`, for a scenario run beside
        others (its own namespaces, nothing brought up twice); None: an extra cluster of its own
        is built instead (harness.session)."""
        return None

    def interrupt(self) -> None:
        """The run is stopping (Ctrl-C, SIGTERM) while a scenario may run on this cluster in
        another thread: every later `exec` raises Terminated, so that scenario ends at its
        next probe (and tears its topology down); the cluster's `down()` follows. Safe to call
        from any thread, any number of times."""
        self.interrupted = True

    def stop_if_interrupted(self, doing: str = "") -> None:
        """Raise Terminated when `interrupt()` was called: what every `exec` (and any long
        wait of a backend) calls first."""
        if self.interrupted:
            raise Terminated(f"{self.name} run {self.run_id} ({self.profile}) is stopping"
                             + (f": not {doing}" if doing else ""))

    # -- optional, refusing: a backend that cannot do it says so --------------------------------
    def fault(self, action: str, target: str, node: int | None = None) -> str:
        """Do `action` (stop | kill | start | restart | kill-restart) to `target` (engine |
        apiserver) on `node` (1-based; None: every node); returns what was done, in words.
        Only a backend that created its cluster itself, and declares the matching capabilities
        (engine-fault, engine-hold, apiserver-fault), can; this one refuses."""
        raise self.cannot(f"{action} {target}", "it runs no fault steps: it stops nothing")

    def restore_faults(self) -> list[str]:
        """Start again whatever `fault` stopped; what was restored (nothing, for a backend that
        stops nothing). Safe to call any time."""
        return []

    def cannot(self, doing: str, why: str) -> BackendError:
        """The error a refusing member raises, naming this backend, its CNI, what it cannot do
        and why: "while stop engine on the kubeconfig backend (calico): ..."."""
        return BackendError(f"{doing} on the {self.name} backend ({self.profile})", why)


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
