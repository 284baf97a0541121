"""The data a scenario file turns into: Scenario, Step, Assume (and, from expectations.py and
policies.py, MatrixExpectation, ProbeExpectation and PolicyDoc).

Why a module of its own: the loader builds these and harness.expected reads them; with the types
here, neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from harness.faults import kinds
from harness.faults.kinds import FaultKind, Target
from harness.model import Addresses, Model, Protocol
from harness.scenario.expectations import MatrixExpectation, ProbeExpectation
from harness.scenario.needs import derived_needs
from harness.scenario.policies import PolicyDoc

__all__ = ["Scenario", "Step", "Assume", "PolicyDoc", "MatrixExpectation", "ProbeExpectation",
           "Fault", "FaultAction", "WatchCell"]


@dataclass(frozen=True)
class Assume:
    """`assume: {cni, why}`: the step describes one CNI's behaviour where the spec is silent."""

    cni: str
    why: str


@dataclass(frozen=True)
class FaultAction:
    """One action of a `fault:` (docs/scenarios.md, "Fault steps").

    `kind` says what it does (harness.faults.kinds: stop, kill, start, restart, kill-restart of
    `target`, or the step's own wait and change). `node` is the 1-based node number, None for
    every node; `seconds` is a wait's length, or how long a timed target (the API server) stays
    down.
    """

    kind: FaultKind
    target: Target | None = None
    node: int | None = None
    seconds: float = 0.0
    line: int = 0

    @property
    def backend_action(self) -> str:
        """What Backend.fault is asked to do (`kill-restart` for a restart with signal
        KILL)."""
        return self.kind.name

    @property
    def label(self) -> str:
        """`stop engine on node 1`, `wait 2 s`, `stop apiserver for 5 s`, `change`."""
        return kinds.label(self.kind, self.target, self.node, self.seconds)


@dataclass(frozen=True)
class WatchCell:
    """One connection watched across a fault; the oracle says what it must do before and
    after the step's change. `must` is what the user requires of it across the fault
    (`hold`; None: the timeline is a measurement only)."""

    source: str
    target: str
    port: int | str
    protocol: Protocol
    field: str = ""
    line: int = 0
    must: str | None = None


@dataclass(frozen=True)
class Fault:
    """A step's `fault:`: its actions in order and the cells probed in rounds `every` seconds
    apart from `before` seconds before the first action until `after` seconds after the last."""

    actions: tuple[FaultAction, ...]
    watch: tuple[WatchCell, ...]
    every: float = 0.5
    before: float = 1.0
    after: float = 3.0
    line: int = 0

    @property
    def targets(self) -> frozenset[Target]:
        return frozenset(a.target for a in self.actions if a.target)

    @property
    def needs(self) -> frozenset[str]:
        """The capabilities its actions need (harness.faults.kinds.needs): engine-fault for any
        engine action, apiserver-fault for an API server outage, and engine-hold for an engine
        held down between actions (stop, kill, start): a restart alone never holds it down."""
        return frozenset(n for a in self.actions for n in kinds.needs(a.kind, a.target))


@dataclass(frozen=True)
class Step:
    index: int
    title: str
    namespace_labels: dict
    pod_labels: dict
    apply: tuple[PolicyDoc, ...]
    delete: tuple[str, ...]
    expect: tuple[MatrixExpectation, ...]
    probes: tuple[ProbeExpectation, ...]
    assume: Assume | None
    line: int = 0
    #: a fault step's actions and watched cells (None: an ordinary step)
    fault: Fault | None = None

    @property
    def has_expectations(self) -> bool:
        return bool(self.expect or self.probes)


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    description: str
    requires: tuple[str, ...]
    model: Model
    steps: tuple[Step, ...]
    source_lines: tuple[str, ...] = ()

    @cached_property
    def needs(self) -> tuple[str, ...]:
        """`requires:`, what its fault steps' actions need (Fault.needs) and what its content
        needs (needs.derived_needs, with the model's stand-in addresses): what a backend must
        declare to run it, as data, so a backend lacking any skips the scenario with the
        reason, whether or not `requires:` names it."""
        return self.needs_at(None)

    def needs_at(self, addresses: Addresses | None) -> tuple[str, ...]:
        """`needs` with the policies rendered at `addresses` (a run's real ones: an ipBlock
        may hold pod IPs there and not at the stand-ins, or the reverse)."""
        derived = {n for s in self.steps if s.fault is not None for n in s.fault.needs}
        derived |= set(derived_needs(self.model, self.steps, addresses))
        return tuple(sorted(set(self.requires) | derived))
