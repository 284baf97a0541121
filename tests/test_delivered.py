""""Connected" means the intended server answered, and an L7 deny is read in one place, on the
real local backend with servers replaced on purpose (tests/faulty_dataplanes.py).

Why: an HTTP response from a proxy in the path (an Envoy 503) or a reply from the wrong pod
counted as delivered, so a deny could read as "not enforced" and an allow as "pass" without the
target ever answering; and the Python API read an L7 proxy's 403 as connected while the YAML
path read it as blocked.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.fixtures import Topology
from harness.runner import run_scenario
from harness.scenario import load_scenario
from harness.settings import build
from tests.conftest import needs_local
from tests.faulty_dataplanes import SomeoneElseAnswers

pytestmark = needs_local
DATA = Path(__file__).parent / "data" / "run"


class EnvoyAnswers(SomeoneElseAnswers):
    status, body = 503, "upstream connect error or disconnect/reset before headers"


class WrongPodAnswers(SomeoneElseAnswers):
    status, body = 200, "x/a"


class L7DenyWithoutProxy(SomeoneElseAnswers):
    status, body = 403, "Access denied"


class L7DenyByADeclaredProxy(L7DenyWithoutProxy):
    def capabilities(self):
        caps = super().capabilities()
        return replace(caps, supported=caps.supported | {"l7-http"})


def _run(cls, converge_timeout=2):
    s = build({"cnis": "enforcing", "converge_timeout": converge_timeout, "min_window": 1},
              env={})
    backend = cls(profile="enforcing", run_id=s.run_id, probe_timeout=s.probe_timeout)
    backend.up()
    try:
        return run_scenario(load_scenario(DATA / "x-open-tcp.yaml"), backend, s,
                            log=lambda line: None, enforcing=True)
    finally:
        backend.down()


@pytest.mark.parametrize("cls, who", [
    (EnvoyAnswers, "'upstream connect error or disconnect/reset before headers'"),
    (WrongPodAnswers, "'x/a'"),
])
def test_a_reply_from_anyone_but_the_target_is_a_probe_error_naming_who_answered(cls, who):
    r = _run(cls)
    assert r.outcome == "error", r.verdict_counts()     # it "passed" before
    cell = next(c for c in r.baseline.cells if c.target == "x/b")
    assert cell.verdict == "probe error"
    assert f"answered by {who}" in cell.reason and "not by a server of the target" in cell.reason
    other = next(c for c in r.baseline.cells if c.target == "x/a")
    assert other.verdict == "pass"                      # x/a's own server answered


@pytest.fixture
def topology():
    made = []

    def build_on(cls):
        s = build({"cnis": "enforcing"}, env={})
        backend = cls(profile="enforcing", run_id=s.run_id, probe_timeout=s.probe_timeout)
        backend.up()
        topo = Topology(backend, s)
        made.append(topo)
        topo.pods("x", {"a": None, "b": None})
        return topo

    yield build_on
    for topo in made:
        topo.close()
        topo.backend.down()


def test_the_python_api_reads_an_l7_deny_as_the_cni_declares(topology):
    # a CNI with an L7 proxy: its 403 is a block (the YAML path reads it the same way)
    p = topology(L7DenyByADeclaredProxy).probe("x/a", "x/b", 80)
    assert p.outcome.value == "http-denied"
    assert p.blocked and not p.connected, p.reason      # it was "connected" before
    # no L7 proxy declared: a 403 from someone else is neither connected nor blocked
    p = topology(L7DenyWithoutProxy).probe("x/a", "x/b", 80)
    assert not p.blocked and not p.connected
    assert "declares no L7 proxy" in p.reason


def test_the_python_api_reads_a_reply_from_another_pod_as_neither(topology):
    topo = topology(WrongPodAnswers)
    p = topo.probe("x/b", "x/a", 80)
    assert p.connected and p.answered_by == "x/a"
    p = topo.probe("x/a", "x/b", 80)
    assert not p.connected and not p.blocked and "answered by 'x/a'" in p.reason


def test_the_python_api_matrix_is_observed_like_a_scenario_step(topology):
    """assert_matrix goes through runner.converge_cells: the same observation window (it ended
    after two agreeing rounds before) and the same verdicts."""
    from harness.backends.local import LocalBackend

    topo = topology(LocalBackend)
    topo.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "deny-b", "namespace": "x"},
                "spec": {"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Ingress"]}})
    step = topo.matrix("x/a - X\nx/b . -")
    assert step.rounds >= 3 and step.converged
    assert {(c.source, c.target): c.verdict for c in step.cells} == {
        ("x/a", "x/a"): "not asserted", ("x/a", "x/b"): "pass", ("x/b", "x/a"): "pass",
        ("x/b", "x/b"): "not asserted"}
