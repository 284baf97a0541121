"""Compare two results files cell by cell: what flipped between two runs (e.g. before and after a
CNI migration) and why, grouped by scenario, with the cells that did not flip counted.

Why cell by cell: a migration that keeps every scenario "passed" may still change which cells
pass; a scenario-level diff would hide a newly not-enforced cell behind an unchanged outcome.
Cells are matched by (scenario, step, source, target, port, protocol).

Why "why": a flip says that traffic changed; the oracle's reason for the cell says whether the
change is the policy taking effect (a connection the policy denies, now blocked) or a break (a
connection it allows, now blocked). Each differing cell carries that reason as `explain` tells
it, re-derived from the scenario file when the file still decides the cell exactly as the run
recorded it, else as the run recorded it (and said so).

A partial file (one its run rewrote as it went, or left when it was stopped or killed: format v6,
json_report.Progress) is compared on the scenarios both files hold; it is said plainly which file
is partial and which scenarios it had not finished, and the two are never called identical (a
scenario a run did not finish is no pass).

Two files are refused (MismatchError) when they are not two runs of the same scenarios: written
in different results formats (different versions of netpol-proof judge by different rules), no
scenario in common, or a scenario whose steps differ (the file changed between the runs, so its
cells cannot be matched step by step).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.reports import json_report
from harness.reports import matrix as mx
from harness.results import CellResult, Expectation, ScenarioResult, Verdict

ProbeKey = tuple[str, str, str, str]          # source, target, port, protocol

#: the verdicts whose recorded reason is "<the judgement> (spec: <the oracle's reasons>)"
#: (plan.Cell.result)
_JUDGED_APART = (Verdict.PROBE_ERROR.value, Verdict.UNSTABLE.value)
_SPEC = " (spec: "


class MismatchError(json_report.ResultsFileError):
    """Two readable results files that are not two runs of the same scenarios."""


def spec_reason(cell: CellResult) -> str:
    """The oracle's reasons for a cell as the run recorded them (without a probe error's or an
    unstable cell's own reason, which plan.Cell.result writes in front of them)."""
    if cell.verdict in _JUDGED_APART and _SPEC in cell.reason and cell.reason.endswith(")"):
        return cell.reason.split(_SPEC, 1)[1][:-1]
    return cell.reason


def judgement_reason(cell: CellResult) -> str:
    """A probe error's or an unstable cell's own reason (empty for any other verdict)."""
    if cell.verdict in _JUDGED_APART:
        return cell.reason.split(_SPEC, 1)[0]
    return ""


@dataclass
class ProbeChange:
    """One cell whose verdict or observed outcome differs; `a`/`b` is None where it is missing.
    `why`: the oracle's reason for the cell, as `explain` tells it (one entry), or one per side
    when the two runs recorded different reasons."""

    step: int
    step_title: str
    key: ProbeKey
    a: CellResult | None
    b: CellResult | None
    why: list[str] = field(default_factory=list)

    @property
    def flipped(self) -> bool:
        """True when the verdict changed (or the cell was probed on one side only); False when
        only the observed outcome did (e.g. a not-asserted cell that connected, then not)."""
        return self.a is None or self.b is None or self.a.verdict != self.b.verdict

    @property
    def expected(self) -> str:
        either = self.b or self.a
        return either.expected if either else ""

    @property
    def flip(self) -> str:
        """`<verdict before> -> <verdict after>`, `not probed` for a missing side."""
        return f"{verdict_of(self.a)} -> {verdict_of(self.b)}"

    def where(self) -> str:
        title = f" ({self.step_title})" if self.step_title else ""
        return ("baseline" if self.step == 0 else f"step {self.step}") + title

    def cell(self) -> str:
        src, dst, port, proto = self.key
        return f"{src} -> {dst} {port}/{proto}"

    def describe(self) -> str:
        """One line: where, the cell, what the spec requires, before -> after."""
        return (f"{self.where()}: {self.cell()} expected {self.expected}: "
                f"{side(self.a)} -> {side(self.b)}")


def verdict_of(c: CellResult | None) -> str:
    return "not probed" if c is None else c.verdict


def side(c: CellResult | None) -> str:
    """One side of a change: the verdict, what was observed, and a probe error's own reason."""
    if c is None:
        return "not probed"
    own = judgement_reason(c)
    return f"{c.verdict} (observed {c.observed or 'nothing'}{': ' + own if own else ''})"


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
    #: the cells that did not change, counted by verdict
    unchanged: dict[str, int] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return bool(self.probes) or self.outcome_a != self.outcome_b

    @property
    def label(self) -> str:
        cni = self.cni_a if self.cni_a == self.cni_b else f"{self.cni_a} -> {self.cni_b}"
        return f"{self.scenario} [{cni}]"

    @property
    def outcome(self) -> str:
        return self.outcome_a if self.outcome_a == self.outcome_b else \
            f"{self.outcome_a} -> {self.outcome_b}"


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
    progress_a: json_report.Progress = json_report.Progress(None)
    progress_b: json_report.Progress = json_report.Progress(None)

    @property
    def changed(self) -> list[ScenarioChange]:
        return [s for s in self.scenarios if s.differs]

    @property
    def partial(self) -> list[str]:
        """Which files are partial: "A", "B", both or neither."""
        return [n for n, p in (("A", self.progress_a), ("B", self.progress_b)) if p.partial]

    @property
    def identical(self) -> bool:
        """No cell differs, no scenario is in one file only, and neither file is partial."""
        return not self.changed and not self.only_in_a and not self.only_in_b \
            and not self.partial

    def missing(self, label: str, side: str) -> str:
        """Why a scenario is only in the other file: `not finished in <side>` when that side is
        partial and lists it unfinished (or cannot say which it had not finished), else ''."""
        progress = self.progress_a if side == "A" else self.progress_b
        if not progress.partial:
            return ""
        name = label.split(" [", 1)[0]
        if progress.unfinished is None or any(n == name for n, _ in progress.unfinished):
            return f"not finished in {side}: its run was partial"
        return ""

    @property
    def probes_differing(self) -> int:
        return sum(len(s.probes) for s in self.scenarios)

    def flips(self) -> dict[str, int]:
        """How many cells flipped each way (`not enforced -> pass`: 12), most first."""
        out: dict[str, int] = {}
        for s in self.scenarios:
            for p in s.probes:
                if p.flipped:
                    out[p.flip] = out.get(p.flip, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def unchanged(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.scenarios:
            for verdict, n in s.unchanged.items():
                out[verdict] = out.get(verdict, 0) + n
        return out


def _cells(result: ScenarioResult) -> dict[tuple[int, ProbeKey], tuple[str, CellResult]]:
    steps = ([result.baseline] if result.baseline is not None else []) + list(result.steps)
    out = {}
    for step in steps:
        index = 0 if step is result.baseline else step.index
        for c in step.cells:
            out[(index, (c.source, mx.target_label(c), str(c.port), str(c.protocol)))] = (step.title, c)
    return out


class Reasons:
    """The oracle's reason for a cell of a result, as `explain` tells it.

    Re-derived from the scenario file at the result's `path` (its oracle at the step, at the
    addresses the scenario plans) only when that oracle decides the cell exactly as the run
    recorded it (same expectation, same reasons): a file edited since the run, or a reason that
    names the run's real addresses, falls back to the reasons the run recorded, marked so."""

    RECORDED = "(as the run recorded it)"

    def __init__(self) -> None:
        self._scenarios: dict[str, Any] = {}
        self._oracles: dict[tuple[str, int], Any] = {}

    def _oracle(self, path: str, step: int) -> Any:
        # imported when needed: reading a results file must not need the scenario loader
        from harness.expected import oracle_at
        from harness.scenario import load_scenario

        if path not in self._scenarios:
            try:
                self._scenarios[path] = load_scenario(path)
            except (HarnessError, OSError, ValueError):
                self._scenarios[path] = None
        scenario = self._scenarios[path]
        if scenario is None or not 1 <= step <= len(scenario.steps):
            return None
        if (path, step) not in self._oracles:
            try:
                self._oracles[(path, step)] = oracle_at(scenario, step - 1)
            except (HarnessError, KeyError, ValueError):
                self._oracles[(path, step)] = None
        return self._oracles[(path, step)]

    def explained(self, result: ScenarioResult, step: int, cell: CellResult) -> str | None:
        """`explain`'s paragraph for the cell, or None when the file cannot say it as the run
        decided it."""
        from harness.explain import explain
        from harness.model import Protocol

        oracle = self._oracle(result.path, step) if step > 0 else None
        if oracle is None:
            return None
        try:
            if cell.dns_name:
                decision = oracle.decide_dns(cell.source, cell.dns_name)
                text = explain(decision, cell.source, f"dns {cell.dns_name}", 53, Protocol.UDP)
            else:
                decision = oracle.decide(cell.source, cell.target, cell.port,
                                         Protocol.parse(cell.protocol))
                text = explain(decision, cell.source, cell.target, cell.port, cell.protocol)
        except (HarnessError, KeyError, ValueError):
            return None
        same = (decision.expectation.value == cell.expected
                and "; ".join(r.text for r in decision.reasons) == spec_reason(cell))
        return text if same else None

    def of(self, result: ScenarioResult, step: int, cell: CellResult) -> str:
        """The reason for one cell: explained, else as recorded (said so)."""
        text = self.explained(result, step, cell)
        if text is not None:
            return text
        from harness.explain import VERDICT_WORDS

        try:
            word = VERDICT_WORDS[Expectation(cell.expected)]
        except ValueError:
            word = cell.expected
        target = f"dns {cell.dns_name}" if cell.dns_name else cell.target
        return (f"{cell.source} -> {target} on {cell.protocol} {cell.port}: {word}. "
                f"{spec_reason(cell)} {self.RECORDED}")


def _why(reasons: Reasons, ra: ScenarioResult, rb: ScenarioResult, step: int,
         ca: CellResult | None, cb: CellResult | None) -> list[str]:
    wa = reasons.of(ra, step, ca) if ca is not None else None
    wb = reasons.of(rb, step, cb) if cb is not None else None
    if wa is None or wb is None or wa == wb:
        return [w for w in (wa or wb,) if w]
    return [f"before: {wa}", f"after: {wb}"]


def compare_results(a: ScenarioResult, b: ScenarioResult,
                    reasons: Reasons | None = None) -> ScenarioChange:
    """The cells of one scenario whose verdict or observed outcome differ between a and b, each
    with the oracle's reason; the others counted by verdict."""
    reasons = reasons or Reasons()
    change = ScenarioChange(a.scenario, mx.cni_of(a), mx.cni_of(b), a.outcome, b.outcome)
    cells_a, cells_b = _cells(a), _cells(b)
    keys = list(cells_a) + [k for k in cells_b if k not in cells_a]
    for key in keys:
        ta, ca = cells_a.get(key, ("", None))
        tb, cb = cells_b.get(key, ("", None))
        change.probes_compared += 1
        if ca is not None and cb is not None and (ca.verdict, ca.observed) == (cb.verdict, cb.observed):
            change.unchanged[ca.verdict] = change.unchanged.get(ca.verdict, 0) + 1
            continue
        change.probes.append(ProbeChange(key[0], tb or ta, key[1], ca, cb,
                                         _why(reasons, a, b, key[0], ca, cb)))
    return change


def _pair(results_a: list[ScenarioResult], results_b: list[ScenarioResult]):
    """Match results: by scenario alone when each file ran it once (a migration changes the CNI),
    else by (scenario, CNI). Yields (label, a or None, b or None)."""
    names = [r.scenario for r in results_a] + [r.scenario for r in results_b]
    for name in dict.fromkeys(names):
        in_a = [r for r in results_a if r.scenario == name]
        in_b = [r for r in results_b if r.scenario == name]
        if len(in_a) <= 1 and len(in_b) <= 1:
            yield name, (in_a[0] if in_a else None), (in_b[0] if in_b else None)
            continue
        cnis = dict.fromkeys([mx.cni_of(r) for r in in_a + in_b])
        for cni in cnis:
            ra = next((r for r in in_a if mx.cni_of(r) == cni), None)
            rb = next((r for r in in_b if mx.cni_of(r) == cni), None)
            yield f"{name} [{cni}]", ra, rb


def _steps(result: ScenarioResult) -> list[str]:
    return [s.title for s in result.steps]


def _check_comparable(a: str, b: str, format_a: str, format_b: str,
                      results_a: list[ScenarioResult], results_b: list[ScenarioResult],
                      progress: tuple[json_report.Progress, json_report.Progress] | None = None
                      ) -> None:
    """MismatchError, naming the file and what is wrong, when a and b are not two runs of the
    same scenarios."""
    if format_a != format_b:
        raise MismatchError(
            f"{a} is format {format_a!r} and {b} is format {format_b!r}: files written by different "
            f"versions of netpol-proof were judged by different rules, so a flip between them may "
            f"be the harness, not the cluster; run both with one version (this one writes "
            f"{json_report.FORMAT!r})")
    progress = progress or (json_report.Progress(None), json_report.Progress(None))
    for path, results, prog in ((a, results_a, progress[0]), (b, results_b, progress[1])):
        if not results:
            why = f" ({prog.sentence()})" if prog.partial else ""
            raise MismatchError(f"{path}: holds no scenario results{why}; nothing to compare")
    names_a = {r.scenario for r in results_a}
    names_b = {r.scenario for r in results_b}
    if not names_a & names_b:
        raise MismatchError(
            f"{a} and {b} have no scenario in common ({a}: {', '.join(sorted(names_a))}; "
            f"{b}: {', '.join(sorted(names_b))}): compare two runs of the same scenarios")
    for ra in results_a:
        for rb in results_b:
            if ra.scenario != rb.scenario:
                continue
            sa, sb = _steps(ra), _steps(rb)
            for i, (ta, tb) in enumerate(zip(sa, sb, strict=False), 1):
                if ta != tb:
                    raise MismatchError(
                        f"scenario {ra.scenario}: step {i} is {ta!r} in {a} ({ra.path}) but "
                        f"{tb!r} in {b} ({rb.path}): the scenario file changed between the "
                        f"runs, so its cells cannot be matched step by step; run both with the "
                        f"same file")


def compare(a_path: str | os.PathLike, b_path: str | os.PathLike) -> Comparison:
    """Read both results files and compare them cell by cell (MismatchError, a ResultsFileError,
    when they are not two runs of the same scenarios)."""
    format_a, meta_a, results_a = json_report.read_versioned(a_path)
    format_b, meta_b, results_b = json_report.read_versioned(b_path)
    progress = (json_report.progress(meta_a), json_report.progress(meta_b))
    _check_comparable(str(a_path), str(b_path), format_a, format_b, results_a, results_b, progress)
    out = Comparison(str(a_path), str(b_path), meta_a, meta_b, progress_a=progress[0],
                     progress_b=progress[1])
    reasons = Reasons()
    for label, ra, rb in _pair(results_a, results_b):
        if ra is None:
            out.only_in_b.append(label)
        elif rb is None:
            out.only_in_a.append(label)
        else:
            out.scenarios.append(compare_results(ra, rb, reasons))
    return out


def _describe_file(path: str, meta: dict[str, Any]) -> str:
    cnis = meta.get("cnis")
    cnis = ", ".join(map(str, cnis)) if isinstance(cnis, (list, tuple)) else (cnis or "?")
    return f"{path} (run {meta.get('run_id', '?')}, backend {meta.get('backend', '?')}, CNIs {cnis})"


def counts_text(counts: dict[str, int]) -> str:
    """`30 pass, 4 not asserted`: counts by verdict in the verdicts' order."""
    order = [v.value for v in Verdict]
    keys = sorted(counts, key=lambda v: (order.index(v) if v in order else len(order), v))
    return ", ".join(f"{counts[k]} {k}" for k in keys) or "none"


#: what a flip of verdict means, for the kinds a migration shows (others are shown bare)
FLIP_MEANING = {
    "not enforced -> pass": "denied by the policies: flowed before, blocked after; the "
                            "policies take effect, and whatever relied on it stops working",
    "pass -> not enforced": "denied by the policies: blocked before, flows after; enforcement "
                            "lost, false security",
    "pass -> over-blocked": "allowed by the policies: flowed before, blocked after; an outage "
                            "no policy asks for",
    "over-blocked -> pass": "allowed by the policies: blocked before, flows after",
}


def flip_text(flip: str, n: int) -> str:
    meaning = FLIP_MEANING.get(flip)
    return f"{n} {flip}" + (f" ({meaning})" if meaning else "")


#: the width `why` paragraphs are wrapped to in the terminal
WIDTH = 100


def render(cmp: Comparison) -> str:
    """The comparison as text: per scenario its outcome and counts, each differing cell with
    before, after and why; then one-sided scenarios and a total."""
    lines = [f"A (before): {_describe_file(cmp.a_path, cmp.a_meta)}",
             f"B (after):  {_describe_file(cmp.b_path, cmp.b_meta)}"]
    lines += partial_lines(cmp)
    for s in cmp.scenarios:
        unchanged = s.probes_compared - len(s.probes)
        lines.append(f"{s.label}: {s.outcome}; {len(s.probes)} of {s.probes_compared} cells "
                     f"differ, {unchanged} unchanged ({counts_text(s.unchanged)})")
        for p in s.probes:
            what = "" if p.flipped else " (verdict unchanged, observed differs)"
            lines.append(f"  {p.where()}: {p.cell()}, expected {p.expected}{what}")
            lines.append(f"    before: {side(p.a)}")
            lines.append(f"    after:  {side(p.b)}")
            for why in p.why:
                lines.extend(textwrap.wrap(f"why: {why}", WIDTH, initial_indent="    ",
                                           subsequent_indent="      ", break_on_hyphens=False))
    for label, names, other in (("only in A", cmp.only_in_a, "B"),
                                ("only in B", cmp.only_in_b, "A")):
        if names:
            lines.append(f"{label}: " + ", ".join(
                name + (f" ({why})" if (why := cmp.missing(name, other)) else "")
                for name in names))
    compared = sum(s.probes_compared for s in cmp.scenarios)
    kept = f"{compared - cmp.probes_differing} cell(s) ({counts_text(cmp.unchanged())})"
    if cmp.identical:
        lines.append(f"identical: {len(cmp.scenarios)} scenario(s), {compared} cell(s) compared, "
                     f"no verdict or observed outcome differs; unchanged: {kept}")
    elif not cmp.changed and not cmp.only_in_a and not cmp.only_in_b:
        lines.append(f"not identical: the {len(cmp.scenarios)} scenario(s) both files hold agree "
                     f"({compared} cell(s), no verdict or observed outcome differs), but "
                     f"{' and '.join(cmp.partial)} {'is' if len(cmp.partial) == 1 else 'are'} "
                     f"partial: what a run did not finish is not compared; unchanged: {kept}")
    else:
        lines.append(f"different: {cmp.probes_differing} of {compared} cell(s) differ in "
                     f"{len(cmp.changed)} scenario(s); {len(cmp.only_in_a)} only in A, "
                     f"{len(cmp.only_in_b)} only in B")
        lines.extend(f"flipped: {flip_text(flip, n)}" for flip, n in cmp.flips().items())
        lines.append(f"unchanged: {kept}")
    return "\n".join(lines)


def partial_lines(cmp: Comparison) -> list[str]:
    """One line per partial file: which, why, and which scenarios it had not finished."""
    return [f"{side} ({when}) is {progress.sentence()}"
            for side, when, progress in (("A", "before", cmp.progress_a),
                                         ("B", "after", cmp.progress_b)) if progress.partial]


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _verdict_html(c: CellResult | None) -> str:
    if c is None:
        return '<span class="meta">not probed</span>'
    own = judgement_reason(c)
    return (f'<span class="verdict v-{mx.verdict_class(c.verdict)}">{_e(c.verdict)}</span>'
            f'<br><span class="meta">observed {_e(c.observed or "nothing")}'
            f'{": " + _e(own) if own else ""}</span>')


def render_html(cmp: Comparison) -> str:
    """The comparison as a self-contained HTML page (the HTML report's style, no script): the two
    files, a table of scenarios with their counts, and per scenario a table of its differing
    cells with before, after and why. Every value from a results file is escaped."""
    css = resources.files("harness.reports").joinpath("report.css").read_text(encoding="utf-8")
    out = ['<header id="run"><h1>netpol-proof compare</h1>',
           f'<p class="meta"><b>A (before)</b> {_e(_describe_file(cmp.a_path, cmp.a_meta))}</p>',
           f'<p class="meta"><b>B (after)</b> {_e(_describe_file(cmp.b_path, cmp.b_meta))}</p>',
           *(f'<p class="banner partial">{_e(line)}</p>' for line in partial_lines(cmp)),
           "</header>",
           '<section id="flips"><h2>Scenarios</h2>',
           '<table class="grid comparison"><thead><tr><th>scenario</th><th>CNI</th>'
           '<th>outcome</th><th>cells that differ</th><th>unchanged</th></tr></thead><tbody>']
    for s in cmp.scenarios:
        cni = s.cni_a if s.cni_a == s.cni_b else f"{s.cni_a} \u2192 {s.cni_b}"
        link = (f'<a href="#{_e(_anchor(s))}">{_e(s.scenario)}</a>' if s.probes
                else _e(s.scenario))
        out.append(f"<tr><th>{link}</th><td>{_e(cni)}</td>"
                   f'<td class="outcome outcome-{mx.verdict_class(s.outcome_b)}">{_e(s.outcome)}</td>'
                   f"<td>{len(s.probes)} of {s.probes_compared}</td>"
                   f"<td>{_e(counts_text(s.unchanged))}</td></tr>")
    for label, names, other in (("only in A", cmp.only_in_a, "B"),
                                ("only in B", cmp.only_in_b, "A")):
        for name in names:
            why = cmp.missing(name, other)
            out.append(f'<tr><th>{_e(name)}</th><td colspan="4" class="outcome-missing">'
                       f"{label}{_e(' (' + why + ')') if why else ''}</td></tr>")
    out.append("</tbody></table>")
    flips = cmp.flips()
    if flips:
        out.append('<ul class="diffs flipped">' + "".join(
            f"<li><b>flipped</b> {_e(flip_text(flip, n))}</li>" for flip, n in flips.items())
            + "</ul>")
    out.append("</section>")
    for s in cmp.scenarios:
        if not s.probes:
            continue
        out += [f'<section class="result" id="{_e(_anchor(s))}"><h3>{_e(s.label)}: '
                f'{_e(s.outcome)}</h3>',
                '<table class="grid flips"><thead><tr><th>step</th><th>cell</th>'
                '<th>expected</th><th>before</th><th>after</th><th>why</th></tr></thead><tbody>']
        for p in s.probes:
            why = "".join(f"<p>{_e(w)}</p>" for w in p.why)
            out.append(f'<tr class="{"flip" if p.flipped else "observed-only"}">'
                       f"<td>{_e(p.where())}</td><td><code>{_e(p.cell())}</code></td>"
                       f"<td>{_e(p.expected)}</td><td>{_verdict_html(p.a)}</td>"
                       f"<td>{_verdict_html(p.b)}</td><td>{why}</td></tr>")
        out.append("</tbody></table></section>")
    title = f"netpol-proof compare {cmp.a_path} {cmp.b_path}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>\n{css}</style></head>\n<body>\n"
            + "\n".join(out) + "\n</body></html>\n")


def _anchor(s: ScenarioChange) -> str:
    return "c-" + mx.verdict_class(s.label)


def write_html(cmp: Comparison, path: str | os.PathLike) -> None:
    """Write the comparison page to `path` (parent directories created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(cmp), encoding="utf-8")
