"""Compare two results files probe by probe: what changed between two runs (e.g. before and after
a CNI migration), grouped by scenario, plus the scenarios present in only one file.

Why probe by probe: a migration that keeps every scenario "passed" may still change which cells
pass; a scenario-level diff would hide a newly not-enforced cell behind an unchanged outcome.
Probes are matched by (scenario, step, source, target, port, protocol).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from harness.reports import json_report
from harness.reports import matrix as mx
from harness.results import CellResult, ScenarioResult

ProbeKey = tuple[str, str, str, str]          # source, target, port, protocol


@dataclass
class ProbeChange:
    """One probe whose verdict or observed outcome differs; `a`/`b` is None where it is missing."""

    step: int
    step_title: str
    key: ProbeKey
    a: CellResult | None
    b: CellResult | None

    def describe(self) -> str:
        src, dst, port, proto = self.key
        expected = (self.b or self.a).expected

        def side(c: CellResult | None) -> str:
            return "not probed" if c is None else f"{c.verdict} (observed {c.observed or 'nothing'})"

        where = "baseline" if self.step == 0 else f"step {self.step}"
        return (f"{where}: {src} -> {dst} {port}/{proto} expected {expected}: "
                f"{side(self.a)} -> {side(self.b)}")


@dataclass
class ScenarioChange:
    """The differences of one scenario between file A and file B."""

    scenario: str
    cni_a: str
    cni_b: str
    outcome_a: str
    outcome_b: str
    probes: list[ProbeChange] = field(default_factory=list)
    probes_compared: int = 0

    @property
    def differs(self) -> bool:
        return bool(self.probes) or self.outcome_a != self.outcome_b


@dataclass
class Comparison:
    """The result of comparing two results files."""

    a_path: str
    b_path: str
    a_meta: dict[str, Any]
    b_meta: dict[str, Any]
    scenarios: list[ScenarioChange] = field(default_factory=list)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[ScenarioChange]:
        return [s for s in self.scenarios if s.differs]

    @property
    def identical(self) -> bool:
        return not self.changed and not self.only_in_a and not self.only_in_b

    @property
    def probes_differing(self) -> int:
        return sum(len(s.probes) for s in self.scenarios)


def _cells(result: ScenarioResult) -> dict[tuple[int, ProbeKey], tuple[str, CellResult]]:
    steps = ([result.baseline] if result.baseline is not None else []) + list(result.steps)
    out = {}
    for step in steps:
        index = 0 if step is result.baseline else step.index
        for c in step.cells:
            out[(index, (c.source, mx.target_label(c), str(c.port), str(c.protocol)))] = (step.title, c)
    return out


def compare_results(a: ScenarioResult, b: ScenarioResult) -> ScenarioChange:
    """The probes of one scenario whose verdict or observed outcome differ between a and b."""
    change = ScenarioChange(a.scenario, mx.cni_of(a), mx.cni_of(b), a.outcome, b.outcome)
    cells_a, cells_b = _cells(a), _cells(b)
    keys = list(cells_a) + [k for k in cells_b if k not in cells_a]
    for key in keys:
        ta, ca = cells_a.get(key, ("", None))
        tb, cb = cells_b.get(key, ("", None))
        change.probes_compared += 1
        if ca is not None and cb is not None and (ca.verdict, ca.observed) == (cb.verdict, cb.observed):
            continue
        change.probes.append(ProbeChange(key[0], tb or ta, key[1], ca, cb))
    return change


def _pair(results_a: list[ScenarioResult], results_b: list[ScenarioResult]):
    """Match results: by scenario alone when each file ran it once (a migration changes the CNI),
    else by (scenario, CNI). Yields (label, a or None, b or None)."""
    names = [r.scenario for r in results_a] + [r.scenario for r in results_b]
    for name in dict.fromkeys(names):
        in_a = [r for r in results_a if r.scenario == name]
        in_b = [r for r in results_b if r.scenario == name]
        if len(in_a) <= 1 and len(in_b) <= 1:
            yield name, (in_a or [None])[0], (in_b or [None])[0]
            continue
        cnis = dict.fromkeys([mx.cni_of(r) for r in in_a + in_b])
        for cni in cnis:
            ra = next((r for r in in_a if mx.cni_of(r) == cni), None)
            rb = next((r for r in in_b if mx.cni_of(r) == cni), None)
            yield f"{name} [{cni}]", ra, rb


def compare(a_path: str | os.PathLike, b_path: str | os.PathLike) -> Comparison:
    """Read both results files and compare them probe by probe."""
    meta_a, results_a = json_report.read(a_path)
    meta_b, results_b = json_report.read(b_path)
    out = Comparison(str(a_path), str(b_path), meta_a, meta_b)
    for label, ra, rb in _pair(results_a, results_b):
        if ra is None:
            out.only_in_b.append(label)
        elif rb is None:
            out.only_in_a.append(label)
        else:
            out.scenarios.append(compare_results(ra, rb))
    return out


def _describe_file(path: str, meta: dict[str, Any]) -> str:
    cnis = meta.get("cnis")
    cnis = ", ".join(map(str, cnis)) if isinstance(cnis, (list, tuple)) else (cnis or "?")
    return f"{path} (run {meta.get('run_id', '?')}, backend {meta.get('backend', '?')}, CNIs {cnis})"


def render(cmp: Comparison) -> str:
    """The comparison as text: one block per changed scenario, then one-sided scenarios, a total."""
    lines = [f"A: {_describe_file(cmp.a_path, cmp.a_meta)}",
             f"B: {_describe_file(cmp.b_path, cmp.b_meta)}"]
    for s in cmp.changed:
        cni = s.cni_a if s.cni_a == s.cni_b else f"{s.cni_a} -> {s.cni_b}"
        outcome = s.outcome_a if s.outcome_a == s.outcome_b else f"{s.outcome_a} -> {s.outcome_b}"
        lines.append(f"{s.scenario} [{cni}]: {outcome}, {len(s.probes)} of {s.probes_compared} "
                     f"probes differ")
        lines.extend(f"  {p.describe()}" for p in s.probes)
    for label, names in (("only in A", cmp.only_in_a), ("only in B", cmp.only_in_b)):
        if names:
            lines.append(f"{label}: {', '.join(names)}")
    compared = sum(s.probes_compared for s in cmp.scenarios)
    if cmp.identical:
        lines.append(f"identical: {len(cmp.scenarios)} scenario(s), {compared} probe(s) compared, "
                     f"no verdict or observed outcome differs")
    else:
        lines.append(f"different: {cmp.probes_differing} of {compared} probe(s) differ in "
                     f"{len(cmp.changed)} scenario(s); {len(cmp.only_in_a)} only in A, "
                     f"{len(cmp.only_in_b)} only in B")
    return "\n".join(lines)
