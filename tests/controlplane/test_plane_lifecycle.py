"""A real control plane leaves nothing behind: on down(), on SIGTERM and Ctrl-C of its harness
process, and, after a SIGKILL of that process, once `python -m harness cleanup` ran; cleanup never
touches a live plane or a process that is not the plane's. Skipped with the ComponentMissing
reason without the binaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import naming
from harness.backends.local import netns as nsx
from harness.backends.local.backend import state_path
from harness.backends.real.controlplane import ControlPlane, procs
from harness.shell import run, spawn
from tests.controlplane.conftest import needs_plane

pytestmark = needs_plane
ROOT = Path(__file__).resolve().parents[2]


def alive(records: list[dict]) -> list[str]:
    """The recorded processes that still run as recorded."""
    return [f"{r['name']} pid {r['pid']}" for r in records
            if procs.same_process(procs.ProcRecord(r["name"], r["pid"], r["start"], tuple(r["argv"])))]


def test_down_stops_every_process_and_removes_the_state_directory():
    plane = ControlPlane()
    with plane:
        record = json.loads((plane.dir / "plane.json").read_text())["processes"]
        assert len(alive(record)) == 3
        state_dir = plane.dir
    assert alive(record) == []
    assert not state_dir.exists()
    plane.down()                                          # idempotent


def test_a_run_id_in_use_is_refused_without_touching_the_live_plane(plane):
    other = ControlPlane(plane.run_id)
    with pytest.raises(Exception, match="belongs to a live run"):
        other.up()
    assert plane.dir.exists()
    record = json.loads((plane.dir / "plane.json").read_text())["processes"]
    assert len(alive(record)) == 3


CHILD = """
import json, sys, time
from harness.lifecycle import install_sigterm_handler
from harness.backends.local import netns as nsx
from harness.backends.local.backend import claim_run, release_run
from harness.backends.real.controlplane import ControlPlane
install_sigterm_handler()
run_id = sys.argv[1]
claim_run(run_id, purpose="control plane lifecycle test child")
ns = f"np-{run_id}-node"
nsx.add_netns([ns])
try:
    with ControlPlane(run_id) as plane:
        plane.kubeconfig_for_netns(ns)
        print("READY " + json.dumps({"dir": str(plane.dir)}), flush=True)
        time.sleep(300)
finally:
    nsx.delete_netns(ns)
    release_run(run_id)
"""


def start_child(tmp_path) -> tuple[str, subprocess.Popen, Path, Path]:
    run_id = naming.new_run_id()
    log = tmp_path / f"{run_id}.log"
    proc = spawn([sys.executable, "-c", CHILD, run_id], log_path=str(log))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        text = log.read_text()
        if "READY " in text:
            info = json.loads(text.split("READY ", 1)[1].splitlines()[0])
            return run_id, proc, Path(info["dir"]), log
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"child harness did not bring its plane up: {log.read_text()[-3000:]}")


def leftovers(run_id: str, state_dir: Path, records: list[dict]) -> dict[str, list]:
    prefix = naming.local_prefix(run_id)
    return {"processes": alive(records),
            "dir": [str(state_dir)] if state_dir.exists() else [],
            "netns": [n for n in nsx.list_netns() if n.startswith(prefix)],
            "state": [p for p in (state_path(run_id),) if os.path.exists(p)]}


NOTHING = {"processes": [], "dir": [], "netns": [], "state": []}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_to_the_harness_tears_the_plane_down(tmp_path, sig):
    run_id, proc, state_dir, log = start_child(tmp_path)
    records = json.loads((state_dir / "plane.json").read_text())["processes"]
    assert len(alive(records)) == 3
    proc.send_signal(sig)
    assert proc.wait(timeout=60) != 0
    assert leftovers(run_id, state_dir, records) == NOTHING, log.read_text()[-2000:]


def test_cleanup_after_a_sigkill_removes_everything_and_only_that(tmp_path, plane):
    run_id, proc, state_dir, log = start_child(tmp_path)
    records = json.loads((state_dir / "plane.json").read_text())["processes"]
    # a process that names the crashed run's directory but is not the plane's: left alone
    decoy = spawn([sys.executable, "-c", "import time; time.sleep(300)", f"{state_dir}/logs/x"])
    try:
        # while the child lives, cleanup finds nothing of its run
        dry = run([sys.executable, "-m", "harness", "cleanup", "--dry-run"], check=True, timeout=120)
        assert run_id not in dry.stdout and plane.run_id not in dry.stdout
        proc.kill()                                       # a crash: no teardown runs
        proc.wait(timeout=10)
        crashed = leftovers(run_id, state_dir, records)
        assert len(crashed["processes"]) == 3 and crashed["dir"] and crashed["netns"]
        dry = run([sys.executable, "-m", "harness", "cleanup", "--dry-run"], check=True, timeout=120)
        assert f"{state_dir} (run {run_id})" in dry.stdout
        assert leftovers(run_id, state_dir, records) == crashed      # a dry run removes nothing
        out = run([sys.executable, "-m", "harness", "cleanup"], timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
        assert leftovers(run_id, state_dir, records) == NOTHING, out.stdout
        assert decoy.poll() is None
        # the live plane of this test process is untouched and still answers
        assert plane.dir.exists()
        assert len(alive(json.loads((plane.dir / "plane.json").read_text())["processes"])) == 3
        from kubernetes import client

        assert client.CoreV1Api(plane.api_client()).read_namespace("default").metadata.name
    finally:
        proc.kill()
        decoy.kill()


def stand_in(tmp_path, name: str, body: str) -> str:
    """A broken binary standing in for `name` (a fake, named as such): the boundary under test
    is how the plane reports a component that dies or never answers."""
    d = tmp_path / "stand-ins"
    d.mkdir(exist_ok=True)
    path = d / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_a_component_that_exits_is_named_with_its_log_and_nothing_is_left(tmp_path, monkeypatch):
    from harness.backends.real.controlplane import ControlPlaneError

    monkeypatch.setenv("TEST_ASSET_KUBE_APISERVER", stand_in(
        tmp_path, "kube-apiserver", 'echo "stand-in: cannot serve" >&2; exit 3'))
    plane = ControlPlane(controller_manager=False)
    with pytest.raises(ControlPlaneError) as info:
        plane.up()
    err = info.value
    assert "kube-apiserver" in str(err) and "exited with status 3" in str(err)
    assert "stand-in: cannot serve" in err.output
    assert not plane.dir.exists()
    assert procs.unrecorded(plane.dir, set()) == []


def test_a_component_that_never_answers_is_named_after_the_deadline(tmp_path, monkeypatch):
    from harness.backends.real.controlplane import ControlPlaneError

    monkeypatch.setenv("TEST_ASSET_KUBE_APISERVER",
                       stand_in(tmp_path, "kube-apiserver", "echo started; exec sleep 600"))
    plane = ControlPlane(controller_manager=False, ready_timeout=3)
    with pytest.raises(ControlPlaneError) as info:
        plane.up()
    assert "kube-apiserver" in str(info.value)
    assert "never became ready within 3s" in str(info.value)
    assert "Connection refused" in str(info.value)     # the last answer is carried
    assert "started" in info.value.output
    assert not plane.dir.exists()


def test_a_port_taken_in_between_is_retried_with_another(monkeypatch):
    import socket

    taken = socket.create_server(("127.0.0.1", 0))
    real = procs.free_port
    ports = iter([taken.getsockname()[1]])
    monkeypatch.setattr(procs, "free_port", lambda host="127.0.0.1": next(ports, None) or real(host))
    messages: list[str] = []
    try:
        with ControlPlane(controller_manager=False, status=messages.append) as plane:
            assert plane.etcd_url != f"http://127.0.0.1:{taken.getsockname()[1]}"
        assert any("was taken, retrying" in m and m.lstrip().startswith("etcd") for m in messages)
    finally:
        taken.close()


def test_a_harness_that_exits_without_down_still_tears_the_plane_down(tmp_path):
    code = ("import json, sys\nfrom harness.backends.real.controlplane import ControlPlane\n"
            "p = ControlPlane(controller_manager=False)\np.up()\n"
            "print(json.dumps({'dir': str(p.dir), 'procs': json.loads((p.dir / 'plane.json')"
            ".read_text())['processes']}))\n")
    out = run([sys.executable, "-c", code], timeout=240)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(info["procs"]) == 2
    assert alive(info["procs"]) == [] and not Path(info["dir"]).exists()
