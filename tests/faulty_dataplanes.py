"""Dataplanes that do the wrong thing on purpose: the real local backend (network namespaces,
nftables, real servers) with one deliberate fault each, so that tests can show how a wrong CNI
is reported. Not fakes: every packet is real, only the rules programmed are wrong.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Mapping

from harness.backends.local import LocalBackend


class PoliciesInTheWrongNamespace(LocalBackend):
    """Programs every NetworkPolicy of namespace x as if it were in namespace y (and deletes it
    from there): x stays open (not enforced), y is isolated instead (over-blocked)."""

    moves = {"x": "y"}

    def _moved(self, manifest: Mapping) -> dict:
        out = copy.deepcopy(dict(manifest))
        meta = out.setdefault("metadata", {})
        meta["namespace"] = self.moves.get(meta.get("namespace"), meta.get("namespace"))
        return out

    def apply_policy(self, manifest: Mapping) -> None:
        super().apply_policy(self._moved(manifest))

    def delete_policy(self, namespace: str, name: str, kind: str = "NetworkPolicy") -> None:
        super().delete_policy(self.moves.get(namespace, namespace), name, kind)


class ReportsAnotherPodCidr(LocalBackend):
    """Reports a pod CIDR that does not hold its pods (as the kube backends did when they
    hard-coded 10.244.0.0/16 on a cluster with other ranges)."""

    pod_cidr = "10.99.0.0/16"

    def deploy(self, model):
        return dataclasses.replace(super().deploy(model), pod_cidr=self.pod_cidr)


class BreaksOnLabels(LocalBackend):
    """A backend with a bug: changing labels raises an error that is not a HarnessError."""

    def set_labels(self, namespace_labels, pod_labels) -> None:
        raise TypeError("set_labels got an unexpected mapping (a bug on purpose)")


class DnsWithWrongRecords(LocalBackend):
    """The cluster DNS answers from wrong records: `missing` names are NXDOMAIN, `moved` names
    resolve to another address (a broken DNS, not a policy)."""

    missing: tuple[str, ...] = ()
    moved: dict[str, str] = {}

    def _dns_records(self, model):
        records = super()._dns_records(model)
        for name in self.missing:
            records.pop(name, None)
        records.update(self.moved)
        return records


class DnsBlockedForEveryone(LocalBackend):
    """Every applied policy also isolates the cluster DNS pod for ingress, so every lookup
    times out (DNS over-blocked) while the DNS server itself still answers on loopback."""

    def apply_policy(self, manifest: Mapping) -> None:
        super().apply_policy(manifest)
        super().apply_policy({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "faulty-dns-isolation", "namespace": "kube-system"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})

    def policy_count(self) -> int:
        return max(0, super().policy_count() - 1)
