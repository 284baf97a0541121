"""The enforcement canary on the real local backend: enforcing, open, and a broken server.

Why real: the canary is the harness's answer to "does this cluster enforce at all?"; it must
be decided by packets, so these tests send real packets between harness-made namespaces.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from harness.backends.local import LocalBackend
from harness.canary import BANNER, NAMESPACE, run_canary
from harness.scenario import load_scenario
from harness.session import Session
from harness.settings import build
from tests.conftest import needs_local
from tests.faulty_dataplanes import DropsForAMomentThenOpen, Flapping

pytestmark = needs_local

DATA = Path(__file__).parent / "data" / "run"


@pytest.fixture
def make_backend():
    made = []

    def make(profile: str, cls=LocalBackend):
        settings = build({"cnis": profile}, env={})
        backend = cls(profile=profile, run_id=settings.run_id, probe_timeout=settings.probe_timeout)
        backend.up()
        made.append(backend)
        return backend, settings

    yield make
    for b in made:
        b.down()


def test_canary_says_enforcing_on_the_enforcing_profile(make_backend):
    backend, settings = make_backend("enforcing")
    result = run_canary(backend, settings)
    assert result.enforcing is True, result.detail
    assert "timeout" in result.detail and "loopback" in result.detail
    assert backend.policy_count() == 0  # the canary's topology and policy are gone


def test_canary_says_not_enforcing_on_the_open_profile(make_backend):
    backend, settings = make_backend("open")
    result = run_canary(backend, settings)
    assert result.enforcing is False, result.detail
    assert BANNER in result.detail
    assert "still connected" in result.detail
    assert result.as_meta()["enforcing"] is False


class LocalBackendWithDeadServer(LocalBackend):
    """The real local backend, whose canary pod `a` loses its server right after deploy."""

    def deploy(self, model):
        addresses = super().deploy(model)
        self.stop_server(f"{NAMESPACE}/a")
        return addresses


def test_canary_with_a_dead_server_cannot_tell_and_says_why(make_backend):
    backend, settings = make_backend("enforcing", LocalBackendWithDeadServer)
    settings = build({"cnis": "enforcing", "converge_timeout": 1.5, "min_window": 1}, env={})
    result = run_canary(backend, settings)
    assert result.enforcing is None
    assert "baseline" in result.detail and "refused" in result.detail


def test_a_dataplane_that_drops_for_a_moment_then_lets_everything_through_does_not_enforce(
        make_backend):
    """It dropped b -> a for 1.5 s after the apply: the old canary stopped at its first blocked
    round and said "enforcing", hiding the false-security banner. The canary is a scenario run
    by the runner now: the observation window sees the traffic flow again."""
    backend, settings = make_backend("enforcing", DropsForAMomentThenOpen)
    result = run_canary(backend, settings)
    assert result.enforcing is False, result.detail
    assert BANNER in result.detail and "still connected" in result.detail
    assert result.rounds >= 3


def test_a_flapping_dataplane_is_not_called_enforcing(make_backend):
    # the window spans two periods (6 s), as in test_runner_local's flapping test (aliasing)
    backend, _ = make_backend("enforcing", Flapping)
    settings = build({"cnis": "enforcing", "min_window": 6, "min_rounds": 5}, env={})
    result = run_canary(backend, settings)
    # unstable (it changed more than once) is "cannot tell"; never "enforcing"
    assert result.enforcing is not True, result.detail
    if result.enforcing is None:
        assert "unstable" in result.detail


class _Timed(LocalBackend):
    """The real local backend, each deploy and undeploy timed, the canary's told apart by its
    namespace (events are shared by every cluster of the run)."""

    events: list[tuple[float, str, bool]] = []

    def deploy(self, model):
        canary = NAMESPACE in {ns.name for ns in model.namespaces}
        self._canary = canary
        _Timed.events.append((time.monotonic(), "deploy", canary))
        return super().deploy(model)

    def undeploy(self) -> None:
        _Timed.events.append((time.monotonic(), "undeploy", getattr(self, "_canary", False)))
        super().undeploy()

    def down(self) -> None:
        _Timed.events.append((time.monotonic(), "down", getattr(self, "_canary", False)))
        super().down()


def test_with_scenarios_at_once_the_canary_runs_beside_them_and_is_said_before_their_stories(
        monkeypatch):
    """Session.ready starts the canary in a thread of its own: the pool's first scenario is
    deployed while the canary still runs (one observation window not spent idle), is judged
    with the canary's finding, and the canary's line comes before that scenario's story."""
    import harness.backends.local as local
    monkeypatch.setattr(local, "LocalBackend", _Timed)
    monkeypatch.setattr(_Timed, "events", [])
    lines: list[str] = []
    session = Session(build({"backend": "local", "cnis": "enforcing", "jobs": "2"}, env={}),
                      log=lines.append)
    scenario = load_scenario(DATA / "deny-ingress-small.yaml")
    try:
        session.ready("enforcing")
        session.prefetch([(scenario, "enforcing")])
        result = session.run(scenario, "enforcing", log=lines.append)
    finally:
        assert session.teardown() == []
    canary_end = next(t for t, what, canary in _Timed.events if what == "undeploy" and canary)
    deployed = next(t for t, what, canary in _Timed.events if what == "deploy" and not canary)
    assert deployed < canary_end, _Timed.events
    assert result.outcome == "passed" and result.enforcing_cluster is True
    said = [i for i, line in enumerate(lines) if line.startswith("canary on enforcing:")]
    story = next(i for i, line in enumerate(lines) if line.startswith("scenario "))
    assert len(said) == 1 and said[0] < story, lines


def test_a_canary_still_running_at_teardown_is_interrupted_and_awaited_before_the_cluster_goes(
        monkeypatch):
    """Ctrl-C right after the bring-up: the canary running beside ends at its next probe
    and undeploys before its cluster is brought down; nothing of the run is left."""
    import harness.backends.local as local
    monkeypatch.setattr(local, "LocalBackend", _Timed)
    monkeypatch.setattr(_Timed, "events", [])
    session = Session(build({"backend": "local", "cnis": "enforcing", "jobs": "2"}, env={}),
                      log=lambda line: None)
    backend = session.ready("enforcing")
    while not _Timed.events:      # the canary has started deploying
        time.sleep(0.05)
    session.stop("interrupted (test)")
    assert session.teardown() == []
    # the canary's own undeploy (run_scenario's) before its cluster's down
    assert [what for _, what, canary in _Timed.events if canary][:3] == [
        "deploy", "undeploy", "down"], _Timed.events
    assert backend.interrupted
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert session.settings.run_id not in netns
