"""Did anything create a cgroup or move a process into one? The machine's rule (docs/real-nodes.md)
is that no process the harness starts may do either; this module is how a run checks it.

Two checks, both by reading /proc and /sys only:
- `snapshot()` lists every directory of every mounted cgroup hierarchy; `created(before, after)`
  is what appeared in between, minus the siblings of the harness's own cgroup (the machine's
  process manager makes one per session beside it; a cgroup made by a runtime sits elsewhere:
  at a hierarchy's root (docs/real-nodes.md §2), or below the harness's own);
- `moved(pids)` lists the processes whose cgroups differ from the harness's own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def hierarchies(mountinfo: str = "/proc/self/mountinfo") -> dict[str, Path]:
    """Mount point of each cgroup hierarchy, keyed by its controllers as /proc/<pid>/cgroup
    names them ("cpu,cpuacct", "name=systemd", "" for cgroup2)."""
    out: dict[str, Path] = {}
    with open(mountinfo) as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 3:
                continue
            fstype, options = rfields[0], rfields[2].split(",")
            if fstype == "cgroup2":
                out.setdefault("", Path(fields[4]))
            elif fstype == "cgroup":
                known = {"rw", "ro", "nosuid", "nodev", "noexec", "relatime", "noatime", "xattr",
                         "clone_children", "nsdelegate", "memory_recursiveprot"}
                ctrls = [o for o in options if o not in known and not o.startswith("release_agent")]
                out.setdefault(",".join(ctrls), Path(fields[4]))
    return out


def membership(pid: int | str = "self") -> dict[str, str]:
    """controllers -> cgroup path of a process, from /proc/<pid>/cgroup."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as fh:
        for line in fh:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                out[parts[1]] = parts[2]
    return out


def snapshot() -> set[str]:
    """Every directory of every cgroup hierarchy, as `<mount point>/<path>`."""
    dirs: set[str] = set()
    for mount in set(hierarchies().values()):
        for root, subdirs, _files in os.walk(mount):
            dirs.add(root)
            # a cgroup's files are not cgroups; only directories are listed
            subdirs[:] = [d for d in subdirs if not os.path.islink(os.path.join(root, d))]
    return dirs


def _own_siblings() -> set[str]:
    """The directories beside the harness's own cgroup in each hierarchy (see the module
    docstring); the root cgroup has none."""
    own = membership()
    out: set[str] = set()
    for ctrls, mount in hierarchies().items():
        path = own.get(ctrls, "/")
        if path in ("", "/"):
            continue
        parent = mount / path.lstrip("/")
        out.add(str(parent.parent))
    return out


def created(before: set[str], after: set[str]) -> list[str]:
    """Cgroup directories in `after` but not in `before`, except the process manager's own
    (a new directory directly beside the harness's own cgroup)."""
    siblings_of = _own_siblings()
    return sorted(d for d in after - before if str(Path(d).parent) not in siblings_of)


def moved(pids: Iterable[int]) -> dict[int, dict[str, str]]:
    """pid -> the cgroups it is in, for each process whose cgroups differ from the harness's
    own (a process that has exited meanwhile is skipped)."""
    own = membership()
    out = {}
    for pid in pids:
        try:
            theirs = membership(pid)
        except OSError:
            continue
        if theirs != own:
            out[pid] = theirs
    return out
