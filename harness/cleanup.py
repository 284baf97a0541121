"""Find and remove what crashed runs left behind — and only that.

Why a registry: each backend knows its own leftovers (network namespaces here, kind clusters in
the kind backend), but `python -m harness cleanup` runs them all. A cleaner recognises objects
only through harness.naming, and a local run is "crashed" only when its state file's pid is dead
(or the state file is gone): a live run's objects are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import Callable

from harness import naming
from harness.backends.local import netns as nsx
from harness.backends.local.backend import STATE_DIR


@dataclass(frozen=True)
class Leftover:
    """One object of a dead run: what it is, its name, and the run it belonged to."""

    kind: str          # "netns", "etc-netns", "state-file", "workdir", "kind-cluster", ...
    name: str
    run_id: str
    cleaner: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name} (run {self.run_id})"


@dataclass(frozen=True)
class Cleaner:
    name: str
    find: Callable[[], list[Leftover]]
    remove: Callable[[Leftover], str | None]   # an error text, or None


def _live_runs() -> set[str]:
    """Run ids whose state file names a live pid."""
    live = set()
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
    return sorted(out, key=lambda l: (order.get(l.kind, 9), l.name))


def remove_local_leftover(item: Leftover) -> str | None:
    if item.kind == "netns":
        return nsx.delete_netns(item.name)
    try:
        if os.path.isdir(item.name):
            shutil.rmtree(item.name)
        elif os.path.exists(item.name):
            os.remove(item.name)
    except OSError as exc:
        return f"removing {item.name}: {exc}"
    return None


#: every backend's cleaner; the kind backend appends its own (e.g. kind clusters named
#: netpol-proof-*) with `register(Cleaner(...))`
CLEANERS: list[Cleaner] = [Cleaner("local", find_local_leftovers, remove_local_leftover)]


def register(cleaner: Cleaner) -> None:
    if all(c.name != cleaner.name for c in CLEANERS):
        CLEANERS.append(cleaner)


def find_leftovers() -> list[Leftover]:
    out: list[Leftover] = []
    for c in CLEANERS:
        out += c.find()
    return out


def remove_leftovers(dry_run: bool = False) -> tuple[list[Leftover], list[str]]:
    """(what was found — and removed unless dry_run, errors). Keeps going past failures."""
    found, errors = find_leftovers(), []
    if dry_run:
        return found, errors
    by_name = {c.name: c for c in CLEANERS}
    for item in found:
        err = by_name[item.cleaner].remove(item)
        if err:
            errors.append(f"{item}: {err}")
    return found, errors


# The kind backend's cleaner: kind clusters named netpol-proof-* that no live run uses.
from harness.backends.kind_cleanup import cleaner as _kind_cleaner  # noqa: E402

register(_kind_cleaner())
