"""A fault step's timeline (harness.faults.timeline) on hand-made attempts: windows and
their bounds, probe errors that neither open nor end a window, the change's time to take effect,
the sentences, and how the reports show them. Pure: no cluster."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.faults.timeline import down_intervals, max_gap, requirement_verdicts
from harness.faults.timeline import fault_sentences as sentences
from harness.faults.timeline import summarise_watched as summarise_cell
from harness.results import Attempt, FaultEvent, FaultTimeline, Verdict, WatchedCell
from harness.verdicts import scenario_outcome

PASS, OPEN, CLOSED, ERROR = "pass", "not enforced", "over-blocked", "probe error"
STOP = [FaultEvent("stop engine", 0.0, 0.02), FaultEvent("wait 2 s", 0.02, 2.02),
        FaultEvent("start engine", 2.02, 2.05)]


def cell(verdicts: str, every: float = 0.5, start: float = -1.0, before: str = "deny",
         after: str = "deny", elapsed: float = 0.01, change: float | None = None) -> WatchedCell:
    """`verdicts` one letter per attempt, `every` seconds apart from `start`, each with the
    outcome its verdict means under the spec of its round (`after` from `change` on): blocked
    ones timed out, the others connected `elapsed` seconds after their round began."""
    word = {"P": PASS, "O": OPEN, "C": CLOSED, "E": ERROR}

    def outcome(v: str, at: float) -> str:
        spec = after if change is not None and at >= change else before
        if v == "E":
            return "tool-error"
        return "timeout" if v == "C" or (v == "P" and spec == "deny") else "connected"

    attempts = []
    for i, v in enumerate(verdicts):
        at = round(start + i * every, 3)
        attempts.append(Attempt(i + 1, outcome(v, at), elapsed, verdict=word[v], at=at))
    return WatchedCell("y/a", "x/a", "80", "TCP", before, after, "", attempts=attempts)


def test_a_fail_open_window_is_bounded_by_the_attempts_around_it():
    # attempts at -1.0 .. +3.0; bad from +0.0 to +2.0
    c = summarise_cell(cell("PPOOOOOPP"), STOP, -1.0, 2.05, None)
    assert c.status == "failed open" and len(c.windows) == 1
    w = c.windows[0]
    # each bad attempt saw the dataplane open by its answer, 0.01 s after its round began
    assert (w.first, w.last, w.attempts, w.on) == (0.01, 2.01, 5, "stop engine")
    assert w.at_least == 2.0           # from the first bad attempt's answer to the last's
    assert w.at_most == 3.0            # from the good attempt at -0.5 to the one at +2.5
    assert c.probe_errors == 0 and c.takes_effect is None


def test_probe_errors_neither_open_nor_end_a_window():
    c = summarise_cell(cell("PEOOEOOPE"), STOP, -1.0, 2.05, None)
    assert len(c.windows) == 1 and c.windows[0].attempts == 4
    assert c.windows[0].at_most == 3.5     # from -1.0 (the last good) to +2.5
    assert c.probe_errors == 3
    assert summarise_cell(cell("EEE"), STOP, -1.0, 2.05, None).status == "no verdict"


def test_open_and_closed_windows_and_one_still_open_at_the_end():
    c = summarise_cell(cell("PCCPOO"), STOP, -1.0, 2.05, None)
    assert c.status == "failed open and closed"
    closed, opened = c.windows
    assert (closed.kind, closed.at_least, closed.at_most) == ("closed", 0.5, 1.5)
    assert (opened.kind, opened.at_most, opened.on) == ("open", None, "stop engine")


def test_a_window_before_any_action_says_so():
    c = summarise_cell(cell("OPP", start=-1.0), STOP, -1.0, 2.05, None)
    assert c.windows[0].on == "before the fault"
    assert c.windows[0].at_most == 0.5     # from the start of the watch to the good attempt


def test_a_round_begun_before_the_stop_that_connected_after_it_is_on_the_stop():
    # as measured on enforcing (engine-stop.yaml): a round began 0.83 s before the stop, its
    # first SYN was dropped, the one retransmitted a second later got through once the table
    # was gone; the window follows the stop, not "before the fault"
    attempts = [Attempt(1, "timeout", 1.0, verdict=PASS, at=-2.0),
                Attempt(2, "connected", 1.0, verdict=OPEN, at=-0.83),
                Attempt(3, "connected", 0.01, verdict=OPEN, at=0.34),
                Attempt(4, "timeout", 1.0, verdict=PASS, at=2.5)]
    c = summarise_cell(WatchedCell("y/a", "x/a", "80", "TCP", "deny", "deny", "",
                                   attempts=attempts), STOP, -2.0, 2.05, None)
    (w,) = c.windows
    assert (w.first, w.on) == (0.17, "stop engine")    # the retransmission's answer
    assert w.at_least == 0.18          # from +0.17 to the next answer, +0.35
    assert w.at_most == 4.5            # from the good attempt at -2.0 to the one at +2.5
    # a connection made at once in a round begun before the stop is before the fault
    early = [Attempt(1, "connected", 0.01, verdict=OPEN, at=-0.83),
             Attempt(2, "timeout", 1.0, verdict=PASS, at=0.34)]
    c = summarise_cell(WatchedCell("y/a", "x/a", "80", "TCP", "deny", "deny", "",
                                   attempts=early), STOP, -2.0, 2.05, None)
    assert c.windows[0].on == "before the fault"


def test_held_and_its_sentence():
    held = summarise_cell(cell("PPPPP"), STOP, -1.0, 2.05, None)
    assert held.status == "held" and held.windows == []
    tl = FaultTimeline(STOP, 0.5, -1.0, 3.0, 5, 2.05, None, [held], max_gap=0.5)
    assert sentences(tl) == ["holds existing rules while the engine is down: no watched cell "
                             "failed open or closed (1 cell, attempts with a verdict at most "
                             "0.50 s apart: a shorter window can be missed)"]


def test_sentences_for_a_window_and_a_change_made_while_down():
    actions = [STOP[0], FaultEvent("change", 0.02, 0.03), *STOP[1:]]
    steady = summarise_cell(cell("PPOOOOOPP"), actions, -1.0, 2.05, 0.02)
    # allowed before the change, denied from it: connects (not enforced) until +2.0
    changed = summarise_cell(cell("PPOOOOOPP", before="allow", change=0.02), actions, -1.0, 2.05,
                                                0.02)
    assert changed.takes_effect == [-0.04, 0.45]    # the last bad answer at +2.01
    tl = FaultTimeline(actions, 0.5, -1.0, 3.0, 9, 2.05, 0.02, [steady, changed], max_gap=0.5)
    assert sentences(tl) == [
        "fails open for 2.0-3.0 s on stop engine (1 of 1 cell connected although denied)",
        "the change made while the engine was down left 1 of 1 cell it alters failing open for "
        "2.0-3.0 s",
        "the change made while the engine was down takes effect 0.0-0.5 s after recovery"]


def test_a_change_not_in_force_when_the_watch_ended():
    actions = [FaultEvent("restart engine", 0.0, 0.05), FaultEvent("change", 0.1, 0.11)]
    late = summarise_cell(cell("PPPOOO", before="allow", change=0.1), actions, -1.0, 0.05,
                          0.1)
    assert late.takes_effect == [1.46, None]
    tl = FaultTimeline(actions, 0.5, -1.0, 1.6, 6, 0.05, 0.1, [late], max_gap=0.5)
    assert sentences(tl) == [
        "the change made during the fault left 1 of 1 cell it alters failing open for at least "
        "1.0 s (still so when the watch ended)",
        "the change made during the fault had not taken effect on 1 of 1 cell when the watch "
        "ended, 1.6 s after recovery"]


def test_max_gap():
    assert max_gap([0.0, 0.5, 1.7, 2.0]) == 1.2
    assert max_gap([1.0]) == 0.0


def test_the_html_report_draws_the_timeline_and_the_terminal_prints_its_strip():
    from harness.reports import html_report, terminal
    from harness.results import ScenarioResult, StepResult

    c = summarise_cell(cell("PPOOOOOPP"), STOP, -1.0, 2.05, None)
    c.attempts[0].detail = "<script>"
    tl = FaultTimeline(STOP, 0.5, -1.0, 3.0, 9, 2.05, None, [c], max_gap=0.5)
    tl.verdicts = sentences(tl)
    r = ScenarioResult("s<1>", "s.yaml", "local", "enforcing", "run1",
                       steps=[StepResult(2, "stop", True, 0.0, 2, [], fault=tl)])
    page = html_report.render([r], {})
    assert page.count('<svg class="timeline"') == 1 and "<script" not in page
    assert page.count('<rect class="v-not-enforced"') == 5
    assert page.count('<rect class="v-pass"') == 4
    assert page.count('<line class="action"') == 3
    assert "fails open for 2.0-3.0 s on stop engine" in page
    text = "\n".join(terminal.render_timelines(r))
    assert "\n      ..|O|OOOO|..\n" in text     # the wait begins 0.02 s after the stop
    assert "y/a -> x/a 80/TCP (spec: deny): FAILED OPEN" in text


def test_a_round_begun_during_the_start_is_no_effect_before_it():
    actions = [FaultEvent("kill engine", 0.0, 0.01), FaultEvent("change", 0.01, 0.02),
               FaultEvent("wait 3 s", 0.02, 3.02), FaultEvent("start engine", 3.02, 3.04)]
    # allowed before the change; connects until the round at +3.03 (which began during the
    # start, its probe after it) is blocked
    c = summarise_cell(cell("PPPPOOOOOOP", start=-1.97, before="allow", change=0.01), actions,
                       -1.97, 3.04, 0.01)
    assert c.takes_effect == [-0.5, -0.01]
    tl = FaultTimeline(actions, 0.5, -1.97, 4.0, 11, 3.04, 0.01, [c], max_gap=0.5)
    assert sentences(tl)[-1] == ("the change made while the engine was down takes effect as the "
                                 "engine starts (the first round after the change's last failure "
                                 "began during the start)")


def test_overlapping_rounds_are_read_in_the_order_they_saw_the_dataplane():
    # as CI measured on enforcing (engine-stop.yaml, rounds on three lanes): a round began
    # 0.754 s before the stop, its SYN was dropped and the one retransmitted a second later got
    # through after the stop; a round of another lane began later, at -0.25, and was blocked
    # before the stop. By their starts the first would be a window of its own before the
    # blocked one; by when each saw the dataplane there is one window, from the stop on.
    attempts = [Attempt(1, "timeout", 1.0, verdict=PASS, at=-1.25),
                Attempt(2, "connected", 1.0, verdict=OPEN, at=-0.754),
                Attempt(3, "timeout", 1.0, verdict=PASS, at=-0.25),
                *[Attempt(4 + i, "connected", 0.01, verdict=OPEN, at=round(0.115 + 0.25 * i, 3))
                  for i in range(8)],
                Attempt(12, "timeout", 1.0, verdict=PASS, at=2.2)]
    c = summarise_cell(WatchedCell("y/a", "x/a", "80", "TCP", "deny", "deny", "",
                                   attempts=attempts), STOP, -1.25, 2.05, None)
    (w,) = c.windows
    assert (w.first, w.last, w.attempts, w.on) == (0.125, 1.875, 9, "stop engine")
    assert (w.at_least, w.at_most) == (1.75, 2.45)     # from -0.25 to +2.2
    assert [a.round for a in c.attempts] == [1, 3, 4, 2, *range(5, 13)]


def test_nothing_is_held_that_was_not_seen_while_down():
    """Good before the stop, a probe error on every attempt while the engine was down, good
    after: this read "holds existing rules while the engine is down". Nothing was observed
    then: no claim either way."""
    c = summarise_cell(cell("PPEEEEEPP"), STOP, -1.0, 2.05, None)
    assert c.status == "not observed while down" and c.windows == [] and c.probe_errors == 5
    tl = FaultTimeline(STOP, 0.5, -1.0, 3.0, 9, 2.05, None, [c], max_gap=0.5)
    said = sentences(tl)
    assert not any(s.startswith("holds") for s in said), said
    assert said[0] == ("not observed while the engine was down: 1 of 1 cell gave no verdict "
                       "between stop engine and start engine (+0.02 to +2.02 s; probe errors "
                       "only): nothing is claimed for that time")


def test_held_needs_a_verdict_inside_each_down_interval_and_says_the_gap_between_verdicts():
    # one verdict inside the outage (+1.0): held; but verdicts came at most 1.0 s apart, not
    # the rounds' 0.5 s
    c = summarise_cell(cell("PPPEPEPPP"), STOP, -1.0, 2.05, None)
    assert c.status == "held" and c.max_gap == 1.0
    other = summarise_cell(cell("PPPEEEEPP"), STOP, -1.0, 2.05, None)
    assert other.status == "not observed while down"
    tl = FaultTimeline(STOP, 0.5, -1.0, 3.0, 9, 2.05, None, [c, other], max_gap=0.5)
    said = sentences(tl)
    assert said[0] == ("holds existing rules while the engine is down: no watched cell failed "
                       "open or closed (1 of 2 cells observed while down, attempts with a "
                       "verdict at most 1.00 s apart: a shorter window can be missed)")
    assert said[1].startswith("not observed while the engine was down: 1 of 2 cells")


@pytest.mark.parametrize("actions, intervals", [
    ([FaultEvent("stop engine", 0.0, 0.02), FaultEvent("wait 2 s", 0.02, 2.02),
      FaultEvent("start engine", 2.02, 2.05)], [("stop engine", 0.02, 2.02, "start engine")]),
    # per node: each node's engine is down from its own stop to its own start
    ([FaultEvent("stop engine on node 1", 0.0, 0.01), FaultEvent("kill engine on node 2", 0.01,
                                                                 0.02),
      FaultEvent("start engine on node 1", 2.0, 2.01), FaultEvent("start engine on node 2", 3.0,
                                                                  3.01)],
     [("stop engine on node 1", 0.01, 2.0, "start engine on node 1"),
      ("kill engine on node 2", 0.02, 3.0, "start engine on node 2")]),
    # a start of every node ends them all
    ([FaultEvent("kill engine on node 1", 0.0, 0.01), FaultEvent("start engine", 1.0, 1.01)],
     [("kill engine on node 1", 0.01, 1.0, "start engine")]),
    # the API server's outage is its one action
    ([FaultEvent("stop apiserver for 5 s", 0.0, 5.3)], [("stop apiserver for 5 s", 0.0, 5.3, "")]),
    # a restart is down only inside its own action (milliseconds): no interval to sample
    ([FaultEvent("restart engine", 0.0, 0.05), FaultEvent("change", 0.1, 0.11)], []),
])
def test_down_intervals(actions, intervals):
    assert down_intervals(actions) == intervals


@pytest.mark.parametrize("verdicts, must, requirement", [
    ("PPOOOOOPP", "hold", "violated"),
    ("PPCCPPPPP", "hold", "violated"),
    ("PPPPPPPPP", "hold", "met"),
    ("PPEEEEEPP", "hold", "not observed"),    # nothing seen while down: not proven either way
    ("EEEEEEEEE", "hold", "not observed"),
    ("PPOOOOOPP", None, None),                # no requirement: a measurement only
])
def test_a_requirement_is_met_violated_or_not_observed(verdicts, must, requirement):
    c = summarise_cell(replace(cell(verdicts), must=must), STOP, -1.0, 2.05, None)
    assert c.requirement == requirement


def test_a_violated_requirement_fails_the_scenario_and_a_measurement_does_not():
    opened = summarise_cell(replace(cell("PPOOOOOPP"), must="hold"), STOP, -1.0, 2.05, None)
    held = summarise_cell(replace(cell("PPPPPPPPP", before="allow", after="allow"), must="hold"),
                          STOP, -1.0, 2.05, None)
    blind = summarise_cell(replace(cell("PPEEEEEPP"), must="hold"), STOP, -1.0, 2.05, None)
    tl = FaultTimeline(STOP, 0.5, -1.0, 3.0, 9, 2.05, None, [opened, held], max_gap=0.5)
    assert requirement_verdicts(tl) == [Verdict.NOT_ENFORCED, Verdict.PASS]
    assert scenario_outcome([Verdict.PASS, *requirement_verdicts(tl)], True, True) == "failed"
    assert ("requirement violated: y/a -> x/a 80/TCP must hold across the fault, and failed "
            "open 2.0-3.0 s on stop engine") in sentences(tl)
    # not proven held: no verdict while down, so no pass (an error, like a probe error)
    tl = FaultTimeline(STOP, 0.5, -1.0, 3.0, 9, 2.05, None, [blind], max_gap=0.5)
    assert requirement_verdicts(tl) == [Verdict.PROBE_ERROR]
    assert scenario_outcome([Verdict.PASS, *requirement_verdicts(tl)], True, True) == "error"
    assert ("requirement not observed: y/a -> x/a 80/TCP must hold across the fault, and gave no "
            "verdict while down") in sentences(tl)
    # without a requirement the same window is a measurement: the outcome is the steps'
    tl = FaultTimeline(STOP, 0.5, -1.0, 3.0, 9, 2.05, None,
                       [summarise_cell(cell("PPOOOOOPP"), STOP, -1.0, 2.05, None)], max_gap=0.5)
    assert requirement_verdicts(tl) == []


def test_a_fail_open_window_is_a_junit_property_whatever_the_requirement():
    from harness.reports import junit
    from harness.results import ScenarioResult, StepResult

    for must, outcome in ((None, "passed"), ("hold", "failed")):
        c = summarise_cell(replace(cell("PPOOOOOPP"), must=must), STOP, -1.0, 2.05, None)
        tl = FaultTimeline(STOP, 0.5, -1.0, 3.0, 9, 2.05, None, [c], max_gap=0.5)
        r = ScenarioResult("s", "s.yaml", "local", "enforcing", "run1", outcome=outcome,
                           steps=[StepResult(2, "stop", True, 0.0, 2, [], fault=tl)])
        props = dict(junit.properties(r))
        assert props["step2_fault_failed_open"] == "1"
        assert props["step2_fault_failed_closed"] == "0"
        assert props["step2_fault_open_seconds"] == "2.0-3.0"
        assert props.get("step2_fault_requirements_violated") == (None if must is None else "1")
        # and beside the counts of the summaries, whatever the outcome
        from harness.reports import github, terminal
        for text in (terminal.render_summary([r]), github.render_markdown([r], {})):
            assert "+1 failed open in a fault" in text
            assert ("+1 requirement(s) violated" in text) is (must is not None)
        timeline = "\n".join(terminal.render_timelines(r))
        assert ("(spec: deny, must hold): FAILED OPEN; requirement VIOLATED" in timeline) is \
            (must is not None)
