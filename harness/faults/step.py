"""A fault step end to end: watch, act, restore, judge the timeline (moved from
harness.runner)."""

from __future__ import annotations

import time

from harness.errors import HarnessError
from harness.faults.kinds import CHANGE, START, WAIT
from harness.faults.timeline import fault_sentences, max_gap, summarise_watched
from harness.faults.watch import StepRun, Watch, watch_lanes
from harness.plan import Cell
from harness.results import FaultEvent, FaultTimeline, StepResult, WatchedCell


def run_fault_step(run: StepRun, index: int, step, title: str, cells: list[Cell],
                watch_cells: tuple[list[Cell], list[Cell]]) -> StepResult:
    """A fault step: watch the cells, run the actions (the step's change at `change`), keep
    watching `after` seconds, restore what was stopped, then observe the step's expectations
    like any step's, from the end of the watch. docs/scenarios.md, "Fault steps"."""
    fault, backend, log = step.fault, run.backend, run.log
    # the capability decides whether the scenario runs at all (a skip with the reason); this is
    # the second lock: a backend with no node to fault (Backend.fault_nodes 0: it stops
    # nothing) is never asked to stop anything, and nothing is watched
    if backend.fault_nodes < 1:
        raise backend.cannot("running a fault step", "it stops nothing on this cluster")
    for a in fault.actions:
        if a.node is not None and a.node > backend.fault_nodes:
            raise HarnessError(f"{a.label} (line {a.line}): this cluster has "
                               f"{backend.fault_nodes} node(s)")
    watch = Watch(run, *watch_cells, fault.every,
                  watch_lanes(fault.every, run.settings.probe_timeout))
    events: list[tuple[str, float, float, str]] = []
    change_at: float | None = None
    recovered: float | None = None
    watch.start()
    t0 = time.monotonic() + fault.before
    try:
        time.sleep(max(0.0, t0 - time.monotonic()))
        t0 = time.monotonic()
        for a in fault.actions:
            began, detail = time.monotonic(), ""
            if a.kind is WAIT:
                time.sleep(a.seconds)
            elif a.kind is CHANGE:
                with watch.change():
                    began = time.monotonic()
                    run.change(step)
                change_at = began
            elif a.target is not None and a.target.timed:   # down for `seconds`, then started
                detail = backend.fault(a.backend_action, a.target.value, a.node)
                time.sleep(a.seconds)
                detail += "; " + backend.fault(START.name, a.target.value, a.node)
            elif a.target is not None:
                detail = backend.fault(a.backend_action, a.target.value, a.node)
            ended = time.monotonic()
            events.append((a.label, began, ended, detail))
            if a.kind.starts or (a.target is not None and a.target.timed):
                recovered = ended
            log(f"    {began - t0:+7.2f}s {a.label}" + (f": {detail}" if detail else ""))
            if watch.error:
                raise watch.error
        time.sleep(fault.after)
    finally:
        watch.stop()
        restored = backend.restore_faults()
        if restored:
            log(f"    restored: {'; '.join(restored)}")
    if watch.error:
        raise watch.error
    end = time.monotonic()

    def rel(t: float) -> float:
        return round(t - t0, 3)

    actions = [FaultEvent(label, rel(b), rel(e), d) for label, b, e, d in events]
    watched = []
    # plan.plan_watch made the cells in the order of the step's `watch:`
    for (before, after), w in zip(watch.merged(), fault.watch, strict=True):
        attempts = before.attempts + after.attempts    # summarise_watched puts them in order
        for x in attempts:
            x.at = rel(x.at or t0)
        cell = WatchedCell(after.spec.source, after.spec.target, str(after.spec.port),
                           after.spec.protocol.value, before.expectation.value,
                           after.expectation.value, "", attempts=attempts, must=w.must)
        watched.append(summarise_watched(
            cell, actions, rel(watch.starts[0]) if watch.starts else 0.0,
            rel(recovered) if recovered is not None else None,
            rel(change_at) if change_at is not None else None))
    tl = FaultTimeline(actions, fault.every, rel(watch.starts[0]) if watch.starts else 0.0,
                       rel(end), len(watch.starts),
                       rel(recovered) if recovered is not None else None,
                       rel(change_at) if change_at is not None else None, watched,
                       max_gap=round(max_gap(watch.starts), 3))
    tl.verdicts = fault_sentences(tl)
    log(f"    watched {len(watched)} cell(s) in {tl.rounds} rounds from {tl.watched_from:+.2f}s "
        f"to {tl.watched_to:+.2f}s:")
    for line in tl.verdicts:
        log(f"      {line}")
    # from the end of the watch: the first round of the step can start no earlier (the watch's
    # `takes_effect` is the time from recovery)
    result = run.converge(index, title, cells, end)
    result.fault = tl
    return result
