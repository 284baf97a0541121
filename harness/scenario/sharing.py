"""Which scenarios may run beside others on one cluster (as tenants of it, each in its own
namespaces), and which must run alone: the rule, as a function of the scenario alone."""

from __future__ import annotations

from harness.scenario.types import Scenario

#: policy kinds whose objects live in a namespace; every other kind is cluster-scoped
NAMESPACED_POLICY_KINDS = ("NetworkPolicy", "CiliumNetworkPolicy")


def runs_alone(scenario: Scenario) -> str | None:
    """Why `scenario` must run with no other scenario on its cluster, or None.

    The rule where scenarios run at once as tenants of one cluster (Backend.tenant):
    what a scenario creates lives in its own namespaces, a NetworkPolicy selects pods of its
    own namespace only, and every probe starts in one of its own pods, so namespaced scenarios
    cannot change each other's cells. A scenario runs alone when it reaches past its
    namespaces: a cluster-scoped policy object (Calico's GlobalNetworkPolicy, an
    AdminNetworkPolicy, a Cilium clusterwide policy), labels on a system namespace or pod (the
    cluster's DNS, which every tenant's policies may select), or a fault step (an engine or the
    API server stopped under everyone)."""
    for step in scenario.steps:
        if step.fault is not None:
            return f"step {step.index + 1} has a fault step"
        for doc in step.apply:
            kind = str(doc.manifest.get("kind"))
            if kind not in NAMESPACED_POLICY_KINDS or \
                    not (doc.manifest.get("metadata") or {}).get("namespace"):
                return f"step {step.index + 1} applies the cluster-scoped {kind} {doc.key}"
        system = {n.name for n in scenario.model.namespaces if n.system}
        for ns in step.namespace_labels:
            if ns in system:
                return f"step {step.index + 1} labels the system namespace {ns}"
        for pod in step.pod_labels:
            if pod.split("/", 1)[0] in system:
                return f"step {step.index + 1} labels the system pod {pod}"
    return None
