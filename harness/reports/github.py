"""The GitHub Actions step summary: the scenario x CNI table as Markdown, appended to the file
named by $GITHUB_STEP_SUMMARY.

Why append: other steps of the same job write to the same file; GitHub renders it on the run page.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from harness.reports import json_report
from harness.reports import matrix as mx
from harness.results import BANNER, ScenarioOutcome, ScenarioResult, Verdict

_ICONS = {ScenarioOutcome.PASSED: ":white_check_mark:", ScenarioOutcome.FAILED: ":x:",
          ScenarioOutcome.XFAILED: ":warning:", ScenarioOutcome.XPASSED: ":bangbang:",
          ScenarioOutcome.ERROR: ":no_entry:", ScenarioOutcome.SKIPPED: ":fast_forward:",
          ScenarioOutcome.SCENARIO_ERROR: ":no_entry_sign:"}


def _md(text: Any) -> str:
    """Table-safe Markdown text: pipes escaped, newlines folded, HTML angle brackets neutralised."""
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def render_markdown(results: list[ScenarioResult], meta: Mapping[str, Any]) -> str:
    """The summary as Markdown (pure): banner when a canary failed or contradicts its CNI's
    declaration, table, legend."""
    scenarios, cnis, cells = mx.grid(results)
    lines = [f"## netpol-proof: run `{_md(meta.get('run_id', ''))}` on backend "
             f"`{_md(meta.get('backend', ''))}`", ""]
    canary = meta.get("canary") or {}
    if isinstance(canary, Mapping):
        for cni, value in canary.items():
            state, detail = mx.canary_state(value)
            if state == "not-enforcing":
                lines += [f"> [!CAUTION]\n> **{_md(cni)}**: {BANNER}"
                          + (f" ({_md(detail)})" if detail else ""), ""]
            if isinstance(value, Mapping) and value.get("contradiction"):
                lines += [f"> [!WARNING]\n> {_md(str(value['contradiction']))}", ""]
    progress = json_report.progress(dict(meta))
    if progress.partial:   # stopped, or something it meant to run has no result
        lines += [f"> [!WARNING]\n> This run is {_md(progress.sentence())}", ""]
    lines.append("| scenario | " + " | ".join(_md(c) for c in cnis) + " |")
    lines.append("|---" * (len(cnis) + 1) + "|")
    for s in scenarios:
        row = [_md(s)]   # no code span: entities in it would show literally
        for c in cnis:
            r = cells.get((s, c))
            if r is None:
                row.append("not run")
                continue
            counts = r.verdict_counts()
            nums = " / ".join(str(counts.get(v.value, 0)) for v in (
                Verdict.PASS, Verdict.NOT_ENFORCED, Verdict.OVER_BLOCKED, Verdict.PROBE_ERROR))
            if counts.get(Verdict.UNSTABLE.value):
                nums += f" +{counts[Verdict.UNSTABLE.value]} unstable"
            nums += "".join(f" +{n} {what}" for what, n in mx.fault_counts(r).items() if n)
            row.append(f"{_ICONS.get(ScenarioOutcome(r.outcome), '')} {_md(r.outcome)} ({nums})".strip())
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Counts: pass / not enforced (fail-open) / over-blocked (fail-closed) / probe "
              "error. *xfailed*: failed as expected on a CNI declared not to enforce.", ""]
    return "\n".join(lines)


def write_step_summary(results: list[ScenarioResult], meta: Mapping[str, Any],
                       environ: Mapping[str, str] | None = None) -> bool:
    """Append the summary to $GITHUB_STEP_SUMMARY; False (nothing written) when it is not set."""
    env = os.environ if environ is None else environ
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(render_markdown(results, meta) + "\n")
    return True
