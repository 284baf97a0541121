"""Where a component's binary is: TEST_ASSET_<NAME>, $KUBEBUILDER_ASSETS, then the build cache
(the envtest convention); its cache entry and whether it is complete (moved from
harness/components/__init__.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.components import pins
from harness.components.pins import (
    FAMILIES,
    KUBEBUILDER_NAMES,
    ComponentMissing,
    Family,
    cgo_enabled,
    get,
    members,
    module_dir,
    recipe,
)
from harness.errors import ExecError
from harness.shell import run


def env_var(name: str) -> str:
    """TEST_ASSET_<NAME>: upper-cased, every non-alphanumeric character an underscore."""
    return "TEST_ASSET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def cache_root() -> Path:
    base = os.environ.get("NETPOL_PROOF_CACHE") or str(Path.home() / ".cache" / "netpol-proof")
    return Path(base) / "components"



def cache_key(family: str, modules_dir: Path | None = None) -> str:
    """12 hex digits of SHA-256 over the family's go.mod, go.sum (and, for the project's own
    code, its Go files but its tests) and build recipe."""
    fam = FAMILIES[family]
    d = (modules_dir or pins.MODULES_DIR) / family
    h = hashlib.sha256()
    parts = [d / "go.mod", d / "go.sum"]
    if fam.own:
        parts += sorted(p for p in d.glob("*.go") if not p.name.endswith("_test.go"))
    for part in parts:
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



def reported_version(path: Path, name: str) -> tuple[bool, str]:
    """(matches the pin, first line of what the binary says) for `<binary> <version_argv>`."""
    comp = get(name)
    res = run([str(path), *comp.version_argv], timeout=60, doing=f"asking {name} its version")
    text = (res.stdout + res.stderr).strip()
    first = text.splitlines()[0] if text else ""
    return res.ok and re.search(comp.version_re, text) is not None, first


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
        res = run([go, "env", "GOVERSION"], timeout=60, env=go_env(fam),
                  doing="asking Go its version")
    except ExecError as exc:
        return False, f"the Go toolchain at {go} does not run: {exc}"
    have = res.stdout.strip()
    if fam.toolchain == "local" and need != "?" and \
            _version_tuple(have.removeprefix("go")) < _version_tuple(need):
        return False, (f"{go} is {have}, and building {family} needs Go >= {need} "
                       "(GOTOOLCHAIN=local: no toolchain download)")
    if fam.cgo:
        cc = os.environ.get("CC") or "gcc"
        if not shutil.which(cc.split()[0]):
            return False, (f"{family} is built with cgo and needs a C compiler: `{cc}` is not "
                           "on PATH (apt-get install gcc, or set CC)")
    return True, have


def go_env(fam: Family) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN=fam.toolchain, GOFLAGS="-mod=readonly -buildvcs=false",
               CGO_ENABLED=cgo_enabled(fam))
    return env
