"""Build the probes' curl (harness/backends/local/curl.py says why and which) into the cache.

From the two Debian source archives of the pin, each verified by SHA-256 before use: unpack,
apply Debian's patch series in order, configure with curl.CONFIGURE, make, check the version the
binary reports, and move it into place atomically, so that a half-built curl is never found.

Command line: `python -m harness.backends.local.curlbuild [--check]` (--check: only say whether
it is built).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from harness.backends.local import curl
from harness.backends.local.curl import ARCHIVES, CONFIGURE, DEBIAN_REVISION, POOL, VERSION
from harness.errors import BackendError, ExecError
from harness.shell import run

#: what the build needs on the machine (scripts/setup.sh installs them)
TOOLS = ("cc", "make", "patch", "tar", "xz")


def _fetch(name: str, sha256: str, into: Path, timeout: float) -> Path:
    url = POOL + name
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (pinned, hashed)
            data = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise BackendError(f"downloading {url}", str(getattr(exc, "reason", exc))) from None
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise BackendError(f"verifying {url}",
                           f"SHA-256 {got} does not match the pinned {sha256}; not building it")
    path = into / name
    path.write_bytes(data)
    return path


def build(cache: Path | None = None, log=print, timeout: float = 1200.0) -> Path:
    """Build the pinned curl into the cache (nothing to do when it is there) and return it."""
    done = curl.built(cache)
    if done is not None:
        return done
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise BackendError("building the probes' curl",
                           f"missing {', '.join(missing)} (scripts/setup.sh installs them)")
    log(f"building curl {DEBIAN_REVISION} (HTTP only) into {curl.home(cache)} ...")
    with tempfile.TemporaryDirectory(prefix="np-curl-") as tmp:
        work = Path(tmp)
        orig, debian = (_fetch(n, s, work, 120.0) for n, s in ARCHIVES)
        for archive in (orig, debian):
            run(["tar", "-xf", str(archive), "-C", str(work)], timeout=120, check=True,
                doing=f"unpacking {archive.name}")
        src = work / f"curl-{VERSION}"
        lines = (work / "debian" / "patches" / "series").read_text().splitlines()
        series = [ln.split()[0] for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        for patch in series:
            run(["patch", "-p1", "-s", "-N", "-d", str(src), "-i",
                 str(work / "debian" / "patches" / patch)],
                timeout=60, check=True, doing=f"applying Debian's {patch}")
        run(["./configure", *CONFIGURE], cwd=src, timeout=timeout, check=True,
            doing="configuring curl")
        # Why the autotools set to `true`: a Debian patch touches configure.ac and Makefile.am,
        # which would make `make` regenerate the build files with tools the machine need not
        # have; the shipped configure is what this recipe builds with
        run(["make", f"-j{os.cpu_count() or 1}", "ACLOCAL=true", "AUTOCONF=true",
             "AUTOMAKE=true", "AUTOHEADER=true"], cwd=src, timeout=timeout, check=True,
            doing="building curl")
        made = src / "src" / "curl"
        res = run([str(made), "--version"], timeout=30, check=True, doing="asking the built curl its "
                  "version")
        if f"curl {VERSION}" not in res.stdout or "http" not in res.stdout:
            raise BackendError("checking the built curl", f"it reports {res.stdout[:200]!r}")
        target = curl.home(cache)
        target.mkdir(parents=True, exist_ok=True)
        staged = target / ".curl.new"
        shutil.copy2(made, staged)
        os.replace(staged, target / "curl")
    curl.forget()
    log(f"built {target / 'curl'}")
    return target / "curl"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.backends.local.curlbuild",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--check", action="store_true", help="only say which curl the probes run")
    a = p.parse_args(argv)
    if not a.check:
        try:
            build()
        except (BackendError, ExecError, OSError) as exc:
            print(f"netpol-proof: the probes' curl was not built, probes use the system curl "
                  f"(slower): {exc}", file=sys.stderr)
            return 1
    print(curl.describe())
    return 0 if curl.built() else 1


if __name__ == "__main__":
    sys.exit(main())
