"""What is pinned: each family of real components (the upstream module and version it pins,
its ldflags), each binary, and the wrapper module and recipe that decide a build (moved from
harness/components/__init__.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, with_output

#: The wrapper Go modules, one directory per family.
MODULES_DIR = Path(__file__).resolve().parents[2] / "components"


class ComponentMissing(HarnessError):
    """A component binary is not available; the message says why and how to get it."""


class ComponentBuildError(HarnessError):
    """`go build` of a component family failed; carries the go command's output."""

    def __init__(self, doing: str, cause: str, output: str = ""):
        self.doing, self.cause, self.output = doing, cause, output
        super().__init__(with_output(f"while {doing}: {cause}", output))


@dataclass(frozen=True)
class Family:
    """One wrapper module under components/<name>/ and the version of upstream it pins."""

    name: str
    module: str                 # the upstream module whose version is pinned
    version: str                # that upstream release
    #: The module version go.mod requires, when it is not `version` (a pseudo-version).
    require: str = ""
    ldflags: tuple[str, ...] = ()
    #: GOTOOLCHAIN for this family: "local" means the machine's Go, never a download.
    toolchain: str = "local"
    #: The project's own code (components/<name>/*.go, e.g. netpol-cri), not a wrapper of an
    #: upstream module: its sources are part of the cache key.
    own: bool = False
    #: Built with cgo (CGO_ENABLED=1, the machine's gcc): only where a main package does not
    #: compile without it (flanneld: its UDP backend on amd64, docs/components.md).
    cgo: bool = False


@dataclass(frozen=True)
class Component:
    """One binary: its Go main package, the family that builds it, and how it states its version."""

    name: str
    family: str
    package: str
    version_argv: tuple[str, ...]
    #: A regex the output of `version_argv` matches when the binary is the pinned version.
    version_re: str
    #: A Go test binary (`go test -c`), such as critest, whose main package has only tests.
    test_binary: bool = False
    #: Built by `build` and checked by `missing` when no name is given. Off for tools that only
    #: validate (critest): the test command never runs them.
    default: bool = True

    @property
    def version(self) -> str:
        return FAMILIES[self.family].version


_K8S = "v1.35.8"
#: agnhost's own version in the pinned module (test/images/agnhost/VERSION of k8s.io/kubernetes
#: v1.35.8); Go builds do not read that file, so it is stamped like the image build does.
AGNHOST_VERSION = "2.59"
_K8S_LD = (f"-X k8s.io/component-base/version.gitVersion={_K8S}",
           "-X k8s.io/component-base/version.gitMajor=1",
           "-X k8s.io/component-base/version.gitMinor=35",
           f"-X main.Version={AGNHOST_VERSION}")
_CNI_PLUGINS = "v1.10.0"
_CRITEST = "v1.34.0"
_FLANNEL = "v0.28.10"

FAMILIES: dict[str, Family] = {f.name: f for f in (
    # What each family stamps, and why etcd and CoreDNS stamp nothing: docs/components.md.
    Family("etcd", "go.etcd.io/etcd/server/v3", "v3.6.16"),
    Family("kubernetes", "k8s.io/kubernetes", _K8S, ldflags=_K8S_LD),
    Family("kube-router", "github.com/cloudnativelabs/kube-router/v2", "v2.10.0",
           ldflags=("-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=v2.10.0",)),
    Family("coredns", "github.com/coredns/coredns", "v1.15.0"),
    # Calico's tags are not Go versions: v3.31.0 is required as its commit's pseudo-version,
    # and the committed go.sum is what checks the download (docs/components.md, "Felix").
    Family("felix", "github.com/projectcalico/calico", "v3.31.0",
           "v0.0.0-20251021213802-b1f3c43f8437",
           ldflags=("-X github.com/projectcalico/calico/pkg/buildinfo.Version=v3.31.0",
                    "-X github.com/projectcalico/calico/pkg/buildinfo.GitRevision="
                    "b1f3c43f84370504e218eb5be8a34c81348f866a")),
    Family("cni-plugins", "github.com/containernetworking/plugins", _CNI_PLUGINS,
           ldflags=("-X github.com/containernetworking/plugins/pkg/utils/buildversion."
                    f"BuildVersion={_CNI_PLUGINS}",)),
    # critest is a Go test binary (`go test -c`); why v1.34.0 for a v1.35 kubelet:
    # docs/real-nodes.md §1.
    Family("critest", "sigs.k8s.io/cri-tools", _CRITEST,
           ldflags=(f"-X sigs.k8s.io/cri-tools/pkg/version.Version={_CRITEST}",)),
    # flanneld imports every backend; its UDP backend's amd64 proxy is C (cgo). The proxy
    # serves no v1.3.x of the Tencent VPC SDK its tencentvpc backend requires: go.mod replaces
    # it (docs/components.md, "Flannel").
    Family("flannel", "github.com/flannel-io/flannel", _FLANNEL,
           ldflags=(f"-X github.com/flannel-io/flannel/pkg/version.Version={_FLANNEL}",),
           cgo=True),
    # netpol-proof's own CRI runtime (docs/real-nodes.md): `module` is its own module path.
    Family("netpol-cri", "netpol-proof/components/netpol-cri", "0.1.0", own=True),
)}

COMPONENTS: dict[str, Component] = {c.name: c for c in (
    Component("etcd", "etcd", "go.etcd.io/etcd/server/v3", ("--version",),
              r"etcd Version: 3\.6\.16\b"),
    Component("kube-apiserver", "kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver",
              ("--version",), r"Kubernetes v1\.35\.8\b"),
    Component("kube-controller-manager", "kubernetes",
              "k8s.io/kubernetes/cmd/kube-controller-manager", ("--version",),
              r"Kubernetes v1\.35\.8\b"),
    Component("kube-proxy", "kubernetes", "k8s.io/kubernetes/cmd/kube-proxy", ("--version",),
              r"Kubernetes v1\.35\.8\b"),
    Component("kube-router", "kube-router",
              "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router", ("--version",),
              r"\bv2\.10\.0\b"),
    Component("coredns", "coredns", "github.com/coredns/coredns", ("-version",),
              r"CoreDNS-1\.15\.0\b"),
    Component("calico-felix", "felix", "github.com/projectcalico/calico/felix/cmd/calico-felix",
              ("--version",), r"Version:\s+v3\.31\.0\b"),
    # Calico's CNI plugin: one binary that is `calico` or `calico-ipam` by the name it is
    # run under (cni-plugin/cmd/calico); the real nodes install it under both names.
    # `calico -v` prints the stamped version alone.
    Component("calico", "felix", "github.com/projectcalico/calico/cni-plugin/cmd/calico",
              ("-v",), r"^v3\.31\.0$"),
    Component("kube-scheduler", "kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler",
              ("--version",), r"Kubernetes v1\.35\.8\b"),
    Component("kubelet", "kubernetes", "k8s.io/kubernetes/cmd/kubelet", ("--version",),
              r"Kubernetes v1\.35\.8\b"),
    Component("agnhost", "kubernetes", "k8s.io/kubernetes/test/images/agnhost", ("--version",),
              r"^app version 2\.59$"),   # its cobra command is named "app"
    # A CNI plugin run without CNI_COMMAND prints "CNI <name> plugin <version>" (and exits 0).
    *(Component(name, "cni-plugins", f"github.com/containernetworking/plugins/plugins/{pkg}",
                (), rf"CNI {name} plugin v1\.10\.0\b")
      for name, pkg in (("bridge", "main/bridge"), ("host-local", "ipam/host-local"),
                        ("loopback", "main/loopback"), ("portmap", "meta/portmap"))),
    Component("netpol-cri", "netpol-cri", "netpol-proof/components/netpol-cri", ("-version",),
              r"^netpol-cri 0\.1\.0$"),
    # flanneld is the module's root main package; `-version` prints the stamped version alone
    Component("flanneld", "flannel", "github.com/flannel-io/flannel", ("-version",),
              r"^v0\.28\.10$"),
    Component("critest", "critest", "sigs.k8s.io/cri-tools/cmd/critest", ("-version",),
              r"critest version: v1\.34\.0\b", test_binary=True, default=False),
)}

#: The envtest convention reads $KUBEBUILDER_ASSETS for these two only (plus kubectl).
KUBEBUILDER_NAMES = ("etcd", "kube-apiserver")


def staging_replaces(kubernetes_gomod: str, staging_version: str) -> list[str]:
    """The replace lines a wrapper of k8s.io/kubernetes needs: one per module its go.mod
    requires at the v0.0.0 placeholder (the staging modules), to `staging_version`."""
    mods = re.findall(r"^\s*(?:require\s+)?(k8s\.io/\S+)\s+v0\.0\.0\s*(?://.*)?$",
                      kubernetes_gomod, re.M)
    return [f"{m} => {m} {staging_version}" for m in sorted(set(mods))]


def default_names() -> list[str]:
    """The components `build` and `missing` mean when no name is given (all but critest)."""
    return [name for name, c in COMPONENTS.items() if c.default]


def get(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise ComponentMissing(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}") \
            from None


def members(family: str) -> list[Component]:
    return [c for c in COMPONENTS.values() if c.family == family]




def module_dir(family: str) -> Path:
    return MODULES_DIR / family


def recipe(family: Family) -> dict:
    """Everything besides go.mod/go.sum that decides what the binaries are."""
    return {"CGO_ENABLED": cgo_enabled(family), "GOFLAGS": "-mod=readonly -buildvcs=false", "trimpath": True,
            "GOTOOLCHAIN": family.toolchain, "ldflags": list(family.ldflags)}




def cgo_enabled(family: Family) -> str:
    """CGO_ENABLED for `family`'s build: "0" unless the family needs cgo."""
    return "1" if family.cgo else "0"
