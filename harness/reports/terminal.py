"""Terminal rendering: failing scenarios as side-by-side truth tables, the scenario x CNI summary,
and the banner for clusters that do not enforce.

Why pure (results in, str out): the pytest plugin, `python -m harness run` and the tests all call
the same functions; whether to colour is the caller's decision (`color=` True on a tty).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

from harness.reports import matrix as mx
from harness.results import (
    BANNER,
    CellResult,
    FaultTimeline,
    ScenarioOutcome,
    ScenarioResult,
    StepResult,
    Verdict,
)

_RESET = "\x1b[0m"
_COLOURS = {
    Verdict.NOT_ENFORCED.value: "\x1b[1;31m",   # red: fail-open, false security
    Verdict.OVER_BLOCKED.value: "\x1b[1;33m",   # yellow/orange: fail-closed, an outage
    Verdict.PROBE_ERROR.value: "\x1b[1;35m",    # magenta: the harness or network is broken
    Verdict.UNSTABLE.value: "\x1b[1;36m",       # cyan: flapping, no single verdict
    Verdict.PASS.value: "\x1b[32m",
}
VERDICT_WORDS = {
    Verdict.NOT_ENFORCED.value: "NOT ENFORCED",
    Verdict.OVER_BLOCKED.value: "OVER-BLOCKED",
    Verdict.PROBE_ERROR.value: "PROBE ERROR",
    Verdict.UNSTABLE.value: "UNSTABLE",
    Verdict.PASS.value: "pass",
    Verdict.NOT_ASSERTED.value: "not asserted",
}
# Labels longer than this turn the table header into column numbers plus a key line, so that
# tables with names like `prod/frontend` stay narrow enough to sit side by side.
_MAX_HEADER_LABEL = 5


def _paint(text: str, verdict: str, color: bool) -> str:
    code = _COLOURS.get(verdict) if color else None
    return f"{code}{text}{_RESET}" if code else text


def _side_by_side(table: mx.Table, color: bool) -> list[str]:
    """The expected and observed tables of one (port, protocol), next to each other."""
    numbered = any(len(t) > _MAX_HEADER_LABEL for t in table.targets)
    heads = [str(i + 1) if numbered else t for i, t in enumerate(table.targets)]
    colw = max([len(h) for h in heads] + [1]) + 1          # +1: room for the '*' marker
    roww = max([len(s) for s in table.sources] + [len(table.title)])
    block = max(len(heads) * (colw + 1), len("expected") + 1)

    def row_cells(source: str, observed: bool) -> str:
        out = []
        for target in table.targets:
            cell = table.get(source, target)
            if cell is None:
                sym, mark, verdict = " ", " ", ""
            elif observed:
                sym, verdict = mx.observed_symbol(cell), cell.verdict
                mark = "*" if mx.differs(cell) else " "
            else:
                sym, mark, verdict = mx.expected_symbol(cell), " ", ""
            paint = cell is not None and color and observed and mx.differs(cell)
            out.append(_paint(sym + mark, verdict, paint) + " " * (colw - 2))
        visible = len(heads) * (colw + 1)
        return " ".join(out) + " " + " " * (block - visible)

    header = (" ".join(h.ljust(colw) for h in heads) + " ").ljust(block)
    lines = [f"  {table.title.ljust(roww)}  {'expected'.ljust(block)}   observed",
             f"  {''.ljust(roww)}  {header}   {header}"]
    for source in table.sources:
        lines.append(f"  {source.ljust(roww)}  {row_cells(source, False)}   {row_cells(source, True)}")
    if numbered:
        key = "  ".join(f"{i + 1}={t}" for i, t in enumerate(table.targets))
        lines.append(f"  {''.ljust(roww)}  columns: {key}")
    return [line.rstrip() for line in lines]


def render_cell(cell: CellResult, color: bool = False) -> str:
    """One line per differing cell: verdict, expected and observed, the attempts, the reason."""
    word = VERDICT_WORDS.get(cell.verdict, cell.verdict.upper())
    where = f"{cell.source} -> {mx.target_label(cell)} {cell.port}/{cell.protocol}"
    line = (f"    {_paint(word.ljust(12), cell.verdict, color)}  {where}: expected {cell.expected}, "
            f"observed {cell.observed or 'nothing'} [{mx.attempts_text(cell)}]")
    return line + (f"; why: {cell.reason}" if cell.reason else "")


def _step_heading(step: StepResult, name: str) -> str:
    if step.converged:
        took = f"{step.converge_seconds:.1f}s" if step.converge_seconds is not None else "?"
        state = f"converged in {took}, {step.rounds} round(s)"
    else:
        state = f"did NOT converge after {step.rounds} round(s)"
    title = f" {step.title}" if step.title else ""
    return f"{name} {step.index}:{title} ({state})"


def render_step(step: StepResult, name: str = "step", color: bool = False,
                max_cells: int | None = None) -> list[str]:
    """A step with differing cells: its tables side by side, then one explanation per cell.

    `max_cells` caps the explanation lines per table (None: all); the tables always show every
    cell, and the line that replaces the rest says how many were left out.
    """
    lines = [_step_heading(step, name)]
    if step.infra_error:
        lines.append(f"  infrastructure error (no policy verdict): {step.infra_error}")
    for table in mx.tables(step):
        cells = table.differing()
        if not cells:
            continue
        lines.extend(_side_by_side(table, color))
        shown = cells if max_cells is None else cells[:max_cells]
        lines.extend(render_cell(cell, color) for cell in shown)
        if len(shown) < len(cells):
            lines.append(f"    ... {len(cells) - len(shown)} more differing cell(s) in "
                         f"{table.title}: every one is in the JSON and HTML reports")
    return lines


#: one symbol per watched attempt in a fault timeline's strip
_STRIP = {Verdict.PASS.value: ".", Verdict.NOT_ENFORCED.value: "O", Verdict.OVER_BLOCKED.value: "C",
          Verdict.PROBE_ERROR.value: "?", Verdict.NOT_ASSERTED.value: "-"}
STRIP_LEGEND = ("strip: one symbol per attempt in time order, '|' an action: '.' as the spec says, "
                "'O' failed open (a denied cell connected), 'C' failed closed (an allowed cell "
                "was blocked), '?' probe error, '-' not asserted")


def render_timeline(tl: FaultTimeline, title: str = "") -> list[str]:
    """A fault step's timeline: the actions, one strip per watched cell, its windows, and the
    step's sentences. Times are seconds from the first action."""
    lines = [f"  fault timeline{' of ' + title if title else ''}: {tl.rounds} rounds from "
             f"{tl.watched_from:+.2f}s to {tl.watched_to:+.2f}s, at most {tl.max_gap:.2f}s apart "
             f"(t=0: the first action)"]
    for a in tl.actions:
        lines.append(f"    {a.at:+7.2f}s to {a.ended:+.2f}s  {a.action}"
                     + (f": {a.detail}" if a.detail else ""))
    for c in tl.cells:
        spec = c.expected_before if c.expected_before == c.expected_after else \
            f"{c.expected_before}, {c.expected_after} from the change"
        must = f", must {c.must}" if c.must is not None else ""
        lines.append(f"    {c.source} -> {c.target} {c.port}/{c.protocol} (spec: {spec}{must}): "
                     f"{c.status.upper() if c.status != 'held' else c.status}"
                     + (f", {c.probe_errors} probe error(s)" if c.probe_errors else "")
                     + (f"; requirement {c.requirement.upper()}"
                        if c.requirement not in (None, "met") else
                        "; requirement met" if c.requirement == "met" else ""))
        marks = sorted([(a.at, 0, "|") for a in tl.actions]
                       + [(x.observed(), 1, _STRIP.get(x.verdict or "", "?")) for x in c.attempts])
        lines.append("      " + "".join(m for _, _, m in marks))
        for w in c.windows:
            span = (f"{w.at_least:.2f}-{w.at_most:.2f}s" if w.at_most is not None
                    else f"at least {w.at_least:.2f}s, still when the watch ended")
            lines.append(f"      failed {w.kind} {span} on {w.on}: {w.attempts} bad attempt(s) "
                         f"from {w.first:+.2f}s to {w.last:+.2f}s")
        if c.takes_effect is not None:
            lo, hi = c.takes_effect
            lines.append(f"      the change held from {lo:+.2f}s to "
                         + (f"{hi:+.2f}s" if hi is not None else "beyond the watch")
                         + " after recovery")
    lines.extend(f"  verdict: {v}" for v in tl.verdicts)
    lines.append(f"  {STRIP_LEGEND}")
    return lines


def render_timelines(result: ScenarioResult) -> list[str]:
    """Every fault step's timeline of one result, headed by the scenario and CNI."""
    lines = []
    for step in result.steps:
        if step.fault is not None:
            lines.append(f"{result.scenario} [{mx.cni_of(result)}] step {step.index}: {step.title}")
            lines.extend(render_timeline(step.fault))
    return lines


def render_failure(result: ScenarioResult, color: bool = False,
                   max_cells: int | None = None) -> str:
    """Everything a reader needs to see why one scenario on one CNI failed (or failed as expected).

    Why `max_cells`: a full conformance matrix on a CNI that enforces nothing has hundreds of
    differing cells per step; a terminal reader may want the tables and the first few reasons.
    """
    counts = mx.short_counts(result) or "no probes"
    lines = [f"{result.outcome.upper()} {result.scenario} [{mx.cni_of(result)}] on backend "
             f"{result.backend}, run {result.run_id}: {counts}",
             f"  file: {result.path}",
             f"  policies accepted by the API: {result.policies_accepted}"]
    if result.enforcing_cluster is False:
        lines.append("  the enforcement canary says this cluster does NOT enforce NetworkPolicy")
    if result.canary_contradiction:
        lines.append(f"  WARNING: {result.canary_contradiction}")
    if result.scenario_error:
        lines.append(f"  scenario error (the file is wrong here; no verdict on the CNI): "
                     f"{result.scenario_error}")
    failed = result.outcome == ScenarioOutcome.FAILED
    if result.infra_error:
        when = "the failures shown were proven before it" if failed else "no policy verdict"
        lines.append(f"  infrastructure error ({when}): {result.infra_error}")
    errors = result.verdict_counts().get(Verdict.PROBE_ERROR.value, 0)
    if failed and errors:
        lines.append(f"  {errors} probe error(s) beside the failure: those cells gave no verdict "
                     "either way")
    if result.skip_reason:
        lines.append(f"  skipped: {result.skip_reason}")
    if result.baseline is not None and (result.baseline.infra_error
                                        or any(mx.differs(c) for c in result.baseline.cells)):
        lines.extend(render_step(result.baseline, "baseline", color, max_cells))
    for step in result.steps:
        if step.infra_error or any(mx.differs(c) for c in step.cells):
            lines.extend(render_step(step, "step", color, max_cells))
        else:
            lines.append(_step_heading(step, "step") + ": every probe as expected")
        if step.fault is not None:
            lines.extend(render_timeline(step.fault))
    lines.append(f"  {mx.LEGEND_EXPECTED}")
    lines.append(f"  {mx.LEGEND_OBSERVED}")
    return "\n".join(lines)


SUMMARY_LEGEND = [
    "counts: pass / not enforced (fail-open) / over-blocked (fail-closed) / probe error, and "
    "'+N unstable' for cells whose verdict changed while observed where no late programming "
    "explains it (never a pass), '+N failed open in a fault' / '+N failed closed in a fault' for "
    "watched cells of fault steps (whatever the scenario requires) and '+N requirement(s) "
    "violated' for those it required to hold",
    "passed: every probe as the spec says; failed: some probe not (proven: probe errors are counted "
    "beside it, never hide it); xfailed: failed as expected on a CNI declared not to enforce; "
    "xpassed: that CNI enforced after all (strict: reported); error: infrastructure broken or a "
    "probe error, and no failure proven; scenario error: the scenario disagrees with "
    "the oracle at the run's addresses (or cannot be rendered with them), no verdict on the CNI",
]


def _summary_cell(result: ScenarioResult | None) -> str:
    if result is None:
        return "-"
    c = result.verdict_counts()
    nums = "/".join(str(c.get(v.value, 0)) for v in (Verdict.PASS, Verdict.NOT_ENFORCED,
                                                     Verdict.OVER_BLOCKED, Verdict.PROBE_ERROR))
    unstable = c.get(Verdict.UNSTABLE.value, 0)
    nums += f" +{unstable} unstable" if unstable else ""
    nums += "".join(f" +{n} {what}" for what, n in mx.fault_counts(result).items() if n)
    return f"{result.outcome} {nums}" if result.outcome != ScenarioOutcome.SKIPPED else "skipped"


def render_summary(results: list[ScenarioResult]) -> str:
    """Scenario x CNI table with the outcome and per-verdict counts in each cell, and a legend."""
    scenarios, cnis, cells = mx.grid(results)
    if not scenarios:
        return "netpol-proof: no scenario results"
    table = [[s] + [_summary_cell(cells.get((s, c))) for c in cnis] for s in scenarios]
    header = ["scenario"] + cnis
    widths = [max(len(row[i]) for row in table + [header]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip()

    lines = ["netpol-proof summary (scenario x CNI)", fmt(header),
             fmt(["-" * w for w in widths])]
    lines.extend(fmt(row) for row in table)
    totals: dict[str, int] = {}
    for r in results:
        totals[r.outcome] = totals.get(r.outcome, 0) + 1
    lines.append("total: " + ", ".join(f"{n} {k}" for k, n in sorted(totals.items())))
    for text in SUMMARY_LEGEND:
        lines.extend(textwrap.wrap(text, 100, subsequent_indent="  "))
    return "\n".join(lines)


def render_banner(text: str = BANNER, width: int = 78) -> str:
    """A framed, wrapped warning that cannot be overlooked at the top and bottom of a run."""
    inner = width - 6
    body = textwrap.wrap(text, inner) or [""]
    rule = "!" * width
    return "\n".join([rule] + [f"!! {line.ljust(inner)} !!" for line in body] + [rule])


def render_banners(canaries: dict[str, dict]) -> list[str]:
    """The banner for each CNI whose canary found it not enforcing, and for each whose canary
    contradicts its declaration (`canaries`: run meta form)."""
    out = []
    for cni, meta in canaries.items():
        if meta.get("enforcing") is False:
            out.append(render_banner(f"{cni}: {BANNER}"))
        if meta.get("contradiction"):
            out.append(render_banner(str(meta["contradiction"])))
    return out


def render_dataplanes(dataplanes: Mapping[str, str]) -> list[str]:
    """One line per CNI saying exactly what ran (its backend's own `describe()`): real
    components with their versions, or an emulated dataplane; never just "a cluster"."""
    return [f"what ran on {cni}: {what}" for cni, what in dataplanes.items()]
