"""Fault steps on a real kube-router cluster, process by process: the engine of one node
killed and started again, both restarted, what a fault left down started by restore_faults,
and the run's kube-apiserver stopped and started on its port. Only this run's processes are
touched. Skipped with the ComponentMissing reason when a binary is absent. (The timelines the
faults produce are measured by `python -m harness run scenarios/faults/ --backend local --cni
kube-router,calico`, docs/real-engines.md.)"""

from __future__ import annotations

import pytest

from harness.backends.local import netns as nsx
from harness.errors import BackendError
from harness.model import ContainerPort, Model, Namespace, Pod, Protocol
from harness.waits import poll
from tests.real.conftest import needs_engine, up_and_deployed

pytestmark = needs_engine("kube-router")


@pytest.fixture(scope="module")
def cluster():
    model = Model.build([Namespace("x", {"ns": "x"})],
                        [Pod("x", "a", {"pod": "a"}, (ContainerPort.serve(80, Protocol.TCP),))])
    yield from up_and_deployed("kube-router", model)


def engines_of(b) -> dict[str, object]:
    """node namespace -> its kube-router process handle"""
    return {netns: proc for netns, p, proc in b._node_procs if p.name == "kube-router"}


def test_kill_start_and_restart_act_on_the_named_nodes_only(cluster):
    b, _ = cluster
    assert b.fault_nodes == 2
    n1, n2 = (n.netns for n in b.nodes)
    before = engines_of(b)
    said = b.fault("kill", "engine", 1)
    assert said == f"kube-router on {n1} killed (SIGKILL; exit status -9)"
    assert before[n1].poll() == -9 and before[n2].poll() is None
    said = b.fault("start", "engine", 1)
    started = engines_of(b)
    assert started[n1] is not before[n1] and started[n2] is before[n2]
    assert started[n1].poll() is None and str(started[n1].pid) in said
    # the new process lives in node 1's namespace (once `ip netns exec` entered it), where
    # cleanup looks for it
    found = poll(lambda: nsx.netns_pids([n1])[n1], lambda pids: started[n1].pid in pids, 10.0)
    assert started[n1].pid in (found.value or []), found.value
    said = b.fault("restart", "engine")
    # exit status 0, or -15 from a kube-router started so recently that its handler is not
    # installed yet (node 1's): whatever it was, it is reported
    assert said.count("stopped (SIGTERM; exit status ") == 2 and said.count("started") == 2
    assert all(p.poll() is None for p in engines_of(b).values())
    assert b.restore_faults() == []


def test_restore_faults_starts_what_a_fault_left_down(cluster):
    b, _ = cluster
    b.fault("stop", "engine")
    assert all(p.poll() is not None for p in engines_of(b).values())
    restored = b.restore_faults()
    assert len(restored) == 2 and all("started again" in r for r in restored)
    assert all(p.poll() is None for p in engines_of(b).values())


def test_the_api_server_stops_and_starts_on_its_port(cluster):
    b, _ = cluster
    server = b.plane.server
    assert b.policy_count() == 0
    assert "stopped (SIGTERM)" in b.fault("stop", "apiserver")
    assert not b.plane.apiserver_running
    assert b.restore_faults() == ["kube-apiserver started again"]
    assert b.plane.server == server and b.policy_count() == 0   # the API answers again
    b.fault("stop", "apiserver")
    assert "started on the same port" in b.fault("start", "apiserver")


def test_what_cannot_be_done_is_refused(cluster):
    b, _ = cluster
    with pytest.raises(BackendError, match="this run has nodes 1-2"):
        b.fault("kill", "engine", 3)
    with pytest.raises(BackendError, match="stopped and started only"):
        b.fault("kill", "apiserver")
