"""Calico on the real nodes: Calico's own CNI plugin wires the pods, Felix enforces.

Why Calico's plugin and not the bridge: Felix matches workload traffic by interface name
(`cali` + 11 hex digits of sha1("<namespace>.<pod>")) and expects each pod on a point-to-point
veth with a /32 route and proxy ARP; the bridge plugin's `veth<random>` ports behind a bridge
match none of its rules (docs/real-nodes.md §8). So with `engine="calico"` every node's CNI
configuration is Calico's plugin (`type: calico`, Kubernetes datastore), which makes exactly
that, and Felix (harness.backends.real.engines) sees workloads made as on any Calico node.

What this module sets up, and what stands in for the parts of a Calico install that do not run:
  - CNI configuration: `calico` with `ipam: {type: host-local, subnet: usePodCidr}`, the
    host-local mode of Canal and of Calico's own manifests without calico-ipam: the plugin
    reads the Node's spec.podCIDR and hands the address to the host-local plugin (files under
    the node's run directory). Not calico-ipam, whose IPAM blocks need Calico's IPAM
    controllers. `nodename` is given and `nodename_file_optional` set: no calico-node writes
    /var/lib/calico/nodename here. The plugin logs to the node's log directory.
  - A directory of CNI plugins per node: `calico` and `calico-ipam` (one binary, which is one or
    the other by the name it runs under), host-local, loopback and portmap.
  - spec.podCIDR of each Node, written by the harness once the kubelet registered it (the
    controller manager runs without --allocate-node-cidrs; the node namespaces' static routes
    are for these CIDRs: harness.backends.real.nodes).
  - A route for Calico's pod gateway 169.254.1.1 out of each node's eth0: a pod reaches the
    node by ARPing for that address, which the node answers by proxy ARP only when it routes
    the address out of another interface. A real node does through its default route; these
    nodes have none (nothing may leave them), so this /32 stands in for it.
  - Calico's datastore (CRDs, ClusterInformation, tiers) from harness.backends.real.calico.
  - The plugin's identity: user CNI_USER with the rules of Calico's `calico-cni-plugin`
    ClusterRole (CNI_RULES; on a real node it is that ServiceAccount's token), through the
    relay of its node namespace. Felix reads as the admin, as in today's tier.
Routes between the nodes stay the harness's static routes (no BGP, no encapsulation).

Everything it creates is inside the run: the files under the run directory, the veths and
routes inside the node namespaces (gone with them), the datastore inside the run's API server.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness import components, naming
from harness.backends.local import netns as nsx
from harness.backends.real import calico as datastore
from harness.backends.real.nodes import GATEWAY, NodeNet

#: the user the CNI plugin acts as, and the rules of its ClusterRole: those of
#: `calico-cni-plugin` in the pinned Calico's manifests/calico.yaml (docs/sources.md §18). Not
#: the role of the same name in manifests/canal.yaml, which lacks clusterinformations: the
#: plugin reads ClusterInformation `default` on every ADD, and with that role the ADD failed
#: here with 403 (docs/real-nodes.md §8)
CNI_USER = "netpol-proof:calico-cni-plugin"
CNI_RULES = [
    {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
    {"apiGroups": ["crd.projectcalico.org"],
     "resources": ["blockaffinities", "ipamblocks", "ipamhandles", "clusterinformations",
                   "ippools", "ipreservations", "ipamconfigs"],
     "verbs": ["get", "list", "create", "update", "delete"]}]
#: the CNI plugins of a Calico node besides Calico's own (the runtime calls loopback itself)
OTHER_PLUGINS = ("host-local", "loopback", "portmap")
CALICO_VERSION = components.FAMILIES["felix"].version
MTU = 1500


def cni_bin_dir(node_dir: Path) -> Path:
    """`<node dir>/cni/bin`: links named calico, calico-ipam, host-local, loopback, portmap."""
    d = node_dir / "cni" / "bin"
    d.mkdir(parents=True, exist_ok=True)
    calico = components.find("calico")
    links = {"calico": calico, "calico-ipam": calico,
             **{name: components.find(name) for name in OTHER_PLUGINS}}
    for name, target in links.items():
        link = d / name
        if not link.is_symlink():
            link.symlink_to(target)
    return d


def conflist(run_id: str, node: NodeNet, node_dir: Path, kubeconfig: Path,
             mtu: int = MTU) -> dict:
    """Calico's plugin (module docstring) + portmap, as Calico's manifests chain them; `mtu`:
    the pods' (less than MTU under an encapsulation: harness.backends.real.realnodes.canal)."""
    return {"cniVersion": "1.0.0", "name": f"{naming.PROJECT}-{run_id}", "plugins": [
        {"type": "calico", "datastore_type": "kubernetes", "nodename": node.name,
         "nodename_file_optional": True, "mtu": mtu, "log_level": "info",
         "log_file_path": str(node_dir / "logs" / "calico-cni.log"),
         "ipam": {"type": "host-local", "subnet": "usePodCidr",
                  "dataDir": str(node_dir / "cni" / "ipam")},
         "policy": {"type": "k8s"}, "kubernetes": {"kubeconfig": str(kubeconfig)}},
        {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
    ]}


def route_gateway(nodes: tuple[NodeNet, ...]) -> None:
    """The /32 for the pods' gateway out of each node's eth0 (module docstring)."""
    for n in nodes:
        nsx.ip_batch([f"route add {GATEWAY}/32 dev eth0"], n.netns,
                     doing=f"routing Calico's pod gateway {GATEWAY} on {n.name}")


def assign_pod_cidrs(core, nodes: tuple[NodeNet, ...]) -> None:
    """Write each registered Node's spec.podCIDR(s): what usePodCidr reads."""
    for n in nodes:
        core.patch_node(n.name, {"spec": {"podCIDR": n.pod_cidr, "podCIDRs": [n.pod_cidr]}})


def install(kubeconfig: os.PathLike | str, context: str, run_id: str) -> int:
    """Calico's CRDs, ClusterInformation and tiers on the run's API server, and the CNI
    plugin's ClusterRole and binding (CNI_USER); the CRD count."""
    from harness.backends.kube.api import KubeApi

    api = KubeApi(str(kubeconfig), context)
    count = datastore.install(api, CALICO_VERSION)
    rbac = api.client.RbacAuthorizationV1Api(api.api_client)
    meta = {"name": CNI_USER, "labels": naming.ownership_labels(run_id)}
    rbac.create_cluster_role({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                              "metadata": meta, "rules": CNI_RULES})
    rbac.create_cluster_role_binding({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": dict(meta), "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                            "kind": "ClusterRole", "name": CNI_USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": CNI_USER}]})
    return count
