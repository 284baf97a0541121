"""Per-CNI facts: what each CNI declares it supports, its pinned install artefacts, and the
workloads whose rollout means "this CNI is ready".

Why data in one module: the kind configs, the install steps, the readiness waits and the
capability matching all read the same facts, so a pin or a capability changes in one place.
Sources are docs/kind.md and docs/sources.md (section numbers below); facts docs/sources.md
marks [2nd] (secondary sources) are listed in RUNTIME_CHECKS and checked on a live run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.capabilities import Capabilities

#: Every kind node runs this image, pinned by tag AND digest (docs/sources.md §0; [2nd] v0.33.0 notes).
NODE_IMAGE = ("kindest/node:v1.35.8@sha256:"
              "07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0")

#: The probe image for servers and clients (docs/sources.md §5.1/§5.3; digest [2nd] k8s.io#9787).
AGNHOST_TAG = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
AGNHOST_DIGEST = "sha256:6e2eef87d0dc77e070a7549bc5fdfa290c0fefe3359eb33c2ad1eda692fe66a4"
AGNHOST_IMAGE = f"{AGNHOST_TAG}@{AGNHOST_DIGEST}"


def image_tag(image: str) -> str:
    """The tag a pod names for `image` once it is preloaded under that tag (kind pods name the
    tag, see kind/commands.image_prepull): the reference without its digest, `:netpol-proof`
    added when it has no tag of its own."""
    name = image.split("@", 1)[0]
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:netpol-proof"

CALICO_VERSION = "v3.32.1"
_CALICO_BASE = f"https://raw.githubusercontent.com/projectcalico/calico/{CALICO_VERSION}/manifests"
#: (url, sha256) of the Calico operator files (docs/sources.md §2.1, computed from the git blobs at the tag)
CALICO_OPERATOR_CRDS = (f"{_CALICO_BASE}/operator-crds.yaml",
                        "192f8b2d934ef24b62e86b7e1a6e1762d1c8af26a916f78057bc13fa5ed60f71")
CALICO_OPERATOR = (f"{_CALICO_BASE}/tigera-operator.yaml",
                   "f18e073794207d372606bc3ea6f8fd73972f86d6828f4ba666dfe0d4aa8ab07f")

CILIUM_CHART_REPO = "https://helm.cilium.io/"
CILIUM_VERSION = "1.20.0"
#: Helm values, each with its reason (docs/sources.md §3.1, §3.8).
CILIUM_VALUES: tuple[tuple[str, str], ...] = (
    ("ipam.mode", "kubernetes"),            # take podCIDRs from kind's podSubnet
    ("image.pullPolicy", "IfNotPresent"),
    ("operator.replicas", "1"),             # chart default 2 cannot schedule on a small cluster
    ("kubeProxyReplacement", "false"),      # keep kind's kube-proxy: avoids socket-LB/DNS pitfalls
    ("routingMode", "tunnel"),              # what cilium-cli picks for kind
    ("tunnelProtocol", "vxlan"),
)

FLANNEL_VERSION = "v0.28.9"
#: The release asset; its sha256 is not in the notes (only the raw Documentation file's is), so
#: the raw file at the tag is what the harness applies and verifies (docs/sources.md §4.1).
FLANNEL_MANIFEST = (
    f"https://raw.githubusercontent.com/flannel-io/flannel/{FLANNEL_VERSION}/Documentation/"
    "kube-flannel.yml",
    "e875824be2f552b45711dbda91af81b17eb961d00025d914d9fef18fad8f09c0")
CNI_PLUGINS_VERSION = "v1.9.1"
#: arch -> sha256 of cni-plugins-linux-<arch>-v1.9.1.tgz (docs/sources.md §0, from flannel e2e/cluster.go)
CNI_PLUGINS_SHA256 = {
    "amd64": "b98f74a0f8522f0a83867178729c1aa70f2158f90c45a2ca8fa791db1c76b303",
    "arm64": "56171987d3947707c3563db2f4001bccaf50fd63468611b9f3cbecb1375ee7ec",
}


def cni_plugins_url(arch: str) -> str:
    return (f"https://github.com/containernetworking/plugins/releases/download/"
            f"{CNI_PLUGINS_VERSION}/cni-plugins-linux-{arch}-{CNI_PLUGINS_VERSION}.tgz")


@dataclass(frozen=True)
class Workload:
    """A DaemonSet or Deployment whose completed rollout is part of a CNI's readiness."""

    kind: str          # "DaemonSet" | "Deployment"
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.lower()} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class CniSpec:
    """One CNI: kind config needs, readiness, capabilities."""

    name: str
    disable_default_cni: bool
    #: rolled out in this order before nodes can be Ready (docs/sources.md §1.7, §2.3, §3.3, §4.3)
    workloads: tuple[Workload, ...]
    #: Calico operator mode: TigeraStatus objects that must exist, then be Available
    tigera_status: tuple[str, ...] = ()
    #: the Flannel bridge pitfall: CNI plugins mounted into every node (docs/sources.md §4.2 option A)
    needs_cni_plugins: bool = False
    caps: Capabilities = field(default_factory=lambda: Capabilities(frozenset()))


_L34 = frozenset({"networkpolicy", "egress", "ipblock", "named-ports", "endport", "udp"})
#: ipBlock peers that match pod IPs: what the upstream conformance tests assert, and what Cilium
#: documents it does not do (docs/sources.md §10)
_POD_IP = frozenset({"ipblock-pod-ip"})
_ON_KIND = {
    "external-hosts": "no host outside the cluster is created on kind: the network rule allows "
                      "only harness-made namespaces, and a container on the kind Docker network "
                      "is designed but not implemented",
    "cluster-scoped-policy": "a kind cluster of this run may hold cluster-scoped policies; the "
                             "kind backend allows them",
}
_SCTP_RUNTIME = ("declared from the CNI's docs; the host kernel needs the sctp module, which is "
                 "verified at run time by the SCTP positive control [unverified on GitHub runners]")

SPECS: dict[str, CniSpec] = {
    "kindnet": CniSpec(
        "kindnet", False, (Workload("DaemonSet", "kube-system", "kindnet"),),
        caps=Capabilities(
            _L34 | _POD_IP | {"sctp", "cluster-scoped-policy"}, "drop", True,
            {"sctp": _SCTP_RUNTIME, "external-hosts": _ON_KIND["external-hosts"],
             "enforces": "kindnet enforces NetworkPolicy since kind v0.24 via NFQUEUE, FAIL-OPEN: "
                         "if its agent is down traffic is accepted (docs/sources.md §1.7)",
             "calico-policy": "kindnet has no CNI-specific policy kinds",
             "fqdn": "kindnet has no DNS-aware policy", "l7-http": "kindnet has no L7 policy",
             "admin-network-policy": "not enabled in kindnet's embedded kube-network-policies"})),
    "calico": CniSpec(
        "calico", True, (Workload("Deployment", "tigera-operator", "tigera-operator"),
                         Workload("DaemonSet", "calico-system", "calico-node")),
        tigera_status=("calico", "apiserver"),
        caps=Capabilities(
            _L34 | _POD_IP | {"sctp", "calico-policy", "cluster-scoped-policy"}, "drop", True,
            {"sctp": _SCTP_RUNTIME, "external-hosts": _ON_KIND["external-hosts"],
             "fqdn": "Calico Open Source has no DNS policy (docs/sources.md §2.4)",
             "l7-http": "Calico Open Source has no L7 HTTP rules on the iptables dataplane",
             "admin-network-policy": "not declared: docs/sources.md gives no source for Calico "
                                     "3.32's AdminNetworkPolicy support; verify before adding",
             "deny_response": "Felix IptablesFilterDenyAction/NftablesFilterDenyAction default "
                              "DROP (docs/sources.md §2.4)"})),
    "cilium": CniSpec(
        "cilium", True, (Workload("DaemonSet", "kube-system", "cilium"),
                         Workload("Deployment", "kube-system", "cilium-operator")),
        caps=Capabilities(
            _L34 | {"fqdn", "l7-http", "cluster-scoped-policy"}, "drop", True,
            {"sctp": "Cilium carries SCTP only with sctp.enabled=true (beta), which the pinned "
                     "values leave off",
             "external-hosts": _ON_KIND["external-hosts"],
             "ipblock-pod-ip": "Cilium applies ipBlock only to traffic from or to outside the "
                               "cluster: an ipBlock never matches a pod IP, a documented "
                               "limitation (docs/sources.md §10)",
             "calico-policy": "Calico's policy kinds need Calico",
             "admin-network-policy": "Cilium does not implement AdminNetworkPolicy in 1.20 "
                                     "[unverified]",
             "deny_response": "L3/L4 deny drops; L7 deny is HTTP 403 'Access denied'; DNS proxy "
                              "deny is REFUSED (docs/sources.md §3.4)"})),
    "flannel": CniSpec(
        "flannel", True, (Workload("DaemonSet", "kube-flannel", "kube-flannel-ds"),),
        needs_cni_plugins=True,
        # Declares what the API accepts so every scenario runs and shows "not enforced".
        caps=Capabilities(
            _L34 | _POD_IP | {"sctp", "cluster-scoped-policy"}, "drop", False,
            {"enforces": "Flannel enforces no NetworkPolicy by design (docs/sources.md §4.1): every "
                         "isolating policy is expected to be reported not enforced",
             "sctp": _SCTP_RUNTIME, "external-hosts": _ON_KIND["external-hosts"],
             "fqdn": "Flannel has no policy engine", "l7-http": "Flannel has no policy engine",
             "calico-policy": "Calico's policy kinds need Calico",
             "admin-network-policy": "Flannel has no policy engine"})),
}

CNIS = tuple(SPECS)

#: Facts the notes tag [2nd]/[unverified], each with the live check that reports it clearly.
RUNTIME_CHECKS: dict[str, str] = {
    "node image digest": "kind create pulls the node image by digest; a wrong digest fails the "
                         "pull and the create step names the image",
    "kindnet enforces": "the enforcement canary (deny-all + probe) runs first on every cluster",
    "agnhost digest": "docker pull of the pinned digest fails loudly when the digest is wrong",
    "sctp": "the SCTP positive control: a server that does not answer on 127.0.0.1 is a probe "
            "error, never a verdict",
    "agnhost nslookup text": "probes.classify() returns tool-error for any output it does not "
                             "recognise, so a different Alpine bind-tools text is a probe error",
    "cgroup v2 host": "KindBackend asks `docker info` for the cgroup version before creating "
                      "anything; v1 is refused with the fix",
    "flannel bridge plugin": "check_cni_plugins() verifies the mounted cache holds `bridge` "
                             "before Flannel is applied",
}


def spec(cni: str) -> CniSpec:
    """The CniSpec of `cni`; a clear error naming the choices otherwise."""
    try:
        return SPECS[cni]
    except KeyError:
        raise ValueError(f"unknown CNI {cni!r} for the kind backend: expected one of "
                         f"{', '.join(CNIS)}") from None


def capabilities(cni: str) -> Capabilities:
    """What `cni` declares on kind (whether it really enforces is the canary's job)."""
    return spec(cni).caps
