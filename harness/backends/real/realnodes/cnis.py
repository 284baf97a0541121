"""The CNIs of `--backend realnodes`, as data: how each wires pods, which policy engine it runs,
what it declares and how the run header names it. Other CNIs are one row each.

A row's `engine` is the policy engine's row in harness.backends.real.engines (None: no engine;
kube-proxy runs on every node whatever the row). What a CNI declares is what that engine row
declares on today's harness-as-kubelet tier, minus what this backend does not do
(`NOT_HERE`): no hosts outside the cluster (the kube code has none). Fault steps stop, kill
and start the engine's node process or the run's kube-apiserver, as on that tier (this
backend's `fault()`); such a scenario runs alone on the cluster.
Whether anything is enforced is the canary's finding, never this table's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from harness.backends.kube.tenants import SCENARIOS_AT_ONCE as KUBE_SCENARIOS_AT_ONCE
from harness.backends.real import engines
from harness.capabilities import Capabilities

#: what the engines declare on the harness-as-kubelet tier that this backend does not do
NOT_HERE: dict[str, str] = {
    "external-hosts": "no hosts outside the cluster on real nodes: the kube code deploys pods "
                      "and Services only",
    "apiserver-fault": "every probe is exec'd through the API server (the kube path), so "
                       "while it is down no probe runs and nothing can be observed (a run "
                       "saw one of two watched cells give no verdict); the harness-as-kubelet "
                       "tier (`--backend local`) runs this, its probes entering the pods' "
                       "namespaces directly",
}
_SCTP = "no SCTP in this kernel (no sctp module): the SCTP containers would never be Ready"

#: scenarios at once on one cluster, as tenants: the kube backends' measured default
SCENARIOS_AT_ONCE = KUBE_SCENARIOS_AT_ONCE
#: clusters of their own per CNI for the scenarios that must run alone (harness.backends.
#: alone_apart), each brought up when its first such scenario starts
CLUSTERS_APART = 2


@dataclass(frozen=True)
class RealNodesCni:
    """One CNI on real nodes (see the module docstring)."""

    name: str
    #: how pods are wired: "bridge" (the CNI plugins' bridge + host-local, like k3s),
    #: "calico" (Calico's CNI plugin), "flannel" (real flanneld's VXLAN, the bridge plugin;
    #: Calico's CNI plugin with the calico engine: Canal)
    network: str
    #: the policy engine (a row of harness.backends.real.engines), None: none runs
    engine: str | None
    #: the CNI's words in the run header, after the control plane and the kubelets
    describe: str
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def engine_row(self) -> str:
        """The engines row RealNodesCluster starts: the engine, or `none` (kube-proxy only)."""
        return self.engine or "none"

    @cached_property
    def caps(self) -> Capabilities:
        base = engines.spec(self.engine_row).caps
        notes = {**base.notes, **NOT_HERE, "sctp": _SCTP, **dict(self.notes)}
        return Capabilities(frozenset(base.supported - set(NOT_HERE) - {"sctp"}),
                            base.deny_response, base.enforces, notes)


_BRIDGE = "real CNI plugins (bridge, host-local, loopback, portmap {cni})"
_FLANNEL = ("real flanneld {flanneld} (VXLAN) + real CNI plugins (bridge, host-local, loopback, "
            "portmap {cni}; the bridge configuration written by netpol-proof from flanneld's "
            "subnet.env, as flannel's CNI plugin would make it)")

SPECS: dict[str, RealNodesCni] = {c.name: c for c in (
    RealNodesCni("kube-router", "bridge", "kube-router",
                 f"real kube-router {{kube-router}} + {_BRIDGE}"),
    RealNodesCni("calico", "calico", "calico", "real Calico Felix {calico-felix} + real Calico "
                 "CNI plugin {calico-felix} (host-local IPAM)"),
    RealNodesCni("none", "bridge", None, f"no policy engine + {_BRIDGE}"),
    # real flanneld (harness.backends.real.realnodes.flannel): alone it enforces nothing, the
    # seed's false security on the real thing; with kube-router's policy controller it is the
    # pair k3s installs by default, named `k3s` (a CNI name is [a-z0-9-]: no `+`)
    RealNodesCni("flannel", "flannel", None, f"{_FLANNEL}, no policy engine", (
        ("enforces", "real flanneld wires and routes the pods and programs no policy rule; no "
                     "engine runs: the real API server accepts every policy and nothing "
                     "enforces it (what a Flannel cluster does)"),)),
    RealNodesCni("k3s", "flannel", "kube-router",
                 f"real kube-router {{kube-router}} + {_FLANNEL}"),
    # Canal (harness.backends.real.realnodes.canal): flanneld's VXLAN between the nodes,
    # Calico's CNI plugin wiring the pods, Felix enforcing
    RealNodesCni("canal", "flannel", "calico", "real Calico Felix {calico-felix} + real Calico "
                 "CNI plugin {calico-felix} (host-local IPAM, usePodCidr) + real flanneld "
                 "{flanneld} (VXLAN), as Calico's canal.yaml puts them together"),
)}

CNIS = tuple(SPECS)


def spec(cni: str) -> RealNodesCni:
    try:
        return SPECS[cni]
    except KeyError:
        raise ValueError(f"unknown CNI {cni!r} for the realnodes backend: expected one of "
                         f"{', '.join(CNIS)}") from None
