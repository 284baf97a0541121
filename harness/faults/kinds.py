"""The kinds of fault action and what each one does, as data: the one place a fault step's verbs
(stop, kill, start, restart, wait, change) and targets (engine, apiserver) are declared.

Why a table: the scenario reader (which verbs and targets exist, what a sequence leaves down),
the capability check (what a step needs), the step (what to call, when recovery is), the
timeline (which actions a window can follow) and every backend's `fault()` (stop, kill, start)
read the same facts, so a new kind of fault is one row here and, when it does something no row
did before, the backends that can do it. Pure: no I/O (docs/scenarios.md, "Fault steps").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Target", "FaultKind", "KINDS", "WAIT", "CHANGE", "kind_named", "kind_for",
           "verbs", "signals", "label", "parse_label", "needs"]


class Target(str, Enum):
    """What a fault action acts on. The value is the word a scenario writes."""

    ENGINE = "engine"          # the policy engine on one node or every node
    APISERVER = "apiserver"    # the cluster's API server, down for `for:` seconds

    @property
    def capability(self) -> str:
        """What a backend declares to be asked to act on it (harness.capabilities)."""
        return f"{self.value}-fault"

    @property
    def timed(self) -> bool:
        """Stopped for `for:` seconds and started again by the step itself (no `start` action
        names it), so the step never leaves it down."""
        return self is Target.APISERVER


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault action.

    `name` is the word a backend's `fault()` is asked to do (and the key of KINDS); `verb` the
    word a scenario writes (a restart with `signal: KILL` is the kind kill-restart). `signal`
    is how the action takes its target down (TERM: stopped, KILL: killed; None: it does not),
    `starts` whether it starts it (again). An action that neither takes down nor starts is the
    step's own (wait, change) and no backend sees it.
    """

    name: str
    verb: str
    targets: tuple[Target, ...] = ()
    signal: str | None = None
    starts: bool = False

    @property
    def is_fault(self) -> bool:
        """Takes a component down or brings it back: a window of the timeline can follow it."""
        return self.signal is not None or self.starts

    @property
    def leaves_down(self) -> bool:
        """Takes its target down and leaves it so (stop, kill): a later `start` brings it back."""
        return self.signal is not None and not self.starts

    @property
    def holds(self) -> bool:
        """Part of a component held down between actions (stop, kill, start), as opposed to a
        restart, which brings it back itself: the capability engine-hold."""
        return self.is_fault and not (self.signal is not None and self.starts)


KINDS: dict[str, FaultKind] = {k.name: k for k in (
    FaultKind("stop", "stop", (Target.ENGINE, Target.APISERVER), signal="TERM"),
    FaultKind("kill", "kill", (Target.ENGINE,), signal="KILL"),
    FaultKind("start", "start", (Target.ENGINE,), starts=True),
    FaultKind("restart", "restart", (Target.ENGINE,), signal="TERM", starts=True),
    FaultKind("kill-restart", "restart", (Target.ENGINE,), signal="KILL", starts=True),
    FaultKind("wait", "wait"),
    FaultKind("change", "change"),
)}
WAIT, CHANGE = KINDS["wait"], KINDS["change"]
#: how a timed target is started again at the end of its `for:` seconds
START = KINDS["start"]


def kind_named(name: str) -> FaultKind:
    """The kind a backend's `fault()` is asked to do (one that takes a component down or starts
    it); ValueError naming the choices otherwise."""
    kind = KINDS.get(name)
    if kind is None or not kind.is_fault:
        *most, last = (k for k in KINDS if KINDS[k].is_fault)
        raise ValueError(f"unknown fault action {name!r}: expected {', '.join(most)} or {last}")
    return kind


def verbs() -> dict[str, tuple[Target, ...]]:
    """The verbs a scenario may write that act on a target, with the targets each may name."""
    out: dict[str, tuple[Target, ...]] = {}
    for k in KINDS.values():
        if k.targets:
            out[k.verb] = tuple(dict.fromkeys(out.get(k.verb, ()) + k.targets))
    return out


def signals(verb: str) -> tuple[str, ...]:
    """The `signal:` values `verb` accepts, the default first: () when it takes no signal."""
    got = tuple(k.signal for k in KINDS.values() if k.verb == verb and k.signal)
    return got if len(got) > 1 else ()


def kind_for(verb: str, signal: str | None = None) -> FaultKind:
    """The kind of `{verb: ..., signal: ...}` (the default signal when None)."""
    for k in KINDS.values():
        if k.verb == verb and (signal is None or k.signal == signal):
            return k
    raise ValueError(f"no fault action {verb!r}" + (f" with signal {signal}" if signal else ""))


def needs(kind: FaultKind, target: Target | None) -> frozenset[str]:
    """The capabilities an action of `kind` on `target` needs: the target's, and engine-hold
    for an engine held down between actions."""
    if target is None or not kind.is_fault:
        return frozenset()
    out = {target.capability}
    if target is Target.ENGINE and kind.holds:
        out.add("engine-hold")
    return frozenset(out)


def label(kind: FaultKind, target: Target | None = None, node: int | None = None,
          seconds: float = 0.0) -> str:
    """The words reports print for one action: `stop engine on node 1`, `wait 2 s`,
    `stop apiserver for 5 s`, `restart engine (SIGKILL)`, `change`. parse_label reads them."""
    if kind is WAIT:
        return f"wait {seconds:g} s"
    if target is None:
        return kind.verb
    where = f" on node {node}" if node is not None else ""
    length = f" for {seconds:g} s" if target.timed else ""
    how = f" (SIG{kind.signal})" if len(signals(kind.verb)) > 1 and kind.signal != \
        signals(kind.verb)[0] else ""
    return f"{kind.verb} {target.value}{where}{length}{how}"


def parse_label(text: str) -> tuple[FaultKind, Target | None] | None:
    """The kind and target of a label made by `label` (a results file keeps labels only);
    None for words no kind makes."""
    words = text.split(" ")
    target = next((t for t in Target if len(words) > 1 and words[1] == t.value), None)
    signal = next((s for s in signals(words[0]) if f"(SIG{s})" in words), None)
    try:
        return kind_for(words[0], signal), target
    except ValueError:
        return None
