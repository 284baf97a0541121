"""kind cluster configs (kind.x-k8s.io/v1alpha4), rendered from harness.backends.cni.

Why rendered: the files in kind-config/ and the config the backend passes to `kind create` come
from the same function, so they cannot drift (tests/test_kind_config.py compares them). The
shape follows notes §1.3: a control plane and two workers (probes cross nodes and stay on one),
the node image pinned by tag and digest, the default CNI disabled except for kindnet, kind's
own subnets, and `dnsSearch: []` so host search domains never leak into pods (§1.9 pitfall 7).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from harness import naming
from harness.backends import cni as cnis
from harness.model import POD_CIDR, SERVICE_CIDR

API_VERSION = "kind.x-k8s.io/v1alpha4"
CNI_BIN = "/opt/cni/bin"
#: Where the checked-in kind-config/flannel.yaml expects the extracted CNI plugins; the backend
#: renders its own config with its cache directory instead.
FILE_PLUGINS_DIR = f"/tmp/netpol-proof/cni-plugins-{cnis.CNI_PLUGINS_VERSION}"
CONFIG_DIR = Path(__file__).resolve().parents[3] / "kind-config"

_HEADER = ("# Rendered by harness.backends.kind.config.render_text({cni!r}); do not edit by hand.\n"
           "# Regenerate: python -m harness.backends.kind.config kind-config/\n")


def render(cni: str, plugins_dir: str | None = None) -> dict[str, Any]:
    """The kind config for `cni` as a dict. `plugins_dir` is the host directory holding the
    extracted CNI plugins (Flannel only, notes §4.2 option A)."""
    spec = cnis.spec(cni)
    node: dict[str, Any] = {"image": cnis.NODE_IMAGE}
    if spec.needs_cni_plugins:
        # The mount hides the node's own /opt/cni/bin, so the directory must hold the whole
        # plugins tarball (v1.9.1 does), built for the node's architecture. Read-write: Flannel's
        # init container copies its own `flannel` plugin into it.
        node["extraMounts"] = [{"hostPath": plugins_dir or FILE_PLUGINS_DIR,
                                "containerPath": CNI_BIN}]
    networking: dict[str, Any] = {"podSubnet": POD_CIDR, "serviceSubnet": SERVICE_CIDR,
                                  "dnsSearch": []}
    if spec.disable_default_cni:
        networking = {"disableDefaultCNI": True, **networking}
    return {
        "kind": "Cluster",
        "apiVersion": API_VERSION,
        "name": naming.cluster_name(cni),
        "networking": networking,
        # copy.deepcopy per node: shared sub-objects would be dumped as YAML anchors
        "nodes": [{"role": role, **copy.deepcopy(node)}
                  for role in ("control-plane", "worker", "worker")],
    }


def render_text(cni: str, plugins_dir: str | None = None) -> str:
    return _HEADER.format(cni=cni) + yaml.safe_dump(render(cni, plugins_dir), sort_keys=False)


_NAME_RE = re.compile(r"^[a-z0-9.-]+$")
_NETWORKING_KEYS = {"disableDefaultCNI", "podSubnet", "serviceSubnet", "dnsSearch",
                    "kubeProxyMode", "ipFamily", "apiServerAddress", "apiServerPort"}
_NODE_KEYS = {"role", "image", "labels", "extraMounts", "extraPortMappings",
              "kubeadmConfigPatches"}


def validate(cfg: Any, where: str = "kind config") -> list[str]:
    """Every problem with a kind config's shape (kind's own rules, notes §1.3, plus ours: image
    pinned by digest, dnsSearch empty, two workers). Empty when valid."""
    if not isinstance(cfg, dict):
        return [f"{where}: a kind config is a mapping"]
    p: list[str] = []
    if cfg.get("kind") != "Cluster" or cfg.get("apiVersion") != API_VERSION:
        p.append(f"{where}: kind/apiVersion must be Cluster / {API_VERSION}")
    name = cfg.get("name", "")
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 50:
        p.append(f"{where}.name: {name!r} must match [a-z0-9.-]+ and be at most 50 characters")
    elif not naming.is_our_cluster(name):
        p.append(f"{where}.name: {name!r} does not start with {naming.CLUSTER_PREFIX!r}")
    net = cfg.get("networking")
    if not isinstance(net, dict):
        p.append(f"{where}.networking: required mapping")
        net = {}
    for key in sorted(set(net) - _NETWORKING_KEYS):
        p.append(f"{where}.networking.{key}: unknown field")
    if net.get("podSubnet") != POD_CIDR or net.get("serviceSubnet") != SERVICE_CIDR:
        p.append(f"{where}.networking: podSubnet/serviceSubnet must be {POD_CIDR}/{SERVICE_CIDR}")
    if net.get("dnsSearch") != []:
        p.append(f"{where}.networking.dnsSearch: must be [] (host search domains leak into pods)")
    if "disableDefaultCNI" in net and not isinstance(net["disableDefaultCNI"], bool):
        p.append(f"{where}.networking.disableDefaultCNI: must be true or false")
    nodes = cfg.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        return p + [f"{where}.nodes: required list"]
    roles = [n.get("role") if isinstance(n, dict) else None for n in nodes]
    if roles.count("control-plane") != 1 or roles.count("worker") != 2:
        p.append(f"{where}.nodes: want one control-plane and two workers, got {roles}")
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            p.append(f"{where}.nodes[{i}]: a node is a mapping")
            continue
        for key in sorted(set(node) - _NODE_KEYS):
            p.append(f"{where}.nodes[{i}].{key}: unknown field")
        if node.get("role") not in ("control-plane", "worker"):
            p.append(f"{where}.nodes[{i}].role: {node.get('role')!r} is not control-plane/worker")
        image = str(node.get("image", ""))
        if not re.fullmatch(r"kindest/node:v[\d.]+@sha256:[0-9a-f]{64}", image):
            p.append(f"{where}.nodes[{i}].image: {image!r} must be kindest/node:<tag>@sha256:<digest>")
        for j, m in enumerate(node.get("extraMounts") or []):
            if not isinstance(m, dict) or not str(m.get("hostPath", "")).startswith("/") \
                    or not m.get("containerPath"):
                p.append(f"{where}.nodes[{i}].extraMounts[{j}]: needs absolute hostPath and "
                         f"containerPath")
    return p


def write_all(directory: Path = CONFIG_DIR) -> list[Path]:
    """Write kind-config/<cni>.yaml for every CNI; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for cni in cnis.CNIS:
        path = directory / f"{cni}.yaml"
        path.write_text(render_text(cni))
        out.append(path)
    return out


if __name__ == "__main__":
    import sys

    for written in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else CONFIG_DIR):
        print(written)
