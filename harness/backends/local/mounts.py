"""Mounts left under a run's directory: unmount them (deepest first), then remove the directory.

Why: a real node's kubelet mounts its pods' volumes (tmpfs) under the run directory and
netpol-cri keeps each pod's UTS and IPC namespaces there as bind mounts; removing a directory
that holds a mount point fails (EBUSY), so teardown and `python -m harness cleanup` unmount
first. Only mount points strictly below the given directory are touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.shell import run


def mounts_under(root: str | Path, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points strictly below `root`, deepest first."""
    prefix = str(root).rstrip("/") + "/"
    points = set()
    with open(mountinfo) as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 4:
                mp = fields[4].replace("\\040", " ")
                if mp.startswith(prefix):
                    points.add(mp)
    return sorted(points, key=lambda p: (p.count("/"), p), reverse=True)


def unmount_under(root: str | Path) -> list[str]:
    """Unmount (lazily) every mount point below `root`; returns errors."""
    errors = []
    for mp in mounts_under(root):
        res = run(["umount", "--lazy", mp], timeout=30)
        if res.returncode != 0 and "not mounted" not in res.stderr:
            errors.append(f"umount {mp}: {res.stderr.strip()}")
    return errors


def remove_tree(root: str | Path) -> list[str]:
    """Unmount what is mounted below `root`, then remove it; returns errors."""
    errors = unmount_under(root)
    try:
        shutil.rmtree(root)
    except FileNotFoundError:
        pass
    except OSError as exc:
        errors.append(f"removing {root}: {exc}")
    return errors
