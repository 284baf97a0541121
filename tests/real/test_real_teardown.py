"""The real-engine backend leaves the machine as it found it: after `down()` no namespace,
process, directory or state file of the run is left, and the root namespace's netfilter (nft
ruleset, iptables, ipsets) is exactly as before; after a SIGKILL of the run, `cleanup` finds
and removes everything. Skipped with the ComponentMissing reason when a binary is absent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from harness import naming
from harness.backends.local.backend import STATE_DIR, state_path
from harness.backends.real.backend import RealBackend
from harness.cleanup import CLEANERS, find_leftovers
from harness.model import ContainerPort, Model, Namespace, Pod, Protocol
from tests.real.conftest import engine_unavailable, needs_engine, root_netfilter

ENGINE = "kube-router" if engine_unavailable("kube-router") is None else "none"
pytestmark = needs_engine(ENGINE)
PORTS = (ContainerPort.serve(80, Protocol.TCP),)


def small_model() -> Model:
    return Model.build([Namespace("x", {"ns": "x"})],
                       [Pod("x", p, {"pod": p}, PORTS) for p in ("a", "b", "c")])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_objects(run_id: str) -> dict[str, list]:
    prefix = naming.local_prefix(run_id)
    return {"netns": sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
            if os.path.isdir("/run/netns") else [],
            "etc-netns": sorted(n for n in os.listdir("/etc/netns") if n.startswith(prefix))
            if os.path.isdir("/etc/netns") else [],
            "dirs": [p for p in (os.path.join(STATE_DIR, run_id),
                                 os.path.join(STATE_DIR, naming.controlplane_dir(run_id)),
                                 state_path(run_id)) if os.path.exists(p)]}


def test_down_removes_everything_and_leaves_the_root_namespace_untouched():
    before = root_netfilter()
    b = RealBackend(ENGINE, probe_timeout=1.0, status=lambda m: None)
    b.up()
    try:
        b.deploy(small_model())
        b.apply_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": "deny", "namespace": "x"},
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
        during = run_objects(b.run_id)
        pids = [proc.pid for _, _, proc in b._node_procs]
        pids += [proc.pid for k in b.kubelets for rp in k.pods() for proc in rp.procs]
        assert len(during["netns"]) == 2 + 4          # two nodes, three pods and CoreDNS
        assert len(pids) == 2 * (2 if ENGINE == "kube-router" else 1) + 4
        assert all(alive(p) for p in pids)
        assert root_netfilter() == before            # engines program their nodes only
    finally:
        b.down()
    assert run_objects(b.run_id) == {"netns": [], "etc-netns": [], "dirs": []}
    assert not [p for p in pids if alive(p)]
    assert root_netfilter() == before
    assert not [x for x in find_leftovers() if x.run_id == b.run_id]


SCRIPT = """
import sys, time
from harness.backends.real.backend import RealBackend
from tests.real.test_real_teardown import small_model
b = RealBackend(sys.argv[1], run_id=sys.argv[2], status=lambda m: None)
b.up()
b.deploy(small_model())
print("READY", flush=True)
time.sleep(600)
"""


def test_cleanup_removes_a_killed_run():
    run_id = naming.new_run_id()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, ENGINE, run_id], stdout=subprocess.PIPE,
                            text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert run_objects(run_id)["netns"], "the killed run left its namespaces"
    found = [x for x in find_leftovers() if x.run_id == run_id]
    kinds = {x.kind for x in found}
    assert "netns" in kinds and any("process" in k or "plane" in k for k in kinds), found
    # what `python -m harness cleanup` does, for this run's leftovers only (other runs on a
    # shared machine are not this test's)
    by_name = {c.name: c for c in CLEANERS}
    errors = [e for x in found if (e := by_name[x.cleaner].remove(x))]
    left = [x for x in find_leftovers() if x.run_id == run_id]
    assert not errors and not left, (errors, left)
    assert run_objects(run_id) == {"netns": [], "etc-netns": [], "dirs": []}
