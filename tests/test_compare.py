"""`compare` on results files: what flipped per cell and why, the unchanged cells counted, the
mismatched files refused, the HTML page.

Data: tests/data/compare/{open,enforcing}.json, captured from real runs of the local backend
(README there says how); `example_*` tests use tests/reports_examples.py's results. Where a test
needs a change the captured runs did not show, it edits one cell of a copy and says so.
"""

from __future__ import annotations

import copy
import json
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness import shell
from harness.cli import main
from harness.reports import json_report
from harness.reports.compare import (
    MismatchError,
    Reasons,
    compare,
    render,
    render_html,
    spec_reason,
)
from tests.reports_examples import META
from tests.reports_examples import results as example_results

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "compare"
OPEN, ENFORCING = DATA / "open.json", DATA / "enforcing.json"
ALLOW = "seed-allow-frontend-to-backend"
EGRESS = "seed-deny-all-egress"


@pytest.fixture(autouse=True)
def _from_the_repository(monkeypatch):
    # the results files name their scenarios relative to the repository, as the runs were given
    monkeypatch.chdir(ROOT)


def edited(tmp_path: Path, source: Path, name: str, edit) -> Path:
    """A copy of a captured results file with `edit(document)` applied."""
    doc = json.loads(source.read_text())
    edit(doc)
    out = tmp_path / name
    out.write_text(json.dumps(doc))
    return out


def cell_of(doc: dict, scenario: str, step: int, source: str, target: str) -> dict:
    s = next(s for s in doc["scenarios"] if s["scenario"] == scenario)
    cells = s["baseline"]["cells"] if step == 0 else s["steps"][step - 1]["cells"]
    return next(c for c in cells if (c["source"], c["target"]) == (source, target)
                and not c.get("dns_name"))


# --- the flips of the captured migration: open (nothing enforced) -> enforcing -----------------

#: (scenario, step, source, target, port/proto) -> before verdict -> after verdict, and what the
#: why must say (the policy behind the cell, as `explain` gives it)
MIGRATION_FLIPS = [
    (ALLOW, 1, "prod/db", "prod/backend", "80/TCP", "not enforced", "pass",
     "prod/db -> prod/backend on TCP 80: BLOCKED. prod/allow-frontend-to-backend isolates "
     "prod/backend for ingress"),
    (ALLOW, 1, "dev/tool", "prod/backend", "80/TCP", "not enforced", "pass",
     "but its only rule does not allow traffic from dev/tool on TCP 80"),
    (ALLOW, 2, "prod/db", "prod/backend", "80/TCP", "not enforced", "pass",
     "no ingress rule of any of the 2 policies selecting it (prod/allow-frontend-to-backend, "
     "prod/deny-all-ingress)"),
    (ALLOW, 2, "dev/tool", "prod/frontend", "80/TCP", "not enforced", "pass",
     "prod/deny-all-ingress isolates prod/frontend for ingress"),
    (EGRESS, 1, "prod/frontend", "dev/tool", "80/TCP", "not enforced", "pass",
     "prod/deny-all-egress isolates prod/frontend for egress"),
    (EGRESS, 1, "prod/frontend", "dns:kubernetes.default.svc.cluster.local", "53/UDP",
     "not enforced", "pass", "the lookup of kubernetes.default.svc.cluster.local times out, "
     "blocked by policy"),
]


@pytest.mark.parametrize("scenario,step,src,dst,portproto,before,after,why", MIGRATION_FLIPS,
                         ids=[f"{r[0]}-{r[1]}-{r[2]}-{r[3]}" for r in MIGRATION_FLIPS])
def test_a_migration_flip_says_before_after_and_why(scenario, step, src, dst, portproto, before,
                                                    after, why):
    cmp = compare(OPEN, ENFORCING)
    s = next(s for s in cmp.scenarios if s.scenario == scenario)
    port, proto = portproto.split("/")
    [p] = [p for p in s.probes if p.step == step and p.key == (src, dst, port, proto)]
    assert (p.a.verdict, p.b.verdict, p.flipped, p.expected) == (before, after, True, "deny")
    [text] = p.why                        # both runs recorded the same reason: said once
    assert why in text and Reasons.RECORDED not in text   # re-derived by explain, not recorded


def test_the_migration_counts_flips_and_unchanged_cells():
    cmp = compare(OPEN, ENFORCING)
    counts = {s.scenario: (s.cni_a, s.cni_b, s.outcome_a, s.outcome_b, len(s.probes),
                           s.probes_compared, s.unchanged) for s in cmp.scenarios}
    assert counts == {
        ALLOW: ("open", "enforcing", "xfailed", "passed", 10, 44,
                {"pass": 26, "not asserted": 8}),
        EGRESS: ("open", "enforcing", "xfailed", "passed", 10, 32,
                 {"pass": 18, "not asserted": 4}),
    }
    # every cell the policies deny flowed on open and is blocked on enforcing; nothing else
    assert cmp.flips() == {"not enforced -> pass": 20}
    assert all(p.expected == "deny" for s in cmp.scenarios for p in s.probes)
    text = render(cmp)
    assert (f"{ALLOW} [open -> enforcing]: xfailed -> passed; 10 of 44 cells differ, 34 unchanged "
            "(26 pass, 8 not asserted)") in text
    assert ("  step 1 (backend accepts frontend on TCP 80): prod/db -> prod/backend 80/TCP, "
            "expected deny\n    before: not enforced (observed connected)\n"
            "    after:  pass (observed blocked)\n"
            "    why: prod/db -> prod/backend on TCP 80: BLOCKED.") in text
    assert text.splitlines()[-3:] == [
        "different: 20 of 76 cell(s) differ in 2 scenario(s); 0 only in A, 0 only in B",
        "flipped: 20 not enforced -> pass (denied by the policies: flowed before, blocked after; "
        "the policies take effect, and whatever relied on it stops working)",
        "unchanged: 56 cell(s) (44 pass, 12 not asserted)"]


def test_the_other_way_round_is_enforcement_lost():
    cmp = compare(ENFORCING, OPEN)
    assert cmp.flips() == {"pass -> not enforced": 20}
    assert "enforcement lost, false security" in render(cmp)


def _over_blocked(doc):
    c = cell_of(doc, ALLOW, 1, "prod/frontend", "prod/backend")
    c["verdict"], c["observed"] = "over-blocked", "blocked"


def _probe_error(doc):
    c = cell_of(doc, ALLOW, 2, "prod/frontend", "prod/backend")
    c["reason"] = f"no positive control: the server did not answer (spec: {c['reason']})"
    c["verdict"], c["observed"] = "probe error", "timeout"


def _not_probed(doc):
    s = next(s for s in doc["scenarios"] if s["scenario"] == EGRESS)
    s["steps"][0]["cells"] = [c for c in s["steps"][0]["cells"]
                              if not (c.get("dns_name") and c["source"] == "prod/frontend")]


def _observed_only(doc):
    c = cell_of(doc, ALLOW, 1, "prod/frontend", "prod/frontend")     # not asserted: a pod to itself
    c["observed"] = "blocked" if c["observed"] != "blocked" else "connected"


#: one edited cell of the enforcing run (B) -> the change compare must report for it, and its why
EDITED = [
    ("over-blocked", _over_blocked, (ALLOW, 1, ("prod/frontend", "prod/backend", "80", "TCP")),
     "pass", "over-blocked", True, "prod/frontend -> prod/backend on TCP 80: ALLOWED."),
    ("probe-error", _probe_error, (ALLOW, 2, ("prod/frontend", "prod/backend", "80", "TCP")),
     "pass", "probe error", True, "prod/frontend -> prod/backend on TCP 80: ALLOWED."),
    ("not-probed", _not_probed,
     (EGRESS, 1, ("prod/frontend", "dns:kubernetes.default.svc.cluster.local", "53", "UDP")),
     "pass", "not probed", True, "BLOCKED"),
    ("observed-only", _observed_only, (ALLOW, 1, ("prod/frontend", "prod/frontend", "80", "TCP")),
     "not asserted", "not asserted", False, "UNDEFINED"),
]


@pytest.mark.parametrize("name,edit,where,before,after,flipped,why", EDITED,
                         ids=[e[0] for e in EDITED])
def test_each_kind_of_change_is_reported_with_its_reason(tmp_path, name, edit, where, before,
                                                         after, flipped, why):
    b = edited(tmp_path, ENFORCING, "b.json", edit)
    cmp = compare(ENFORCING, b)
    scenario, step, key = where
    [s] = cmp.changed
    [p] = s.probes
    assert (s.scenario, p.step, p.key) == (scenario, step, key)
    assert (p.a.verdict, p.b.verdict if p.b else "not probed", p.flipped) == (before, after, flipped)
    assert why in p.why[0] and Reasons.RECORDED not in p.why[0]
    assert s.probes_compared - len(s.probes) == sum(s.unchanged.values())


def test_spec_reason_is_the_oracles_part_of_a_probe_errors_reason():
    c = json_report.read(ENFORCING)[1][0].steps[1].cells[0]
    recorded = c.reason                   # "(podSelector app=backend)" holds parentheses itself
    c.reason, c.verdict = f"no positive control (spec: {recorded})", "probe error"
    assert spec_reason(c) == recorded
    c.verdict = "pass"                    # only a probe error's or unstable cell's is split
    assert spec_reason(c) == c.reason


def test_probe_error_side_names_its_reason(tmp_path):
    b = edited(tmp_path, ENFORCING, "b.json", _probe_error)
    text = render(compare(ENFORCING, b))
    assert ("    after:  probe error (observed timeout: no positive control: the server did not "
            "answer)") in text


def test_why_falls_back_to_the_recorded_reason_when_the_file_cannot_say_it(tmp_path):
    # the scenario file is gone (or was edited since the run): the run's own reasons, marked
    def moved(doc):
        for s in doc["scenarios"]:
            s["path"] = "no/such/scenario.yaml"
    a = edited(tmp_path, OPEN, "a.json", moved)
    b = edited(tmp_path, ENFORCING, "b.json", moved)
    p = next(p for s in compare(a, b).scenarios for p in s.probes
             if p.key[:2] == ("prod/db", "prod/backend") and p.step == 1)
    [why] = p.why
    assert why == ("prod/db -> prod/backend on TCP 80: BLOCKED. prod/allow-frontend-to-backend "
                   "isolates prod/backend for ingress (podSelector app=backend), but its only rule "
                   "does not allow traffic from prod/db on TCP 80; no policy selects prod/db for "
                   "egress: not isolated (as the run recorded it)")


def test_a_reason_the_file_no_longer_gives_is_not_explained(tmp_path):
    # the run recorded another reason than the file's oracle gives now: not re-derived
    def other(doc):
        cell_of(doc, ALLOW, 1, "prod/db", "prod/backend")["reason"] = "an older oracle's words"
    b = edited(tmp_path, ENFORCING, "b.json", other)
    p = next(p for s in compare(OPEN, b).scenarios for p in s.probes
             if p.key[:2] == ("prod/db", "prod/backend") and p.step == 1)
    before, after = p.why
    assert before.startswith("before: prod/db -> prod/backend on TCP 80: BLOCKED. prod/allow")
    assert Reasons.RECORDED not in before
    assert after == ("after: prod/db -> prod/backend on TCP 80: BLOCKED. an older oracle's words "
                     "(as the run recorded it)")


# --- files that cannot be compared ---------------------------------------------------------------

def _format_v4(doc):
    doc["format"] = "netpol-proof/results/v4"


def _other_scenarios(doc):
    for s in doc["scenarios"]:
        s["scenario"] = "renamed-" + s["scenario"]


def _step_retitled(doc):
    s = next(s for s in doc["scenarios"] if s["scenario"] == EGRESS)
    s["steps"][0]["title"] = "deny all egress, but DNS"


def _empty(doc):
    doc["scenarios"] = []


MISMATCHES = [
    ("format", _format_v4, ["{b} is format 'netpol-proof/results/v4'",
                            "{a} is format 'netpol-proof/results/v5'", "different versions"]),
    ("no-common-scenario", _other_scenarios,
     ["{a} and {b} have no scenario in common", "{b}: renamed-seed-allow"]),
    ("step-differs", _step_retitled,
     [f"scenario {EGRESS}: step 1 is 'deny all egress in prod' in {{a}}",
      "'deny all egress, but DNS' in {b}", "the scenario file changed between the runs"]),
    ("empty", _empty, ["{b}: holds no scenario results"]),
]


@pytest.mark.parametrize("name,edit,says", MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_files_that_are_not_two_runs_of_the_same_scenarios_are_refused(tmp_path, capsys, name,
                                                                       edit, says):
    b = edited(tmp_path, ENFORCING, "b.json", edit)
    with pytest.raises(MismatchError) as exc:
        compare(OPEN, b)
    for text in says:
        assert text.format(a=OPEN, b=b) in str(exc.value)
    assert main(["compare", str(OPEN), str(b)]) == 2
    assert capsys.readouterr().err.startswith("ERROR: ")


# --- HTML -----------------------------------------------------------------------------------------

class _Rows(HTMLParser):
    """The text of each cell of each row of the flips tables, and every id and href."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self._in_flips = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "table":
            self._in_flips = "flips" in (a.get("class") or "")
        elif tag == "tr" and self._in_flips:
            self.rows.append([])
        elif tag == "td" and self._in_flips:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._in_flips = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_html_page_shows_each_flip_with_before_after_and_why(tmp_path):
    out = tmp_path / "compare.html"
    assert main(["compare", str(OPEN), str(ENFORCING), "--html", str(out)]) == 1
    page = _Rows()
    page.feed(out.read_text())
    rows = [r for r in page.rows if r]
    assert len(rows) == 20
    assert rows[0][:5] == ["step 1 (backend accepts frontend on TCP 80)",
                           "prod/db -> prod/backend 80/TCP", "deny",
                           "not enforced observed connected", "pass observed blocked"]
    assert rows[0][5].startswith("prod/db -> prod/backend on TCP 80: BLOCKED. "
                                 "prod/allow-frontend-to-backend isolates prod/backend")
    assert all(h.lstrip("#") in page.ids for h in page.hrefs)   # every scenario link lands
    assert "20 not enforced -&gt; pass" in out.read_text()


def test_html_escapes_what_comes_from_the_files(tmp_path):
    def hostile(doc):
        cell_of(doc, ALLOW, 1, "prod/db", "prod/backend")["observed"] = "<script>x</script>"
    b = edited(tmp_path, ENFORCING, "b.json", hostile)
    page = render_html(compare(OPEN, b))
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


# --- the example results (tests/reports_examples.py): one-sided scenarios, several CNIs ----------

def before_after(tmp_path):
    """A: the enforcing example results on calico. B: the same on cilium, with three kinds of
    change."""
    before = [r for r in example_results() if r.profile == "enforcing"]
    for r in before:
        r.profile = "calico"
    after = copy.deepcopy(before)
    for r in after:
        r.profile = "cilium"
    ingress = next(r for r in after if r.scenario == "allow-frontend-to-backend")
    # 1. one deny cell of step 2 now connects: not enforced after the migration
    cell = next(c for c in ingress.steps[1].cells
                if (c.source, c.target) == ("dev/tools", "prod/backend"))
    cell.observed, cell.verdict = "connected", "not enforced"
    ingress.outcome = "failed"
    # 2. the DNS probe of restrict-egress was not probed in B at all
    egress = next(r for r in after if r.scenario == "restrict-egress")
    egress.steps[0].cells = [c for c in egress.steps[0].cells if not c.dns_name]
    # 3. a scenario only in A, and one only in B
    after = [r for r in after if r.scenario != "deny-all-ingress"]
    extra = copy.deepcopy(ingress)
    extra.scenario = "new-in-b"
    after.append(extra)
    a, b = tmp_path / "before.json", tmp_path / "after.json"
    json_report.write(before, a, {**META, "cnis": ["calico"]})
    json_report.write(after, b, {**META, "cnis": ["cilium"], "run_id": "b2b2b2"})
    return a, b


def test_example_files_that_differ_list_each_probe_grouped_by_scenario(tmp_path):
    a, b = before_after(tmp_path)
    cmp = compare(a, b)
    assert not cmp.identical
    assert cmp.only_in_a == ["deny-all-ingress"] and cmp.only_in_b == ["new-in-b"]
    changed = {s.scenario: s for s in cmp.changed}
    assert set(changed) == {"allow-frontend-to-backend", "restrict-egress"}
    ingress = changed["allow-frontend-to-backend"]
    assert (ingress.cni_a, ingress.cni_b, ingress.outcome_a, ingress.outcome_b) == \
        ("calico", "cilium", "passed", "failed")
    [probe] = ingress.probes
    assert (probe.step, probe.key) == (2, ("dev/tools", "prod/backend", "80", "TCP"))
    assert probe.a.verdict == "pass" and probe.b.verdict == "not enforced"
    # the example's scenario path is not a file here: the reason as the run recorded it
    assert probe.why == [f"dev/tools -> prod/backend on TCP 80: BLOCKED. {probe.b.reason} "
                         f"{Reasons.RECORDED}"]
    [dns] = changed["restrict-egress"].probes
    assert dns.key == ("prod/backend", "dns:kubernetes.default.svc.cluster.local", "53", "UDP")
    assert dns.b is None
    text = render(cmp)
    assert "allow-frontend-to-backend [calico -> cilium]: passed -> failed; 1 of 48 cells differ" \
        in text
    assert ("    before: pass (observed blocked)\n    after:  not enforced (observed connected)"
            in text)
    assert "    after:  not probed" in text
    assert "only in A: deny-all-ingress" in text and "only in B: new-in-b" in text


def test_identical_files_compare_equal_and_exit_zero(tmp_path, capsys):
    a, _ = before_after(tmp_path)
    copy_path = tmp_path / "again.json"
    copy_path.write_text(a.read_text())
    cmp = compare(a, copy_path)
    assert cmp.identical and cmp.probes_differing == 0
    assert main(["compare", str(a), str(copy_path)]) == 0
    assert "identical: 3 scenario(s), 103 cell(s) compared" in capsys.readouterr().out


def test_same_scenario_on_several_cnis_is_matched_per_cni(tmp_path):
    rs = example_results()                     # each scenario on enforcing and open
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    json_report.write(rs, a, META)
    json_report.write(list(reversed(rs)), b, META)   # order must not matter
    assert compare(a, b).identical


def test_cli_exit_status_is_one_when_files_differ_and_two_when_unreadable(tmp_path):
    a, b = before_after(tmp_path)
    res = shell.run([sys.executable, "-m", "harness", "compare", str(a), str(b)], timeout=60)
    assert res.returncode == 1, res.stderr
    assert "not enforced (observed connected)" in res.stdout
    assert "different: 2 of " in res.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    res = shell.run([sys.executable, "-m", "harness", "compare", str(a), str(bad)], timeout=60)
    assert res.returncode == 2 and "format is 'other'" in res.stderr


def _v6(doc: dict, stopped: str | None = None, unfinished: list | None = None,
        drop: str | None = None) -> None:
    """A captured run as a v6 file (the format that records whether the run ended): complete
    when `unfinished` is None, else partial, without the scenario `drop`."""
    doc["format"] = "netpol-proof/results/v6"
    doc["meta"].update({"complete": unfinished is None, "stopped": stopped,
                        "unfinished": [] if unfinished is None else unfinished})
    doc["scenarios"] = [s for s in doc["scenarios"] if s["scenario"] != drop]


def _unfinished(name: str, cni: str) -> dict:
    return {"scenario": name, "path": f"scenarios/real-world/{name}.yaml", "cni": cni}


def test_a_partial_file_that_agrees_is_never_called_identical(tmp_path, capsys):
    """B stopped (SIGTERM) before its third scenario: the two scenarios both hold agree, but the
    runs are not identical (exit 1), and B is said partial with what it had not finished."""
    a = edited(tmp_path, OPEN, "a.json", _v6)
    b = edited(tmp_path, OPEN, "b.json", lambda d: _v6(
        d, "SIGTERM", [_unfinished("seed-deny-all-ingress", "open")]))
    assert main(["compare", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert ("B (after) is partial (stopped by SIGTERM); 1 scenario(s) had not finished: "
            "seed-deny-all-ingress [open]") in out
    assert "not identical: the 2 scenario(s) both files hold agree" in out
    assert "but B is partial: what a run did not finish is not compared" in out
    assert "identical: 2" not in out.replace("not identical: the 2", "")
    cmp = compare(a, b)
    assert not cmp.identical and cmp.partial == ["B"] and not cmp.changed


def test_a_scenario_a_partial_file_had_not_finished_is_said_so_not_a_pass(tmp_path, capsys):
    """A killed run (no stop recorded) that finished one of two scenarios: the common one is
    compared cell by cell, the other is 'not finished in A', not a pass and not just 'only in B'."""
    a = edited(tmp_path, OPEN, "a.json", lambda d: _v6(
        d, None, [_unfinished(EGRESS, "open")], drop=EGRESS))
    b = edited(tmp_path, ENFORCING, "b.json", _v6)
    cmp = compare(a, b)
    assert [s.scenario for s in cmp.scenarios] == [ALLOW] and cmp.only_in_b == [EGRESS]
    assert cmp.partial == ["A"] and cmp.changed[0].probes   # the common scenario's flips
    text = render(cmp)
    assert ("A (before) is partial (no stop recorded: the run was killed (SIGKILL, a CI job's "
            "time limit) or is still running); 1 scenario(s) had not finished: "
            f"{EGRESS} [open]") in text
    assert f"only in B: {EGRESS} (not finished in A: its run was partial)" in text
    page = render_html(cmp)
    assert "A (before) is partial" in page and "not finished in A: its run was partial" in page


def test_a_partial_file_with_no_finished_scenario_is_refused_saying_why(tmp_path, capsys):
    a = edited(tmp_path, OPEN, "a.json", _v6)
    b = edited(tmp_path, OPEN, "b.json", lambda d: (_v6(
        d, "SIGINT (Ctrl-C)", [_unfinished(ALLOW, "open"), _unfinished(EGRESS, "open")]),
        d.update(scenarios=[])))
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert (f"{b}: holds no scenario results (partial (stopped by SIGINT (Ctrl-C)); 2 "
            f"scenario(s) had not finished: {ALLOW} [open], {EGRESS} [open]); nothing to "
            f"compare") in err
