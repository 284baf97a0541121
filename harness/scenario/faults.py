"""A step's `fault:`: the actions that stop, kill and restart the policy engine or stop the API
server, and the cells watched across them, read and validated (docs/scenarios.md, "Fault
steps").

Why checked here, before anything runs: a fault sequence that starts an engine that is running,
or leaves one stopped at its end, would be found out only halfway through a run, with a
component of the cluster down. Every such mistake is a file error with its line, like the rest.
"""

from __future__ import annotations

from typing import Any

from harness.faults import kinds
from harness.faults.kinds import CHANGE, WAIT, Target
from harness.scenario.expectations import _endpoint_problem, _port_value, _protocol
from harness.scenario.lines import (
    LineDict,
    Report,
    did_you_mean,
    is_mapping,
    is_sequence,
    optional_mapping,
)
from harness.scenario.topology import check_keys
from harness.scenario.types import Fault, FaultAction, WatchCell

__all__ = ["read_fault", "FAULT_KEYS"]


FAULT_KEYS = ("watch", "every", "before", "after", "actions")
#: what a watched cell may be required to do across the fault (`must:`): `hold`, never fail
#: open or closed, with a verdict seen while each component was down (faults.timeline)
REQUIREMENTS = ("hold",)
#: the longest wait (and API server outage) a fault may hold, in seconds
MAX_SECONDS = 300.0
_LIMITS = {"every": (0.1, 10.0, 0.5), "before": (0.0, 60.0, 1.0), "after": (0.0, MAX_SECONDS, 3.0)}


def _number(value: Any, field: str, line: int, low: float, high: float,
            report: Report) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not low <= value <= high:
        report(field, f"must be a number of seconds from {low:g} to {high:g}, got {value!r}",
               line)
        return None
    return float(value)


def read_fault(raw: LineDict, where: str, model: Any, has_change: bool,
               report: Report) -> Fault | None:
    """The step's `fault:` (None when it has none); problems go to `report`."""
    data = optional_mapping(raw, "fault", where, "a mapping {watch, actions, every, before, after}",
                            report)
    if data is None:
        return None
    w, line = f"{where}.fault", raw.key_line("fault")
    check_keys(data, FAULT_KEYS, w, report)
    timing: dict[str, float] = {}
    for key, (low, high, default) in _LIMITS.items():
        value = data.get(key, default)
        got = _number(value, f"{w}.{key}", data.key_line(key) if key in data else line,
                      low, high, report)
        timing[key] = default if got is None else got
    watch = _watch(data, w, line, model, report)
    actions = _actions(data, w, line, report)
    changes = [a for a in actions if a.kind is CHANGE]
    if has_change and not changes:
        report(f"{w}.actions", "this step changes labels or policies: say when, with a `change` "
                               "action (e.g. after {stop: engine}, for a change made while the "
                               "engine is down)", data.key_line("actions") or line)
    if changes and not has_change:
        report(f"{w}.actions", "`change` makes the step's labels, deletes and applies, but the "
                               "step has none", changes[0].line)
    if len(changes) > 1:
        report(f"{w}.actions", "`change` may appear once", changes[1].line)
    return Fault(tuple(actions), tuple(watch), timing["every"], timing["before"],
                 timing["after"], line)


def _watch(data: LineDict, w: str, line: int, model: Any, report: Report) -> list[WatchCell]:
    cells = data.get("watch")
    if not is_sequence(cells) or not cells:
        report(f"{w}.watch", "required: the cells to probe across the fault, a list of "
                             "{from, to, port, protocol, must}", data.key_line("watch") or line)
        return []
    out = []
    for j, item in enumerate(cells):
        wj, ln = f"{w}.watch[{j}]", cells.item_line(j)
        if not is_mapping(item):
            report(wj, "a watched cell is {from, to, port, protocol, must}", ln)
            continue
        check_keys(item, ("from", "to", "port", "protocol", "must"), wj, report)
        bad = False
        for role in ("from", "to"):
            why = _endpoint_problem(item.get(role), model, role)
            if not why and role == "to" and "/" not in str(item.get(role)) \
                    and not str(item.get(role)).startswith("ext:"):
                why = "a watched cell names a pod, svc:ns/name or ext:name (not a DNS name)"
            if why:
                report(f"{wj}.{role}", why, item.key_line(role))
                bad = True
        port = _port_value(item.get("port"), f"{wj}.port", item.key_line("port"), report)
        proto = _protocol(item.get("protocol"), f"{wj}.protocol", item.key_line("protocol"),
                          report)
        must = item.get("must")
        if "must" in item and (not isinstance(must, str) or must not in REQUIREMENTS):
            report(f"{wj}.must", "what the watched cell must do across the fault: hold (never "
                                 "fail open or closed, and seen with a verdict while each "
                                 f"component is down); got {must!r}", item.key_line("must"))
            bad = True
        if not bad and port is not None and proto is not None:
            out.append(WatchCell(item["from"], item["to"], port, proto, wj, ln, must))
    return out


def _actions(data: LineDict, w: str, line: int, report: Report) -> list[FaultAction]:
    items = data.get("actions")
    if not is_sequence(items) or not items:
        report(f"{w}.actions", "required: a list of actions, e.g. [{stop: engine}, {wait: 2}, "
                               "{start: engine}]", data.key_line("actions") or line)
        return []
    out: list[FaultAction] = []
    down: set[int | None] = set()     # nodes whose engine is down; None = every node
    for j, item in enumerate(items):
        wj, ln = f"{w}.actions[{j}]", items.item_line(j)
        action = _action(item, wj, ln, report)
        if action is None:
            continue
        if action.target is Target.ENGINE:
            problem = _engine_state(action, down)
            if problem:
                report(wj, problem, ln)
                continue
        out.append(action)
    if down:
        where = "every node" if None in down else \
            "node " + ", ".join(str(n) for n in sorted(n for n in down if n is not None))
        report(f"{w}.actions", f"the engine is still down on {where} when the fault ends: end "
                               "with {start: engine} (a fault step restores what it stops, so the "
                               "step's expectations are judged after recovery)",
               data.key_line("actions") or line)
    return out


def _engine_state(action: FaultAction, down: set[int | None]) -> str | None:
    """Track which engines are down; the problem with `action` in that state, or None."""
    node, every, verb = action.node, action.node is None, action.kind.verb
    if action.kind.signal is not None:     # takes the engine down (and may start it again)
        if None in down or (every and down) or node in down:
            what = "every node's" if None in down or every else f"node {node}'s"
            return (f"{verb} engine: {what} engine is already down; "
                    "start it first ({start: engine})")
        if action.kind.leaves_down:
            down.add(node)
        return None
    # starts an engine that is down
    if every:
        if not down:
            return f"{verb} engine: no engine is down (stop or kill it first, or use restart)"
        down.clear()
        return None
    if node not in down:
        return (f"{verb} engine on node {node}: its engine is not down"
                + (" on its own (every node's was stopped: start every node)"
                   if None in down else ""))
    down.discard(node)
    return None


def _action(item: Any, w: str, line: int, report: Report) -> FaultAction | None:
    acting = kinds.verbs()         # verb -> the targets it may name
    if item == CHANGE.verb:
        return FaultAction(CHANGE, line=line)
    if not is_mapping(item):
        report(w, "an action is `change` or a mapping: {stop|kill|start|restart: engine}, "
                  "{stop: apiserver, for: SECONDS}, {wait: SECONDS}", line)
        return None
    verbs = [k for k in item if k in acting or k == WAIT.verb]
    if len(verbs) != 1:
        report(w, f"an action has exactly one of {', '.join((*acting, WAIT.verb))}"
                  + (f" (got {', '.join(map(str, verbs))})" if verbs else
                     did_you_mean(str(next(iter(item), "")), (*acting, WAIT.verb))), line)
        return None
    verb = verbs[0]
    if verb == WAIT.verb:
        check_keys(item, (verb,), w, report)
        seconds = _number(item.get(verb), f"{w}.{verb}", item.key_line(verb), 0.1,
                          MAX_SECONDS, report)
        return FaultAction(WAIT, seconds=seconds, line=line) if seconds is not None else None
    target = next((t for t in acting[verb] if item.get(verb) == t.value), None)
    if target is None:
        report(f"{w}.{verb}", f"{verb} what? expected {' or '.join(t.value for t in acting[verb])}"
                              f", got {item.get(verb)!r}", item.key_line(verb))
        return None
    if target.timed:
        check_keys(item, (verb, "for"), w, report)
        if "for" not in item:
            report(f"{w}.for", f"required: how many seconds the {target.value} stays down "
                               f"({{{verb}: {target.value}, for: 5}}); it is started again "
                               "after them", line)
            return None
        seconds = _number(item.get("for"), f"{w}.for", item.key_line("for") or line, 0.1,
                          MAX_SECONDS, report)
        if seconds is None:
            return None
        return FaultAction(kinds.kind_for(verb), target, None, seconds, line)
    signals = kinds.signals(verb)
    check_keys(item, (verb, "node", "signal") if signals else (verb, "node"), w, report)
    signal = item.get("signal", signals[0]) if signals else None
    if signals and signal not in signals:
        report(f"{w}.signal", f"how the {verb} stops the engine: TERM (stop, then start) or "
                              f"KILL (kill, then start), got {signal!r}", item.key_line("signal"))
        return None
    kind = kinds.kind_for(verb, signal)
    node = item.get("node", "all")
    if node == "all":
        return FaultAction(kind, target, None, 0.0, line)
    if isinstance(node, bool) or not isinstance(node, int) or node < 1:
        report(f"{w}.node", f"a node number (1, 2, ...) or all, got {node!r}",
               item.key_line("node"))
        return None
    return FaultAction(kind, target, node, 0.0, line)
