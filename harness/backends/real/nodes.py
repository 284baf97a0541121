"""Two emulated Kubernetes nodes as network namespaces, and pods wired into them Calico style.

Why two: an engine enforces a pod's policy on the node the pod runs on, so a matrix needs pairs
of pods on the same node and on different nodes (Cilium's echo-same-node / echo-other-node);
one node would never show a rule that only works for local traffic.

Layout of one run (names from harness.naming.local_prefix, `np-<run>-`):
  np-<run>-n1, np-<run>-n2   the nodes. Each has `eth0` with its node address (NODE_SUBNET),
                             the two linked by one veth pair, a route to the other node's pod
                             CIDR via the other node's address, and nothing else: no default
                             route, no link to the root namespace. The Node objects carry the
                             same names, addresses and pod CIDRs.
  np-<run>-p<N>              one per pod, bound to one node: eth0 holds the pod IP/32 with a
                             default route via GATEWAY (169.254.1.1), the Calico convention.
                             The node side of its veth is named as Felix names a workload's
                             interface (`veth_name`), carries GATEWAY_MAC, proxy ARP, and the
                             node routes the pod's /32 over it.
Why the pod has a static neighbour entry for GATEWAY: proxy ARP answers only for an address the
node routes out of another interface, and these nodes have no default route; a fixed entry for
GATEWAY_MAC (the MAC every node-side pod interface carries) needs no ARP at all.
Pod addresses: node k's pods get addresses from 10.244.k.0/24 (harness.model.POD_CIDR's k-th
/24, the spec.podCIDR of its Node object), starting at .10 as plan_addresses does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from dataclasses import dataclass

from harness import naming
from harness.backends.local import netns as nsx
from harness.errors import BackendError
from harness.model import POD_CIDR

#: the nodes' own network: the link between the node namespaces (outside every pod, Service
#: and scenario CIDR; it exists only inside the run's node namespaces)
NODE_SUBNET = "172.18.0.0/24"
NODE_COUNT = 2
GATEWAY = "169.254.1.1"
GATEWAY_MAC = "ee:ee:ee:ee:ee:ee"
#: the first host number handed to pods in each node's /24 (.1-.9 stay unused)
FIRST_POD_HOST = 10
#: Felix's default FELIX_INTERFACEPREFIX
INTERFACE_PREFIX = "cali"


@dataclass(frozen=True)
class NodeNet:
    """One emulated node: its name (= Node object = network namespace), address and pod CIDR."""

    name: str
    index: int
    address: str
    pod_cidr: str

    @property
    def netns(self) -> str:
        return self.name


def plan_nodes(run_id: str, count: int = NODE_COUNT) -> tuple[NodeNet, ...]:
    """The run's nodes: np-<run>-n<k> at 172.18.0.<k+1>, pod CIDR 10.244.<k>.0/24."""
    prefix = naming.local_prefix(run_id)
    subnet = ipaddress.ip_network(NODE_SUBNET)
    pods = ipaddress.ip_network(POD_CIDR)
    out = []
    for k in range(1, count + 1):
        cidr = ipaddress.ip_network((int(pods.network_address) + 256 * k, 24))
        out.append(NodeNet(f"{prefix}n{k}", k, str(subnet.network_address + k + 1), str(cidr)))
    return tuple(out)


def veth_name(namespace: str, pod: str, prefix: str = INTERFACE_PREFIX) -> str:
    """The node-side interface of a pod as Felix expects it: the prefix and the first 11 hex
    digits of sha1("<namespace>.<pod>") (15 characters, the kernel's limit)."""
    digest = hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()
    return (prefix + digest)[:15]


def create_nodes(nodes: tuple[NodeNet, ...], pod_routes: bool = True) -> None:
    """Create the node namespaces, link them, address them, route each pod CIDR (unless
    `pod_routes` is False: a network of its own routes pods between nodes, e.g. flannel)."""
    if len(nodes) != 2:
        raise BackendError("creating the emulated nodes", f"expected 2 nodes, got {len(nodes)}")
    a, b = nodes
    bits = ipaddress.ip_network(NODE_SUBNET).prefixlen
    nsx.add_netns([n.netns for n in nodes])
    nsx.ip_batch([f"link add eth0 type veth peer name eth0 netns {b.netns}"], a.netns,
                 doing=f"linking {a.name} and {b.name}")
    for me, other in ((a, b), (b, a)):
        routes = [f"route add {other.pod_cidr} via {other.address} dev eth0"] if pod_routes else []
        nsx.ip_batch(["link set lo up", "link set eth0 up",
                      f"addr add {me.address}/{bits} dev eth0", *routes],
                     me.netns, doing=f"addressing node {me.name}")
        nsx.sysctl(me.netns, {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
                              "net.ipv4.conf.default.rp_filter": "0"})


def delete_nodes(nodes: tuple[NodeNet, ...]) -> list[str]:
    """Delete the node namespaces (killing what still runs there); the errors, if any."""
    return [err for n in nodes if (err := nsx.delete_netns(n.netns))]


class PodAddresses:
    """IPAM of one node, like the host-local plugin: the next free address of its pod CIDR."""

    def __init__(self, node: NodeNet):
        self.node = node
        self._net = ipaddress.ip_network(node.pod_cidr)
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def allocate(self) -> str:
        with self._lock:
            for host in range(FIRST_POD_HOST, self._net.num_addresses - 1):
                ip = str(self._net.network_address + host)
                if ip not in self._used:
                    self._used.add(ip)
                    return ip
        raise BackendError(f"allocating a pod address on {self.node.name}",
                           f"{self.node.pod_cidr} is exhausted")

    def release(self, ip: str) -> None:
        with self._lock:
            self._used.discard(ip)


def wire_pod(node: NodeNet, pod_netns: str, veth: str, ip: str) -> None:
    """Create `pod_netns` and wire it into `node` (see the module docstring)."""
    nsx.add_netns([pod_netns])
    nsx.ip_batch([f"link add {veth} address {GATEWAY_MAC} type veth peer name eth0 "
                  f"netns {pod_netns}",
                  f"link set {veth} up",
                  f"route add {ip}/32 dev {veth}"], node.netns,
                 doing=f"wiring pod namespace {pod_netns} into {node.name}")
    nsx.sysctl(node.netns, {f"net.ipv4.conf.{veth}.proxy_arp": "1",
                            f"net.ipv4.neigh.{veth}.proxy_delay": "0"})
    nsx.ip_batch(["link set lo up", "link set eth0 up", f"addr add {ip}/32 dev eth0",
                  f"route add {GATEWAY}/32 dev eth0 scope link",
                  f"route add default via {GATEWAY} dev eth0",
                  f"neigh replace {GATEWAY} lladdr {GATEWAY_MAC} dev eth0 nud permanent"],
                 pod_netns, doing=f"configuring pod namespace {pod_netns}")
