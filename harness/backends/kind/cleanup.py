"""The kind cleaner for `python -m harness cleanup`: kind clusters named netpol-proof-* that no
live run uses — and nothing else.

Why a separate module: cleanup imports every cleaner, and this one must not pull in the
kubernetes client. A cluster is a leftover when its name has our prefix and its users file (see
harness.backends.kind.backend) names no live process and no run that asked to keep it; a cluster
without a users file was not made by a finished bring-up of ours and is left alone unless it
has our prefix and no users file at all (a crash during creation).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness import naming
from harness.backends.base import Cleaner, Leftover
from harness.backends.kind import commands as kc
from harness.backends.kind.binaries import DEFAULT_CACHE
from harness.shell import run


def _users(cache_dir: Path, cluster: str) -> list[dict] | None:
    path = cache_dir / "clusters" / cluster / "users.json"
    try:
        users = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return []
    return [u for u in users if isinstance(u, dict)]


def leftover_clusters(names: list[str], cache_dir: Path = DEFAULT_CACHE) -> list[tuple[str, str]]:
    """(cluster, run id or '?') for each of `names` that is ours and that no live run uses."""
    out = []
    for name in names:
        if not naming.is_our_cluster(name):
            continue
        users = _users(cache_dir, name)
        if users and any(u.get("keep") or naming.pid_alive(int(u.get("pid", 0))) for u in users):
            continue
        out.append((name, ",".join(str(u.get("run_id")) for u in users or []) or "?"))
    return out


def find(cache_dir: Path = DEFAULT_CACHE):
    kind = shutil.which("kind")
    if not kind:
        return []   # no kind, no kind clusters of ours to find
    res = run(kc.kind_get_clusters(kind), timeout=60)
    if res.returncode != 0:
        return []
    names = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    return [Leftover("kind-cluster", name, rid, "kind")
            for name, rid in leftover_clusters(names, cache_dir)]


def remove(item, cache_dir: Path = DEFAULT_CACHE) -> str | None:
    if item.kind != "kind-cluster" or not naming.is_our_cluster(item.name):
        return f"refusing to delete {item.name}: not a netpol-proof kind cluster"
    kind = shutil.which("kind")
    if not kind:
        return "kind is not on PATH"
    kubeconfig = cache_dir / "clusters" / item.name / "kubeconfig"
    res = run([kind, "delete", "cluster", "--name", item.name, "--kubeconfig", str(kubeconfig)],
              timeout=300)
    return None if res.returncode == 0 else (res.stderr or res.stdout).strip()[:300]


def cleaner():
    return Cleaner("kind", lambda: find(), lambda item: remove(item))
