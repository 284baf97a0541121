"""The HTML report: one self-contained page with the run header, the scenario x CNI comparison and,
per scenario per CNI, the expected and observed matrices with coloured cells and tooltips.

Why self-contained (inline CSS, no JS, no external assets): the file is a CI artifact opened from
a download or an air-gapped machine; it must render exactly as written. Every value that comes
from a results file passes through html.escape.
"""

from __future__ import annotations

import os
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from harness.reports import json_report
from harness.reports import matrix as mx
from harness.reports.terminal import VERDICT_WORDS
from harness.results import (
    BANNER,
    CellResult,
    FaultTimeline,
    ScenarioOutcome,
    ScenarioResult,
    StepResult,
    Verdict,
)

#: explanation lists longer than this are folded into a <details> element
FOLD_DIFFS_OVER = 20


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _css() -> str:
    return resources.files("harness.reports").joinpath("report.css").read_text(encoding="utf-8")


def anchor(result: ScenarioResult) -> str:
    """The id of one scenario-on-one-CNI section: `r-<scenario>--<cni>`."""
    return "r-" + mx.verdict_class(result.scenario) + "--" + mx.verdict_class(mx.cni_of(result))


def _header(results: list[ScenarioResult], meta: dict[str, Any]) -> str:
    cnis = meta.get("cnis") or mx.grid(results)[1]
    if isinstance(cnis, str):
        cnis = [cnis]
    run_id = meta.get("run_id") or (results[0].run_id if results else "")
    backend = meta.get("backend") or (results[0].backend if results else "")
    parts = [f"<b>backend</b> {_e(backend)}", f"<b>CNIs</b> {_e(', '.join(map(str, cnis)))}",
             f"<b>run</b> <code>{_e(run_id)}</code>"]
    if meta.get("started"):
        parts.append(f"<b>started</b> {_e(meta['started'])}")
    versions = meta.get("versions") or {}
    if isinstance(versions, dict) and versions:
        parts.append("<b>versions</b> " + _e(", ".join(f"{k} {v}" for k, v in versions.items())))
    out = ['<header id="run">', "<h1>netpol-proof report</h1>",
           f'<p class="meta">{" &middot; ".join(parts)}</p>']
    progress = json_report.progress(meta)
    if progress.partial:   # stopped, or something it meant to run has no result
        out.append(f'<div class="banner" role="alert">this run is {_e(progress.sentence())}</div>')
    dataplanes = meta.get("dataplanes") or {}
    if isinstance(dataplanes, dict) and dataplanes:
        out.append('<ul class="dataplanes">' + "".join(
            f"<li><b>{_e(cni)}</b>: {_e(what)}</li>" for cni, what in dataplanes.items()) + "</ul>")
    canary = meta.get("canary") or {}
    if isinstance(canary, dict) and canary:
        states = {cni: mx.canary_state(v) for cni, v in canary.items()}
        open_cnis = [c for c, (s, _) in states.items() if s == "not-enforcing"]
        if open_cnis:
            out.append(f'<div class="banner" role="alert">{_e(", ".join(map(str, open_cnis)))}: '
                       f'{_e(BANNER)}</div>')
        for value in canary.values():
            if isinstance(value, dict) and value.get("contradiction"):
                out.append(f'<div class="banner" role="alert">{_e(value["contradiction"])}</div>')
        out.append('<div class="canaries">')
        for cni, (state, detail) in states.items():
            word = {"enforcing": "enforces NetworkPolicy", "not-enforcing": "does NOT enforce",
                    "unknown": "enforcement unknown"}[state]
            out.append(f'<div class="canary {state}" title="{_e(detail)}"><b>canary {_e(cni)}</b>: '
                       f'{word}{" &mdash; " + _e(detail) if detail else ""}</div>')
        out.append("</div>")
    out.append("</header>")
    return "\n".join(out)


def _counts(result: ScenarioResult) -> str:
    c = result.verdict_counts()
    text = " / ".join(str(c.get(v.value, 0)) for v in (Verdict.PASS, Verdict.NOT_ENFORCED,
                                                       Verdict.OVER_BLOCKED, Verdict.PROBE_ERROR))
    unstable = c.get(Verdict.UNSTABLE.value, 0)
    return text + (f" +{unstable} unstable" if unstable else "")


def _comparison(results: list[ScenarioResult]) -> str:
    scenarios, cnis, cells = mx.grid(results)
    out = ['<section id="comparison"><h2>CNI comparison</h2>',
           '<p class="meta">Each cell: outcome, then probes pass / not enforced / over-blocked / '
           'probe error. Click a cell for its matrices.</p>',
           '<table class="grid comparison"><thead><tr><th>scenario</th>']
    out += [f"<th>{_e(c)}</th>" for c in cnis]
    if len(cnis) > 1:
        out.append("<th>probes where the CNIs differ</th>")
    out.append("</tr></thead><tbody>")
    for s in scenarios:
        out.append(f"<tr><th>{_e(s)}</th>")
        for c in cnis:
            r = cells.get((s, c))
            if r is None:
                out.append('<td class="outcome outcome-missing">not run</td>')
                continue
            tip = r.scenario_error or r.infra_error or r.skip_reason or mx.short_counts(r)
            out.append(f'<td class="outcome outcome-{mx.verdict_class(r.outcome)}" title="{_e(tip)}">'
                       f'<a href="#{anchor(r)}">{_e(r.outcome)}'
                       f'<span class="counts">{_counts(r)}</span></a></td>')
        if len(cnis) > 1:
            differing, total = mx.disagreements([r for r in results if r.scenario == s])
            out.append(f'<td class="disagree">{differing} of {total}</td>')
        out.append("</tr>")
    out.append("</tbody></table></section>")
    return "\n".join(out)


def _legend() -> str:
    items = [(Verdict.PASS, "pass"), (Verdict.NOT_ENFORCED, "not enforced (fail-open)"),
             (Verdict.OVER_BLOCKED, "over-blocked (fail-closed)"),
             (Verdict.PROBE_ERROR, "probe error (no policy verdict)"),
             (Verdict.UNSTABLE, "unstable (changed while observed; no late programming explains it)"),
             (Verdict.NOT_ASSERTED, "not asserted")]
    spans = "".join(f'<span><span class="sw v-{mx.verdict_class(v.value)}"></span>{_e(text)}</span>'
                    for v, text in items)
    return (f'<div class="legend">{spans}<span>expected: . connect, X blocked, - not asserted; '
            f'observed: . connected, X blocked, ! probe error, ~ unstable, ? not probed'
            f'</span></div>')


def _tooltip(cell: CellResult) -> str:
    word = VERDICT_WORDS.get(cell.verdict, cell.verdict)
    lines = [f"{cell.source} -> {mx.target_label(cell)} {cell.port}/{cell.protocol}: {word}",
             f"expected {cell.expected}, observed {cell.observed or 'nothing'}"]
    if cell.reason:
        lines.append(f"why: {cell.reason}")
    lines.append(f"attempts: {mx.attempts_text(cell)}")
    return "\n".join(lines)


def _matrix(table: mx.Table, observed: bool) -> str:
    kind = "observed" if observed else "expected"
    out = [f'<table class="matrix {kind}"><tr><th></th>']
    out += [f'<th scope="col">{_e(t)}</th>' for t in table.targets]
    out.append("</tr>")
    for s in table.sources:
        out.append(f'<tr><th class="row" scope="row">{_e(s)}</th>')
        for t in table.targets:
            cell = table.get(s, t)
            if cell is None:
                out.append("<td></td>")
            elif observed:
                out.append(f'<td class="v-{mx.verdict_class(cell.verdict)}" '
                           f'title="{_e(_tooltip(cell))}">{_e(mx.observed_symbol(cell))}</td>')
            else:
                out.append(f'<td class="exp-{mx.verdict_class(cell.expected)}" '
                           f'title="{_e(_tooltip(cell))}">{_e(mx.expected_symbol(cell))}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


#: the fault timeline's drawing: width of the time axis, height of a row, left margin (labels)
_TL_WIDTH, _TL_ROW, _TL_LEFT = 640, 18, 170


def _timeline(tl: FaultTimeline) -> str:
    """A fault step's timeline as inline SVG: one row per watched cell, one bar per attempt at
    its time (coloured by its verdict, its length the attempt's), a line at each action; then
    the windows and sentences as text. No script: tooltips are SVG <title> elements."""
    lo, hi = tl.watched_from, max(tl.watched_to, tl.watched_from + 0.1)

    def x(t: float) -> float:
        return round(_TL_LEFT + (t - lo) / (hi - lo) * _TL_WIDTH, 1)

    height = _TL_ROW * (len(tl.cells) + 1) + 14
    svg = [f'<svg class="timeline" role="img" width="{_TL_LEFT + _TL_WIDTH + 10}" '
           f'height="{height}" aria-label="fault timeline">']
    for a in tl.actions:
        svg.append(f'<line class="action" x1="{x(a.at)}" x2="{x(a.at)}" y1="0" '
                   f'y2="{height - 14}"><title>{_e(f"{a.at:+.2f}s {a.action}: {a.detail}")}'
                   f'</title></line>')
    for i, c in enumerate(tl.cells):
        y = _TL_ROW * i + 2
        svg.append(f'<text x="0" y="{y + 12}">{_e(f"{c.source} -> {c.target} {c.port}")}</text>')
        for att in c.attempts:
            at = att.at or 0.0
            w = max(2.0, x(at + att.elapsed) - x(at))
            tip = f"{at:+.2f}s {att.verdict} ({att.outcome}; spec {att.expected})"
            svg.append(f'<rect class="v-{mx.verdict_class(att.verdict or "")}" x="{x(at)}" '
                       f'y="{y}" width="{w}" height="{_TL_ROW - 4}"><title>{_e(tip)}</title></rect>')
    axis_y = _TL_ROW * len(tl.cells) + 14
    for t in range(int(lo), int(hi) + 1):
        svg.append(f'<text class="tick" x="{x(t)}" y="{axis_y}">{t:+d}s</text>')
    svg.append("</svg>")
    items = []
    for c in tl.cells:
        text = f"{c.source} -> {c.target} {c.port}/{c.protocol}: {c.status}"
        text += "".join(f"; failed {w.kind} {w.at_least:.2f}-"
                        + (f"{w.at_most:.2f}s" if w.at_most is not None else "?s")
                        + f" on {w.on}" for w in c.windows)
        if c.must is not None:
            text += f"; must {c.must}: requirement {c.requirement}"
        items.append(f"<li>{_e(text)}</li>")
    verdicts = "".join(f"<li><b>{_e(v)}</b></li>" for v in tl.verdicts)
    return (f'<figure class="fault"><figcaption>fault timeline: {tl.rounds} rounds, at most '
            f'{tl.max_gap:.2f}s apart; t=0 is the first action '
            f'({_e(", ".join(a.action for a in tl.actions))})</figcaption>{"".join(svg)}'
            f'<ul class="diffs">{verdicts}{"".join(items)}</ul></figure>')


def _step(step: StepResult, name: str) -> str:
    if step.converged:
        took = f"{step.converge_seconds:.2f}s" if step.converge_seconds is not None else "?"
        state = f'<span class="ok">converged in {took}</span>, {step.rounds} round(s)'
    else:
        state = f"<b>did not converge</b> after {step.rounds} round(s)"
    out = [f'<div class="step"><h3>{_e(name)} {step.index}: {_e(step.title)} '
           f'<span class="meta">({state})</span></h3>']
    if step.infra_error:
        out.append(f'<p class="infra">infrastructure error, no policy verdict: {_e(step.infra_error)}</p>')
    for table in mx.tables(step):
        out.append(f'<div class="pair"><figure><figcaption>{_e(table.title)} expected</figcaption>'
                   f'{_matrix(table, False)}</figure><figure><figcaption>{_e(table.title)} observed'
                   f'</figcaption>{_matrix(table, True)}</figure></div>')
        diffs = table.differing()
        # Long lists (an open CNI on a full conformance matrix) fold so the matrices stay in view.
        folded = len(diffs) > FOLD_DIFFS_OVER
        if folded:
            out.append(f"<details><summary>{len(diffs)} differing cells in {_e(table.title)}"
                       "</summary>")
        if diffs:
            out.append('<ul class="diffs">')
            for c in diffs:
                word = VERDICT_WORDS.get(c.verdict, c.verdict)
                out.append(f'<li><span class="verdict v-{mx.verdict_class(c.verdict)}">{_e(word)}</span> '
                           f'<code>{_e(c.source)} &rarr; {_e(mx.target_label(c))}</code>: expected '
                           f'{_e(c.expected)}, observed {_e(c.observed or "nothing")}; '
                           f'{_e(c.reason)} <span class="meta">[{_e(mx.attempts_text(c))}]</span></li>')
            out.append("</ul>")
        if folded:
            out.append("</details>")
    if step.fault is not None:
        out.append(_timeline(step.fault))
    out.append("</div>")
    return "\n".join(out)


def _result(result: ScenarioResult) -> str:
    bad = result.outcome not in (ScenarioOutcome.PASSED, ScenarioOutcome.SKIPPED)
    out = [f'<details class="result-wrap"{" open" if bad else ""}>'
           f'<summary><b>{_e(result.scenario)}</b> on <b>{_e(mx.cni_of(result))}</b>: '
           f'<span class="outcome-{mx.verdict_class(result.outcome)}">{_e(result.outcome)}</span> '
           f'<span class="meta">{_e(mx.short_counts(result))}</span></summary>',
           f'<section class="result" id="{anchor(result)}">',
           f'<p class="meta">{_e(result.description)}</p>',
           f'<p class="meta"><b>file</b> <code>{_e(result.path)}</code> &middot; <b>policies accepted'
           f' by the API</b> {result.policies_accepted} &middot; <b>duration</b> {result.duration:.1f}s</p>']
    if result.enforcing_cluster is False:
        out.append(f'<p class="verdict v-not-enforced">The API accepted {result.policies_accepted} '
                   f'polic{"y" if result.policies_accepted == 1 else "ies"}, and the cluster does '
                   f'not enforce them.</p>')
    if result.scenario_error:
        out.append(f'<p class="infra">scenario error, no verdict on the CNI: '
                   f'{_e(result.scenario_error)}</p>')
    for text in (result.infra_error, result.skip_reason):
        if text:
            out.append(f'<p class="infra">{_e(text)}</p>')
    errors = result.verdict_counts().get(Verdict.PROBE_ERROR.value, 0)
    if result.outcome == ScenarioOutcome.FAILED and errors:
        out.append(f'<p class="infra">{errors} probe error(s) beside the failure: those cells '
                   f'gave no verdict either way</p>')
    if result.baseline is not None and (result.baseline.infra_error or
                                        any(mx.differs(c) for c in result.baseline.cells)):
        out.append(_step(result.baseline, "baseline"))
    elif result.baseline is not None:
        out.append(f'<p class="meta baseline">baseline before any policy: '
                   f'{len(result.baseline.cells)} probes, every one as expected</p>')
    out += [_step(s, "step") for s in result.steps]
    out.append("</section></details>")
    return "\n".join(out)


def render(results: list[ScenarioResult], meta: dict[str, Any]) -> str:
    """The whole page as a string (pure)."""
    title = f"netpol-proof report {meta.get('run_id', '')}".strip()
    body = [_header(results, meta), _comparison(results), _legend(),
            '<section id="scenarios"><h2>Scenarios</h2>']
    for scenario in mx.grid(results)[0]:
        body.append(f'<h3 class="scenario-name">{_e(scenario)}</h3>')
        body += [_result(r) for r in results if r.scenario == scenario]
    body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>\n{_css()}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write(results: list[ScenarioResult], path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Write the report to `path` (parent directories created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(results, meta), encoding="utf-8")
