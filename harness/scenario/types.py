"""The data a scenario file turns into: Scenario, Step, Assume (and, from expectations.py and
policies.py, MatrixExpectation, ProbeExpectation and PolicyDoc).

Why a module of its own: the loader builds these and harness.expected reads them; with the types
here, neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.model import Model
from harness.scenario.expectations import MatrixExpectation, ProbeExpectation
from harness.scenario.policies import PolicyDoc

__all__ = ["Scenario", "Step", "Assume", "PolicyDoc", "MatrixExpectation", "ProbeExpectation"]


@dataclass(frozen=True)
class Assume:
    """`assume: {cni, why}`: the step describes one CNI's behaviour where the spec is silent."""

    cni: str
    why: str


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
