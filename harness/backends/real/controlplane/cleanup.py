"""The control plane cleaner for `python -m harness cleanup`: processes and state directories of
planes whose owner died (a SIGKILL of the harness), and nothing else.

A state directory `cp-<run>` (naming.controlplane_dir) is a leftover when the owner recorded in
its plane.json no longer runs (same pid *and* start time, see procs.same_process), or when it has
no readable record at all (a crash while it was being created). A process is stopped only when
it is alive exactly as recorded (pid, start time, argv naming the state directory), or, when
unrecorded, when it is one of the plane's binaries and its arguments name that directory.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from harness import naming
from harness.backends.base import Cleaner, Leftover
from harness.backends.local.backend import STATE_DIR
from harness.backends.real.controlplane import procs

_PID_RE = re.compile(r" pid (\d+) ")


def _leftover_procs(state_dir: Path) -> list[procs.ProcRecord]:
    _, recorded = procs.read_state(state_dir)
    live = [r for r in recorded if procs.owned_by_dir(r, state_dir)]
    return live + procs.unrecorded(state_dir, {r.pid for r in recorded})


def find(root: Path = Path(STATE_DIR)) -> list[Leftover]:
    out = []
    for state_dir, rid in procs.plane_dirs(root):
        if procs.owner_alive(state_dir):
            continue
        for rec in _leftover_procs(state_dir):
            out.append(Leftover("controlplane-process", f"{rec.name} pid {rec.pid} ({state_dir})",
                                rid, "controlplane"))
        out.append(Leftover("controlplane-dir", str(state_dir), rid, "controlplane"))
    return out


def remove(item: Leftover) -> str | None:
    if item.kind == "controlplane-process":
        m = _PID_RE.search(item.name)
        state_dir = Path(item.name[item.name.rfind("(") + 1:-1])
        if not m:
            return f"cannot read a pid in {item.name!r}"
        pid = int(m.group(1))
        # checked again now: only a process still alive exactly as found is signalled
        for rec in _leftover_procs(state_dir):
            if rec.pid == pid:
                return procs.kill(rec)
        return None
    if item.kind == "controlplane-dir":
        state_dir = Path(item.name)
        if naming.run_id_of_controlplane_dir(state_dir.name) is None:
            return f"refusing to remove {state_dir}: not a control plane state directory"
        if procs.owner_alive(state_dir):
            return f"refusing to remove {state_dir}: its owner runs again"
        errors = [e for e in (procs.kill(r) for r in _leftover_procs(state_dir)) if e]
        if errors:
            return "; ".join(errors) + f"; left {state_dir}"
        try:
            shutil.rmtree(state_dir)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return f"removing {state_dir}: {exc}"
        return None
    return f"not a control plane leftover: {item}"


def cleaner() -> Cleaner:
    return Cleaner("controlplane", lambda: find(), lambda item: remove(item))
