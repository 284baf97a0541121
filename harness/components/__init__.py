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

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from harness.errors import OUTPUT_LIMIT, ExecError, HarnessError, with_output
from harness.shell import run

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


@dataclass(frozen=True)
class Component:
    """One binary: its Go main package, the family that builds it, and how it states its version."""

    name: str
    family: str
    package: str
    version_argv: tuple[str, ...]
    #: A regex the output of `version_argv` matches when the binary is the pinned version.
    version_re: str

    @property
    def version(self) -> str:
        return FAMILIES[self.family].version


_K8S = "v1.35.8"
_K8S_LD = (f"-X k8s.io/component-base/version.gitVersion={_K8S}",
           "-X k8s.io/component-base/version.gitMajor=1",
           "-X k8s.io/component-base/version.gitMinor=35")

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
)}

#: The envtest convention reads $KUBEBUILDER_ASSETS for these two only (plus kubectl).
KUBEBUILDER_NAMES = ("etcd", "kube-apiserver")


def staging_replaces(kubernetes_gomod: str, staging_version: str) -> list[str]:
    """The replace lines a wrapper of k8s.io/kubernetes needs: one per module its go.mod
    requires at the v0.0.0 placeholder (the staging modules), to `staging_version`."""
    mods = re.findall(r"^\s*(?:require\s+)?(k8s\.io/\S+)\s+v0\.0\.0\s*(?://.*)?$",
                      kubernetes_gomod, re.M)
    return [f"{m} => {m} {staging_version}" for m in sorted(set(mods))]


def get(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise ComponentMissing(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}") \
            from None


def members(family: str) -> list[Component]:
    return [c for c in COMPONENTS.values() if c.family == family]


def env_var(name: str) -> str:
    """TEST_ASSET_<NAME>: upper-cased, every non-alphanumeric character an underscore."""
    return "TEST_ASSET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def cache_root() -> Path:
    base = os.environ.get("NETPOL_PROOF_CACHE") or str(Path.home() / ".cache" / "netpol-proof")
    return Path(base) / "components"


def module_dir(family: str) -> Path:
    return MODULES_DIR / family


def recipe(family: Family) -> dict:
    """Everything besides go.mod/go.sum that decides what the binaries are."""
    return {"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false", "trimpath": True,
            "GOTOOLCHAIN": family.toolchain, "ldflags": list(family.ldflags)}


def cache_key(family: str, modules_dir: Path | None = None) -> str:
    """12 hex digits of SHA-256 over the family's go.mod, go.sum and build recipe."""
    fam = FAMILIES[family]
    d = (modules_dir or MODULES_DIR) / family
    h = hashlib.sha256()
    for part in (d / "go.mod", d / "go.sum"):
        try:
            h.update(part.read_bytes())
        except OSError as exc:
            raise ComponentMissing(f"reading the wrapper module of {family}: {exc}; the "
                                   "components are built from a netpol-proof checkout") from None
        h.update(b"\0")
    h.update(json.dumps(recipe(fam), sort_keys=True).encode())
    return h.hexdigest()[:12]


def entry_dir(family: str) -> Path:
    """Where one build of `family` lives: <cache>/components/<family>-<version>-<key>/."""
    return cache_root() / f"{family}-{FAMILIES[family].version}-{cache_key(family)}"


MARKER = "complete.json"


def complete(entry: Path, family: str) -> bool:
    """A cache entry counts only when its marker and every binary of the family are there."""
    return (entry / MARKER).is_file() and all(
        _executable(entry / "bin" / c.name) for c in members(family))


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@dataclass(frozen=True)
class Found:
    """Where a component comes from: a path and its source, or None and why not."""

    name: str
    path: Path | None
    source: str          # "TEST_ASSET_ETCD", "KUBEBUILDER_ASSETS", "cache" or "missing"
    reason: str = ""


def locate(name: str) -> Found:
    """The lookup, without raising: TEST_ASSET_<NAME>, $KUBEBUILDER_ASSETS (etcd and
    kube-apiserver), then the build cache."""
    comp = get(name)
    var = env_var(name)
    if os.environ.get(var):
        p = Path(os.environ[var])
        if _executable(p):
            return Found(name, p, var)
        # Set explicitly: falling back to something else would run what the user did not ask.
        return Found(name, None, "missing", f"{var}={p} is not an executable file")
    notes = []
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and name in KUBEBUILDER_NAMES:
        p = Path(assets) / name
        if _executable(p):
            return Found(name, p, "KUBEBUILDER_ASSETS")
        notes.append(f"KUBEBUILDER_ASSETS={assets} has no executable {name}")
    try:
        entry = entry_dir(comp.family)
    except ComponentMissing as exc:
        return Found(name, None, "missing", "; ".join(notes + [str(exc)]))
    if complete(entry, comp.family):
        return Found(name, entry / "bin" / name, "cache")
    notes.append(f"not built ({entry} is absent or incomplete)")
    ok, why = go_toolchain(comp.family)
    if ok:
        notes.append(f"build it with `python -m harness.components build {name}` or "
                     "`bash scripts/setup.sh --with-components`")
    else:
        notes.append(why)
    return Found(name, None, "missing", "; ".join(notes))


def find(name: str) -> Path:
    """The binary to run for `name`, or ComponentMissing saying why and how to build it."""
    found = locate(name)
    if found.path is None:
        raise ComponentMissing(f"{name} {get(name).version} is not available: {found.reason}")
    return found.path


def available(name: str) -> tuple[bool, str]:
    """(True, where it comes from) or (False, why not): the real tier skips with that reason."""
    try:
        path = find(name)
    except ComponentMissing as exc:
        return False, str(exc)
    return True, f"{locate(name).source}: {path}"


def go_directive(family: str) -> str | None:
    """The `go` line of the family's go.mod (the least Go that builds it)."""
    try:
        text = (module_dir(family) / "go.mod").read_text()
    except OSError:
        return None
    m = re.search(r"^go\s+(\S+)\s*$", text, re.M)
    return m.group(1) if m else None


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def go_toolchain(family: str) -> tuple[bool, str]:
    """(True, "go1.26.8") when a Go toolchain that can build `family` is on PATH, else (False,
    what is wrong and what to install)."""
    fam = FAMILIES[family]
    need = go_directive(family) or "?"
    go = shutil.which("go")
    if not go:
        return False, (f"no Go toolchain: `go` is not on PATH; building {family} needs Go >= "
                       f"{need} (https://go.dev/dl/), or set TEST_ASSET_<NAME> to a binary")
    try:
        res = run([go, "env", "GOVERSION"], timeout=60, env=_go_env(fam),
                  doing="asking Go its version")
    except ExecError as exc:
        return False, f"the Go toolchain at {go} does not run: {exc}"
    have = res.stdout.strip()
    if fam.toolchain == "local" and need != "?" and \
            _version_tuple(have.removeprefix("go")) < _version_tuple(need):
        return False, (f"{go} is {have}, and building {family} needs Go >= {need} "
                       "(GOTOOLCHAIN=local: no toolchain download)")
    return True, have


def _go_env(fam: Family) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN=fam.toolchain, GOFLAGS="-mod=readonly -buildvcs=false",
               CGO_ENABLED="0")
    return env


def build_argv(family: str, out: Path) -> list[str]:
    """The one `go build` that makes every binary of `family` into directory `out`."""
    fam = FAMILIES[family]
    comps = members(family)
    argv = ["go", "-C", str(module_dir(family)), "build", "-trimpath"]
    if fam.ldflags:
        argv += ["-ldflags", " ".join(fam.ldflags)]
    # One package: name the file (Go would call etcd's `server`); several: a directory, where
    # Go names each binary after its package directory, which is the component name.
    argv += ["-o", str(out / comps[0].name) if len(comps) == 1 else str(out) + os.sep]
    return argv + [c.package for c in comps]


def build(names: Iterable[str] | None = None,
          status: Callable[[str], None] = print) -> dict[str, Path]:
    """Build (or reuse) the families of `names` (all when None); returns name -> binary path.

    A family is always built whole, in a temporary directory next to its cache entry that is
    renamed into place only once every binary exists, so an interrupted build leaves no entry
    that looks complete.
    """
    wanted = [get(n) for n in (names or COMPONENTS)]
    families = list(dict.fromkeys(c.family for c in wanted))
    paths: dict[str, Path] = {}
    for family in families:
        entry = build_family(family, status)
        paths.update({c.name: entry / "bin" / c.name for c in members(family)})
    return {c.name: paths[c.name] for c in wanted}


def build_family(family: str, status: Callable[[str], None] = print) -> Path:
    from filelock import FileLock

    fam = FAMILIES[family]
    entry = entry_dir(family)
    if complete(entry, family):
        status(f"{family} {fam.version}: reusing {entry}")
        return entry
    ok, why = go_toolchain(family)
    if not ok:
        raise ComponentMissing(f"cannot build {family} {fam.version}: {why}")
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry.parent / f".{family}.lock")):
        if complete(entry, family):       # built by someone else while we waited
            status(f"{family} {fam.version}: reusing {entry}")
            return entry
        if entry.exists():                # a marker-less leftover: never reused
            shutil.rmtree(entry)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".tmp-{family}-"))
        tmp.chmod(0o755)                  # mkdtemp's 0700 would hide the binaries from others
        try:
            started = time.monotonic()
            argv = build_argv(family, tmp / "bin")
            status(f"{family} {fam.version}: building {', '.join(c.name for c in members(family))}"
                   f" with {why} (GOTOOLCHAIN={fam.toolchain}, CGO_ENABLED=0) ...")
            try:
                res = run(argv, env=_go_env(fam), doing=f"building {family} {fam.version}")
            except ExecError as exc:
                raise ComponentBuildError(f"building {family} {fam.version}", exc.cause) from None
            if not res.ok:
                raise ComponentBuildError(
                    f"building {family} {fam.version} in {module_dir(family)}",
                    f"go build exited {res.returncode}: {res.pretty()}",
                    (res.stdout + res.stderr).strip()[-8000:])
            seconds = round(time.monotonic() - started, 1)
            (tmp / MARKER).write_text(json.dumps({
                "family": family, "module": fam.module, "version": fam.version,
                "go": why, "recipe": recipe(fam), "seconds": seconds,
                "binaries": [c.name for c in members(family)]}, indent=2) + "\n")
            if not complete(tmp, family):
                raise ComponentBuildError(f"building {family} {fam.version}",
                                          f"go build succeeded but {tmp / 'bin'} lacks a binary")
            os.rename(tmp, entry)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    status(f"{family} {fam.version}: built in {seconds:.0f} s into {entry}")
    return entry


def reported_version(path: Path, name: str) -> tuple[bool, str]:
    """(matches the pin, first line of what the binary says) for `<binary> <version_argv>`."""
    comp = get(name)
    res = run([str(path), *comp.version_argv], timeout=60, doing=f"asking {name} its version")
    text = (res.stdout + res.stderr).strip()
    first = text.splitlines()[0] if text else ""
    return res.ok and re.search(comp.version_re, text) is not None, first


# --- command line -------------------------------------------------------------------------------


def _cmd_list(args) -> int:
    for name, comp in COMPONENTS.items():
        found = locate(name)
        if found.path is None:
            print(f"{name:24} {comp.version:9} missing: {found.reason}")
            continue
        where = f"built {found.path}" if found.source == "cache" else f"{found.source} {found.path}"
        line = f"{name:24} {comp.version:9} {where}"
        if found.source != "cache":
            try:
                ok, said = reported_version(found.path, name)
            except ExecError as exc:
                ok, said = False, f"does not run: {exc.cause}"
            if not ok:
                line += f" (reports {said!r}, not {comp.version})"
        print(line)
    return 0


def _cmd_build(args) -> int:
    for name, path in build(args.names or None).items():
        print(f"{name}: {path}")
    return 0


def _cmd_path(args) -> int:
    print(find(args.name))
    return 0


def _cmd_missing(args) -> int:
    """Exit 0 when every component is available; else 1, printing why (one line each)."""
    why = [f"{name}: {reason}" for name in COMPONENTS
           for ok, reason in [available(name)] if not ok]
    print("; ".join(why))
    return 1 if why else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.components",
                                description="The pinned real Kubernetes components: list, build, "
                                "find. Builds are cached under $NETPOL_PROOF_CACHE (default "
                                "~/.cache/netpol-proof)/components.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="each component, its version and where it comes from") \
        .set_defaults(func=_cmd_list)
    b = sub.add_parser("build", help="build (or reuse) components; all when none is named")
    b.add_argument("names", nargs="*", metavar="NAME", help=", ".join(COMPONENTS))
    b.set_defaults(func=_cmd_build)
    pa = sub.add_parser("path", help="print the binary path of one component")
    pa.add_argument("name", metavar="NAME", help=", ".join(COMPONENTS))
    pa.set_defaults(func=_cmd_path)
    sub.add_parser("missing", help="exit 1 and say why when any component is missing") \
        .set_defaults(func=_cmd_missing)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        output = getattr(exc, "output", "") or ""
        if len(output) > OUTPUT_LIMIT:   # the message holds its end
            print(output, file=sys.stderr)
        return 1


