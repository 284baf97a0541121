"""The local backend's cleaner for `python -m harness cleanup`: network namespaces, /etc/netns
dirs, state files and workdirs of dead local runs — and nothing else.

A local run is "crashed" only when its state file's pid is dead (or the state file is gone): a
live run's objects are never touched. Objects are recognised only through harness.naming.
"""

from __future__ import annotations

import json
import os
import shutil

from harness import naming
from harness.backends.base import Leftover
from harness.backends.local import netns as nsx
from harness.backends.local.backend import STATE_DIR
from harness.backends.local.mounts import remove_tree


def _live_runs() -> set[str]:
    """Run ids whose state file names a live pid."""
    live: set[str] = set()
    try:
        names = os.listdir(STATE_DIR)
    except FileNotFoundError:
        return live
    for fname in names:
        if not fname.endswith(".json"):
            continue
        try:
            with open(os.path.join(STATE_DIR, fname)) as fh:
                state = json.load(fh)
            if naming.pid_alive(int(state["pid"])):
                live.add(state["run_id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: treated as dead
    return live


def find_local_leftovers() -> list[Leftover]:
    """Network namespaces, /etc/netns dirs, state files and workdirs of dead local runs."""
    live = _live_runs()
    out: list[Leftover] = []
    for name in nsx.list_netns():
        rid = naming.run_id_of_netns(name)
        if rid and rid not in live:
            out.append(Leftover("netns", name, rid, "local"))
    if os.path.isdir(nsx.ETC_NETNS):
        for name in sorted(os.listdir(nsx.ETC_NETNS)):
            rid = naming.run_id_of_netns(name)
            if rid and rid not in live:
                out.append(Leftover("etc-netns", os.path.join(nsx.ETC_NETNS, name), rid, "local"))
    if os.path.isdir(STATE_DIR):
        for fname in sorted(os.listdir(STATE_DIR)):
            rid = fname[:-5] if fname.endswith(".json") else fname
            if not naming.valid_run_id(rid) or rid in live:
                continue
            path = os.path.join(STATE_DIR, fname)
            out.append(Leftover("state-file" if fname.endswith(".json") else "workdir", path, rid,
                                "local"))
    # namespaces first (their processes die with them), state files last
    order = {"netns": 0, "etc-netns": 1, "workdir": 2, "state-file": 3}
    return sorted(out, key=lambda item: (order.get(item.kind, 9), item.name))


def remove_local_leftover(item: Leftover) -> str | None:
    if item.kind == "netns":
        return nsx.delete_netns(item.name)
    if item.kind == "workdir":
        # a real node's kubelet volumes and netpol-cri's namespace files are mounted inside
        return "; ".join(remove_tree(item.name)) or None
    try:
        if os.path.isdir(item.name):
            shutil.rmtree(item.name)
        elif os.path.exists(item.name):
            os.remove(item.name)
    except OSError as exc:
        return f"removing {item.name}: {exc}"
    return None
