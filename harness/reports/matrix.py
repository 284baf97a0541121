"""Truth tables rebuilt from a step's cells: symbols, grouping by (port, protocol), differences.

Why one module: the terminal, HTML and Markdown renderers all show the same expected/observed
tables, so the mapping from result strings to symbols and the row/column order live here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from harness.results import CellResult, Expectation, ScenarioResult, StepResult, Verdict
from harness.truthtable import ALLOW, DENY, ERROR, SYMBOL_OF_EXPECTATION, UNKNOWN, UNSTABLE

EXPECTED_SYMBOLS = {e.value: s for e, s in SYMBOL_OF_EXPECTATION.items()}
CONNECTED, BLOCKED, NOT_PROBED = ALLOW, DENY, UNKNOWN

# Observed strings the runner may record, mapped to what they mean for a truth table. The
# classifier's outcome names (harness/probes.py Outcome) and the plain words are both accepted,
# so a results file stays readable if the runner records either.
_DELIVERED = {"connected", "allow", "allowed", "delivered", "dns-resolved", "dns-nxdomain",
              "resolves"}
# http-denied: an L7 proxy answered 403, which verdicts.py counts as a (layer 7) block.
_BLOCKED = {"blocked", "deny", "denied", "timeout", "dns-timeout", "dropped", "fails",
            "http-denied"}
_NOT_PROBED = {"", "not probed", "not-probed", "none", "skipped"}

LEGEND_EXPECTED = "expected: '.' must connect  'X' must be blocked  '-' not asserted"
LEGEND_OBSERVED = ("observed: '.' connected  'X' blocked  '!' probe error  '~' unstable  "
                   "'?' not probed;"
                   "  '*' marks a cell that differs")


def expected_symbol(cell: CellResult) -> str:
    """The expected table's symbol for one cell."""
    return EXPECTED_SYMBOLS.get(cell.expected, UNKNOWN)


def observed_symbol(cell: CellResult) -> str:
    """The observed table's symbol for one cell.

    A probe error is '!' whatever the tool printed: it never reads as blocked or connected. For
    a policy verdict the verdict decides (verdicts.py already weighed refusals, L7 denials and
    positive controls); only a not-asserted cell is read from the observed word.
    """
    observed = (cell.observed or "").strip().lower()
    if cell.verdict == Verdict.PROBE_ERROR.value:
        return ERROR
    if cell.verdict == Verdict.UNSTABLE.value:
        return UNSTABLE        # changed while observed: neither connected nor blocked
    if observed in _NOT_PROBED:
        return NOT_PROBED
    if cell.verdict == Verdict.NOT_ENFORCED.value:
        return CONNECTED
    if cell.verdict == Verdict.OVER_BLOCKED.value:
        return BLOCKED
    if cell.verdict == Verdict.PASS.value and cell.expected in (Expectation.ALLOW.value,
                                                                Expectation.DENY.value):
        return CONNECTED if cell.expected == Expectation.ALLOW.value else BLOCKED
    if observed in _DELIVERED:
        return CONNECTED
    if observed in _BLOCKED:
        return BLOCKED
    return ERROR


def differs(cell: CellResult) -> bool:
    """True when the cell's verdict is neither pass nor not asserted: a cell the report explains."""
    return cell.verdict not in (Verdict.PASS.value, Verdict.NOT_ASSERTED.value)


def target_label(cell: CellResult) -> str:
    """The column label: the target, or `dns:<name>` for a DNS probe."""
    return f"dns:{cell.dns_name}" if cell.dns_name else cell.target


@dataclass
class Table:
    """The cells of one step for one (port, protocol), with sources and targets in order seen."""

    port: str
    protocol: str
    sources: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str], CellResult] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.port}/{self.protocol}"

    def get(self, source: str, target: str) -> CellResult | None:
        return self.cells.get((source, target))

    def differing(self) -> list[CellResult]:
        """The cells whose verdict needs explaining, in row then column order."""
        out = []
        for s in self.sources:
            for t in self.targets:
                c = self.cells.get((s, t))
                if c is not None and differs(c):
                    out.append(c)
        return out


def tables(step: StepResult) -> list[Table]:
    """Group a step's cells into one Table per (port, protocol), in the order they appear."""
    by_key: dict[tuple[str, str], Table] = {}
    for cell in step.cells:
        key = (str(cell.port), str(cell.protocol))
        table = by_key.get(key)
        if table is None:
            table = by_key[key] = Table(port=key[0], protocol=key[1])
        target = target_label(cell)
        if cell.source not in table.sources:
            table.sources.append(cell.source)
        if target not in table.targets:
            table.targets.append(target)
        table.cells[(cell.source, target)] = cell
    for table in by_key.values():
        # Columns in row (model) order where a column is also a row: a full matrix skips the
        # self-cell, so order of appearance would put the first pod last.
        rank = {s: i for i, s in enumerate(table.sources)}
        seen = {t: i for i, t in enumerate(table.targets)}
        table.targets.sort(key=lambda t: (0, rank[t]) if t in rank else (1, seen[t]))
    return list(by_key.values())


def attempts_text(cell: CellResult) -> str:
    """The attempts, runs of identical ones folded: `r1-r4 connected 0.004-0.008s by y/b (HTTP 200)`.

    Why folded: an open cluster answers the same way every round; one line per round would bury
    the one round that differs.
    """
    groups: list[list] = []
    for a in cell.attempts:
        key = (a.outcome, a.answered_by, a.detail, a.positive_control)
        if groups and groups[-1][0] == key:
            groups[-1][1].append(a)
        else:
            groups.append([key, [a]])
    parts = []
    for (outcome, by, detail, control), runs in groups:
        first, last = runs[0], runs[-1]
        rounds = f"r{first.round}" if len(runs) == 1 else f"r{first.round}-r{last.round}"
        lo, hi = min(a.elapsed for a in runs), max(a.elapsed for a in runs)
        took = f"{lo:.3f}s" if hi - lo < 0.0005 else f"{lo:.3f}-{hi:.3f}s"
        text = f"{rounds} {outcome} {took}"
        if by:
            text += f" by {by}"
        if detail:
            text += f" ({detail})"
        if control is False:
            text += " [no positive control in that round]"
        parts.append(text)
    return ", ".join(parts) if parts else "no attempts recorded"


def cni_of(result) -> str:
    """The CNI (or local profile) a result ran on: the column of scenario x CNI summaries."""
    return result.profile or "-"


def grid(results: Iterable[ScenarioResult]
         ) -> tuple[list[str], list[str], dict[tuple[str, str], ScenarioResult]]:
    """Scenario x CNI: (scenarios in order seen, CNIs in order seen, {(scenario, cni): result})."""
    scenarios: list[str] = []
    cnis: list[str] = []
    cells: dict[tuple[str, str], ScenarioResult] = {}
    for r in results:
        if r.scenario not in scenarios:
            scenarios.append(r.scenario)
        cni = cni_of(r)
        if cni not in cnis:
            cnis.append(cni)
        cells[(r.scenario, cni)] = r
    return scenarios, cnis, cells


def fault_counts(result) -> dict[str, int]:
    """Watched cells of a result's fault steps that failed open, failed closed, and whose
    requirement (`must:`) was violated: shown beside the verdict counts whatever the outcome
    (a fault step's windows are no verdicts, and a measurement's still matter)."""
    cells = [c for s in result.steps if s.fault is not None for c in s.fault.cells]
    return {"failed open in a fault": sum(1 for c in cells
                                          if any(w.kind == "open" for w in c.windows)),
            "failed closed in a fault": sum(1 for c in cells
                                            if any(w.kind == "closed" for w in c.windows)),
            "requirement(s) violated": sum(1 for c in cells if c.requirement == "violated")}


def short_counts(result) -> str:
    """Per-verdict counts of one result, e.g. `12 pass, 4 not enforced`; zero counts omitted."""
    counts = result.verdict_counts()
    order = [v.value for v in Verdict]
    keys = [k for k in order if counts.get(k)] + sorted(k for k in counts if k not in order)
    return ", ".join(f"{counts[k]} {k}" for k in keys)


def canary_state(value) -> tuple[str, str]:
    """Normalise one CNI's canary entry of meta: ('enforcing' | 'not-enforcing' | 'unknown', detail).

    Accepts a bool, a word ("enforcing", "not enforcing"), or {"enforcing": bool, "detail": str},
    so the runner may record whichever it has.
    """
    detail = ""
    if isinstance(value, dict):
        detail = str(value.get("detail") or value.get("reason") or "")
        value = value.get("enforcing", value.get("verdict"))
    if value is True or (isinstance(value, str) and value.strip().lower() in
                         ("enforcing", "enforces", "enforced", "yes", "true")):
        return "enforcing", detail
    if value is False or (isinstance(value, str) and value.strip().lower() in
                          ("not enforcing", "not-enforcing", "open", "no", "false")):
        return "not-enforcing", detail
    return "unknown", detail or (str(value) if value not in (None, "") else "canary not run")


def verdict_class(verdict: str) -> str:
    """CSS-safe slug of a verdict: `not enforced` -> `not-enforced`."""
    return "".join(ch if ch.isalnum() else "-" for ch in (verdict or "none").lower())


def disagreements(results) -> tuple[int, int]:
    """Across the CNIs one scenario ran on: (probes whose verdict differs between CNIs, probes).

    Why: the CNI comparison's question is "where do these CNIs behave differently?"; a probe
    counts when it was not probed on every CNI or got different verdicts.
    """
    per_key: dict[tuple, list[str]] = {}
    for r in results:
        for step in r.steps:
            for c in step.cells:
                key = (step.index, c.source, target_label(c), str(c.port), str(c.protocol))
                per_key.setdefault(key, []).append(c.verdict)
    n = len(results)
    differing = sum(1 for v in per_key.values() if len(v) != n or len(set(v)) > 1)
    return differing, len(per_key)
