"""The canary against the declaration: when the probes contradict what a CNI is declared to do,
the run says so loudly and the scenarios are judged as the canary found, never by the name.

Why live: the contradiction is a fact about packets; the clusters here are the real local
backend with a dataplane whose name lies (tests/faulty_dataplanes.py): declared `open`
(enforcing nothing, like a cluster named flannel) while it enforces, wholly or in part, and
declared `enforcing` while it enforces nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.backends.local as local
from harness.reports import junit
from harness.reports.terminal import render_banners
from harness.scenario import load_scenario
from harness.session import Session
from harness.settings import build
from tests.conftest import needs_local
from tests.faulty_dataplanes import EnforcesThoughDeclaredOpen, PartlyEnforcesThoughDeclaredOpen

DATA = Path(__file__).parent / "data" / "run"


class EnforcesNothingThoughDeclaredEnforcing(local.LocalBackend):
    """Runs as the `enforcing` profile (declared to enforce) and programs nothing."""

    def _sync_policies(self) -> None:
        return None


def _run(monkeypatch, cls, cni: str, jobs: str = "1"):
    monkeypatch.setattr(local, "LocalBackend", cls)
    lines: list[str] = []
    session = Session(build({"backend": "local", "cnis": cni, "jobs": jobs}, env={}),
                      log=lines.append)
    try:
        result = session.run(load_scenario(DATA / "deny-ingress-small.yaml"), cni,
                             log=lines.append)
    finally:
        assert session.teardown() == []
    return session, result, "\n".join(lines)


@needs_local
# jobs 2: the scenario runs in the pool on a cluster of its own, the canary beside it on the
# CNI's first one (Session.start_canary); it is judged by the same finding
@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("cls, cni, canary, outcome", [
    # declared open, enforces everything: every block held -> passed (not a strict "xpassed")
    (EnforcesThoughDeclaredOpen, "open", True, "passed"),
    # declared open, enforces TCP and not UDP: the UDP blocks fail -> failed (not "xfailed")
    (PartlyEnforcesThoughDeclaredOpen, "open", True, "failed"),
    # declared enforcing, enforces nothing: its fail-opens are failures (never "xfailed")
    (EnforcesNothingThoughDeclaredEnforcing, "enforcing", False, "failed"),
])
def test_a_canary_that_contradicts_the_declaration_is_said_loudly_and_judged_by(
        monkeypatch, cls, cni, canary, outcome, jobs):
    session, result, log = _run(monkeypatch, cls, cni, jobs)
    found = session.canaries[cni]
    assert found.enforcing is canary, found.detail
    assert result.outcome == outcome, (result.outcome, result.verdict_counts())
    declared = cni == "enforcing"
    # the JSON result and the run's meta carry both and the contradiction
    assert result.declared_enforcing is declared and result.enforcing_cluster is canary
    assert result.canary_contradiction and "canary" in result.canary_contradiction
    meta = session.canary_meta()[cni]
    assert meta["declared_enforcing"] is declared and meta["contradiction"]
    # the terminal: a banner as the canary ran, and again at the end of the run
    assert "contradicts" in log and log.count("!!!!!!!!!!") >= 2
    assert any("contradicts" in b for b in render_banners(session.canary_meta()))
    # JUnit
    props = dict(junit.properties(result))
    assert props["declared_enforcing"] == str(declared).lower()
    assert props["canary_contradiction"] == result.canary_contradiction


@needs_local
def test_a_canary_that_agrees_with_the_declaration_says_nothing_more(monkeypatch):
    session, result, log = _run(monkeypatch, local.LocalBackend, "open")
    assert result.outcome == "xfailed"
    assert result.declared_enforcing is False and result.canary_contradiction is None
    assert session.canary_meta()["open"]["contradiction"] is None
    assert "canary_contradiction" not in dict(junit.properties(result))
    assert "contradicts" not in log
