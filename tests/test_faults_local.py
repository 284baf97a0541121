"""Fault steps on the local `enforcing` profile: the emulated engine's table removed for 2 s
shows a fail-open window of that length (within the spacing of rounds), a killed engine holds,
and a policy applied while it is down takes effect at recovery. Real namespaces, real packets:
every window is compared with the outage the actions' own timestamps measured, never with a
number written here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.base import Backend
from harness.backends.kubeconfig import KubeconfigBackend
from harness.backends.local import LocalBackend
from harness.backends.local import netns as nsx
from harness.backends.local.profiles import capabilities
from harness.reports import json_report, junit, terminal
from harness.results import ScenarioResult
from harness.runner import run_scenario
from harness.scenario import load_scenario
from harness.session import Session
from harness.settings import build
from tests.conftest import needs_local
from tests.faulty_dataplanes import EngineThatWillNotStart

DATA = Path(__file__).parent / "data" / "faults"
#: how much later than its action's end a dataplane change may be seen (a round's probes start
#: a few milliseconds after the round does)
SLACK = 0.1


@pytest.fixture
def run_fault():
    backends: list[LocalBackend] = []

    def run(name: str, cls: type[LocalBackend] = LocalBackend, **settings) -> ScenarioResult:
        s = build({"cnis": "enforcing", "min_window": 1.0, "min_rounds": 2, **settings}, env={})
        backend = cls(profile="enforcing", run_id=s.run_id, probe_timeout=s.probe_timeout)
        backend.up()
        backends.append(backend)
        lines: list[str] = []
        result = run_scenario(load_scenario(DATA / name), backend, s, log=lines.append,
                              enforcing=True)
        result.log = lines  # type: ignore[attr-defined]
        assert backend.model is None and backend.engine == "running"
        assert not [n for n in nsx.list_netns() if n.startswith(backend.prefix + "p")]
        return result

    run.backends = backends  # type: ignore[attr-defined]
    yield run
    for b in backends:
        b.down()


def _cell(tl, source: str, target: str):
    return next(c for c in tl.cells if (c.source, c.target) == (source, target))


def _action(tl, prefix: str):
    return next(a for a in tl.actions if a.action.startswith(prefix))


def _gaps(cell) -> float:
    """The longest time between two of the cell's attempts that gave a verdict (a probe error,
    on a loaded machine, says nothing: the timeline skips it, and so does this bound)."""
    ats = [a.at for a in cell.attempts if a.verdict != "probe error"]
    return max(b - a for a, b in zip(ats, ats[1:], strict=False))


@needs_local
def test_a_stopped_engine_fails_open_for_as_long_as_it_is_down(run_fault):
    """The denied cell is required to hold (`must: hold`) and fails open: the scenario fails,
    though every cell of the step's own expectations passes after recovery (this run read
    "passed" and "failed open" at once before a cell could carry a requirement)."""
    r = run_fault("engine-stop.yaml")
    assert r.outcome == "failed", (r.infra_error, r.verdict_counts(), r.log)
    assert {c.verdict for s in r.steps for c in s.cells} <= {"pass", "not asserted"}
    tl = r.steps[1].fault
    assert tl is not None and r.steps[0].fault is None
    # the outage the actions measured: from the table's removal to its reprogramming
    down_from, down_to = _action(tl, "stop engine").ended, _action(tl, "start engine").ended
    outage = down_to - down_from
    assert 1.9 <= outage <= 2.5, tl.actions
    denied = _cell(tl, "y/a", "x/a")
    assert (denied.expected_before, denied.expected_after) == ("deny", "deny")
    assert denied.status == "failed open" and len(denied.windows) == 1, denied
    w = denied.windows[0]
    assert w.kind == "open" and w.on == "stop engine"
    # every bad attempt was under way while the table was gone (one started up to a probe
    # timeout before may connect with a retransmitted SYN), and every attempt then was bad
    early = 1.0   # the probe timeout (the settings' default)
    assert down_from - early - SLACK <= w.first and w.last <= down_to + SLACK, (w, tl.actions)
    verdicts = [a for a in denied.attempts if a.verdict != "probe error"]
    assert all(a.verdict == "not enforced" for a in verdicts
               if down_from + SLACK < a.at < down_to - SLACK), denied.attempts
    assert all(a.verdict == "pass" for a in verdicts
               if a.at < down_from - early - SLACK or a.at > down_to + SLACK), denied.attempts
    # the window's bounds hold the real outage, within the spacing of the cell's rounds: the
    # first bad answer came at most a spacing after the stop, the last bad round began at most
    # a spacing before the start; the good attempts around it were blocked at most a spacing
    # (and, for one begun before the stop whose retransmitted SYN got through after it, a
    # probe timeout more) outside the outage
    assert w.at_least <= outage + SLACK and w.at_most is not None and w.at_most >= outage - SLACK
    assert outage - w.at_least <= 2 * _gaps(denied) + SLACK
    assert w.at_most - outage <= 2 * _gaps(denied) + early + SLACK
    allowed = _cell(tl, "x/a", "y/a")
    assert allowed.status == "held" and allowed.windows == []
    assert [v for v in tl.verdicts if v.startswith("fails open")] == [
        f"fails open for {w.at_least:.1f}-{w.at_most:.1f} s on stop engine (1 of 2 cells "
        "connected although denied)"]
    # what failed: the requirement, said in the timeline, the failure text and JUnit
    assert (denied.must, denied.requirement) == ("hold", "violated")
    assert (allowed.must, allowed.requirement) == (None, None)
    assert f"requirement violated: y/a -> x/a 80/TCP must hold across the fault, and failed " \
        f"open {w.at_least:.1f}-{w.at_most:.1f} s on stop engine" in tl.verdicts
    assert "requirement violated: y/a -> x/a 80/TCP" in terminal.render_failure(r)
    props = dict(junit.properties(r))
    assert (props["outcome"], props["step2_fault_failed_open"],
            props["step2_fault_requirements_violated"]) == ("failed", "1", "1")
    # the watch ran its fixed length, from before the first action to after the last
    assert tl.watched_from <= -0.9 and tl.watched_to >= down_to + 1.5
    assert all(a.at is not None and a.expected for c in tl.cells for a in c.attempts)


@needs_local
def test_a_killed_engine_holds_its_rules(run_fault):
    r = run_fault("engine-kill.yaml")
    assert r.outcome == "passed", (r.infra_error, r.verdict_counts(), r.log)
    tl = r.steps[1].fault
    assert [a.action for a in tl.actions] == ["kill engine on node 1", "wait 2 s", "start engine"]
    assert {c.status for c in tl.cells} == {"held"}
    assert all(c.windows == [] for c in tl.cells)
    assert [c.requirement for c in tl.cells] == ["met", None]
    assert tl.verdicts[0].startswith("holds existing rules while the engine is down: no watched "
                                     "cell failed open or closed (2 cells")
    # the denied cell was probed (and blocked, with a control) while the engine was down
    down = [a for a in _cell(tl, "y/a", "x/a").attempts if 0 < a.at < 2
            and a.verdict != "probe error"]
    assert down and all(a.verdict == "pass" and a.outcome == "timeout" for a in down)


@needs_local
def test_a_policy_applied_while_down_takes_effect_at_recovery(run_fault):
    r = run_fault("policy-while-killed.yaml")
    assert r.outcome == "passed", (r.infra_error, r.verdict_counts(), r.log)
    tl = r.steps[1].fault
    recovered = _action(tl, "start engine").ended
    assert tl.recovered_at == recovered and tl.change_at is not None and tl.change_at > 0
    changed = _cell(tl, "y/a", "x/a"), _cell(tl, "x/a", "y/a")
    held, late = changed
    assert held.status == "held" and held.takes_effect is None
    assert (late.expected_before, late.expected_after) == ("allow", "deny")
    # connected from the change until the engine started: not enforced in that window
    assert late.status == "failed open" and len(late.windows) == 1
    w = late.windows[0]
    assert tl.change_at - SLACK <= w.first and w.last <= recovered + SLACK
    assert all(a.verdict == "pass" for a in late.attempts if a.at < tl.change_at - SLACK
               and a.verdict != "probe error")
    lo, hi = late.takes_effect
    assert lo <= 0 + SLACK and hi is not None and 0 - SLACK <= hi <= _gaps(late) + SLACK
    assert any(v.startswith("the change made while the engine was down takes effect")
               for v in tl.verdicts), tl.verdicts
    assert any(v.startswith("the change made while the engine was down left 1 of 1 cell it "
                            "alters failing open for") for v in tl.verdicts), tl.verdicts
    assert tl.verdicts[0].startswith("holds existing rules while the engine is down")
    # the step's own expectations after recovery: y/a -> x/a and x/a -> y/a both blocked
    assert {c.verdict for c in r.steps[1].cells} <= {"pass", "not asserted"}


@needs_local
def test_the_timeline_survives_the_json_file_and_is_printed(run_fault, tmp_path):
    r = run_fault("engine-stop.yaml")
    path = tmp_path / "results.json"
    json_report.write([r], path, {})
    _, (back,) = json_report.read(path)
    assert back.steps[1].fault == r.steps[1].fault
    assert back.steps[0].fault is None
    text = "\n".join(terminal.render_timelines(back))
    assert "y/a -> x/a 80/TCP (spec: deny, must hold): FAILED OPEN; requirement VIOLATED" in text
    assert "x/a -> y/a 80/TCP (spec: allow): held" in text
    assert "verdict: fails open for" in text and "|" in text


@needs_local
def test_a_fault_step_that_fails_restores_the_engine_and_is_an_error(run_fault):
    r = run_fault("engine-stop.yaml", EngineThatWillNotStart)
    assert r.outcome == "error" and "step 2" in r.infra_error and "will not" in r.infra_error
    assert any("restored: emulated engine started again" in line for line in r.log), r.log
    assert r.steps[1].fault is None      # no timeline is made up for a step that broke


class Interrupted(EngineThatWillNotStart):
    error = KeyboardInterrupt()


@needs_local
def test_ctrl_c_in_a_fault_step_restores_the_engine_before_teardown(run_fault):
    with pytest.raises(KeyboardInterrupt):
        run_fault("engine-stop.yaml", Interrupted)
    backend = run_fault.backends[-1]
    assert backend.engine == "running"      # started again by restore_faults ...
    assert backend.model is None            # ... and the topology torn down after it
    assert not [n for n in nsx.list_netns() if n.startswith(backend.prefix + "p")]


class StopsNothing(LocalBackend):
    """The emulated dataplane with Backend's defaults for fault steps, as a backend that stops
    nothing has them: no node a fault step may name, and `fault` refuses."""

    fault_nodes = 0
    fault = Backend.fault
    restore_faults = Backend.restore_faults


@needs_local
def test_the_runner_never_asks_a_backend_without_faults_to_stop_anything(run_fault):
    r = run_fault("engine-stop.yaml", StopsNothing)
    assert r.outcome == "error"
    assert "running a fault step on the local backend (enforcing): it stops nothing" \
        in r.infra_error
    assert r.steps[0].converged and r.steps[1].cells == []


def test_fault_scenarios_are_skipped_where_no_engine_may_be_stopped():
    scenario = load_scenario(DATA / "engine-stop.yaml")
    assert capabilities("enforcing").match(scenario.needs) == (True, "")
    ok, why = capabilities("open").match(scenario.needs)
    assert not ok and "engine-fault (nothing enforces on `open`" in why
    assert "engine-hold (nothing enforces on `open`" in why
    session = Session(build({"cnis": "open"}, env={}), log=lambda line: None)
    assert session.plan(scenario, "open").skip == why
    # an existing cluster: not unless the user names the context (tests/test_kube_faults.py),
    # and its API server never, whatever its CNI
    for cni in ("calico", "cilium", "something-else"):
        caps = KubeconfigBackend(cni, context="prod").capabilities()
        ok, why = caps.match(["engine-fault", "apiserver-fault"])
        assert not ok and "pass --allow-faults-on-context prod" in why
        assert "never stops an API server it did not start" in why


def test_the_emulated_engine_refuses_what_it_cannot_do():
    from harness.errors import BackendError
    b = LocalBackend(profile="enforcing")
    with pytest.raises(BackendError, match="no emulated profile has an API server"):
        b.fault("stop", "apiserver")
    with pytest.raises(BackendError, match="there is no node 2"):
        b.fault("stop", "engine", 2)
    with pytest.raises(BackendError, match="only the `enforcing` profile"):
        LocalBackend(profile="open").fault("stop", "engine")
    # what ran says emulated, and each fault action says what it did to the emulated engine
    assert "emulated dataplane" in b.describe() and "no policy engine" in b.describe()
    assert b.fault("stop", "engine") == "policy table removed"   # (this backend is not up)
    assert b.engine == "stopped"
    assert b.fault("start", "engine") == "policy table programmed from the stored policies"
    assert b.fault("kill-restart", "engine") == "table left as it was, then programmed again"
    assert b.engine == "running"
    with pytest.raises(BackendError, match="expected stop, kill, start, restart or kill-restart"):
        b.fault("pause", "engine")
