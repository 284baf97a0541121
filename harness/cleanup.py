"""The registry of cleaners behind `python -m harness cleanup`: find and remove what crashed runs
left behind — and only that.

Why a registry: each backend knows its own leftovers (backends/local/cleanup.py: network
namespaces, state files; backends/kind/cleanup.py: kind clusters; controlplane/cleanup.py: the
control plane's processes and state directories), but `python -m harness cleanup` runs them
all. A cleaner recognises objects only through harness.naming, and never touches a live run's
objects.
"""

from __future__ import annotations

from harness.backends.base import Cleaner, Leftover
from harness.backends.kind.cleanup import cleaner as _kind_cleaner
from harness.backends.local.cleanup import find_local_leftovers, remove_local_leftover
from harness.backends.real.controlplane.cleanup import cleaner as _controlplane_cleaner

__all__ = ["Cleaner", "Leftover", "CLEANERS", "register", "find_leftovers", "remove_leftovers"]

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
    found = find_leftovers()
    errors: list[str] = []
    if dry_run:
        return found, errors
    by_name = {c.name: c for c in CLEANERS}
    for item in found:
        err = by_name[item.cleaner].remove(item)
        if err:
            errors.append(f"{item}: {err}")
    return found, errors


# The kind backend's cleaner: kind clusters named netpol-proof-* that no live run uses.
register(_kind_cleaner())
# The control plane's cleaner: etcd/kube-apiserver/kube-controller-manager of dead runs, and
# their state directories cp-<run>.
register(_controlplane_cleaner())
