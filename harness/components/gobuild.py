"""Building a family with the machine's Go into the cache (moved from
harness/components/__init__.py)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from harness.components.lookup import MARKER, complete, entry_dir, go_env, go_toolchain
from harness.components.pins import (
    FAMILIES,
    ComponentBuildError,
    ComponentMissing,
    cgo_enabled,
    default_names,
    get,
    members,
    module_dir,
    recipe,
)
from harness.errors import ExecError
from harness.shell import run


def build_argv(family: str, out: Path) -> list[str]:
    """The one `go build` that makes every binary of `family` into directory `out`."""
    fam = FAMILIES[family]
    comps = members(family)
    tests = [c for c in comps if c.test_binary]
    if tests and len(comps) > 1:
        raise ComponentBuildError(f"building {family}", "a family with a test binary (`go test "
                                  "-c`) must have no other member")
    argv = ["go", "-C", str(module_dir(family)), *(("test", "-c") if tests else ("build",)),
            "-trimpath"]
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
    wanted = [get(n) for n in (names or default_names())]
    families = list(dict.fromkeys(c.family for c in wanted))
    paths: dict[str, Path] = {}
    for family in families:
        entry = build_family(family, status)
        paths.update({c.name: entry / "bin" / c.name for c in members(family)})
    return {c.name: paths[c.name] for c in wanted}


def build_family(family: str, status: Callable[[str], None] = print) -> Path:
    from filelock import FileLock  # 0.3 s to import; only a build takes the lock

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
                   f" with {why} (GOTOOLCHAIN={fam.toolchain}, CGO_ENABLED={cgo_enabled(fam)}) ...")
            try:
                res = run(argv, env=go_env(fam), doing=f"building {family} {fam.version}")
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


