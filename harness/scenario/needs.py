"""What a scenario's content needs of a backend, derived from its policies, tables and probes.

Why derived: `requires:` is written by hand, and a scenario that forgets a capability would run
on a backend lacking it and report the missing feature as the CNI's failure (an ipBlock over
pod IPs on a CNI that applies ipBlock to traffic from outside the cluster only reads as
over-blocked). The needs are computed here, as a fault step's are from its actions
(types.Fault.needs), and `Scenario.needs` holds them all; a backend lacking one skips the
scenario with the reason.

What is a need and what is only advice: a policy feature the engine must implement (egress
rules, ipBlock, an ipBlock that holds pod IPs, named ports, endPort) and the traffic the probes
send (a UDP or SCTP table or probe, an external host) are needs. A protocol a policy only
*names* is not: upstream requires a CNI without SCTP to still isolate a pod selected by a
policy that allows only SCTP (scenarios/conformance/sctp-policy-isolates-tcp.yaml), so that
scenario must run there; `advice` lists such a protocol for `check`'s notes.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable
from typing import Protocol as TypingProtocol

from harness.model import Addresses, Endpoint, Model, Protocol, plan_addresses
from harness.policy import is_network_policy
from harness.probes import kind_of
from harness.scenario.expectations import MatrixExpectation, ProbeExpectation
from harness.scenario.placeholders import render_manifest
from harness.scenario.policies import PolicyDoc

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Step(TypingProtocol):
    """What this module reads of a step (types.Step; not imported: types imports this)."""

    @property
    def index(self) -> int: ...
    @property
    def apply(self) -> tuple[PolicyDoc, ...]: ...
    @property
    def expect(self) -> tuple[MatrixExpectation, ...]: ...
    @property
    def probes(self) -> tuple[ProbeExpectation, ...]: ...


def derived_needs(model: Model, steps: Iterable[_Step],
                  addresses: Addresses | None = None) -> dict[str, str]:
    """capability -> why, for every capability the content needs (policies rendered with
    `addresses`: the run's real ones, or the model's stand-ins when None)."""
    need, _ = _needs(model, steps, addresses)
    return need


def advice(model: Model, steps: Iterable[_Step]) -> dict[str, str]:
    """capability -> why, for what the content mentions without needing it (a protocol a
    policy only names)."""
    _, advised = _needs(model, steps, None)
    return advised


def _needs(model: Model, steps: Iterable[_Step], addresses: Addresses | None
           ) -> tuple[dict[str, str], dict[str, str]]:
    need: dict[str, str] = {}
    advised: dict[str, str] = {}
    addresses = addresses or plan_addresses(model)
    users = {p.key for p in model.user_pods}
    pod_ips = [ipaddress.ip_address(ip) for key, ip in addresses.pod_ips.items() if key in users]
    for st in steps:
        for doc in st.apply:
            if is_network_policy(doc.manifest):
                _policy_needs(render_manifest(doc.manifest, addresses), doc.key, need, advised,
                              pod_ips)
        for mx in st.expect:
            _proto_needs(mx.protocol, f"step {st.index + 1} table {mx.port}/{mx.protocol.value}",
                         need)
            if isinstance(mx.port, str):
                need.setdefault("named-ports", f"step {st.index + 1} table port {mx.port}")
        for pr in st.probes:
            if pr.dns_name:
                continue
            _proto_needs(pr.protocol, f"step {st.index + 1} probe {pr.source} -> {pr.target}", need)
            if Endpoint.parse(pr.source).is_external or Endpoint.parse(pr.target).is_external:
                need.setdefault("external-hosts", f"step {st.index + 1} probe {pr.source} -> "
                                                  f"{pr.target}")
    return need, {k: v for k, v in advised.items() if k not in need}


def _network(text: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


def _proto_needs(protocol: Protocol, why: str, need: dict[str, str]) -> None:
    """What a backend must carry for probes of `protocol` (its probe kind's capability)."""
    capability = kind_of(protocol).capability
    if capability:
        need.setdefault(capability, why)


def _policy_needs(m: dict[str, Any], key: str, need: dict[str, str], advised: dict[str, str],
                  pod_ips: list[IP]) -> None:
    spec = m.get("spec") or {}
    need.setdefault("networkpolicy", f"policy {key}")
    if "Egress" in (spec.get("policyTypes") or []) or spec.get("egress"):
        need.setdefault("egress", f"policy {key} has egress rules or policyTypes Egress")
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for rule in spec.get(direction) or []:
            if not isinstance(rule, dict):
                continue
            blocks = [p["ipBlock"] for p in rule.get(peers) or []
                      if isinstance(p, dict) and isinstance(p.get("ipBlock"), dict)]
            if blocks:
                need.setdefault("ipblock", f"policy {key} has an ipBlock peer")
            for block in blocks:
                cidr = _network(block.get("cidr"))
                if cidr is not None and any(ip in cidr for ip in pod_ips):
                    # Why its own capability: some CNIs apply ipBlock to cluster-external
                    # traffic only (harness/backends/cni.py, Cilium), so a pod matched by
                    # address is a limitation they declare, not a policy they fail to enforce
                    need.setdefault("ipblock-pod-ip", f"policy {key} has an ipBlock "
                                                      f"{block.get('cidr')} that holds pod IPs")
            for port in rule.get("ports") or []:
                if not isinstance(port, dict):
                    continue
                if isinstance(port.get("port"), str):
                    need.setdefault("named-ports", f"policy {key} names port {port['port']}")
                if "endPort" in port:
                    need.setdefault("endport", f"policy {key} has an endPort range")
                if port.get("protocol") in tuple(Protocol):
                    # advice only: the policy names the protocol; the traffic decides the need
                    _proto_needs(Protocol(port["protocol"]),
                                 f"policy {key} has a {port['protocol']} port", advised)
