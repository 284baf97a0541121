"""The curl the local backend's probes run: Debian bookworm's curl source, built HTTP-only.

Why: a probe round starts one curl per source pod, so the library starts about 6,000 of them.
The system curl links 33 libraries (TLS, LDAP, Kerberos, SSH, RTMP, IDN, ...) and a start costs
about 11 ms of CPU, most of it the dynamic linker; the same source built with HTTP alone links
only libc and starts in about 2 ms (bench/bench_library.py prints both). That is the largest
share of the library's CPU on two cores. The probe stays curl: the same release as the system's
(7.88.1 with Debian's patches, 7.88.1-10+deb12u15), the same options and the same write-out;
what the build leaves out (TLS, other protocols, IDN, compression) no probe uses. The probes only
ever talk to servers in namespaces the harness created.

Built once per pin into a cache outside the repo (like the real components, keyed by the pin and
the recipe), from the two Debian source archives verified by SHA-256. Where it is not built
(no compiler, a failed build), probes run the system curl, slower; `run` records which one ran
(`probe_tools` in the JSON report's meta).

Built by `python -m harness.backends.local.curlbuild` (scripts/setup.sh runs it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Sequence

VERSION = "7.88.1"
DEBIAN_REVISION = "7.88.1-10+deb12u15"
POOL = "http://deb.debian.org/debian/pool/main/c/curl/"
#: (file, SHA-256) as listed in bookworm's Sources index for DEBIAN_REVISION
ARCHIVES = (
    (f"curl_{VERSION}.orig.tar.gz",
     "cdb38b72e36bc5d33d5b8810f8018ece1baa29a8f215b4495e495ded82bbf3c7"),
    (f"curl_{DEBIAN_REVISION}.debian.tar.xz",
     "961b78bc48492c5693e4decb352ddd176f343260a8956f48b2887874048ef23b"),
)
#: HTTP over IPv4/IPv6 with the threaded resolver (a batched probe resolves names in parallel)
CONFIGURE = (
    "--disable-shared", "--enable-static", "--without-ssl", "--without-zlib", "--without-brotli",
    "--without-zstd", "--without-nghttp2", "--without-libidn2", "--without-libpsl",
    "--without-librtmp", "--without-libssh2", "--disable-ldap", "--disable-ldaps",
    "--disable-rtsp", "--disable-dict", "--disable-telnet", "--disable-tftp", "--disable-pop3",
    "--disable-imap", "--disable-smtp", "--disable-gopher", "--disable-mqtt", "--disable-smb",
    "--disable-ftp", "--disable-file", "--disable-alt-svc", "--disable-hsts", "--disable-cookies",
    "--disable-manual", "--disable-ntlm", "--disable-unix-sockets", "--enable-threaded-resolver",
)
CACHE = Path(os.environ.get("NETPOL_PROOF_CACHE", Path.home() / ".cache" / "netpol-proof"))


def key() -> str:
    """The cache key: the pin and the recipe, so a changed pin never reuses a stale build."""
    text = "\n".join([VERSION, DEBIAN_REVISION, *(s for _, s in ARCHIVES), *CONFIGURE])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def home(cache: Path | None = None) -> Path:
    return (cache or CACHE) / "tools" / f"curl-{DEBIAN_REVISION}-{key()}"


def built(cache: Path | None = None) -> Path | None:
    """The built curl, or None when it is not there."""
    path = home(cache) / "curl"
    return path if path.is_file() and os.access(path, os.X_OK) else None


@lru_cache(maxsize=1)
def _probe_curl() -> str:
    return str(built() or "curl")


def resolve(argv: Sequence[str]) -> list[str]:
    """argv with a leading `curl` pointed at the built curl when there is one."""
    out = [str(a) for a in argv]
    if out and out[0] == "curl":
        out[0] = _probe_curl()
    return out


def describe() -> str:
    """Which curl the local probes run, in words for the report."""
    path = built()
    if path is None:
        return (f"curl: the system's {shutil.which('curl') or 'curl'} (the HTTP-only build is "
                f"not in {home()}: python -m harness.backends.local.curlbuild)")
    return f"curl: {path} (curl {DEBIAN_REVISION}, Debian's source built HTTP-only)"


def forget() -> None:
    """Look for the built curl again at the next probe (after a build)."""
    _probe_curl.cache_clear()
