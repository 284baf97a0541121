"""Flannel on real nodes (issue 21): the real flanneld on every node, and the CNI configuration
flannel's CNI plugin would hand to the bridge plugin, written by netpol-proof.

flanneld (the `flannel` component family) runs in each node's network namespace (`nsenter
--net`, like the kubelet; no cgroup) with the Kubernetes subnet manager against the run's API
server as a user of its own (ROLE: what flannel's own manifest grants), the VXLAN backend over
the node's link (`eth0` of harness.backends.real.nodes) and the network `NETWORK` (the pod
CIDR the controller manager hands out /24s of as each Node's spec.podCIDR). It makes the VXLAN
device `flannel.1`, one route per other node's subnet over it, and writes `subnet.env`.

flannel's CNI plugin (github.com/flannel-io/cni-plugin) is not served by the Go module proxy,
so it is not run. What it does on ADD is small: read `subnet.env` and call the bridge plugin
with its `delegate` section plus: `name` = the network's name, `type: bridge`, `ipMasq` = not
FLANNEL_IPMASQ, `mtu` = FLANNEL_MTU, `isGateway: true`, and an IPAM section `host-local` with
`ranges` = [[FLANNEL_SUBNET's network]] and `routes` = [FLANNEL_NETWORK] (docs/sources.md
§19). `conflist` writes exactly that bridge configuration, with the delegate section of
flannel's own manifest (`hairpinMode`, `isDefaultGateway`) and portmap after it, as the
manifest's conflist has. The bridge is the bridge plugin's default `cni0`: it lives inside the
run's node namespace (np-<run>-n<k>), as `flannel.1` does, and goes with it.

Differences from a cluster, each said here: host-local's `dataDir` is in the run directory (not
/var/lib/cni: nothing outside the run is written); flanneld is a process of the harness, not a
DaemonSet pod, so it is started once the Node has its spec.podCIDR instead of being restarted
until it has one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.backends.local import netns as nsx
from harness.backends.real import engines as enginesx
from harness.backends.real.nodes import NodeNet
from harness.errors import BackendError
from harness.model import POD_CIDR
from harness.shell import run

#: the networks a real-node cluster can run: the harness's static routes between the nodes
#: with the bridge plugin (`bridge`), or flanneld's VXLAN with the bridge plugin (`flannel`)
NETWORKS = ("bridge", "flannel")
#: flannel's network: every node's spec.podCIDR is a /24 of it
NETWORK = POD_CIDR
#: the node's link to the other node (harness.backends.real.nodes names it eth0)
NODE_IFACE = "eth0"
#: flannel names its VXLAN device flannel.<VNI>; the VNI defaults to 1
VXLAN_DEVICE = "flannel.1"
#: the bridge plugin's default bridge name (flannel's plugin does not set one)
BRIDGE = "cni0"
USER = "netpol-proof:flannel"
#: flannel's own manifest grants this (its ClusterRole flannel; docs/sources.md §19)
ROLE = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]}]
#: the `delegate` section of the CNI configuration in flannel's manifest
DELEGATE = {"hairpinMode": True, "isDefaultGateway": True}
SUBNET_FIELDS = ("FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ")


class FlannelError(BackendError):
    """flanneld could not be started, or what it wrote cannot be used."""


def net_conf() -> dict:
    """flanneld's net-conf.json: flannel's manifest's, VXLAN, iptables (not nftables)."""
    return {"Network": NETWORK, "EnableNFTables": False, "Backend": {"Type": "vxlan"}}


@dataclass(frozen=True)
class SubnetEnv:
    """What flanneld wrote to subnet.env for its node."""

    network: str        # FLANNEL_NETWORK
    subnet: str         # FLANNEL_SUBNET as written: the node's gateway address / prefix
    mtu: int            # FLANNEL_MTU
    ipmasq: bool        # FLANNEL_IPMASQ

    @property
    def subnet_network(self) -> str:
        """The node's pod subnet (FLANNEL_SUBNET's network, as flannel's plugin parses it)."""
        return str(ipaddress.ip_interface(self.subnet).network)


def parse_subnet_env(text: str, path: str | os.PathLike) -> SubnetEnv:
    """subnet.env's four IPv4 fields; an error names the file and the field."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    missing = [f for f in SUBNET_FIELDS if f not in fields]
    if missing:
        raise FlannelError(f"reading {path}", f"missing {', '.join(missing)}")

    def bad(field: str, why: str) -> FlannelError:
        return FlannelError(f"reading {path}", f"{field}={fields[field]!r}: {why}")

    try:
        network = str(ipaddress.IPv4Network(fields["FLANNEL_NETWORK"]))
    except ValueError as exc:
        raise bad("FLANNEL_NETWORK", f"not an IPv4 network ({exc})") from None
    try:
        subnet = ipaddress.IPv4Interface(fields["FLANNEL_SUBNET"])
    except ValueError as exc:
        raise bad("FLANNEL_SUBNET", f"not an IPv4 address/prefix ({exc})") from None
    if not subnet.network.subnet_of(ipaddress.IPv4Network(network)):
        raise bad("FLANNEL_SUBNET", f"not inside FLANNEL_NETWORK {network}")
    try:
        mtu = int(fields["FLANNEL_MTU"])
    except ValueError:
        raise bad("FLANNEL_MTU", "not an integer") from None
    if not 576 <= mtu <= 65535:
        raise bad("FLANNEL_MTU", "outside 576-65535")
    if fields["FLANNEL_IPMASQ"] not in ("true", "false"):
        raise bad("FLANNEL_IPMASQ", "neither true nor false")
    return SubnetEnv(network, str(subnet), mtu, fields["FLANNEL_IPMASQ"] == "true")


def conflist(env: SubnetEnv, name: str, data_dir: Path) -> dict:
    """The node's CNI configuration: the bridge configuration flannel's plugin makes from `env`
    (module docstring), then portmap."""
    bridge = {**DELEGATE, "type": "bridge", "ipMasq": not env.ipmasq, "mtu": env.mtu,
              "isGateway": True,
              "ipam": {"type": "host-local", "ranges": [[{"subnet": env.subnet_network}]],
                       "routes": [{"dst": env.network}], "dataDir": str(data_dir)}}
    return {"cniVersion": "1.0.0", "name": name,
            "plugins": [bridge, {"type": "portmap", "capabilities": {"portMappings": True}}]}


def flanneld(binary: str, node: NodeNet, kubeconfig: str, workdir: Path) -> enginesx.NodeProcess:
    """flanneld for one node (the flags and environment of flannel's manifest, with the files
    in `workdir`); ready once subnet.env is usable and flannel.1 exists in the node."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "net-conf.json"
    conf.write_text(json.dumps(net_conf(), indent=1))
    subnet_file = workdir / "subnet.env"
    argv = (binary, "--kube-subnet-mgr", f"--kubeconfig-file={kubeconfig}",
            f"--iface={NODE_IFACE}", f"--net-config-path={conf}", f"--subnet-file={subnet_file}",
            "--ip-masq", "--healthz-port=0", "--v=1")
    env = {**os.environ, "NODE_NAME": node.name, "EVENT_QUEUE_DEPTH": "5000",
           "CONT_WHEN_CACHE_NOT_READY": "false"}

    def ready() -> tuple[bool, str]:
        try:
            parse_subnet_env(subnet_file.read_text(), subnet_file)
        except OSError as exc:
            return False, f"no {subnet_file} yet ({exc.strerror})"
        except FlannelError as exc:
            return False, str(exc)
        if VXLAN_DEVICE not in nsx.links(node.netns):
            return False, f"no {VXLAN_DEVICE} in {node.netns} yet"
        return True, "ready"

    return enginesx.NodeProcess("flanneld", argv, ready, env)


def link_counters(netns: str, link: str) -> dict[str, int]:
    """The kernel's rx/tx packet and byte counters of `link` in `netns` (`ip -s -j`)."""
    res = run(["ip", "-n", netns, "-s", "-j", "link", "show", "dev", link], timeout=10,
              check=True, doing=f"reading the counters of {link} in {netns}")
    stats = json.loads(res.stdout)[0]["stats64"]
    return {f"{way}_{what}": int(stats[way][what]) for way in ("rx", "tx")
            for what in ("packets", "bytes")}


def wait_pod_cidr(core, node: str, timeout: float,
                  alive: Callable[[], None] = lambda: None) -> str:
    """The Node's spec.podCIDR once the kubelet has registered it and the controller manager
    has set it; `alive` raises when a node process has exited."""
    from kubernetes import client

    deadline = time.monotonic() + timeout
    while True:
        alive()
        try:
            obj = core.read_node(node)
        except client.ApiException as exc:
            if exc.status != 404:       # 404: the kubelet has not registered it yet
                raise
            obj = None
        if obj is not None and obj.spec.pod_cidr:
            return obj.spec.pod_cidr
        if time.monotonic() > deadline:
            why = "no spec.podCIDR (the controller manager's node-ipam controller sets it)" \
                if obj is not None else "not registered by its kubelet"
            raise FlannelError(f"starting flanneld on {node}",
                               f"the Node is {why} after {timeout:g}s")
        time.sleep(0.3)

