"""Canal on real nodes (issue 21 item 2): `RealNodesCluster(network="flannel", engine="calico")`,
put together as Calico's manifests/canal.yaml installs it (docs/sources.md §18, §19).

  - Between the nodes: the real flanneld of harness.backends.real.realnodes.flannel (VXLAN,
    Kubernetes subnet manager, `--ip-masq`), unchanged: it makes `flannel.1` and one route per
    other node's spec.podCIDR over it. No static pod routes of the harness.
  - The pods: Calico's CNI plugin (harness.backends.real.realnodes.calico's conflist: `type:
    calico`, `ipam: {type: host-local, subnet: usePodCidr}`), so each pod is a `cali` veth
    with a /32 route in the node, which Felix matches. Its subnet is the Node's spec.podCIDR
    that the controller manager handed out and flanneld routes; the harness writes none. The
    bridge configuration flannel's plugin would make is not written (Canal's nodes carry
    Calico's conflist only). The pods' MTU is `MTU`, eth0's 1500 less VXLAN's 50: what
    flanneld writes as FLANNEL_MTU here (tests/real_nodes/test_canal.py reads it back);
    canal.yaml leaves it to calico-node's auto-detection, and no calico-node runs here.
  - Felix enforcing, with calico-node's environment of canal.yaml on top of today's
    (`FELIX_ENV`): no Calico networking (no BGP, no Calico encapsulation: flannel routes),
    pod CIDRs from the Nodes, and traffic from a pod to its own node accepted (Felix's default
    is to drop it; Canal accepts it).
"""

from __future__ import annotations

import dataclasses

from harness.backends.real import engines as enginesx

#: the pods' MTU under Canal (module docstring)
MTU = 1450
#: what canal.yaml sets in calico-node's environment and Felix takes here;
#: CALICO_NETWORKING_BACKEND and USE_POD_CIDR are calico-node's startup settings, passed
#: as canal.yaml has them, and FELIX_DEFAULTENDPOINTTOHOSTACTION is Felix's own
FELIX_ENV = {"CALICO_NETWORKING_BACKEND": "none", "USE_POD_CIDR": "true",
             "FELIX_DEFAULTENDPOINTTOHOSTACTION": "ACCEPT"}


def felix(p: enginesx.NodeProcess) -> enginesx.NodeProcess:
    """Felix's node process `p` with Canal's environment (FELIX_ENV) added."""
    if p.name != "felix":
        raise ValueError(f"Canal's environment is Felix's, not {p.name}'s")
    return dataclasses.replace(p, env={**(p.env or {}), **FELIX_ENV})
