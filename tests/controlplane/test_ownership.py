"""Who the control plane cleaner may stop: only processes alive exactly as a dead run recorded
them (pid, start time, argv naming the run's state directory), or unrecorded plane binaries whose
arguments name that directory; never a live run's, never anything else.

Stand-ins: the processes here are Python interpreters sleeping (one started under the name
`etcd`), not the real binaries, because this is about ownership, not etcd; the real binaries are
killed by cleanup in test_plane_lifecycle.py."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import naming
from harness.backends.real.controlplane import cleanup as cpc
from harness.backends.real.controlplane import procs

SLEEP = "import time; time.sleep(120)"


def sleeper(*args: str, name: str | None = None) -> subprocess.Popen:
    argv = [name or sys.executable, "-c", SLEEP, *args]
    return subprocess.Popen(argv, executable=sys.executable, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def wait_exec(proc: subprocess.Popen, argv0: str) -> None:
    """Until the child's /proc cmdline is the new program's (fork happened, exec not yet)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cmd = procs.cmdline(proc.pid)
        if cmd and cmd[0] == argv0 and "-c" in cmd:
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {proc.pid} did not exec")


def dead_owner() -> procs.ProcRecord:
    p = subprocess.Popen(["true"])
    rec = procs.ProcRecord.of("owner", p.pid)
    p.wait()
    return rec


def make_plane_dir(root: Path, owner: procs.ProcRecord, records: list[procs.ProcRecord]) -> Path:
    rid = naming.new_run_id()
    d = root / naming.controlplane_dir(rid)
    d.mkdir(parents=True)
    state = procs.PlaneState(d, rid)
    state.owner = owner
    state.processes = records
    state.write()
    return d


@pytest.fixture
def cleanup_procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def test_a_record_matches_only_the_same_process(tmp_path, cleanup_procs):
    p = sleeper(f"{tmp_path}/cp-x/marker")
    cleanup_procs.append(p)
    wait_exec(p, sys.executable)
    rec = procs.ProcRecord.of("stand-in", p.pid)
    assert procs.same_process(rec)
    assert procs.owned_by_dir(rec, tmp_path / "cp-x")
    assert not procs.owned_by_dir(rec, tmp_path / "cp-y")
    assert not procs.same_process(dataclasses.replace(rec, start=str(int(rec.start) + 1)))
    assert not procs.same_process(dataclasses.replace(rec, argv=rec.argv + ("more",)))
    p.kill()
    p.wait()
    assert not procs.same_process(rec)


def test_cleanup_stops_a_dead_runs_processes_and_leaves_everything_else(tmp_path, cleanup_procs):
    root = tmp_path / "state"
    # a live run (its owner is this test process) with a process of its own
    live = make_plane_dir(root, procs.ProcRecord.of("owner", os.getpid()), [])
    ours = sleeper(f"--data-dir={live}/etcd", name="etcd")
    cleanup_procs.append(ours)
    wait_exec(ours, "etcd")
    live_state = procs.PlaneState(live, live.name[3:])
    live_state.processes = [procs.ProcRecord.of("etcd", ours.pid)]
    live_state.write()
    # the dead run: its recorded process, and an unrecorded one started under a plane binary name
    d = make_plane_dir(root, dead_owner(), [])
    recorded = sleeper(f"--data-dir={d}/etcd")
    unrecorded = sleeper(f"--data-dir={d}/etcd", name="etcd")
    # not ours: a process naming the directory that is no plane binary, and a recorded process
    # whose pid was reused (its start time differs from the record)
    decoy = sleeper(f"{d}/logs/etcd.log")
    reused = sleeper(f"--data-dir={d}/etcd")
    cleanup_procs += [recorded, unrecorded, decoy, reused]
    wait_exec(recorded, sys.executable)
    wait_exec(unrecorded, "etcd")
    wait_exec(decoy, sys.executable)
    wait_exec(reused, sys.executable)
    rec_reused = procs.ProcRecord.of("etcd", reused.pid)
    rec_reused = dataclasses.replace(rec_reused, start=str(int(rec_reused.start) - 7))
    state = procs.PlaneState(d, d.name[3:])
    state.owner = procs.read_state(d)[0]
    state.processes = [procs.ProcRecord.of("etcd", recorded.pid), rec_reused]
    state.write()

    found = cpc.find(root)
    names = [leftover.name for leftover in found]
    assert [leftover.kind for leftover in found] == ["controlplane-process"] * 2 + ["controlplane-dir"]
    assert {int(n.split(" pid ")[1].split()[0]) for n in names[:2]} == {recorded.pid,
                                                                        unrecorded.pid}
    assert names[2] == str(d) and str(live) not in " ".join(names)
    for item in found:
        assert cpc.remove(item) is None, item
    assert recorded.wait(10) is not None and unrecorded.wait(10) is not None
    assert not d.exists()
    for untouched in (decoy, reused, ours):
        assert untouched.poll() is None, untouched.args
    assert live.exists()


def test_a_directory_without_our_name_is_never_removed(tmp_path):
    from harness.backends.base import Leftover

    other = tmp_path / "not-a-plane"
    other.mkdir()
    err = cpc.remove(Leftover("controlplane-dir", str(other), "abcd", "controlplane"))
    assert "not a control plane state directory" in err and other.exists()


def test_a_directory_without_a_record_counts_as_dead(tmp_path):
    root = tmp_path / "state"
    d = root / naming.controlplane_dir(naming.new_run_id())
    d.mkdir(parents=True)            # a crash before plane.json was written
    found = cpc.find(root)
    assert [(leftover.kind, leftover.name) for leftover in found] == [("controlplane-dir", str(d))]
    assert cpc.remove(found[0]) is None and not d.exists()
