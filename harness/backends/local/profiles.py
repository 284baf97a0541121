"""The emulated dataplane profiles: `enforcing` compiles NetworkPolicy into nftables, `open`
stores policies and enforces nothing.

Why two: `open` is exactly a cluster whose CNI accepts NetworkPolicy objects and ignores them
(the Flannel situation), so the harness can prove it reports *not enforced*; `enforcing` is a
stateful per-pod filter at the host side of each pod's interface, as real CNIs build it.
These are emulated dataplanes, not any vendor's CNI.

CAUTION: the enforcing profile reads policies through harness.policy.parse_policy and matches
labels with harness.selectors — the same code the oracle uses. A bug in that shared parsing or
selector code makes the dataplane and the expectation wrong in the same way, and the local
backend cannot catch it; the oracle's own unit tests (against the upstream semantics) must.
What this profile does check independently is everything after parsing: peer resolution to
addresses, named ports per destination pod, endPort ranges, ipBlock except, policy types,
statefulness, and that the kernel really drops the packets.

Compiled table (in the node namespace, replaced atomically on every change):
  forward: ct state established,related accept; iifname <pod veth> jump egress chain;
           oifname <pod veth> jump ingress chain — only for pods isolated in that direction.
  ingress chain: one `accept` per allowed (peer, port) match, then drop.
  egress chain: one `return` per allowed match (so the destination's ingress is still checked),
  then drop.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Mapping

from harness.capabilities import Capabilities
from harness.model import Addresses, Model, Pod, Protocol
from harness.policy import NetworkPolicy, Peer, PortRule, Rule

_SUPPORTED = frozenset({"networkpolicy", "egress", "ipblock", "ipblock-pod-ip", "named-ports",
                        "endport", "udp", "external-hosts"})
_NOTES = {"sctp": "SCTP is not available in this kernel (emulated dataplane)",
          "apiserver-fault": "the emulated dataplanes have no API server to stop"}
_NO_ENGINE = "nothing enforces on `open`: there is no engine to stop"

#: What each emulated dataplane profile declares. `enforcing` has an emulated engine that fault
#: steps can stop, kill and restart (LocalBackend.fault); `open` has none.
SPECS: dict[str, Capabilities] = {
    "enforcing": Capabilities(_SUPPORTED | {"engine-fault", "engine-hold"}, deny_response="drop",
                              enforces=True, notes=dict(_NOTES)),
    "open": Capabilities(_SUPPORTED, deny_response="drop", enforces=False,
                         notes={**_NOTES, "engine-fault": _NO_ENGINE, "engine-hold": _NO_ENGINE}),
}
PROFILES = tuple(SPECS)


def capabilities(profile: str) -> Capabilities:
    """What the emulated dataplane `profile` declares (SPECS)."""
    try:
        return SPECS[profile]
    except KeyError:
        raise ValueError(f"unknown local profile {profile!r}: expected "
                         f"{' or '.join(PROFILES)}") from None


@dataclass(frozen=True)
class Endpoint:
    """A pod as the compiler sees it: its model entry, IP and node-side interface."""

    pod: Pod
    ip: str
    veth: str


def _selected_pods(model: Model, policy: NetworkPolicy) -> list[Pod]:
    return [p for p in model.pods if p.namespace == policy.namespace
            and policy.pod_selector.matches(p.labels)]


def _peer_pods(model: Model, peer: Peer, policy_ns: str) -> list[Pod]:
    if peer.namespace_selector is None:
        nss = {policy_ns}
    else:
        nss = {n.name for n in model.namespaces if peer.namespace_selector.matches(n.effective_labels)}
    return [p for p in model.pods if p.namespace in nss
            and (peer.pod_selector is None or peer.pod_selector.matches(p.labels))]


def _ipv4_block(cidr: str) -> str | None:
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net) if net.version == 4 else None


def _port_expr(pr: PortRule, port: int | None) -> str | None:
    proto = pr.protocol.value.lower()
    if pr.protocol == Protocol.SCTP:
        return None  # not available in this kernel; declared missing in capabilities
    if port is None:
        return f"meta l4proto {proto}"
    if pr.end_port:
        return f"{proto} dport {port}-{pr.end_port}"
    return f"{proto} dport {port}"


def _rule_lines(rule: Rule, policy_ns: str, model: Model, addresses: Addresses, me: Pod,
                direction: str, verdict: str) -> list[str]:
    """nft lines for one rule of a policy selecting `me`.

    Named ports resolve against the destination pod: `me` for ingress, each peer pod for egress.
    """
    field = "saddr" if direction == "ingress" else "daddr"
    # peers -> (address match, pods behind it for per-destination named ports)
    # (address match, pods behind it, whether the match is exactly those pods' addresses)
    peer_matches: list[tuple[str, list[Pod], bool]] = []
    if rule.all_peers:
        peer_matches.append(("", list(model.pods), False))
    else:
        pod_ips: dict[str, Pod] = {}
        for peer in rule.peers or ():
            if peer.ip_block is not None:
                cidr = _ipv4_block(peer.ip_block.cidr)
                if cidr is None:
                    continue
                m = f"ip {field} {cidr}"
                excepts = [e for e in (_ipv4_block(x) for x in peer.ip_block.except_) if e]
                if excepts:
                    m += f" ip {field} != {{ {', '.join(excepts)} }}"
                inside = [p for p in model.pods if addresses.pod_ips.get(p.key)
                          and peer.ip_block.contains(addresses.pod_ips[p.key])]
                peer_matches.append((m, inside, False))
            else:
                for p in _peer_pods(model, peer, policy_ns):
                    ip = addresses.pod_ips.get(p.key)
                    if ip:
                        pod_ips[ip] = p
        if pod_ips:
            peer_matches.append((f"ip {field} {{ {', '.join(sorted(pod_ips))} }}",
                                 list(pod_ips.values()), True))
    lines = []
    for addr, pods, exact in peer_matches:
        if rule.all_ports:
            lines.append(f"{addr} {verdict}".strip())
            continue
        for pr in rule.ports or ():
            if isinstance(pr.port, str):
                dests = [me] if direction == "ingress" else pods
                for d in dests:
                    n = d.resolve_port(pr.port, pr.protocol)
                    expr = _port_expr(pr, n) if n else None
                    if not expr:
                        continue
                    if direction == "egress":
                        both = "" if exact else f" {addr}".rstrip()
                        lines.append(f"ip daddr {addresses.pod_ips[d.key]}{both} {expr} {verdict}")
                    else:
                        lines.append(f"{addr} {expr} {verdict}".strip())
            else:
                expr = _port_expr(pr, pr.port)
                if expr:
                    lines.append(f"{addr} {expr} {verdict}".strip())
    return lines


def _commented(lines: list[str], policy_key: str) -> list[str]:
    """Tag each rule with the policy it comes from, so `nft list` reads like the policies."""
    return [f'{line} comment "{policy_key}"' for line in lines]


def compile_policies(model: Model, addresses: Addresses, policies: Iterable[NetworkPolicy],
                     veths: Mapping[str, str]) -> list[str]:
    """The body of the policy table for the current policies and labels.

    `veths` maps pod keys to their node-side interface names.
    """
    policies = list(policies)
    ingress: dict[str, list[str]] = {}
    egress: dict[str, list[str]] = {}
    for pol in policies:
        for pod in _selected_pods(model, pol):
            if pod.key not in veths:
                continue
            if pol.affects_ingress:
                chain = ingress.setdefault(pod.key, [])
                for rule in pol.ingress:
                    chain += _commented(_rule_lines(rule, pol.namespace, model, addresses, pod,
                                                    "ingress", "accept"), pol.key)
            if pol.affects_egress:
                chain = egress.setdefault(pod.key, [])
                for rule in pol.egress:
                    chain += _commented(_rule_lines(rule, pol.namespace, model, addresses, pod,
                                                    "egress", "return"), pol.key)
    body = ["chain forward {", "  type filter hook forward priority filter; policy accept;",
            "  ct state established,related accept"]
    chains = []
    for i, pod in enumerate(p for p in model.pods if p.key in veths):
        veth = veths[pod.key]
        if pod.key in egress:
            body.append(f'  iifname "{veth}" jump egress_{i}')
            chains += [f"chain egress_{i} {{  # {pod.key}"] + [f"  {r}" for r in egress[pod.key]]
            chains += ["  counter drop", "}"]
        if pod.key in ingress:
            body.append(f'  oifname "{veth}" jump ingress_{i}')
            chains += [f"chain ingress_{i} {{  # {pod.key}"] + [f"  {r}" for r in ingress[pod.key]]
            chains += ["  counter drop", "}"]
    body.append("}")
    return body + chains
