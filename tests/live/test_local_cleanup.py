"""The local backend leaves the machine as it found it; `cleanup` removes crashed runs only.

Snapshots compare the root namespace (links, nft tables) and everything named with the run's
prefix (network namespaces, /etc/netns dirs, processes, state files) before, during and after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from harness import naming
from harness.backends.local import LocalBackend
from harness.backends.local.backend import STATE_DIR, state_path
from harness.backends.local.preflight import missing_tools
from harness.cleanup import find_leftovers, remove_leftovers
from harness.errors import BackendError
from harness.model import ContainerPort, Model, Namespace, Pod, Protocol
from harness.shell import run, spawn

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root (network namespaces)"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"missing system tools: {missing_tools()}"),
]


def root_links() -> set[str]:
    out = run(["ip", "-o", "link"], check=True).stdout
    return {ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines()}


def root_nft_tables() -> str:
    return run(["nft", "list", "tables"], check=True).stdout


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if text.encode() in fh.read():
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def run_objects(run_id: str) -> dict[str, list]:
    """Everything on the machine named with this run's prefix."""
    prefix = naming.local_prefix(run_id)
    return {
        "netns": sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
        if os.path.isdir("/run/netns") else [],
        "etc": sorted(n for n in os.listdir("/etc/netns") if n.startswith(prefix))
        if os.path.isdir("/etc/netns") else [],
        "procs": processes_mentioning(f"/{run_id}/"),
        "state": [p for p in (state_path(run_id), os.path.join(STATE_DIR, run_id)) if os.path.exists(p)],
    }


def test_a_run_leaves_nothing_behind():
    links, tables = root_links(), root_nft_tables()
    b = LocalBackend("enforcing", probe_timeout=1.0)
    assert run_objects(b.run_id) == {"netns": [], "etc": [], "procs": [], "state": []}
    with b:
        b.deploy(Model.default())
        b.apply_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}})
        during = run_objects(b.run_id)
        assert len(during["netns"]) == 11 and len(during["etc"]) == 10   # node + 10 pods
        assert len(during["procs"]) == 1 and len(during["state"]) == 2   # the servers process
        assert root_links() == links, "the emulated cluster must not touch the root namespace"
        assert root_nft_tables() == tables
    assert run_objects(b.run_id) == {"netns": [], "etc": [], "procs": [], "state": []}
    assert root_links() == links and root_nft_tables() == tables
    b.down()  # idempotent


def test_teardown_after_a_failed_deploy():
    bad = Pod("x", "a", {}, (ContainerPort(80, Protocol.TCP), ContainerPort(80, Protocol.TCP)))
    b = LocalBackend("enforcing")
    with b:
        with pytest.raises(BackendError, match="x/a"):
            b.deploy(Model.build([Namespace("x")], [bad]))   # port 80 bound twice: server dies
        assert run_objects(b.run_id)["netns"] == [f"{b.prefix}node"]
    assert run_objects(b.run_id) == {"netns": [], "etc": [], "procs": [], "state": []}


CHILD = """
import sys, time
from harness.lifecycle import install_sigterm_handler
from harness.backends.local import LocalBackend
from harness.model import Model
install_sigterm_handler()
with LocalBackend("enforcing", run_id=sys.argv[1]) as b:
    b.deploy(Model.default(namespaces=["x"], pods=["a", "b"]))
    print("READY", flush=True)
    time.sleep(120)
"""


def start_child(tmp_path) -> tuple[str, subprocess.Popen, str]:
    run_id = naming.new_run_id()
    log = str(tmp_path / f"{run_id}.log")
    proc = spawn([sys.executable, "-c", CHILD, run_id], log_path=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(log) as fh:
            if "READY" in fh.read():
                return run_id, proc, log
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    with open(log) as fh:
        pytest.fail(f"child run did not come up: {fh.read()}")


def test_sigterm_tears_down(tmp_path):
    run_id, proc, _ = start_child(tmp_path)
    assert len(run_objects(run_id)["netns"]) == 4    # node + 2 pods + coredns
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert run_objects(run_id) == {"netns": [], "etc": [], "procs": [], "state": []}


def test_cleanup_removes_a_crashed_run_and_leaves_a_live_one(tmp_path):
    run_id, proc, _ = start_child(tmp_path)
    proc.kill()                                     # a crash: no teardown runs
    proc.wait(timeout=10)
    # the servers process ends by itself once the harness that drove it is gone
    deadline = time.monotonic() + 10
    while run_objects(run_id)["procs"] and time.monotonic() < deadline:
        time.sleep(0.05)
    crashed = run_objects(run_id)
    assert len(crashed["netns"]) == 4 and crashed["procs"] == [] and crashed["state"]
    other = "npx-not-ours"                          # similar, but not our naming
    run(["ip", "netns", "add", other], check=True)
    try:
        with LocalBackend("open") as live:
            live.deploy(Model.default(namespaces=["y"], pods=["a"]))
            leftovers = find_leftovers()
            assert {item.run_id for item in leftovers} >= {run_id}
            assert live.run_id not in {item.run_id for item in leftovers}
            # dry run through the command line: lists, removes nothing
            out = run([sys.executable, "-m", "harness", "cleanup", "--dry-run"], check=True).stdout
            assert f"would remove netns {naming.local_prefix(run_id)}node (run {run_id})" in out
            assert run_objects(run_id) == crashed
            found, errors = remove_leftovers()
            assert not errors
            assert run_objects(run_id) == {"netns": [], "etc": [], "procs": [], "state": []}
            # the live run and the foreign namespace are untouched
            assert len(run_objects(live.run_id)["netns"]) == 3 and live.exec("y/a", ["true"], 5).ok
            assert other in os.listdir("/run/netns")
    finally:
        run(["ip", "netns", "del", other])


def test_a_live_runs_id_cannot_be_reused(tmp_path):
    run_id, proc, _ = start_child(tmp_path)
    try:
        with pytest.raises(BackendError, match=f"in use by live process {proc.pid}"):
            LocalBackend("open", run_id=run_id).up()
        assert len(run_objects(run_id)["netns"]) == 4     # the live run was not touched
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert run_objects(run_id) == {"netns": [], "etc": [], "procs": [], "state": []}


def test_deleting_namespaces_kills_what_still_runs_inside_them():
    """A process left inside a pod namespace (a hung probe) dies with it, found as
    `ip netns pids` finds it, in one scan of /proc for all namespaces."""
    from harness.backends.local import netns as nsx
    from harness.backends.local.backend import claim_run, release_run
    run_id = naming.new_run_id()
    claim_run(run_id, purpose="test of netns deletion")
    names = [f"{naming.local_prefix(run_id)}p{i}" for i in range(3)]
    try:
        nsx.add_netns(names)
        sleepers = [spawn(["ip", "netns", "exec", n, "sleep", "60"]) for n in names[:2]]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                sorted(p for ps in nsx.netns_pids(names).values() for p in ps) != \
                sorted(s.pid for s in sleepers):
            time.sleep(0.02)
        found = nsx.netns_pids(names)
        assert found == {names[0]: [sleepers[0].pid], names[1]: [sleepers[1].pid], names[2]: []}
        assert nsx.delete_netns_all(names) == []
        assert [s.wait(timeout=10) for s in sleepers] == [-signal.SIGKILL] * 2
        assert not set(names) & set(nsx.list_netns())
    finally:
        nsx.delete_netns_all(names)
        release_run(run_id)
