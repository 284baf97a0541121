"""A `networking.k8s.io/v1` NetworkPolicy manifest parsed into frozen, validated data.

Why parse once: the oracle evaluates every policy hundreds of times per matrix, the local
backend compiles the same policies into a dataplane, and explain/report code prints them. All of
them should read one typed form whose invalid states (an ipBlock combined with a podSelector, an
endPort with a named port) were rejected up front with the field named, as the API server does.

Meaning of missing versus empty fields (networking/v1 types.go and the Kubernetes docs):
- `from` / `to` missing or `[]`: the rule matches every peer (all sources / all destinations).
  The API server does not distinguish the two (a nil and an empty Go slice both have length 0).
  `Rule.peers` keeps the difference (None = missing, () = empty list) for reports only.
- `ports` missing or `[]`: the rule matches every port and protocol. Same convention.
- A rule list itself: `ingress: []` or missing means "no rule": nothing is allowed in that
  direction once the pod is isolated for it.
- `policyTypes` missing or `[]`: Ingress always, plus Egress when the policy has at least one
  egress rule (`egress: []` has none); a non-empty explicit list wins.
- A peer's `podSelector` alone: pods of the policy's own namespace; `namespaceSelector` alone:
  every pod of the selected namespaces; both in one peer: ANDed; `ipBlock` excludes both.
- A missing `spec.podSelector` is stored as `{}` (what the API server stores for a missing
  field); kubectl's client-side validation would refuse it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Mapping

from harness.model import Protocol
from harness.selectors import LabelSelector

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
POLICY_TYPES = ("Ingress", "Egress")

# IANA_SVC_NAME, as the API validates named ports: 1-15 chars, a-z0-9-, at least one letter,
# no leading/trailing/double hyphen.
_SVC_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")

#: kinds of policy that are not modelled by the oracle, recognised by (apiVersion group, kind)
CLUSTER_SCOPED_KINDS = {"CiliumClusterwideNetworkPolicy", "GlobalNetworkPolicy",
                        "AdminNetworkPolicy", "BaselineAdminNetworkPolicy",
                        "ClusterNetworkPolicy"}


@dataclass(frozen=True)
class IPBlock:
    """`ipBlock`: a CIDR minus a list of excepted CIDRs."""

    cidr: str
    except_: tuple[str, ...] = ()

    def contains(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        net = ipaddress.ip_network(self.cidr, strict=False)
        if addr.version != net.version or addr not in net:
            return False
        return not any(addr in ipaddress.ip_network(e, strict=False) for e in self.except_
                       if ipaddress.ip_network(e, strict=False).version == addr.version)

    def describe(self) -> str:
        return self.cidr + (f" except {', '.join(self.except_)}" if self.except_ else "")


@dataclass(frozen=True)
class Peer:
    """One entry of `from` / `to`. Either ip_block, or one or both selectors."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    def describe(self, policy_namespace: str) -> str:
        if self.ip_block is not None:
            return f"ipBlock {self.ip_block.describe()}"
        if self.namespace_selector is None:
            pods = self.pod_selector.describe() if self.pod_selector else "{}"
            return f"pods matching {pods} in namespace {policy_namespace}"
        ns = ("every namespace" if self.namespace_selector.is_empty
              else f"namespaces matching {self.namespace_selector.describe()}")
        if self.pod_selector is None:
            return f"every pod in {ns}"
        return f"pods matching {self.pod_selector.describe()} in {ns}"


@dataclass(frozen=True)
class PortRule:
    """One entry of `ports`: protocol (default TCP), a port number or name (None = every port
    of that protocol), and an optional endPort (numeric port only)."""

    protocol: Protocol = Protocol.TCP
    port: int | str | None = None
    end_port: int | None = None

    def describe(self) -> str:
        if self.port is None:
            return f"every {self.protocol.value} port"
        if self.end_port is not None:
            return f"{self.protocol.value} {self.port}-{self.end_port}"
        return f"{self.protocol.value} {self.port}"


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule. peers/ports: None = field missing, () = empty list; both
    mean "every peer" / "every port" (see the module docstring)."""

    peers: tuple[Peer, ...] | None = None
    ports: tuple[PortRule, ...] | None = None

    @property
    def all_peers(self) -> bool:
        return not self.peers

    @property
    def all_ports(self) -> bool:
        return not self.ports


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def affects_ingress(self) -> bool:
        return "Ingress" in self.policy_types

    @property
    def affects_egress(self) -> bool:
        return "Egress" in self.policy_types


def policy_key(manifest: Mapping[str, Any]) -> str:
    """`namespace/name` of any namespaced policy manifest (`name` alone when cluster-scoped)."""
    meta = manifest.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def is_network_policy(manifest: Mapping[str, Any]) -> bool:
    """True for a `networking.k8s.io/v1` NetworkPolicy (not Calico's or Cilium's own kinds)."""
    return manifest.get("apiVersion") == API_VERSION and manifest.get("kind") == KIND


def is_cluster_scoped(manifest: Mapping[str, Any]) -> bool:
    """True for policy kinds that apply cluster-wide (AdminNetworkPolicy, GlobalNetworkPolicy…)."""
    return manifest.get("kind") in CLUSTER_SCOPED_KINDS or not (manifest.get("metadata") or {}
                                                                 ).get("namespace")


def _strict_subnet(inner: ipaddress.IPv4Network | ipaddress.IPv6Network,
                   outer: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """`inner` is a smaller network inside `outer`, of the same IP version."""
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer) and inner.prefixlen > outer.prefixlen
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer) and inner.prefixlen > outer.prefixlen
    return False


def parse_policy(manifest: Mapping[str, Any], where: str = "", default_namespace: str | None = None
                 ) -> NetworkPolicy:
    """Parse and validate a NetworkPolicy manifest; ValueError names the field that is wrong.

    Why validate here too: the oracle must not compute an expectation for a policy the API server
    would reject; the message says which field and what to write instead.
    """
    w = where or "NetworkPolicy"
    if not isinstance(manifest, Mapping):
        raise ValueError(f"{w}: a policy must be a mapping, got {type(manifest).__name__}")
    if manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != KIND:
        raise ValueError(f"{w}: apiVersion/kind must be {API_VERSION} {KIND}, got "
                         f"{manifest.get('apiVersion')!r} {manifest.get('kind')!r}")
    meta = manifest.get("metadata")
    if not isinstance(meta, Mapping) or not meta.get("name"):
        raise ValueError(f"{w}.metadata.name: required")
    name = str(meta["name"])
    namespace = meta.get("namespace") or default_namespace
    if not namespace:
        raise ValueError(f"{w}.metadata.namespace: required (policy {name!r} names no namespace)")
    w = f"{where or 'NetworkPolicy'} {namespace}/{name}"
    spec = manifest.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"{w}: spec must be a mapping")
    unknown = set(spec) - {"podSelector", "policyTypes", "ingress", "egress"}
    if unknown:
        raise ValueError(f"{w}: spec has unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    sel_data = spec.get("podSelector")
    pod_selector = LabelSelector.parse({} if sel_data is None else sel_data, f"{w}: spec.podSelector")
    ingress = _parse_rules(spec.get("ingress"), "ingress", "from", f"{w}: spec.ingress")
    egress = _parse_rules(spec.get("egress"), "egress", "to", f"{w}: spec.egress")
    types_data = spec.get("policyTypes")
    if not types_data:
        # SetDefaults_NetworkPolicy (pkg/apis/networking/v1/defaults.go): when len(policyTypes)
        # is 0 (missing or []), Ingress, plus Egress when len(egress) != 0 (so not `egress: []`).
        types: tuple[str, ...] = ("Ingress", "Egress") if spec.get("egress") else ("Ingress",)
    else:
        if not isinstance(types_data, list):
            raise ValueError(f"{w}: spec.policyTypes must be a list of Ingress/Egress")
        for t in types_data:
            if t not in POLICY_TYPES:
                raise ValueError(f"{w}: spec.policyTypes: {t!r} is not Ingress or Egress "
                                 f"(case matters)")
        if len(set(types_data)) != len(types_data):
            raise ValueError(f"{w}: spec.policyTypes lists a type twice")
        types = tuple(t for t in POLICY_TYPES if t in types_data)
    return NetworkPolicy(str(namespace), name, pod_selector, types, ingress, egress)


def _parse_rules(data: Any, direction: str, peers_field: str, where: str) -> tuple[Rule, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ValueError(f"{where}: must be a list of rules")
    rules = []
    for i, r in enumerate(data):
        w = f"{where}[{i}]"
        if r is None:
            r = {}
        if not isinstance(r, Mapping):
            raise ValueError(f"{w}: a rule must be a mapping with {peers_field} and ports")
        unknown = set(r) - {peers_field, "ports"}
        if unknown:
            raise ValueError(f"{w}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                             f"an {direction} rule has only {peers_field} and ports")
        peers = None
        if r.get(peers_field) is not None:
            if not isinstance(r[peers_field], list):
                raise ValueError(f"{w}.{peers_field}: must be a list of peers")
            peers = tuple(_parse_peer(p, f"{w}.{peers_field}[{j}]")
                          for j, p in enumerate(r[peers_field]))
        ports = None
        if r.get("ports") is not None:
            if not isinstance(r["ports"], list):
                raise ValueError(f"{w}.ports: must be a list")
            ports = tuple(_parse_port(p, f"{w}.ports[{j}]") for j, p in enumerate(r["ports"]))
        rules.append(Rule(peers, ports))
    return tuple(rules)


def _parse_peer(data: Any, where: str) -> Peer:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a peer must be a mapping")
    unknown = set(data) - {"podSelector", "namespaceSelector", "ipBlock"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; a "
                         f"peer has podSelector, namespaceSelector or ipBlock")
    has = {k for k in ("podSelector", "namespaceSelector", "ipBlock") if data.get(k) is not None}
    if not has:
        raise ValueError(f"{where}: a peer must set podSelector, namespaceSelector or ipBlock "
                         f"(the API rejects an empty peer; omit `from`/`to` to allow all)")
    if "ipBlock" in has and len(has) > 1:
        raise ValueError(f"{where}: ipBlock cannot be combined with podSelector or "
                         f"namespaceSelector in one peer; write them as separate peers")
    if "ipBlock" in has:
        return Peer(ip_block=_parse_ipblock(data["ipBlock"], f"{where}.ipBlock"))
    pod = (LabelSelector.parse(data["podSelector"], f"{where}.podSelector")
           if "podSelector" in has else None)
    ns = (LabelSelector.parse(data["namespaceSelector"], f"{where}.namespaceSelector")
          if "namespaceSelector" in has else None)
    return Peer(pod, ns)


def _parse_ipblock(data: Any, where: str) -> IPBlock:
    if not isinstance(data, Mapping) or not data.get("cidr"):
        raise ValueError(f"{where}.cidr: required (e.g. 10.0.0.0/16)")
    unknown = set(data) - {"cidr", "except"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    cidr = str(data["cidr"])
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f"{where}.cidr: {cidr!r} is not a CIDR (write e.g. 10.0.0.0/16)") from None
    if "/" not in cidr:
        raise ValueError(f"{where}.cidr: {cidr!r} needs a prefix length (e.g. {cidr}/32)")
    excepts = data.get("except") or []
    if not isinstance(excepts, list):
        raise ValueError(f"{where}.except: must be a list of CIDRs")
    out = []
    for j, e in enumerate(excepts):
        try:
            en = ipaddress.ip_network(str(e), strict=False)
        except ValueError:
            raise ValueError(f"{where}.except[{j}]: {e!r} is not a CIDR") from None
        if not _strict_subnet(en, net):
            raise ValueError(f"{where}.except[{j}]: {e} must be a strict subset of cidr {cidr} "
                             f"(the API rejects it otherwise)")
        out.append(str(e))
    return IPBlock(cidr, tuple(out))


def _parse_port(data: Any, where: str) -> PortRule:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a port entry must be a mapping with protocol, port, endPort")
    unknown = set(data) - {"protocol", "port", "endPort"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    proto_raw = data.get("protocol")
    if proto_raw is None:
        proto = Protocol.TCP
    elif proto_raw in ("TCP", "UDP", "SCTP"):
        proto = Protocol(proto_raw)
    else:
        raise ValueError(f"{where}.protocol: {proto_raw!r} must be TCP, UDP or SCTP (upper case)")
    port = data.get("port")
    if isinstance(port, bool):
        raise ValueError(f"{where}.port: {port!r} is not a port")
    if isinstance(port, int):
        if not 1 <= port <= 65535:
            raise ValueError(f"{where}.port: {port} is outside 1-65535")
    elif isinstance(port, str):
        if not _SVC_NAME_RE.match(port) or "--" in port or not re.search(r"[a-z]", port):
            raise ValueError(f"{where}.port: {port!r} is not a valid port name (lower case "
                             f"a-z0-9-, at most 15 characters, at least one letter); write a "
                             f"number without quotes for a numeric port")
    elif port is not None:
        raise ValueError(f"{where}.port: {port!r} must be a number or a port name")
    end = data.get("endPort")
    if end is not None:
        if isinstance(end, bool) or not isinstance(end, int):
            raise ValueError(f"{where}.endPort: {end!r} must be a number")
        if not isinstance(port, int):
            raise ValueError(f"{where}.endPort: needs a numeric port (the API rejects endPort "
                             f"with a named or missing port)")
        if end < port or end > 65535:
            raise ValueError(f"{where}.endPort: {end} must be between port {port} and 65535")
    return PortRule(proto, port, end)
