"""A fault step's watched cells along time: held, failed open, failed closed, their windows,
and the sentences a report prints (moved from harness.verdicts; pure, table-tested in
tests/test_timeline.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple, Sequence

from harness.faults.kinds import CHANGE, FaultKind, Target, parse_label
from harness.results import Attempt, FaultEvent, FaultTimeline, FaultWindow, Verdict, WatchedCell

# -- fault steps: a watched cell's verdicts along time -----------------------------------------
# A round's verdict on a watched cell is `judge`'s, as in any step; this part only reads those
# verdicts along the time axis, and never changes a scenario's outcome (docs/scenarios.md,
# "Fault steps": the timeline is a measurement). Rules:
#
# - An attempt observes the dataplane at `Attempt.observed()` (seconds from the first action):
#   a blocked probe when its round starts (its first packet is dropped then), an answered one by
#   its answer (a retransmitted packet may have got through late). Attempts are read in that
#   order: the rounds of a watch overlap.
# - pass = good; not enforced = bad, failed open; over-blocked = bad, failed closed; a probe
#   error (or a cell the spec leaves undefined) says nothing: it neither opens nor ends a window.
# - A window is a run of bad attempts of one kind. It lasted at least from its first bad attempt
#   to its last, and at most from the good attempt before it to the good attempt after it
#   (from the start of the watch when none came before; open-ended, None, when none came after).
# - held: no window, and a verdict (good) seen inside every interval a component was down
#   (`down_intervals`); a cell with no verdict inside one of them is "not observed while down":
#   nothing is claimed for that time. What a held cell could have missed is said by the
#   largest gap between its attempts with a verdict (`WatchedCell.max_gap`), not by the
#   spacing of round starts: a round whose probe errored saw nothing.
# - A cell may carry a requirement (`must: hold` in the scenario): met when it held, violated
#   when it failed open or closed, not observed otherwise (nothing proves it either way). Only
#   a requirement changes the scenario's outcome (`requirement_verdicts`: violated fails it,
#   not observed makes it an error); without one the timeline is a measurement, its windows
#   in every report whatever the outcome.

_GOOD = Verdict.PASS.value
_BAD = {Verdict.NOT_ENFORCED.value: "open", Verdict.OVER_BLOCKED.value: "closed"}


def _kind(action: FaultEvent) -> tuple[FaultKind | None, Target | None]:
    """What an action of the timeline did (harness.faults.kinds), read from its label."""
    got = parse_label(action.action)
    return got if got is not None else (None, None)


def _is_fault(action: FaultEvent) -> bool:
    """Takes a component down or brings it back: a window is put on the last of them."""
    kind = _kind(action)[0]
    return kind is not None and kind.is_fault


def max_gap(starts: Sequence[float]) -> float:
    """The longest time between two consecutive round starts."""
    ordered = sorted(starts)
    return max((b - a for a, b in zip(ordered, ordered[1:], strict=False)), default=0.0)


class DownInterval(NamedTuple):
    """A time a component was surely down: from `start` to `end` (seconds from the first
    action), after `action`; `until` is the action that brought it back ("" when `action` is
    the whole outage)."""

    action: str
    start: float
    end: float
    until: str


def down_intervals(actions: Sequence[FaultEvent]) -> list[DownInterval]:
    """The times a component was surely down, in order of their start: an engine from the end
    of its stop or kill to the beginning of the start that brings it back (per node, `... on
    node N`; a start of every node ends them all), the API server for its one action (`stop
    apiserver for N s`: stopped, held down, started). A restart is down only inside its own
    action, for milliseconds no round can sample: it has no interval, and what it did is read
    from the attempts around it and the largest gap between them."""
    out: list[DownInterval] = []
    down: dict[str, tuple[str, float]] = {}     # "all" or "node N" -> (action, since)
    for a in actions:
        kind, target = _kind(a)
        if kind is None or target is None:
            continue
        if target.timed:        # stopped, held down and started within its one action
            out.append(DownInterval(a.action, a.at, a.ended, ""))
            continue
        node = a.action.partition(" on ")[2] or "all"
        if kind.leaves_down:
            down[node] = (a.action, a.ended)
        elif kind.starts and kind.signal is None:   # a start (a restart is never down)
            for key in (list(down) if node == "all" else [node]):
                if key in down:
                    label, since = down.pop(key)
                    out.append(DownInterval(label, since, a.at, a.action))
    # a fault that leaves an engine down is a file error (harness.scenario.faults); were one
    # left, it was down until the watch's last action at least
    end = max((a.ended for a in actions), default=0.0)
    out += [DownInterval(label, since, end, "") for label, since in down.values()]
    return sorted(out, key=lambda d: (d.start, d.action))


def _told(attempts: Sequence[Attempt]) -> list[Attempt]:
    """The attempts that gave a verdict (good or bad): a probe error says nothing."""
    return [a for a in attempts if a.verdict == _GOOD or a.verdict in _BAD]


def _seen_in(told: Sequence[Attempt], d: DownInterval) -> bool:
    return any(d.start <= a.observed() <= d.end for a in told)


def _on(actions: Sequence[FaultEvent], at: float) -> str:
    """The fault action a window that starts at `at` follows: the last one started by then."""
    label = "before the fault"
    for a in actions:
        if _is_fault(a) and a.at <= at:
            label = a.action
    return label


def _windows(attempts: Sequence[Attempt], actions: Sequence[FaultEvent],
             watched_from: float) -> list[FaultWindow]:
    out: list[FaultWindow] = []
    prev_good: float | None = None
    run: list[Attempt] = []
    kind = ""

    def close(next_good: float | None) -> None:
        if not run:
            return
        first, last = run[0].observed(), run[-1].observed()
        start = prev_good if prev_good is not None else watched_from
        # the action it follows is the last one started by its first observation: a round
        # begun just before a stop whose retransmitted SYN got through after it is "on stop"
        out.append(FaultWindow(kind, first, last, round(max(0.0, last - first), 3),
                               None if next_good is None else round(next_good - start, 3),
                               len(run), _on(actions, first)))

    for a in attempts:
        at = a.observed()
        if a.verdict == _GOOD:
            close(at)
            run, prev_good = [], at
        elif a.verdict in _BAD:
            k = _BAD[a.verdict]
            if run and k != kind:
                close(at)    # the other kind starts: this one ended by then
                run, prev_good = [], run[-1].observed()
            run.append(a)
            kind = k
    close(None)
    return out


def summarise_watched(cell: WatchedCell, actions: Sequence[FaultEvent], watched_from: float,
                   recovered_at: float | None, change_at: float | None) -> WatchedCell:
    """The cell with status, windows, probe errors and (for a cell the change alters) how long
    after recovery the change held, read from its attempts."""
    attempts = sorted(cell.attempts, key=Attempt.observed)
    windows = _windows(attempts, actions, watched_from)
    errors = sum(1 for a in attempts if a.verdict == Verdict.PROBE_ERROR.value)
    kinds = {w.kind for w in windows}
    told = _told(attempts)
    seen = [a.observed() for a in told]
    gap = max((b - a for a, b in zip(seen, seen[1:], strict=False)), default=0.0)
    if kinds == {"open", "closed"}:
        status = "failed open and closed"
    elif kinds:
        status = f"failed {kinds.pop()}"
    elif not told:
        status = "no verdict"
    elif all(_seen_in(told, d) for d in down_intervals(actions)):
        status = "held"
    else:
        status = "not observed while down"
    effect: list[float | None] | None = None
    if cell.expected_before != cell.expected_after and change_at is not None:
        effect = _takes_effect(attempts, change_at, recovered_at if recovered_at is not None
                               else change_at)
    requirement = None
    if cell.must is not None:
        requirement = "violated" if windows else "met" if status == "held" else "not observed"
    return replace(cell, status=status, windows=windows, probe_errors=errors,
                   takes_effect=effect, attempts=attempts, max_gap=round(gap, 3),
                   requirement=requirement)


def requirement_verdicts(t: FaultTimeline) -> list[Verdict]:
    """What each watched cell's requirement adds to the scenario's verdicts (verdicts.
    scenario_outcome): met is a pass; violated is not enforced when the cell failed open, else
    over-blocked (a fail-open or fail-closed the scenario forbade); not observed is a probe
    error (not proven either way). Cells without a requirement add nothing: a measurement."""
    out: list[Verdict] = []
    for c in t.cells:
        if c.requirement == "met":
            out.append(Verdict.PASS)
        elif c.requirement == "violated":
            opened = any(w.kind == "open" for w in c.windows)
            out.append(Verdict.NOT_ENFORCED if opened else Verdict.OVER_BLOCKED)
        elif c.requirement is not None:
            out.append(Verdict.PROBE_ERROR)
    return out


def _takes_effect(attempts: Sequence[Attempt], change_at: float,
                  recovered_at: float) -> list[float | None] | None:
    """[at least, at most] seconds from recovery until the change held for good: from the last
    bad attempt after the change to the good attempt after it. None: no verdict after it.
    Which attempts: those whose rounds began from the change on (judged against it); their
    bounds: when each observed the dataplane."""
    after = [a for a in attempts if (a.at or 0.0) >= change_at
             and (a.verdict == _GOOD or a.verdict in _BAD)]
    if not after:
        return None
    bad = [i for i, a in enumerate(after) if a.verdict in _BAD]
    if not bad:
        first = after[0].observed()
        return [round(max(change_at, 0.0) - recovered_at, 3), round(first - recovered_at, 3)]
    last = bad[-1]
    lower = round(after[last].observed() - recovered_at, 3)
    if last + 1 >= len(after):
        return [lower, None]
    return [lower, round(after[last + 1].observed() - recovered_at, 3)]


def _span(lo: float, hi: float | None) -> str:
    if hi is None:
        return f"at least {lo:.1f} s (still so when the watch ended)"
    return f"{lo:.1f}-{hi:.1f} s"


def fault_sentences(t: FaultTimeline) -> list[str]:
    """Plain sentences for one fault step: what failed open or closed, for how long, on which
    action; or that every watched cell held; and when a change made during the fault held."""
    out: list[str] = []
    faults = [a for a in t.actions if _is_fault(a)]
    labels = [a.action for a in faults]
    acted = [_kind(a) for a in faults]
    engine_down = any(k is not None and k.leaves_down and g is Target.ENGINE for k, g in acted)
    api_down = any(k is not None and k.signal is not None and g is Target.APISERVER
                   for k, g in acted)
    steady = [c for c in t.cells if c.expected_before == c.expected_after]
    groups: dict[tuple[str, str], list[FaultWindow]] = {}
    counts: dict[tuple[str, str], set[int]] = {}
    for i, c in enumerate(steady):
        for w in c.windows:
            groups.setdefault((w.kind, w.on), []).append(w)
            counts.setdefault((w.kind, w.on), set()).add(i)
    for (kind, on), ws in groups.items():
        lo = min(w.at_least for w in ws)
        his = [w.at_most for w in ws]
        hi = None if None in his else max(h for h in his if h is not None)
        what = "connected although denied" if kind == "open" else "blocked although allowed"
        out.append(f"fails {kind} for {_span(lo, hi)} on {on} ({len(counts[(kind, on)])} of "
                   f"{_cells(len(steady))} {what})")
    held = [c for c in steady if c.status == "held"]
    if steady and not groups and held:
        if engine_down:
            what = "holds existing rules while the engine is down"
        elif api_down:
            what = "holds existing rules while the API server is down"
        else:
            what = "holds across " + ", ".join(labels or ["the fault"])
        which = _cells(len(steady)) if len(held) == len(steady) else \
            f"{len(held)} of {_cells(len(steady))} observed while down"
        gap = max(c.max_gap or 0.0 for c in held)
        out.append(f"{what}: no watched cell failed open or closed ({which}, attempts with a "
                   f"verdict at most {gap:.2f} s apart: a shorter window can be missed)")
    for d in down_intervals(t.actions):
        blind = [c for c in t.cells if c.status == "not observed while down"
                 and not _seen_in(_told(c.attempts), d)]
        if not blind:
            continue
        who = "the API server" if d.action.startswith("stop apiserver") else "the engine"
        when = f"between {d.action} and {d.until}" if d.until else f"during {d.action}"
        inside = any(d.start <= a.observed() <= d.end for c in blind for a in c.attempts)
        out.append(f"not observed while {who} was down: {len(blind)} of {_cells(len(t.cells))} "
                   f"gave no verdict {when} ({d.start:+.2f} to {d.end:+.2f} s; "
                   f"{'probe errors only' if inside else 'no attempt'}): nothing is claimed "
                   "for that time")
    changed = [c for c in t.cells if c.expected_before != c.expected_after]
    if changed:
        when = "made while the engine was down" if _change_while_down(t) else \
            "made during the fault"
        for kind in ("open", "closed"):
            ws = [w for c in changed for w in c.windows if w.kind == kind]
            if ws:
                his = [w.at_most for w in ws]
                hi = None if None in his else max(h for h in his if h is not None)
                n = sum(1 for c in changed if any(w.kind == kind for w in c.windows))
                out.append(f"the change {when} left {n} of {_cells(len(changed))} it alters "
                           f"failing {kind} for {_span(min(w.at_least for w in ws), hi)}")
        effects = [c.takes_effect for c in changed]
        if any(e is None for e in effects):
            out.append(f"the change {when}: no verdict on {sum(e is None for e in effects)} of "
                       f"{_cells(len(changed))} it alters after it was made")
        known = [e for e in effects if e is not None]
        if any(e[1] is None for e in known):
            late = [e[0] for e in known if e[1] is None]
            out.append(f"the change {when} had not taken effect on {len(late)} of "
                       f"{_cells(len(changed))} when the watch ended, "
                       f"{t.watched_to - (t.recovered_at or 0):.1f} s after recovery")
        done = [e for e in known if e[1] is not None]
        if done:
            lo = max(e[0] or 0.0 for e in done)
            hi = max(e[1] or 0.0 for e in done)
            # recovery is the end of the last start: a round that began during the start (its
            # probes ran after it) is no sign of an effect before the engine was started
            began = max((a.at for a in t.actions if a.ended == t.recovered_at), default=0.0)
            if hi <= began - (t.recovered_at or 0.0):
                out.append(f"the change {when} took effect before the engine was started again")
            elif hi <= 0:
                out.append(f"the change {when} takes effect as the engine starts (the first "
                           "round after the change's last failure began during the start)")
            else:
                out.append(f"the change {when} takes effect {max(lo, 0.0):.1f}-{hi:.1f} s after "
                           "recovery")
    silent = [c for c in t.cells if c.status == "no verdict"]
    if silent:
        out.append(f"{len(silent)} watched cell(s) gave no verdict (probe errors only)")
    errors = sum(c.probe_errors for c in t.cells)
    if errors:
        out.append(f"{errors} watched attempt(s) were probe errors: no verdict either way")
    for c in t.cells:
        if c.requirement is None:
            continue
        what = f"{c.source} -> {c.target} {c.port}/{c.protocol} must {c.must} across the fault"
        if c.requirement == "violated":
            how = "; ".join(f"failed {w.kind} {_span(w.at_least, w.at_most)} on {w.on}"
                            for w in c.windows)
            out.append(f"requirement violated: {what}, and {how}")
        elif c.requirement == "met":
            out.append(f"requirement met: {what}")
        else:
            out.append(f"requirement not observed: {what}, and gave no verdict "
                       + ("at all" if c.status == "no verdict" else "while down"))
    return out


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"


def _change_while_down(t: FaultTimeline) -> bool:
    """Whether the change was made between a stop or kill of the engine and its start."""
    if t.change_at is None:
        return False
    down = False
    for a in t.actions:
        kind, target = _kind(a)
        if kind is CHANGE:
            return down
        if kind is not None and target is Target.ENGINE:
            if kind.leaves_down:
                down = True
            elif kind.starts:
                down = False
    return False
