"""The control plane's processes: free loopback ports, the state file that records every process
a plane started, and the ownership test cleanup relies on.

Why a state file with pid + start time + argv: after a SIGKILL of the harness its etcd and API
server keep running (they are in their own sessions). `python -m harness cleanup` must stop them
and must never stop anything else; a pid alone can be reused by an unrelated process, so a
process counts as ours only when its pid is alive, its start time (from /proc) is the one
recorded, and its command line is exactly the recorded one, which names the run's own state
directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import naming

STATE_FILE = "plane.json"
#: basenames of the binaries a plane runs; the only processes cleanup may find without a record
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel just handed out on `host` (free now; a component that then loses
    the race fails with "address already in use" and the plane retries with another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces or parentheses
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] if raw else None


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:].startswith("Z")


@dataclass(frozen=True)
class ProcRecord:
    """One process a plane started (or its owner, the harness process itself)."""

    name: str
    pid: int
    start: str
    argv: tuple[str, ...]

    @classmethod
    def of(cls, name: str, pid: int) -> ProcRecord:
        return cls(name, pid, start_time(pid) or "", tuple(cmdline(pid) or ()))


def same_process(rec: ProcRecord) -> bool:
    """Is the process `rec` describes still running (same pid, same start time, same argv)?"""
    if not rec.start or start_time(rec.pid) != rec.start or is_zombie(rec.pid):
        return False
    return tuple(cmdline(rec.pid) or ()) == tuple(rec.argv)


def owned_by_dir(rec: ProcRecord, state_dir: Path) -> bool:
    """`rec` is alive as recorded and its command line names `state_dir`: ours to stop."""
    prefix = str(state_dir).rstrip("/") + "/"
    return same_process(rec) and any(prefix in a for a in rec.argv)


def unrecorded(state_dir: Path, known: set[int]) -> list[ProcRecord]:
    """Processes of a plane binary whose arguments name `state_dir` but that no record lists
    (a SIGKILL between starting a process and writing its record)."""
    prefix = str(state_dir).rstrip("/") + "/"
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in known:
            continue
        argv = cmdline(int(entry))
        if not argv or os.path.basename(argv[0]) not in COMPONENTS:
            continue
        if any(prefix in a for a in argv[1:]):
            out.append(ProcRecord.of(os.path.basename(argv[0]), int(entry)))
    return out


def kill(rec: ProcRecord, grace: float = 5.0) -> str | None:
    """SIGTERM, then SIGKILL after `grace` s, a process that is not our child (cleanup's case).
    Re-checks ownership right before each signal; an error text or None."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not same_process(rec):
            return None
        try:
            os.kill(rec.pid, sig)
        except ProcessLookupError:
            return None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not same_process(rec):
                return None
            time.sleep(0.05)
    return f"{rec.name} (pid {rec.pid}) still runs after SIGKILL"


class PlaneState:
    """`<state dir>/plane.json`: the owner (the harness process) and every process started."""

    def __init__(self, state_dir: Path, run_id: str):
        self.dir = Path(state_dir)
        self.path = self.dir / STATE_FILE
        self.run_id = run_id
        self.processes: list[ProcRecord] = []
        self.owner = ProcRecord.of("owner", os.getpid())

    def write(self, **extra) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"run_id": self.run_id, "owner": asdict(self.owner),
                                   "created": time.time(),
                                   "processes": [asdict(p) for p in self.processes], **extra}))
        os.replace(tmp, self.path)

    def add(self, rec: ProcRecord) -> None:
        self.processes.append(rec)
        self.write()

    def drop(self, pid: int) -> None:
        self.processes = [p for p in self.processes if p.pid != pid]
        self.write()


def read_state(state_dir: Path) -> tuple[ProcRecord | None, list[ProcRecord]]:
    """(owner, processes) recorded in a state directory; (None, []) when unreadable."""
    try:
        data = json.loads((Path(state_dir) / STATE_FILE).read_text())
        owner = _record(data["owner"])
        procs = [_record(p) for p in data.get("processes", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return None, []
    return owner, procs


def _record(d: dict) -> ProcRecord:
    return ProcRecord(str(d["name"]), int(d["pid"]), str(d["start"]), tuple(d["argv"]))


def owner_alive(state_dir: Path) -> bool:
    """Does the harness process that made this state directory still run?"""
    owner, _ = read_state(state_dir)
    return owner is not None and same_process(owner)


def plane_dirs(root: Path) -> list[tuple[Path, str]]:
    """(state dir, run id) of every control plane state directory under `root`."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        rid = naming.run_id_of_controlplane_dir(name)
        if rid and os.path.isdir(os.path.join(root, name)):
            out.append((Path(root) / name, rid))
    return out
