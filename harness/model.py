"""The topology a scenario runs on: namespaces, pods, ports, Services and external hosts.

Why a model of its own: the oracle, the backends and the reports all speak of the same
namespaces and pods. The model is plain immutable data; label changes between steps produce a
new Model (`with_labels`), so each step's expectation is computed from exactly the state it
describes.

The default is the upstream conformance model (kubernetes test/e2e/network/netpol/model.go):
namespaces x, y, z labelled `ns: <name>`, pods a, b, c labelled `pod: <name>`, every pod serving
ports 80 and 81 on TCP, UDP and SCTP, one container per (port, protocol) whose port is named
`serve-<port>-<protocol>`. Three namespaces of three pods is the smallest topology where "same
namespace", "other namespace" and "selected vs not selected pod" all have more than one member.

The cluster's own DNS (kube-system/coredns behind the kube-dns Service) is part of every model,
because "allow DNS" policies select it and DNS probes depend on reaching it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Iterable, Mapping

METADATA_NAME_LABEL = "kubernetes.io/metadata.name"

DEFAULT_NAMESPACES = ("x", "y", "z")
DEFAULT_PODS = ("a", "b", "c")
DEFAULT_PORTS = (80, 81)

POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
#: External hosts without an explicit address get one from TEST-NET-3 (RFC 5737): a range that
#: is never routed anywhere, so a mistake can never send traffic off the machine.
EXTERNAL_DEFAULT_RANGE = "203.0.113.0/24"

SYSTEM_NAMESPACE = "kube-system"
DNS_POD = "coredns"
DNS_SERVICE = "kube-dns"


class Protocol(str, Enum):
    """A NetworkPolicy protocol. The value is the spelling the Kubernetes API uses."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"

    @classmethod
    def parse(cls, value: str) -> Protocol:
        try:
            return cls(str(value).upper())
        except ValueError:
            raise ValueError(f"unknown protocol {value!r}: expected TCP, UDP or SCTP") from None


DEFAULT_PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)

SERVICE_PREFIX = "svc:"
EXTERNAL_PREFIX = "ext:"
#: where DNS probes go: the cluster DNS Service, as a probe target
DNS_SERVICE_ENDPOINT = f"{SERVICE_PREFIX}{SYSTEM_NAMESPACE}/{DNS_SERVICE}"


class EndpointKind(Enum):
    POD = "pod"                # ns/name
    SERVICE = "service"        # svc:ns/name
    EXTERNAL = "external"      # ext:name
    NODE = "node"              # node or node:name: a node's own address (the oracle's only)
    NAME = "name"              # a DNS name (or an address), resolved inside the source pod


@dataclass(frozen=True)
class Endpoint:
    """A probe's source or target as scenarios spell it: `ns/name` (a pod), `svc:ns/name` (a
    Service), `ext:name` (an external host), `node` / `node:name` (a node), or anything else, a
    DNS name resolved inside the source pod. `key` is the part after the prefix (a pod's or
    Service's ns/name, the host's name; the whole text for the others); str() gives the
    spelling back.

    Why one type: the spelling is parsed here once, instead of prefix checks in every module
    that needs to know what a probe points at (the way upstream netpol has one PodString).
    Results, reports and backends keep the spelled form.
    """

    kind: EndpointKind
    key: str

    @classmethod
    def parse(cls, text: str | Endpoint) -> Endpoint:
        if isinstance(text, Endpoint):
            return text
        text = str(text)
        if text.startswith(SERVICE_PREFIX):
            return cls(EndpointKind.SERVICE, text[len(SERVICE_PREFIX):])
        if text.startswith(EXTERNAL_PREFIX):
            return cls(EndpointKind.EXTERNAL, text[len(EXTERNAL_PREFIX):])
        if text == "node" or text.startswith("node:"):
            return cls(EndpointKind.NODE, text)
        if "/" in text:
            return cls(EndpointKind.POD, text)
        return cls(EndpointKind.NAME, text)

    @classmethod
    def service(cls, key: str) -> Endpoint:
        return cls(EndpointKind.SERVICE, key)

    @classmethod
    def external(cls, name: str) -> Endpoint:
        return cls(EndpointKind.EXTERNAL, name)

    @property
    def is_pod(self) -> bool:
        return self.kind is EndpointKind.POD

    @property
    def is_service(self) -> bool:
        return self.kind is EndpointKind.SERVICE

    @property
    def is_external(self) -> bool:
        return self.kind is EndpointKind.EXTERNAL

    def __str__(self) -> str:
        prefix = {EndpointKind.SERVICE: SERVICE_PREFIX, EndpointKind.EXTERNAL: EXTERNAL_PREFIX}
        return prefix.get(self.kind, "") + self.key


@dataclass(frozen=True)
class ContainerPort:
    """A port a pod serves. `name` is what named ports in policies and Services refer to."""

    port: int
    protocol: Protocol
    name: str | None = None

    @staticmethod
    def serve(port: int, protocol: Protocol) -> ContainerPort:
        """The conformance model's port: named serve-<port>-<protocol>."""
        return ContainerPort(port, protocol, f"serve-{port}-{protocol.value.lower()}")


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    system: bool = False

    @property
    def effective_labels(self) -> dict[str, str]:
        """The labels selectors see: the declared ones plus the automatic metadata.name label."""
        return {**self.labels, METADATA_NAME_LABEL: self.name}


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[ContainerPort, ...] = ()
    system: bool = False

    @property
    def key(self) -> str:
        """The pod's name in scenarios and reports: `<namespace>/<name>`."""
        return f"{self.namespace}/{self.name}"

    @property
    def hostname(self) -> str:
        """The hostname the kube backends give the pod, `<namespace>-<name>`, which its servers
        answer with (the local backend's servers answer with the key)."""
        return re.sub(r"[^a-z0-9-]", "-", f"{self.namespace}-{self.name}".lower())[:63].strip("-")

    @property
    def identities(self) -> frozenset[str]:
        """What a reply from this pod's servers may say to name it: its key or its hostname."""
        return frozenset({self.key, self.hostname})

    def resolve_port(self, port: int | str, protocol: Protocol) -> int | None:
        """The numeric port a (possibly named) port means on this pod, or None.

        Why per pod: a named port in a policy resolves against each destination pod's own
        container ports, so the same name can mean different numbers on different pods.
        """
        if isinstance(port, int):
            return port
        for cp in self.ports:
            if cp.name == port and cp.protocol == protocol:
                return cp.port
        return None

    def serves(self, port: int, protocol: Protocol) -> bool:
        return any(cp.port == port and cp.protocol == protocol for cp in self.ports)


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True)
class Service:
    """A ClusterIP Service. It load-balances; it enforces nothing."""

    namespace: str
    name: str
    selector: Mapping[str, str]
    ports: tuple[ServicePort, ...]
    system: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def dns_name(self) -> str:
        return f"{self.name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"


@dataclass(frozen=True)
class ExternalHost:
    """A host outside the cluster (outside the pod CIDR), for egress and ipBlock cases."""

    name: str
    ip: str | None = None
    ports: tuple[ContainerPort, ...] = ()

    @property
    def key(self) -> str:
        return str(Endpoint.external(self.name))


@dataclass(frozen=True)
class Server:
    """What answers a probe: `endpoint` (a pod key or ext:name) serving `port`/`protocol`."""

    endpoint: str
    port: int
    protocol: Protocol


def _dns_pod() -> Pod:
    # CoreDNS's own container port names (dns, dns-tcp), so policies written for a real cluster
    # select the same ports here.
    return Pod(SYSTEM_NAMESPACE, DNS_POD, {"k8s-app": "kube-dns"},
               (ContainerPort(53, Protocol.UDP, "dns"), ContainerPort(53, Protocol.TCP, "dns-tcp")),
               system=True)


def _dns_service() -> Service:
    return Service(SYSTEM_NAMESPACE, DNS_SERVICE, {"k8s-app": "kube-dns"},
                   (ServicePort(53, "dns", Protocol.UDP, "dns"),
                    ServicePort(53, "dns-tcp", Protocol.TCP, "dns-tcp")), system=True)


@dataclass(frozen=True)
class Model:
    """A whole topology. Order matters: it is the row and column order of every truth table."""

    namespaces: tuple[Namespace, ...]
    pods: tuple[Pod, ...]
    services: tuple[Service, ...] = ()
    externals: tuple[ExternalHost, ...] = ()

    # -- construction -------------------------------------------------------------------------
    @staticmethod
    def build(namespaces: Iterable[Namespace], pods: Iterable[Pod],
              services: Iterable[Service] = (), externals: Iterable[ExternalHost] = ()) -> Model:
        """A model with the cluster DNS (kube-system/coredns, Service kube-dns) added."""
        nss = [n for n in namespaces if n.name != SYSTEM_NAMESPACE]
        nss.append(Namespace(SYSTEM_NAMESPACE, {}, system=True))
        ps = [p for p in pods if not p.system] + [_dns_pod()]
        svcs = [s for s in services if not s.system] + [_dns_service()]
        return Model(tuple(nss), tuple(ps), tuple(svcs), tuple(externals))

    @staticmethod
    def default(namespaces: Iterable[str] = DEFAULT_NAMESPACES, pods: Iterable[str] = DEFAULT_PODS,
                ports: Iterable[int] = DEFAULT_PORTS,
                protocols: Iterable[Protocol] = DEFAULT_PROTOCOLS) -> Model:
        """The upstream conformance model, optionally narrowed."""
        ports, protocols, pods = tuple(ports), tuple(protocols), tuple(pods)
        nss = [Namespace(n, {"ns": n}) for n in namespaces]
        container_ports = tuple(ContainerPort.serve(p, proto) for p in ports for proto in protocols)
        ps = [Pod(n.name, p, {"pod": p}, container_ports) for n in nss for p in pods]
        return Model.build(nss, ps)

    # -- lookups -------------------------------------------------------------------------------
    @property
    def user_pods(self) -> tuple[Pod, ...]:
        """The pods of the scenario, in model order: the rows and columns of truth tables."""
        return tuple(p for p in self.pods if not p.system)

    @property
    def pod_keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.user_pods)

    def pod(self, key: str) -> Pod:
        for p in self.pods:
            if p.key == key:
                return p
        raise KeyError(f"unknown pod {key!r}")

    def namespace(self, name: str) -> Namespace:
        for n in self.namespaces:
            if n.name == name:
                return n
        raise KeyError(f"unknown namespace {name!r}")

    def service(self, key: str) -> Service:
        for s in self.services:
            if s.key == key:
                return s
        raise KeyError(f"unknown service {key!r}")

    def external(self, name: str) -> ExternalHost:
        """The external host `name` (spelled with or without `ext:`)."""
        ep = Endpoint.parse(name)
        name = ep.key if ep.is_external else name
        for e in self.externals:
            if e.name == name:
                return e
        raise KeyError(f"unknown external host {name!r}")

    def server_of(self, source: str, target: str, port: int | str, protocol: Protocol
                  ) -> Server | None:
        """The server a probe from `source` to `target` reaches, or None when unknown.

        Why: cells that reach the same server (a pod directly, through its Service's IP or
        through the Service's DNS name) share one positive control; keyed by the target as
        written, a probe by name could never be backed by the direct probes of the same server.
        """
        ep = Endpoint.parse(target)
        if ep.is_external:
            return Server(target, port, protocol) if isinstance(port, int) else None
        if ep.is_service:
            try:
                svc = self.service(ep.key)
            except KeyError:
                return None
        else:
            try:
                pod = self.pod(target)
            except KeyError:
                ns = source.partition("/")[0] if "/" in source else None
                found = self.find_service_by_dns(target, ns)
                if found is None:
                    return None  # an address or a foreign name: only another source can prove it
                svc = found
            else:
                n = pod.resolve_port(port, protocol)
                return Server(pod.key, n, protocol) if n else None
        for sp in svc.ports:
            if sp.port == port and sp.protocol == protocol:
                for backend in self.service_backends(svc):
                    n = backend.resolve_port(sp.target_port, protocol)
                    if n:
                        return Server(backend.key, n, protocol)
        return None

    def service_backends(self, service: Service) -> tuple[Pod, ...]:
        """The pods a Service selects (same namespace, all selector labels equal)."""
        if not service.selector:
            return ()
        return tuple(p for p in self.pods if p.namespace == service.namespace
                     and all(p.labels.get(k) == v for k, v in service.selector.items()))

    def find_service_by_dns(self, name: str, from_namespace: str | None = None) -> Service | None:
        """The Service a DNS name means, following the pod's search path for short names."""
        name = name.rstrip(".")
        candidates = [name]
        if from_namespace:
            candidates += [f"{name}.{from_namespace}.svc.{CLUSTER_DOMAIN}",
                           f"{name}.svc.{CLUSTER_DOMAIN}", f"{name}.{CLUSTER_DOMAIN}"]
        for cand in candidates:
            for s in self.services:
                if s.dns_name == cand:
                    return s
        return None

    # -- changes between steps -----------------------------------------------------------------
    def with_labels(self, namespace_labels: Mapping[str, Mapping[str, str | None]] | None = None,
                    pod_labels: Mapping[str, Mapping[str, str | None]] | None = None) -> Model:
        """A new model with labels changed; a None value removes that label."""

        def merged(old: Mapping[str, str], change: Mapping[str, str | None]) -> dict[str, str]:
            out = dict(old)
            for k, v in change.items():
                if v is None:
                    out.pop(k, None)
                else:
                    out[k] = v
            return out

        namespace_labels = namespace_labels or {}
        pod_labels = pod_labels or {}
        for name in namespace_labels:
            self.namespace(name)
        for key in pod_labels:
            self.pod(key)
        nss = tuple(replace(n, labels=merged(n.labels, namespace_labels[n.name]))
                    if n.name in namespace_labels else n for n in self.namespaces)
        ps = tuple(replace(p, labels=merged(p.labels, pod_labels[p.key]))
                   if p.key in pod_labels else p for p in self.pods)
        return replace(self, namespaces=nss, pods=ps)


@dataclass(frozen=True)
class Addresses:
    """Where everything is: pod IPs, Service ClusterIPs, external host IPs, the pod CIDR.

    Offline (check, expect, explain) the stand-in plan from `plan_addresses` is used; on a live
    backend the backend reports the real addresses, and placeholders such as {{podIP x/a}} are
    substituted from them.
    """

    pod_ips: Mapping[str, str]
    service_ips: Mapping[str, str]
    external_ips: Mapping[str, str]
    pod_cidr: str = POD_CIDR
    dns_service_ip: str = DNS_SERVICE_IP
    node_ips: tuple[str, ...] = ()
    #: the ClusterIP of default/kubernetes, what the API server's DNS names resolve to
    api_service_ip: str = KUBERNETES_SERVICE_IP

    def ip_of(self, endpoint: str | Endpoint) -> str:
        """The IP of a pod, Service or external host; KeyError for anything else."""
        ep = Endpoint.parse(endpoint)
        if ep.is_external:
            return self.external_ips[ep.key]
        if ep.is_service:
            return self.service_ips[ep.key]
        return self.pod_ips[ep.key]


def plan_addresses(model: Model, pod_cidr: str = POD_CIDR) -> Addresses:
    """Deterministic stand-in addresses: pods from the pod CIDR's first /24 after the node's,
    Services from the service CIDR, externals as declared or from TEST-NET-3."""
    net = ipaddress.ip_network(pod_cidr)
    base = int(net.network_address) + 256  # 10.244.1.0/24 is "node 1"; .1 is its gateway
    pod_ips = {p.key: str(ipaddress.ip_address(base + 10 + i)) for i, p in enumerate(model.pods)}
    svc_net = int(ipaddress.ip_network(SERVICE_CIDR).network_address)
    service_ips: dict[str, str] = {}
    n = 0
    for s in model.services:
        if s.system and s.name == DNS_SERVICE:
            service_ips[s.key] = DNS_SERVICE_IP
        else:
            service_ips[s.key] = str(ipaddress.ip_address(svc_net + 256 + 10 + n))
            n += 1
    ext_base = int(ipaddress.ip_network(EXTERNAL_DEFAULT_RANGE).network_address)
    external_ips = {}
    for i, e in enumerate(model.externals):
        external_ips[e.name] = e.ip or str(ipaddress.ip_address(ext_base + 10 + i))
    return Addresses(pod_ips, service_ips, external_ips, pod_cidr, DNS_SERVICE_IP,
                     (str(ipaddress.ip_address(base + 1)),))
