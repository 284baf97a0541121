"""The NetworkPolicy oracle: for a model and a set of policies, what must happen, and why.

Why pure: the oracle is the reference every live observation is judged against, so it must run
anywhere (check/expect/explain need no cluster) and must be tested on its own: hand-written truth
tables, property tests, and a comparison with an independent analyser (docs/oracle.md).

Semantics (networking.k8s.io/v1, Kubernetes docs "Network Policies", and the upstream conformance
suite test/e2e/network/netpol):
- A pod is isolated for ingress (egress) when at least one policy in its namespace selects it and
  has Ingress (Egress) in its policyTypes. A non-isolated direction allows everything.
- Policies are additive and unordered: an isolated direction allows what the union of the rules of
  all policies selecting the pod allow. There is no deny rule.
- A connection needs both sides: the egress side of the source and the ingress side of the
  destination. Reply traffic of an allowed connection is always allowed (connection tracking), so
  the oracle decides on the initiating direction only.
- Peers: see harness.policy. ipBlock matches pod IPs too (as the conformance tests expect) and
  external hosts; pod/namespace selectors never match anything outside the cluster.
- Ports: a rule without ports allows every port and protocol; a port entry without protocol means
  TCP; a named port is resolved on the destination pod (for ingress, the pod the policy selects;
  for egress, each destination pod; a destination without that name is not allowed by that entry;
  a named port never matches an external host); endPort makes a range.
- Services: the decision is taken on the backend pods after DNAT, with the targetPort resolved per
  backend. ipBlocks that match the ClusterIP itself are implementation-defined (the docs: "it is not
  defined whether this happens before or after NetworkPolicy processing") and give UNDEFINED.
- UNDEFINED (never asserted unless a scenario names its CNI): a pod to itself, traffic from or to
  the node, an external host to a Service IP, backends of one Service that disagree, a destination
  that serves nothing on the port, a Service port or backend that does not exist, and any
  connection touching a namespace where a policy kind the oracle does not model (Cilium, Calico,
  AdminNetworkPolicy) is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from harness.model import (
    DNS_POD,
    DNS_SERVICE,
    SYSTEM_NAMESPACE,
    Addresses,
    Endpoint,
    EndpointKind,
    Model,
    Pod,
    Protocol,
    plan_addresses,
)
from harness.policy import (
    IPBlock,
    NetworkPolicy,
    Peer,
    PortRule,
    Rule,
    is_cluster_scoped,
    is_network_policy,
    parse_policy,
    policy_key,
)
from harness.results import Expectation
from harness.truthtable import TruthTable

#: how the reason decide_dns gives when the name does not exist (NXDOMAIN) begins; callers
#: tell "no such name" from "blocked" by Decision.nxdomain
NXDOMAIN_TEXT = "name does not exist"
_APISERVER_NAMES = ("kubernetes.default.svc.cluster.local", "kubernetes.default.svc",
                    "kubernetes.default")
#: what the API server's names resolve to (its Service default/kubernetes; not in the model)
API_SERVER = "svc:default/kubernetes"


@dataclass(frozen=True, slots=True)
class Reason:
    """One step of a decision. direction: "egress" | "ingress" | "dns" | "spec"."""

    direction: str
    policy: str | None
    rule: int | None
    allowed: bool
    text: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What must happen to one connection (ALLOW / DENY / UNDEFINED) and why (never empty)."""

    expectation: Expectation
    reasons: tuple[Reason, ...]
    #: set by decide_dns: the lookup fails because the name does not exist, not because blocked
    nxdomain: bool = False

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("a Decision needs at least one reason")


def _undefined(text: str, policy: str | None = None) -> Decision:
    return Decision(Expectation.UNDEFINED, (Reason("spec", policy, None, False, text),))


_CompiledRule = tuple[frozenset[str] | None, tuple[IPBlock, ...], Rule, str]


@dataclass(frozen=True)
class _Compiled:
    """One policy with everything that does not depend on the probe precomputed."""

    policy: NetworkPolicy
    selected: frozenset[str]
    # per rule: (pod keys the peers match, or None = every peer; ipBlocks for non-pod addresses;
    # the rule; its description for reasons, precomputed because matrices repeat it)
    ingress: tuple[_CompiledRule, ...]
    egress: tuple[_CompiledRule, ...]
    why_selected: str


class Oracle:
    """Answers decide / decide_dns / matrix / isolation for one model and one set of policies.

    Why one object per (model, policies): everything that does not depend on the probe (who each
    policy selects, which pods each rule's peers match) is computed once in __init__, so a full
    matrix costs little more than its cells; a step with other labels or policies gets a new one.
    """

    def __init__(self, model: Model, policies: Sequence[Mapping[str, Any]],
                 addresses: Addresses | None = None):
        self.model = model
        self.addresses = addresses or plan_addresses(model)
        self._pods: dict[str, Pod] = {p.key: p for p in model.pods}
        self._ns_labels = {n.name: n.effective_labels for n in model.namespaces}
        self.policies: list[NetworkPolicy] = []
        #: (key, namespace or None when cluster-scoped, kind) of policies not modelled
        self.unmodelled: list[tuple[str, str | None, str]] = []
        for i, m in enumerate(policies):
            if is_network_policy(m):
                self.policies.append(parse_policy(m, where=f"policy #{i}"))
            else:
                ns = None if is_cluster_scoped(m) else (m.get("metadata") or {}).get("namespace")
                self.unmodelled.append((policy_key(m), ns, str(m.get("kind"))))
        # Why sort: policies are unordered; sorting by key makes reasons deterministic whatever
        # order the scenario listed them in.
        self.policies.sort(key=lambda p: p.key)
        keys = [p.key for p in self.policies]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"policy {dupes[0]} is given twice; a namespace holds one policy "
                             f"of a name (apply replaces it: pass only the latest)")
        self._compiled = [self._compile(p) for p in self.policies]
        self._ingress_of: dict[str, list[_Compiled]] = {k: [] for k in self._pods}
        self._egress_of: dict[str, list[_Compiled]] = {k: [] for k in self._pods}
        for c in self._compiled:
            for k in c.selected:
                if c.policy.affects_ingress:
                    self._ingress_of[k].append(c)
                if c.policy.affects_egress:
                    self._egress_of[k].append(c)

    # -- precomputation -------------------------------------------------------------------------
    def _ns_labels_of(self, ns: str) -> Mapping[str, str]:
        return self._ns_labels.get(ns) or {"kubernetes.io/metadata.name": ns}

    def _compile(self, p: NetworkPolicy) -> _Compiled:
        selected = frozenset(k for k, pod in self._pods.items()
                             if pod.namespace == p.namespace and p.pod_selector.matches(pod.labels))
        how = ("podSelector {} selects every pod in " + p.namespace if p.pod_selector.is_empty
               else f"podSelector {p.pod_selector.describe()}")

        def rules(rs: tuple[Rule, ...], word: str) -> tuple[_CompiledRule, ...]:
            out: list[_CompiledRule] = []
            for r in rs:
                desc = _rule_text(p.namespace, r, word)
                if r.all_peers:
                    out.append((None, (), r, desc))
                    continue
                keys = frozenset(k for k, pod in self._pods.items()
                                 if any(self._peer_matches_pod(p.namespace, peer, pod)
                                        for peer in r.peers or ()))
                blocks = tuple(peer.ip_block for peer in r.peers or () if peer.ip_block is not None)
                out.append((keys, blocks, r, desc))
            return tuple(out)

        return _Compiled(p, selected, rules(p.ingress, "from"), rules(p.egress, "to"), how)

    def _peer_matches_pod(self, policy_ns: str, peer: Peer, pod: Pod) -> bool:
        if peer.ip_block is not None:
            ip = self.addresses.pod_ips.get(pod.key)
            return ip is not None and peer.ip_block.contains(ip)
        if peer.namespace_selector is None:
            if pod.namespace != policy_ns:
                return False
        elif not peer.namespace_selector.matches(self._ns_labels_of(pod.namespace)):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(pod.labels)

    # -- public API -----------------------------------------------------------------------------
    def isolation(self, pod_key: str) -> dict[str, list[str]]:
        """The policies isolating a pod, per direction: {"ingress": [...], "egress": [...]}."""
        if pod_key not in self._pods:
            raise KeyError(f"unknown pod {pod_key!r}")
        return {"ingress": [c.policy.key for c in self._ingress_of[pod_key]],
                "egress": [c.policy.key for c in self._egress_of[pod_key]]}

    def matrix(self, port: int | str, protocol: Protocol) -> TruthTable:
        """Every user pod to every user pod on one port/protocol; values are Decisions."""
        keys = self.model.pod_keys
        table = TruthTable(keys, keys)
        for s in keys:
            for d in keys:
                table.set(s, d, self.decide(s, d, port, protocol))
        return table

    def decide(self, source: str, target: str, port: int | str, protocol: Protocol) -> Decision:
        """Must a connection from source to target on port/protocol be allowed, and why."""
        protocol = Protocol.parse(protocol) if not isinstance(protocol, Protocol) else protocol
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if _is_node(source) or _is_node(target):
            return _undefined("traffic from or to a node is not asserted: the docs say "
                              "traffic to and from the node where a pod runs is always allowed, "
                              "whatever the policies say, but what counts as node traffic "
                              "(other nodes, hostNetwork pods, SNAT) differs between CNIs")
        src, dst = Endpoint.parse(source), Endpoint.parse(target)
        if src.is_service:
            raise ValueError(f"source {source!r}: a Service cannot open a connection; use a pod "
                             f"(ns/name) or an external host (ext:name)")
        if src.is_external:
            self.model.external(source)
        elif source not in self._pods:
            raise KeyError(f"unknown source {source!r}: not a pod of the model "
                           f"({', '.join(self.model.pod_keys)}) nor ext:<host>")
        if dst.is_service:
            return self._decide_service(source, dst.key, port, protocol)
        if dst.is_external or target in self._pods:
            if dst.is_external and src.is_external:
                return _undefined(f"{source} -> {target}: neither end is in the cluster, so no "
                                  f"NetworkPolicy can apply")
            return self._decide_endpoint(source, target, port, protocol)
        if "/" in target or ":" in target:
            raise KeyError(f"unknown target {target!r}: not a pod of the model, svc:<ns>/<name>, "
                           f"ext:<host> nor a DNS name")
        return self._decide_dns_name(source, target, port, protocol)

    def decide_dns(self, source: str, name: str) -> Decision:
        """Does `name` resolve from `source`? DENY says why: blocked, or no such name."""
        if Endpoint.parse(source).is_external:
            return _undefined(f"{source} is outside the cluster and does not use the cluster DNS")
        if source not in self._pods:
            raise KeyError(f"unknown source {source!r}: not a pod of the model")
        reach = self._decide_service(source, f"{SYSTEM_NAMESPACE}/{DNS_SERVICE}", 53,
                                     Protocol.UDP)
        if reach.expectation is not Expectation.ALLOW:
            lead = Reason("dns", None, None, False,
                          f"{source} cannot reach the cluster DNS ({SYSTEM_NAMESPACE}/{DNS_POD} "
                          f"on UDP 53): the lookup of {name} times out, blocked by policy"
                          if reach.expectation is Expectation.DENY else
                          f"whether {source} reaches the cluster DNS is undefined")
            return Decision(reach.expectation, (lead,) + reach.reasons)
        kind = self._resolve(name, self._pods[source].namespace)
        if kind is None:
            return Decision(Expectation.DENY, (Reason(
                "dns", None, None, False,
                f"{NXDOMAIN_TEXT}: {name} is not a Service of the cluster, so the cluster DNS "
                f"answers NXDOMAIN (the DNS server is reachable: the lookup is not blocked)"),)
                + reach.reasons, nxdomain=True)
        return Decision(Expectation.ALLOW, (Reason(
            "dns", None, None, True, f"{name} is {kind} and {source} may reach the cluster DNS "
                                     f"on UDP 53"),) + reach.reasons)

    def resolves_to(self, source: str, name: str) -> str | None:
        """What `name` resolves to from `source`: `svc:<ns>/<name>` of a Service of the model,
        API_SERVER for the API server's names, or None (NXDOMAIN, or a source outside)."""
        pod = self._pods.get(source)
        if pod is None:
            return None
        bare = name.rstrip(".")
        for cand in (bare, f"{bare}.svc.cluster.local", f"{bare}.cluster.local"):
            if cand in _APISERVER_NAMES:
                return API_SERVER
        svc = self.model.find_service_by_dns(bare, pod.namespace)
        return f"svc:{svc.key}" if svc else None

    # -- targets --------------------------------------------------------------------------------
    def _resolve(self, name: str, namespace: str) -> str | None:
        """What a DNS name means from a pod in `namespace`: a description, or None (NXDOMAIN)."""
        bare = name.rstrip(".")
        for cand in (bare, f"{bare}.svc.cluster.local", f"{bare}.cluster.local"):
            if cand in _APISERVER_NAMES:
                return "the API server's Service default/kubernetes"
        svc = self.model.find_service_by_dns(bare, namespace)
        return f"Service {svc.key}" if svc else None

    def _decide_dns_name(self, source: str, name: str, port: int | str,
                         protocol: Protocol) -> Decision:
        if Endpoint.parse(source).is_external:
            return _undefined(f"{source} is outside the cluster and cannot resolve cluster "
                              f"names such as {name}")
        dns = self.decide_dns(source, name)
        if dns.expectation is not Expectation.ALLOW:
            return dns
        svc = self.model.find_service_by_dns(name.rstrip("."), self._pods[source].namespace)
        if svc is None:
            return Decision(Expectation.UNDEFINED, (Reason(
                "spec", None, None, False, f"{name} is the API server, which runs on the node "
                                           f"network: node traffic is not asserted"),)
                            + dns.reasons)
        conn = self._decide_service(source, svc.key, port, protocol)
        return Decision(conn.expectation, conn.reasons + dns.reasons)

    def _decide_service(self, source: str, svc_key: str, port: int | str,
                        protocol: Protocol) -> Decision:
        try:
            svc = self.model.service(svc_key)
        except KeyError:
            raise KeyError(f"unknown Service svc:{svc_key}; the model declares "
                           f"{', '.join('svc:' + s.key for s in self.model.services)}") from None
        if Endpoint.parse(source).is_external:
            return _undefined(f"{source} -> Service {svc.key}: an external host reaching a "
                              f"Service IP goes through NAT, and whether ipBlock sees the "
                              f"original or the rewritten address is left to the implementation")
        sp = next((p for p in svc.ports if p.protocol == protocol and
                   (p.port == port if isinstance(port, int) else p.name == port)), None)
        # Why UNDEFINED, not DENY: no policy is involved, so the cell says nothing about
        # enforcement; asserted as a block it would fail the no-policy baseline on every run
        if sp is None:
            return _undefined(f"Service {svc.key} has no port {port} on {protocol.value}: "
                              f"nothing forwards the connection, whatever the policies say")
        backends = []
        for pod in self.model.service_backends(svc):
            tp = pod.resolve_port(sp.target_port, protocol)
            if tp is not None:
                backends.append((pod, tp))
        if not backends:
            return _undefined(f"Service {svc.key} has no backends (no pod matches its selector "
                              f"with a port {sp.target_port}/{protocol.value}): the connection "
                              f"cannot succeed whatever the policies say")
        svc_ip = self.addresses.service_ips.get(svc.key)
        decisions = []
        for pod, tp in backends:
            d = self._decide_endpoint(source, pod.key, tp, protocol)
            # Only the egress side can hinge on NAT: ingress sees the source pod's own address.
            egress_denies = not any(r.direction == "egress" and r.allowed for r in d.reasons)
            ingress_allows = any(r.direction == "ingress" and r.allowed for r in d.reasons)
            if (d.expectation is Expectation.DENY and egress_denies and ingress_allows
                    and svc_ip and self._ipblock_allows_ip(source, svc_ip, tp, protocol)):
                d = Decision(Expectation.UNDEFINED, (Reason(
                    "egress", None, None, False,
                    f"an egress ipBlock of a policy selecting {source} contains the ClusterIP "
                    f"{svc_ip} of {svc.key} but not the backend {pod.key}: whether ipBlock sees "
                    f"the Service IP or the pod IP (before or after NAT) is left to the "
                    f"implementation"),) + d.reasons)
            decisions.append((pod, tp, d))
        kinds = {d.expectation for _, _, d in decisions}
        via = Reason("spec", None, None, True,
                     f"Service {svc.key} port {sp.port}/{protocol.value} forwards to "
                     + ", ".join(f"{p.key}:{tp}" for p, tp, _ in decisions))
        reasons = (via,) + tuple(r for _, _, d in decisions for r in d.reasons)
        if len(kinds) == 1:
            return Decision(kinds.pop(), reasons)
        return Decision(Expectation.UNDEFINED, (Reason(
            "spec", None, None, False,
            f"the backends of Service {svc.key} disagree ("
            + ", ".join(f"{p.key}: {d.expectation.value}" for p, _, d in decisions)
            + "): the result depends on which backend the Service picks"),) + reasons)

    def _ipblock_allows_ip(self, source: str, ip: str, port: int, protocol: Protocol) -> bool:
        for c in self._egress_of.get(source, ()):
            for _, blocks, rule, _ in c.egress:
                if any(b.contains(ip) for b in blocks) and _ports_match(rule, None, port,
                                                                        protocol):
                    return True
        return False

    def _decide_endpoint(self, source: str, target: str, port: int | str,
                         protocol: Protocol) -> Decision:
        """A pod or external host to a pod or external host (at least one is a pod)."""
        if source == target:
            return _undefined(f"{source} to itself: the docs say a pod cannot block access to "
                              f"itself, yet CNIs differ on it and the conformance tests skip it "
                              f"(kubernetes#95879), so it is not asserted")
        hidden = self._unmodelled_near(source, target)
        if hidden:
            return _undefined(f"policies the oracle does not model apply here ("
                              f"{', '.join(hidden)}); the scenario must state this expectation "
                              f"explicitly and say which CNI it describes")
        dst_pod = self._pods.get(target)
        if dst_pod is not None:
            num = dst_pod.resolve_port(port, protocol)
            if num is None:
                return _undefined(f"{target} has no {protocol.value} port named {port!r}: "
                                  f"there is nothing to connect to")
            if not dst_pod.serves(num, protocol):
                return _undefined(f"{target} serves nothing on {protocol.value} {num}: the "
                                  f"connection fails whatever the policies say")
        else:
            ext = self.model.external(target)
            if isinstance(port, str):
                num = next((cp.port for cp in ext.ports if cp.name == port
                            and cp.protocol == protocol), None)
                if num is None:
                    return _undefined(f"{target} has no {protocol.value} port named {port!r}")
            else:
                num = port
            if ext.ports and not any(cp.port == num and cp.protocol == protocol
                                     for cp in ext.ports):
                return _undefined(f"{target} serves nothing on {protocol.value} {num}")
        eg = self._side("egress", source, target, dst_pod, num, protocol)
        ing = self._side("ingress", target, source, dst_pod, num, protocol)
        ok = _side_ok(eg) and _side_ok(ing)
        if ok:
            return Decision(Expectation.ALLOW, eg + ing)
        denied = [r for r in eg + ing if not r.allowed]
        return Decision(Expectation.DENY, tuple(denied) + tuple(r for r in eg + ing if r.allowed))

    def _unmodelled_near(self, *endpoints: str) -> list[str]:
        if not self.unmodelled:
            return []
        nss = {self._pods[e].namespace for e in endpoints if e in self._pods}
        return [f"{kind} {key}" for key, ns, kind in self.unmodelled if ns is None or ns in nss]

    def _side(self, direction: str, pod_key: str, peer: str, dst_pod: Pod | None, port: int,
              protocol: Protocol) -> tuple[Reason, ...]:
        """Reasons for one side: pod_key is the source (egress) or the destination (ingress)."""
        if pod_key not in self._pods:
            return (Reason(direction, None, None, True,
                           f"{pod_key} is outside the cluster: no NetworkPolicy applies to its "
                           f"{direction}"),)
        isolating = (self._egress_of if direction == "egress" else self._ingress_of)[pod_key]
        if not isolating:
            return (Reason(direction, None, None, True,
                           f"no policy selects {pod_key} for {direction}: not isolated"),)
        peer_ip = None if peer in self._pods else self.addresses.ip_of(peer)
        allowed: list[Reason] = []
        for c in isolating:
            rules = c.egress if direction == "egress" else c.ingress
            for i, (keys, blocks, rule, desc) in enumerate(rules):
                if keys is not None:
                    if peer_ip is None:
                        if peer not in keys:
                            continue
                    elif not any(b.contains(peer_ip) for b in blocks):
                        continue
                if not _ports_match(rule, dst_pod, port, protocol):
                    continue
                src, dst = (pod_key, peer) if direction == "egress" else (peer, pod_key)
                allowed.append(Reason(direction, c.policy.key, i, True,
                                      f"{c.policy.key} {direction} rule {i} allows {src} -> "
                                      f"{dst} on {protocol.value} {port} ({desc})"))
        if allowed:
            return tuple(allowed)
        return tuple(Reason(direction, c.policy.key, None, False,
                            _deny_text(c, direction, pod_key, peer, port, protocol))
                     for c in isolating)


def _is_node(endpoint: str) -> bool:
    """`node` or `node:<name>`: a node's own address (not a DNS name such as node-exporter)."""
    return Endpoint.parse(endpoint).kind is EndpointKind.NODE


def _side_ok(reasons: tuple[Reason, ...]) -> bool:
    return any(r.allowed for r in reasons)


def _ports_match(rule: Rule, dst_pod: Pod | None, port: int, protocol: Protocol) -> bool:
    if rule.all_ports:
        return True
    return any(_port_matches(pr, dst_pod, port, protocol) for pr in rule.ports or ())


def _port_matches(pr: PortRule, dst_pod: Pod | None, port: int, protocol: Protocol) -> bool:
    if pr.protocol != protocol:
        return False
    if pr.port is None:
        return True
    if isinstance(pr.port, str):
        # Why per destination pod: a named port means the number that pod gives the name.
        return dst_pod is not None and dst_pod.resolve_port(pr.port, protocol) == port
    if pr.end_port is not None:
        return pr.port <= port <= pr.end_port
    return pr.port == port


def _rule_text(ns: str, rule: Rule, word: str) -> str:
    peers = ("every peer" if rule.all_peers
             else " or ".join(p.describe(ns) for p in rule.peers or ()))
    ports = "every port" if rule.all_ports else ", ".join(p.describe() for p in rule.ports or ())
    return f"{word} {peers}; ports: {ports}"


def _deny_text(c: _Compiled, direction: str, pod_key: str, peer: str, port: int,
               protocol: Protocol) -> str:
    n = len(c.egress if direction == "egress" else c.ingress)
    head = f"{c.policy.key} isolates {pod_key} for {direction} ({c.why_selected})"
    if n == 0:
        return f"{head} and has no {direction} rule, so it allows nothing"
    word = "to" if direction == "egress" else "from"
    rules = "its only rule does not" if n == 1 else f"none of its {n} {direction} rules"
    verb = "" if n == 1 else "s"
    return f"{head}, but {rules} allow{verb} traffic {word} {peer} on {protocol.value} {port}"
