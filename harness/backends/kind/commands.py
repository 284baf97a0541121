"""The commands that make and feed a kind cluster, as argv lists, and each CNI's install steps.

Why argv builders apart from the backend: every command the kind backend runs is decided here
and tested as a list (tests/test_kind_commands.py), and runs only through harness.shell.run.
Each kind/kubectl/helm call names the private kubeconfig and its context explicitly, so the
user's kubeconfig and current context are never read or switched (notes §1.6, §9 pitfall 2).
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.backends import cni as cnis
from harness.backends.kind.binaries import fetch_verified, go_arch
from harness.errors import BackendError
from harness.model import POD_CIDR


@dataclass(frozen=True)
class Tools:
    """Resolved binaries plus the private kubeconfig and context every call uses."""

    kind: str
    kubectl: str
    helm: str
    docker: str
    kubeconfig: str
    context: str


def kind_create(t: Tools, name: str, config: str) -> list[str]:
    # --wait 0s: kind's wait only polls control-plane Ready and exits 0 on timeout; with the
    # default CNI disabled nodes are never Ready before the CNI (notes §1.5).
    return [t.kind, "create", "cluster", "--name", name, "--config", config,
            "--kubeconfig", t.kubeconfig, "--wait", "0s"]


def kind_delete(t: Tools, name: str) -> list[str]:
    return [t.kind, "delete", "cluster", "--name", name, "--kubeconfig", t.kubeconfig]


def docker_cgroup_version(docker: str) -> list[str]:
    return [docker, "info", "--format", "{{.CgroupVersion}}"]


def kind_get_clusters(kind: str) -> list[str]:
    return [kind, "get", "clusters"]


def kind_export_kubeconfig(t: Tools, name: str) -> list[str]:
    """For --reuse-cluster: write the existing cluster's credentials into OUR kubeconfig file."""
    return [t.kind, "export", "kubeconfig", "--name", name, "--kubeconfig", t.kubeconfig]


def image_prepull(t: Tools, name: str, image: str, tag: str, archive: str,
                  arch: str) -> list[list[str]]:
    """Pull by digest, tag it, save one platform, load the archive into every node.

    Why this dance (notes §1.9 pitfalls 3/4): `kind load docker-image` breaks on multi-platform
    images in Docker's containerd store, so `docker save --platform` + `kind load image-archive`;
    and a preloaded image referenced by digest may be ignored by the kubelet, so pods name the
    tag — whose content was pinned by the digest pull here.
    """
    return [[t.docker, "pull", "--platform", f"linux/{arch}", image],
            [t.docker, "tag", image, tag],
            [t.docker, "save", "--platform", f"linux/{arch}", "-o", archive, tag],
            [t.kind, "load", "image-archive", archive, "--name", name]]


def kubectl(t: Tools, *args: str) -> list[str]:
    return [t.kubectl, "--kubeconfig", t.kubeconfig, "--context", t.context, *args]


def kubectl_apply_server_side(t: Tools, path: str) -> list[str]:
    # Server-side: Calico's CRD bundle exceeds the 256 KiB last-applied annotation limit of a
    # client-side apply (notes §2.5 #1); also idempotent for a reused cluster.
    return kubectl(t, "apply", "--server-side", "--force-conflicts", "-f", path)


def helm_install_cilium(t: Tools) -> list[str]:
    """`helm upgrade --install` from the chart repository URL: no `helm repo add`, so the user's
    helm repositories file is not changed; values pinned in harness.backends.cni."""
    argv = [t.helm, "--kubeconfig", t.kubeconfig, "--kube-context", t.context, "upgrade",
            "--install", "cilium", "cilium", "--repo", cnis.CILIUM_CHART_REPO,
            "--version", cnis.CILIUM_VERSION, "--namespace", "kube-system"]
    for key, value in cnis.CILIUM_VALUES:
        argv += ["--set", f"{key}={value}"]
    return argv


def calico_installation() -> list[dict]:
    """The Installation (IPPool inside kind's podSubnet, notes §2.2 option b) and the APIServer
    (serves projectcalico.org/v3 policies); Goldmane and Whisker are left out (§2.5 #7)."""
    return [
        {"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
         "metadata": {"name": "default"},
         "spec": {"calicoNetwork": {
             "ipPools": [{"name": "default-ipv4-ippool", "blockSize": 26, "cidr": POD_CIDR,
                          "encapsulation": "VXLANCrossSubnet", "natOutgoing": "Enabled",
                          "nodeSelector": "all()"}],
             # holds a new pod until its policy is programmed (Calico's kind CI uses 5, §2.5 #4)
             "linuxPolicySetupTimeoutSeconds": 5}}},
        {"apiVersion": "operator.tigera.io/v1", "kind": "APIServer",
         "metadata": {"name": "default"}, "spec": {}},
    ]


def br_netfilter_loaded(proc_root: str = "/proc") -> bool:
    """Flannel needs br_netfilter on the host (kubeadm stopped checking in 1.30, notes §4.2)."""
    return os.path.exists(os.path.join(proc_root, "sys/net/bridge/bridge-nf-call-iptables"))


def prepare_cni_plugins(cache_dir: Path, arch: str | None = None) -> Path:
    """Download the pinned CNI plugins tarball, verify its SHA-256, extract it into the
    harness-owned directory kind mounts at /opt/cni/bin (notes §4.2 option A); returns it."""
    arch = arch or go_arch()
    if arch not in cnis.CNI_PLUGINS_SHA256:
        raise BackendError(f"preparing CNI plugins for {arch}",
                           f"no pinned checksum for {arch} (pinned: "
                           f"{', '.join(cnis.CNI_PLUGINS_SHA256)})")
    url = cnis.cni_plugins_url(arch)
    tgz = fetch_verified(url, cnis.CNI_PLUGINS_SHA256[arch], Path(cache_dir) / url.rsplit("/", 1)[1])
    dest = Path(cache_dir) / f"cni-plugins-{cnis.CNI_PLUGINS_VERSION}-{arch}"
    extract_plugins(tgz, dest)
    return dest


def extract_plugins(tgz: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    check_cni_plugins(dest)


def check_cni_plugins(directory: Path, needed: tuple[str, ...] = ("bridge", "host-local",
                                                                    "portmap", "loopback")) -> None:
    """Flannel delegates to `bridge`: a node without it fails every pod sandbox (notes §4.2)."""
    missing = [n for n in needed if not os.access(Path(directory) / n, os.X_OK)]
    if missing:
        raise BackendError(f"checking the CNI plugins in {directory}",
                           f"missing or not executable: {', '.join(missing)}; delete the "
                           f"directory and run again to re-extract the pinned tarball")


def install_steps(cni: str, t: Tools, cache_dir: Path) -> list[tuple[str, list[str]]]:
    """(status line, argv) of each command that installs `cni` on a fresh cluster, downloading
    and verifying the pinned manifests first. kindnet ships with kind: nothing to do."""
    cache = Path(cache_dir) / "manifests"
    if cni == "kindnet":
        return []
    if cni == "calico":
        v = cnis.CALICO_VERSION
        crds = fetch_verified(*cnis.CALICO_OPERATOR_CRDS, cache / f"calico-{v}-operator-crds.yaml")
        op = fetch_verified(*cnis.CALICO_OPERATOR, cache / f"calico-{v}-tigera-operator.yaml")
        inst = cache / f"calico-{v}-installation.yaml"
        inst.parent.mkdir(parents=True, exist_ok=True)
        inst.write_text(yaml.safe_dump_all(calico_installation(), sort_keys=False))
        return [("applying Calico operator CRDs (server-side)",
                 kubectl_apply_server_side(t, str(crds))),
                ("applying tigera-operator", kubectl_apply_server_side(t, str(op))),
                ("applying the Installation (cidr 10.244.0.0/16, no Goldmane/Whisker)",
                 kubectl_apply_server_side(t, str(inst)))]
    if cni == "cilium":
        return [(f"helm install cilium {cnis.CILIUM_VERSION}", helm_install_cilium(t))]
    if cni == "flannel":
        if not br_netfilter_loaded():
            raise BackendError("installing Flannel", "the br_netfilter module is not loaded on "
                                                     "this host; run `sudo modprobe br_netfilter`")
        v = cnis.FLANNEL_VERSION
        man = fetch_verified(*cnis.FLANNEL_MANIFEST, cache / f"kube-flannel-{v}.yml")
        return [(f"applying kube-flannel {v}", kubectl_apply_server_side(t, str(man)))]
    cnis.spec(cni)  # raises the "unknown CNI" error
    return []
