"""kind, kubectl and helm: use the ones on PATH when their version fits, otherwise download the
pinned release into a cache directory and verify its published SHA-256 before it ever runs.

Why verify: a binary that drives a cluster runs as the user; a download that does not match the
checksum its project publishes is an error, never a warning (pytest-kind downloads without any
check; kind-action verifies with `sha256sum -c`, notes §1.2). Downloads use urllib (no
subprocess); version checks go through harness.shell.run.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import BackendError
from harness.shell import run

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "netpol-proof"


class ChecksumError(BackendError):
    """A download does not match its published SHA-256, or no checksum could be found."""


@dataclass(frozen=True)
class Pin:
    """One pinned tool release: where the binary and its published checksum live."""

    name: str
    version: str
    url: str                 # of the binary, or of a .tar.gz holding it
    checksum_url: str        # `<hash>  <file>` lines (shasum format) or a bare hash
    asset: str               # the file name the checksum line names
    member: str | None = None   # the binary's path inside a tarball
    #: (argv, regex with a `minor` group and optional `major`, minimum (major, minor)) for PATH tools
    version_argv: tuple[str, ...] = ()
    version_re: str = ""
    min_version: tuple[int, int] = (0, 0)
    max_version: tuple[int, int] | None = None


def go_arch() -> str:
    m = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(m, m)


def pins(arch: str | None = None, os_name: str = "linux") -> dict[str, Pin]:
    """The pinned releases (notes §0/§1.2). kind v0.33.0 is [2nd]: its checksum is fetched from
    the release's own .sha256sum file, so a wrong pin fails verification, loudly."""
    a = arch or go_arch()
    kind_asset = f"kind-{os_name}-{a}"
    kubectl_ver, helm_ver = "v1.35.8", "v3.19.0"
    helm_asset = f"helm-{helm_ver}-{os_name}-{a}.tar.gz"
    return {
        "kind": Pin("kind", "v0.33.0", f"https://kind.sigs.k8s.io/dl/v0.33.0/{kind_asset}",
                    f"https://kind.sigs.k8s.io/dl/v0.33.0/{kind_asset}.sha256sum", kind_asset,
                    version_argv=("version",), version_re=r"v(?P<major>\d+)\.(?P<minor>\d+)",
                    # kind >= v0.32 is needed to `kind load` into the new node images (§1.1)
                    min_version=(0, 32)),
        "kubectl": Pin("kubectl", kubectl_ver,
                       f"https://dl.k8s.io/release/{kubectl_ver}/bin/{os_name}/{a}/kubectl",
                       f"https://dl.k8s.io/release/{kubectl_ver}/bin/{os_name}/{a}/kubectl.sha256",
                       "kubectl", version_argv=("version", "--client"),
                       version_re=r"Client Version: v(?P<major>\d+)\.(?P<minor>\d+)",
                       # kubectl must be within one minor of the 1.35 API server (§1.9 pitfall 11)
                       min_version=(1, 34), max_version=(1, 36)),
        # helm's pin is not from the notes [unverified]: any helm 3 runs the Cilium chart.
        "helm": Pin("helm", helm_ver, f"https://get.helm.sh/{helm_asset}",
                    f"https://get.helm.sh/{helm_asset}.sha256sum", helm_asset,
                    member=f"{os_name}-{a}/helm", version_argv=("version", "--short"),
                    version_re=r"v(?P<major>\d+)\.(?P<minor>\d+)", min_version=(3, 0),
                    max_version=(3, 99)),
    }


def parse_checksum(text: str, asset: str, source: str) -> str:
    """The hex SHA-256 for `asset` in a published checksum file (shasum lines or a bare hash)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        parts = ln.split()
        if len(parts) == 1 and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]) and len(lines) == 1:
            return parts[0].lower()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]) \
                and parts[1].lstrip("*").rsplit("/", 1)[-1] == asset:
            return parts[0].lower()
    raise ChecksumError(f"reading the checksum file {source}",
                        f"no SHA-256 for {asset!r} in it; refusing to run an unverified binary")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(url: str, what: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (pinned https)
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise ChecksumError(f"downloading {what} from {url}", f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise BackendError(f"downloading {what} from {url}", str(getattr(exc, "reason", exc)),
                           ) from None


def download_verified(pin: Pin, cache_dir: Path, timeout: float = 120.0,
                      expected_sha256: str | None = None) -> Path:
    """Download `pin` into cache_dir/<name>-<version>/<name>, verified against its published
    SHA-256 (or `expected_sha256` when the project publishes none), and return its path.

    A cached copy is re-hashed against the checksum recorded when it was verified.
    """
    home = Path(cache_dir) / f"{pin.name}-{pin.version}"
    target, recorded = home / pin.name, home / f"{pin.name}.sha256"
    if target.exists() and recorded.exists():
        if sha256_of(target.read_bytes()) == recorded.read_text().strip():
            return target
        raise ChecksumError(f"checking the cached {pin.name} at {target}",
                            "it no longer matches the SHA-256 it was verified with; delete "
                            f"{home} and run again")
    if expected_sha256:
        want = expected_sha256.lower()
    else:
        want = parse_checksum(_fetch(pin.checksum_url, f"{pin.name} checksum", timeout)
                              .decode(errors="replace"), pin.asset, pin.checksum_url)
    data = _fetch(pin.url, pin.name, timeout)
    got = sha256_of(data)
    if got != want:
        raise ChecksumError(f"verifying {pin.name} {pin.version} from {pin.url}",
                            f"SHA-256 {got} does not match the published {want}; not running it")
    if pin.member:
        data = _extract(data, pin)
    home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=f".{pin.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    recorded.write_text(sha256_of(data) + "\n")
    return target


def _extract(archive: bytes, pin: Pin) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            fh = tar.extractfile(pin.member)
            if fh is None:
                raise KeyError(pin.member)
            return fh.read()
    except (KeyError, tarfile.TarError) as exc:
        raise BackendError(f"unpacking {pin.asset}", f"no {pin.member} inside ({exc})") from None


def path_version(path: str, pin: Pin) -> tuple[int, int] | None:
    """(major, minor) the tool at `path` reports, or None when it does not say."""
    res = run([path, *pin.version_argv], timeout=30, doing=f"asking {path} its version")
    m = re.search(pin.version_re, res.stdout + res.stderr)
    if not m or res.returncode != 0:
        return None
    return int(m.group("major")), int(m.group("minor"))


def fits(version: tuple[int, int] | None, pin: Pin) -> bool:
    if version is None or version < pin.min_version:
        return False
    return pin.max_version is None or version <= pin.max_version


def resolve(name: str, cache_dir: Path = DEFAULT_CACHE, status: Callable[[str], None] = print,
            pin_table: dict[str, Pin] | None = None) -> str:
    """The path of a usable `name` binary: PATH if its version fits, else the verified download."""
    pin = (pin_table or pins())[name]
    found = shutil.which(name)
    if found:
        version = path_version(found, pin)
        if fits(version, pin):
            return found
        status(f"  {name} on PATH ({found}) reports {version or 'no version'}, outside "
               f"{pin.min_version}..{pin.max_version or 'any'}; using the pinned {pin.version}")
    path = download_verified(pin, Path(cache_dir))
    return str(path)


def fetch_verified(url: str, sha256: str, dest: Path, timeout: float = 120.0) -> Path:
    """Download `url` to `dest` unless a copy with the pinned SHA-256 is already there; a
    mismatch is a ChecksumError naming the URL and both hashes."""
    dest = Path(dest)
    if dest.exists() and sha256_of(dest.read_bytes()) == sha256:
        return dest
    data = _fetch(url, dest.name, timeout)
    got = sha256_of(data)
    if got != sha256:
        raise ChecksumError(f"verifying {url}", f"SHA-256 {got} does not match the pinned "
                                                f"{sha256}; not applying it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, dest)
    return dest
