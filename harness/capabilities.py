"""Capability names, and matching a scenario's `requires:` against what a backend declares.

Why data: whether a cluster can run a scenario is a fact about the cluster, stated once per
backend/CNI, and every skip says why (Cilium's features.Set.MatchRequirements does the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Every capability a scenario may require. Keep in step with docs/scenarios.md.
KNOWN: dict[str, str] = {
    "networkpolicy": "enforces networking.k8s.io/v1 NetworkPolicy",
    "egress": "enforces egress rules",
    "ipblock": "enforces ipBlock peers (with except)",
    "ipblock-pod-ip": "ipBlock peers match pod IPs (pod-to-pod traffic selected by address)",
    "named-ports": "resolves named ports in policies",
    "endport": "enforces endPort port ranges",
    "udp": "carries and filters UDP",
    "sctp": "carries and filters SCTP",
    "fqdn": "DNS-aware egress policies (Cilium toFQDNs)",
    "l7-http": "L7 HTTP rules (Cilium)",
    "calico-policy": "Calico projectcalico.org/v3 NetworkPolicy / GlobalNetworkPolicy",
    "admin-network-policy": "AdminNetworkPolicy (policy.networking.k8s.io)",
    "external-hosts": "hosts outside the cluster that pods can reach",
    "cluster-scoped-policy": "cluster-scoped policy objects may be created",
    "engine-fault": "the policy engine on a node can be stopped, killed and restarted by the "
                    "harness (fault steps)",
    "apiserver-fault": "the API server can be stopped and started by the harness (fault steps)",
    "engine-hold": "the harness can hold the policy engine down between actions (stop or kill, "
                   "then start); derived from a fault step's actions, need not be written",
}

#: the capabilities a fault step needs: a backend declares them only for what it created itself
FAULT_CAPABILITIES = ("engine-fault", "apiserver-fault", "engine-hold")


@dataclass(frozen=True)
class Capabilities:
    """What one backend/CNI supports, and how it answers a denied packet.

    `deny_response` is "drop" (the client times out) or "reject" (the client sees a refused
    connection); verdicts need it to tell a reject from a closed port.
    `enforces` is what the backend *declares*; whether it really enforces is decided by the
    canary's probes, never by this flag.
    """

    supported: frozenset[str]
    deny_response: str = "drop"
    enforces: bool = True
    notes: dict[str, str] = field(default_factory=dict)

    def missing(self, required: list[str] | tuple[str, ...] | set[str]) -> list[str]:
        return sorted(set(required) - self.supported)

    def match(self, required) -> tuple[bool, str]:
        """(ok, reason): reason names each missing capability and why it is missing."""
        missing = self.missing(required)
        if not missing:
            return True, ""
        parts = []
        for name in missing:
            why = self.notes.get(name) or KNOWN.get(name, "unknown capability")
            parts.append(f"{name} ({why})")
        return False, "missing capability: " + ", ".join(parts)


def unknown(required) -> list[str]:
    """Capability names that netpol-proof does not know (a typo in a scenario)."""
    return sorted(set(required) - set(KNOWN))
