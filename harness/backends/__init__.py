"""The registry of backends: `get_backend(name, profile, settings)`, and of the CNIs each one
runs with what they declare (`cnis`, `capabilities`).

Backends are imported lazily so that `python -m harness check` never needs the kubernetes
client or root. Each family's facts are declared once, in its own table: the emulated profiles
(harness.backends.local.profiles.SPECS), the real engines (harness.backends.real.engines.SPECS)
and the CNIs of kind, also what a kubeconfig cluster's CNI is taken to declare
(harness.backends.cni.SPECS); this module only says which table answers for a backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.capabilities import Capabilities

BACKENDS = ("local", "kind", "kubeconfig", "realnodes")


def cnis(backend: str) -> tuple[str, ...]:
    """Every CNI (or emulated profile) `backend` runs, in the order its tables list them."""
    if backend == "local":
        from harness.backends.local.profiles import PROFILES
        from harness.backends.real.engines import ENGINES
        return PROFILES + ENGINES
    if backend == "realnodes":
        from harness.backends.real.realnodes.cnis import CNIS as REALNODES
        return REALNODES
    if backend in BACKENDS:
        from harness.backends.cni import CNIS
        return CNIS
    raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")


def emulated(backend: str, cni: str) -> bool:
    """Whether `cni` on `backend` is an emulated dataplane (no Kubernetes component runs), as
    opposed to real Kubernetes code that programs policies asynchronously, like any cluster."""
    if backend != "local":
        return False
    from harness.backends.local.profiles import SPECS
    return cni in SPECS


def capabilities(backend: str, cni: str) -> Capabilities:
    """What `cni` on `backend` declares, from its family's table; ValueError naming the choices
    for a CNI the backend does not run."""
    if backend == "local":
        from harness.backends.real import engines
        if cni in engines.SPECS:
            return engines.SPECS[cni].caps
        from harness.backends.local import profiles
        if cni in profiles.SPECS:
            return profiles.SPECS[cni]
    elif backend == "realnodes" and cni in cnis(backend):
        from harness.backends.real.realnodes import cnis as realnodes_cnis
        return realnodes_cnis.SPECS[cni].caps
    elif cni in cnis(backend):
        from harness.backends import cni as kind_cnis
        return kind_cnis.SPECS[cni].caps
    raise ValueError(f"{cni!r} is not a CNI the {backend} backend runs: expected one of "
                     f"{', '.join(cnis(backend))}")


def scenarios_at_once(backend: str, jobs: int | None = None) -> int | None:
    """How many scenarios a run of `backend` has in flight: None on the local backend (the
    session decides from the CPU count unless `jobs` says), else `jobs` or the measured
    default: on a kube cluster (kind, kubeconfig, realnodes) scenarios are tenants of the one
    cluster (harness.backends.kube.tenants)."""
    if backend == "local":
        return None
    from harness.backends.kube.tenants import SCENARIOS_AT_ONCE
    return jobs or SCENARIOS_AT_ONCE


def alone_apart(backend: str) -> int:
    """On how many clusters of their own (per CNI, each running one at a time) the scenarios
    that must run alone (harness.scenario.sharing: a fault step, a cluster-scoped object) run,
    beside the others instead of in front of them; 0: none, they run where the others do.
    Where the others are tenants of one cluster (realnodes), one such scenario would hold every
    other off while it runs: the library's seven fault scenarios, one after the other with
    nothing beside them, were about 4 of its 10 minutes on kube-router at 8 at once; on one
    cluster apart they were still the run's longest path (5 of 6 minutes), on two about
    half that (docs/real-nodes.md §12)."""
    if backend == "realnodes":
        from harness.backends.real.realnodes.cnis import CLUSTERS_APART
        return CLUSTERS_APART
    return 0


def get_backend(name: str, profile: str, **options: Any):
    """Build the backend `name` for one CNI/profile. Options are backend-specific settings."""
    if name == "local":
        from harness.backends.real.engines import SPECS as ENGINES
        if profile in ENGINES:   # real engines: a real control plane, pods as namespaces
            from harness.backends.real.backend import RealBackend
            return RealBackend(profile=profile, **options)
        from harness.backends.local import LocalBackend
        return LocalBackend(profile=profile, **options)
    if name == "kind":
        from harness.backends.kind.backend import KindBackend
        return KindBackend(profile=profile, **options)
    if name == "kubeconfig":
        from harness.backends.kubeconfig import KubeconfigBackend
        return KubeconfigBackend(profile=profile, **options)
    if name == "realnodes":
        from harness.backends.real.realnodes.backend import RealNodesBackend
        return RealNodesBackend(profile=profile, **options)
    raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
