"""Terminal rendering of results built in the tests: tables side by side, marks, reasons, summary."""

from __future__ import annotations

import re

from harness.reports import matrix as mx
from harness.reports import terminal
from harness.results import BANNER, Attempt, CellResult, ScenarioResult, StepResult
from tests.reports_examples import results as example_results

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cell(src, dst, expected, observed, verdict, reason="", port="80", protocol="TCP", attempts=None):
    return CellResult(src, dst, port, protocol, expected, observed, verdict, reason,
                      attempts if attempts is not None else [Attempt(1, observed, 0.01)])


def mixed_result() -> ScenarioResult:
    """x/a..x/b..y/a with one cell of each verdict on 80/TCP and one on 81/TCP."""
    cells = [
        cell("x/a", "x/a", "undefined", "connected", "not asserted", "a pod to itself"),
        cell("x/a", "x/b", "deny", "connected", "not enforced", "x/deny-all isolates x/b",
             attempts=[Attempt(1, "connected", 0.004, "x/b", "HTTP 200", True),
                       Attempt(2, "connected", 0.006, "x/b", "HTTP 200", True)]),
        cell("x/a", "y/a", "allow", "blocked", "over-blocked", "no policy selects y/a",
             attempts=[Attempt(1, "timeout", 1.0, None, "curl: (28)", True)]),
        cell("x/b", "x/a", "allow", "connected", "pass"),
        cell("x/b", "x/b", "undefined", "connected", "not asserted"),
        cell("x/b", "y/a", "deny", "tool-error", "probe error", "exec lost its exit status",
             attempts=[Attempt(1, "tool-error", 0.2, None, "exec: connection reset", None)]),
        cell("x/a", "y/a", "deny", "blocked", "pass", "x/deny-81 blocks 81", port="81"),
    ]
    step = StepResult(1, "deny all in x", False, None, 7, cells)
    return ScenarioResult("mixed", "scenarios/mixed.yaml", "local", "calico", "ab12cd",
                          outcome="failed", policies_accepted=1, steps=[step])


def table_lines(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    return lines[start:start + 5]


def test_failure_shows_expected_and_observed_side_by_side_with_marks():
    text = terminal.render_failure(mixed_result())
    head, cols, row_a, row_b = table_lines(text, "80/TCP")[:4]
    assert "expected" in head and "observed" in head and head.index("expected") < head.index("observed")
    assert cols.split() == ["x/a", "x/b", "y/a"] * 2
    # x/a row: expected '-', 'X', '.'; observed '.', '.*' (not enforced), 'X*' (over-blocked)
    assert row_a.split() == ["x/a", "-", "X", ".", ".", ".*", "X*"]
    assert row_b.split() == ["x/b", ".", "-", "X", ".", ".", "!*"]


def test_failure_explains_each_differing_cell_with_verdict_attempts_and_reason():
    text = terminal.render_failure(mixed_result())
    lines = [line for line in text.splitlines() if "->" in line]
    assert len(lines) == 3, lines
    ne, ob, pe = lines
    assert "NOT ENFORCED" in ne and "x/a -> x/b 80/TCP" in ne and "observed connected" in ne
    assert "r1-r2 connected 0.004-0.006s by x/b (HTTP 200)" in ne
    assert "why: x/deny-all isolates x/b" in ne
    assert "OVER-BLOCKED" in ob and "r1 timeout 1.000s" in ob and "no policy selects y/a" in ob
    assert "PROBE ERROR" in pe and "exec: connection reset" in pe


def test_step_without_differences_is_one_line_and_its_table_is_not_printed():
    text = terminal.render_failure(mixed_result())
    assert "81/TCP" not in text                      # the 81/TCP table has only passing cells
    assert "did NOT converge after 7 round(s)" in text
    assert "FAILED mixed [calico] on backend local, run ab12cd" in text


def test_colour_only_when_asked_and_plain_text_is_the_same():
    plain = terminal.render_failure(mixed_result())
    coloured = terminal.render_failure(mixed_result(), color=True)
    assert "\x1b[" not in plain
    assert "\x1b[1;31m" in coloured and "\x1b[1;33m" in coloured and "\x1b[1;35m" in coloured
    assert ANSI.sub("", coloured) == plain


def test_long_labels_become_numbered_columns_with_a_key():
    rs = example_results()
    text = terminal.render_failure(next(r for r in rs if r.profile == "open"
                                        and r.scenario == "deny-all-ingress"))
    assert "columns: 1=prod/frontend  2=prod/backend  3=prod/db  4=dev/tools" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("dev/tools "))
    assert row.split() == ["dev/tools", "X", "X", "X", "-", ".*", ".*", ".*", "."]


def test_observed_symbols_never_read_a_probe_error_as_blocked():
    assert mx.observed_symbol(cell("a", "b", "deny", "timeout", "probe error")) == "!"
    assert mx.observed_symbol(cell("a", "b", "deny", "timeout", "pass")) == "X"
    assert mx.observed_symbol(cell("a", "b", "deny", "dns-nxdomain", "not enforced")) == "."
    assert mx.observed_symbol(cell("a", "b", "deny", "", "not asserted")) == "?"
    assert mx.observed_symbol(cell("a", "b", "deny", "something new", "not asserted")) == "!"
    assert mx.observed_symbol(cell("a", "b", "deny", "exec-failed", "probe error")) == "!"
    # the verdict decides for policy verdicts: an L7 denial that passes reads as blocked
    assert mx.observed_symbol(cell("a", "b", "deny", "http-denied", "pass")) == "X"
    assert mx.observed_symbol(cell("a", "b", "allow", "dns-nxdomain", "pass")) == "."
    assert mx.observed_symbol(cell("a", "b", "allow", "blocked", "over-blocked")) == "X"
    assert mx.observed_symbol(cell("a", "a", "undefined", "connected", "not asserted")) == "."


def test_summary_is_scenario_by_cni_with_counts_and_legend():
    rs = example_results() + [mixed_result()]
    text = terminal.render_summary(rs)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("scenario"))
    assert header.split() == ["scenario", "enforcing", "open", "calico"]
    row = next(line for line in lines if line.startswith("allow-frontend-to-backend"))
    assert row.split() == ["allow-frontend-to-backend", "passed", "24/0/0/0", "xfailed", "7/17/0/0", "-"]
    mixed = next(line for line in lines if line.startswith("mixed"))
    assert mixed.split()[-2:] == ["failed", "2/1/1/1"]
    assert "counts: pass / not enforced (fail-open) / over-blocked (fail-closed) / probe error" in text
    assert "total: 1 failed, 3 passed, 3 xfailed" in text


def test_banner_frames_and_wraps_the_whole_text():
    text = terminal.render_banner(width=40)
    lines = text.splitlines()
    assert lines[0] == "!" * 40 and lines[-1] == "!" * 40
    assert all(len(line) == 40 for line in lines)
    words = " ".join(line.strip("! ").strip() for line in lines[1:-1])
    assert words == BANNER


def test_broken_baseline_is_an_infrastructure_error_not_a_policy_verdict():
    base = StepResult(0, "baseline", False, None, 3, [
        cell("x/a", "x/b", "allow", "connected", "pass"),
        cell("x/b", "x/a", "allow", "timeout", "probe error", "baseline: everything must connect",
             attempts=[Attempt(1, "timeout", 1.0, None, "curl: (28)", None)])],
        infra_error="x/a is not serving 80/TCP")
    r = ScenarioResult("s", "s.yaml", "local", "enforcing", "ab12cd", outcome="error",
                       infra_error="baseline failed: the network is broken", baseline=base)
    text = terminal.render_failure(r)
    assert "ERROR s [enforcing]" in text
    assert "infrastructure error (no policy verdict): baseline failed: the network is broken" in text
    assert "baseline 0: baseline (did NOT converge after 3 round(s))" in text
    assert "infrastructure error (no policy verdict): x/a is not serving 80/TCP" in text
    header, row_a, row_b = [line for line in text.splitlines() if line.strip().startswith("x/")][:3]
    # columns in row (model) order, not in the order cells appear (x/b came first here)
    assert header.split() == ["x/a", "x/b", "x/a", "x/b"]
    assert row_a.split() == ["x/a", ".", "."]
    assert row_b.split() == ["x/b", ".", "!*"]                  # x/b -> x/b was not probed: blank
    assert "NOT ENFORCED" not in text and "OVER-BLOCKED" not in text
    assert "PROBE ERROR   x/b -> x/a 80/TCP" in text


def test_summary_marks_missing_and_skipped_cells():
    a = ScenarioResult("one", "1.yaml", "kind", "calico", "r", outcome="skipped",
                       skip_reason="backend lacks sctp")
    b = ScenarioResult("two", "2.yaml", "kind", "cilium", "r", outcome="xpassed")
    lines = terminal.render_summary([a, b]).splitlines()
    assert next(line for line in lines if line.startswith("one")).split() == ["one", "skipped", "-"]
    assert next(line for line in lines if line.startswith("two")).split() == \
        ["two", "-", "xpassed", "0/0/0/0"]


def test_max_cells_caps_explanations_but_keeps_the_tables():
    r = next(r for r in example_results() if r.profile == "open" and r.scenario == "deny-all-ingress")
    full = terminal.render_failure(r)
    capped = terminal.render_failure(r, max_cells=2)
    assert sum("NOT ENFORCED" in line for line in full.splitlines()) == 9
    assert sum("NOT ENFORCED" in line for line in capped.splitlines()) == 2
    assert "... 7 more differing cell(s) in 80/TCP" in capped
    table = [line for line in full.splitlines() if line.strip().startswith(("prod/", "dev/"))]
    assert all(line in capped.splitlines() for line in table)


def test_an_unstable_cell_is_shown_apart_with_its_rounds():
    history = [Attempt(i, o, 0.01, None, "", None, v) for i, (o, v) in enumerate(
        [("timeout", "pass"), ("connected", "not enforced"), ("timeout", "pass")], 1)]
    flapping = cell("x/b", "x/a", "deny", "unstable", "unstable",
                    "the verdict changed 2 times while the step was observed (r1 pass, r2 not "
                    "enforced, r3 pass): flapping", attempts=history)
    steady = cell("x/a", "x/b", "deny", "blocked", "pass")
    r = ScenarioResult("flap", "f.yaml", "local", "enforcing", "r1", outcome="failed",
                       steps=[StepResult(1, "deny", False, None, 3, [flapping, steady])])
    assert mx.observed_symbol(flapping) == "~"
    text = terminal.render_failure(r)
    assert re.search(r"UNSTABLE +x/b -> x/a 80/TCP: expected deny, observed unstable \[r1 "
                     r"timeout [0-9.]+s, r2 connected [0-9.]+s, r3 timeout", text), text
    assert "'~' unstable" in text
    assert "failed 1/0/0/0 +1 unstable" in terminal.render_summary([r])


def test_a_failure_proven_beside_errors_says_both():
    """mixed_result has a not enforced cell and a probe error: failed, and the error is counted
    beside it, in the header and in a line of its own; a later infrastructure error is printed
    as one that came after verdicts, not as "no policy verdict"."""
    r = mixed_result()
    text = terminal.render_failure(r)
    assert text.splitlines()[0].startswith("FAILED mixed [calico]")
    assert "1 not enforced" in text.splitlines()[0] and "1 probe error" in text.splitlines()[0]
    assert "1 probe error(s) beside the failure: those cells gave no verdict either way" in text
    r.infra_error = "step 2 (x): restoring a fault failed"
    text = terminal.render_failure(r)
    assert "infrastructure error (the failures shown were proven before it): step 2" in text
    assert "(no policy verdict): step 2" not in text
    summary = terminal.render_summary([r])
    assert "failed 2/1/1/1" in summary
    assert "probe errors are counted beside it" in " ".join(summary.split())
