"""The results of a run: per cell, per step, per scenario. Plain data with a JSON form.

Why separate from the runner: reports (terminal, JSON, HTML, JUnit, GitHub summary) and
`compare` read results files without running anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum, StrEnum
from typing import Any

from harness.probes import Outcome

#: The sentence every front end and report says about a cluster whose canary found that it does
#: not enforce (the canary's detail, the terminal and HTML banners, the GitHub summary).
BANNER = ("this cluster accepts NetworkPolicy objects but does not enforce them; "
          "every policy here is false security.")


def canary_contradiction(cni: str, declared: bool | None, found: bool | None) -> str | None:
    """The sentence every front end and report says when the enforcement canary contradicts
    what `cni` is declared to do (None when it agrees, could not tell, or did not run)."""
    if declared is None or found is None or declared == found:
        return None
    if found:
        return (f"{cni}: the enforcement canary contradicts the declaration: {cni} is declared not "
                f"to enforce NetworkPolicy, but the enforcement canary found that it enforces; "
                f"its scenarios are judged as enforcing (a failure fails, none is an expected "
                f"failure)")
    return (f"{cni}: the enforcement canary contradicts the declaration: {cni} is declared to "
            f"enforce NetworkPolicy, but the enforcement canary found that it does not; every "
            f"fail-open still fails its scenario")


class Verdict(str, Enum):
    """The verdict on one probe: what happened measured against what the spec requires."""

    PASS = "pass"
    NOT_ENFORCED = "not enforced"      # expected blocked, connected: fail-open, false security
    OVER_BLOCKED = "over-blocked"      # expected to connect, blocked: fail-closed, an outage
    PROBE_ERROR = "probe error"        # the harness or the network is broken: no policy verdict
    NOT_ASSERTED = "not asserted"      # the spec leaves it undefined, or the scenario says '-'
    #: the verdict changed while the step was observed where no late programming explains it
    #: (failed, then passed, on a cell whose expectation the step did not change; a pass reached
    #: from anything but the old state; more than one change; a change in the last round): no
    #: single verdict describes the cell, so it fails the scenario
    UNSTABLE = "unstable"


class ScenarioOutcome(StrEnum):
    """The outcome of one scenario on one CNI, in pytest's words (both front ends report it)."""

    PASSED = "passed"
    FAILED = "failed"      # a verdict differs from the spec (on a CNI declared to enforce)
    XFAILED = "xfailed"    # only NOT_ENFORCED on a CNI declared not to enforce: as expected
    XPASSED = "xpassed"    # every block held on a CNI declared not to enforce: the claim is wrong
    SKIPPED = "skipped"    # the CNI lacks a capability the scenario requires
    ERROR = "error"        # the harness or the network broke: no policy verdict
    #: the scenario is wrong on this run (its table disagrees with the oracle at the real
    #: addresses, or it cannot be rendered with them): no verdict on the CNI at all
    SCENARIO_ERROR = "scenario error"

    @property
    def ok(self) -> bool:
        """Whether this outcome leaves a run's exit status at 0."""
        return self in (ScenarioOutcome.PASSED, ScenarioOutcome.XFAILED, ScenarioOutcome.SKIPPED)


class Expectation(str, Enum):
    ALLOW = "allow"
    DENY = "deny"
    UNDEFINED = "undefined"


@dataclass
class Attempt:
    """One probe attempt of one cell in one round."""

    round: int
    outcome: str
    elapsed: float
    answered_by: str | None = None
    detail: str = ""
    positive_control: bool | None = None
    #: the verdict of that round (results format v2; None in v1 files)
    verdict: str | None = None
    #: a watched cell's attempt (fault steps, format v3): when its round started, in seconds
    #: from the fault's first action (negative before it); None elsewhere
    at: float | None = None
    #: a watched cell's attempt: what the spec required when its round started
    expected: str | None = None

    def observed(self) -> float:
        """When a watched cell's attempt saw the dataplane, seconds from the fault's first
        action. One that got nothing back saw it when its round started (its first packet was
        dropped then); one that got an answer saw it by the answer (a retransmitted packet
        may have been the one that got through, up to a probe timeout after the start).
        Why not the round's start for both: rounds overlap (harness.faults.watch.Watch, lanes), so a round
        begun before a stop can answer after a later round was blocked; by its start it would
        sit before that round and split one window in two."""
        at = self.at or 0.0
        return at if self.outcome in _NOTHING_BACK else round(at + self.elapsed, 4)


#: outcomes of a probe that got nothing back: the blocked ones
_NOTHING_BACK = frozenset(o.value for o in Outcome if o.delivered is False)


@dataclass
class CellResult:
    source: str
    target: str
    port: str
    protocol: str
    expected: str
    observed: str
    verdict: str
    reason: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    dns_name: str | None = None


@dataclass
class FaultEvent:
    """One action of a fault step, with when it started and ended (seconds from the first
    action) and what the backend says it did."""

    action: str
    at: float
    ended: float
    detail: str = ""


@dataclass
class FaultWindow:
    """A run of bad attempts of one watched cell: `kind` "open" (a denied cell connected) or
    "closed" (an allowed cell was blocked). `first`/`last`: when its first and last bad
    attempts saw the dataplane (`Attempt.observed`); the window lasted at least `at_least` and
    at most `at_most` seconds (None: still bad when the watch ended); `on` is the action it
    followed."""

    kind: str
    first: float
    last: float
    at_least: float
    at_most: float | None
    attempts: int
    on: str


@dataclass
class WatchedCell:
    """One cell watched across a fault: every attempt, and what they add up to."""

    source: str
    target: str
    port: str
    protocol: str
    #: what the spec requires before the step's change, and from it on
    expected_before: str
    expected_after: str
    #: held | failed open | failed closed | failed open and closed | not observed while down |
    #: no verdict (faults.timeline: held needs a verdict inside every interval a component was
    #: down)
    status: str
    windows: list[FaultWindow] = field(default_factory=list)
    probe_errors: int = 0
    #: a cell the change alters: [at least, at most] seconds from recovery until the change
    #: held (negative: before recovery; at most None: not within the watch)
    takes_effect: list[float | None] | None = None
    attempts: list[Attempt] = field(default_factory=list)
    #: the longest time between two of its attempts that gave a verdict, by when each saw the
    #: dataplane (format v5): no window shorter than it is sure to be seen (None in older files)
    max_gap: float | None = None
    #: what the scenario requires of it across the fault (`must:`, format v5): "hold", or None
    #: (a measurement only)
    must: str | None = None
    #: that requirement: met | violated | not observed (no verdict while down, so not proven
    #: either way); None without one
    requirement: str | None = None


@dataclass
class FaultTimeline:
    """A fault step's timeline (results format v3): the actions, every watched attempt, and a
    plain sentence per finding. Times are seconds from the first action."""

    actions: list[FaultEvent]
    every: float
    watched_from: float
    watched_to: float
    rounds: int
    recovered_at: float | None = None
    change_at: float | None = None
    cells: list[WatchedCell] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    #: the longest time between two round starts: no window shorter than it is sure to be seen
    max_gap: float = 0.0


@dataclass
class StepResult:
    index: int
    title: str
    converged: bool
    converge_seconds: float | None
    rounds: int
    cells: list[CellResult] = field(default_factory=list)
    infra_error: str | None = None
    #: a fault step's timeline (None for an ordinary step)
    fault: FaultTimeline | None = None


@dataclass
class ScenarioResult:
    scenario: str
    path: str
    backend: str
    profile: str
    run_id: str
    description: str = ""
    #: a ScenarioOutcome's value, kept a plain str: results cross process boundaries (xdist's
    #: execnet, JSON files) that know no enums
    outcome: str = ScenarioOutcome.PASSED.value
    skip_reason: str | None = None
    infra_error: str | None = None
    #: the scenario itself is wrong on this run (its table disagrees with the oracle at the real
    #: addresses, or it cannot be rendered with them): no verdict on the CNI at all
    scenario_error: str | None = None
    enforcing_cluster: bool | None = None
    #: whether the CNI is declared to enforce (Capabilities.enforces); None in files before v4
    declared_enforcing: bool | None = None
    #: the canary contradicts the declaration (results.canary_contradiction): judged as the
    #: canary found
    canary_contradiction: str | None = None
    policies_accepted: int = 0
    duration: float = 0.0
    baseline: StepResult | None = None
    steps: list[StepResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ScenarioResult:
        def step(d: dict[str, Any] | None) -> StepResult | None:
            if d is None:
                return None
            cells = [CellResult(**{**c, "attempts": [Attempt(**a) for a in c.get("attempts", [])]})
                     for c in d.get("cells", [])]
            return StepResult(**{**d, "cells": cells, "fault": fault(d.get("fault"))})

        def fault(d: dict[str, Any] | None) -> FaultTimeline | None:
            if d is None:
                return None
            watched = [WatchedCell(**{**c, "windows": [FaultWindow(**w) for w in c["windows"]],
                                      "attempts": [Attempt(**a) for a in c["attempts"]]})
                       for c in d.get("cells", [])]
            return FaultTimeline(**{**d, "actions": [FaultEvent(**e) for e in d["actions"]],
                                    "cells": watched})
        return ScenarioResult(**{**data, "baseline": step(data.get("baseline")),
                                 "steps": [step(s) for s in data.get("steps", [])]})  # never None

    def verdict_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.steps:
            for c in s.cells:
                counts[c.verdict] = counts.get(c.verdict, 0) + 1
        return counts
