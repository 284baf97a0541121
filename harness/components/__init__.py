"""The pinned real Kubernetes components (etcd, kube-apiserver, kube-router, CoreDNS, ...): which
version of each, how to build it from the Go module proxy, and where the binary to run is.

Why here: the real tier runs these binaries, and a verdict must name exactly what ran. Each
family of components is one small Go module in components/<family>/ (go.mod + go.sum, `tool`
lines naming the main packages); building it is one `go build` with pinned flags, cached outside
the repo under a key made of the family's version, its go.mod, its go.sum and the build recipe,
so a changed pin never reuses a stale binary. Lookup follows the envtest convention
(TEST_ASSET_<NAME>, then $KUBEBUILDER_ASSETS for etcd and kube-apiserver), then the cache. Go is
only ever started through harness.shell. docs/components.md has versions, recipes and costs.

Command line: `python -m harness.components list | build [NAME...] | path NAME`.
"""

from harness.components.cli import main
from harness.components.gobuild import (
    build,
    build_argv,
    build_family,
)
from harness.components.lookup import (
    MARKER,
    Found,
    available,
    cache_key,
    cache_root,
    complete,
    entry_dir,
    env_var,
    find,
    go_directive,
    go_toolchain,
    locate,
    reported_version,
)
from harness.components.pins import (
    COMPONENTS,
    FAMILIES,
    KUBEBUILDER_NAMES,
    MODULES_DIR,
    Component,
    ComponentBuildError,
    ComponentMissing,
    Family,
    default_names,
    get,
    members,
    module_dir,
    recipe,
    staging_replaces,
)

__all__ = [
    "COMPONENTS", "FAMILIES", "KUBEBUILDER_NAMES", "MARKER", "MODULES_DIR", "Component",
    "ComponentBuildError", "ComponentMissing", "Family", "Found", "available", "build",
    "default_names",
    "build_argv", "build_family", "cache_key", "cache_root", "complete", "entry_dir", "env_var",
    "find", "get", "go_directive", "go_toolchain", "locate", "main", "members", "module_dir",
    "recipe", "reported_version", "staging_replaces",
]
