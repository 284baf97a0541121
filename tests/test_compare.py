"""`compare` on real results files: two that differ (migration-style) and two that agree."""

from __future__ import annotations

import copy
import sys

from harness import shell
from harness.cli import main
from harness.reports.compare import compare, render
from harness.reports import json_report
from tests.reports_examples import META, results as example_results


def before_after(tmp_path):
    """A: the enforcing results on calico. B: same run on cilium, with three kinds of change."""
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


def test_files_that_differ_list_each_probe_grouped_by_scenario(tmp_path):
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
    [dns] = changed["restrict-egress"].probes
    assert dns.key == ("prod/backend", "dns:kubernetes.default.svc.cluster.local", "53", "UDP")
    assert dns.b is None
    text = render(cmp)
    assert ("allow-frontend-to-backend [calico -> cilium]: passed -> failed, 1 of 48 probes differ"
            in text)
    assert ("  step 2: dev/tools -> prod/backend 80/TCP expected allow" not in text)
    assert ("  step 2: dev/tools -> prod/backend 80/TCP expected deny: pass (observed blocked) -> "
            "not enforced (observed connected)" in text)
    assert "-> not probed" in text
    assert "only in A: deny-all-ingress" in text and "only in B: new-in-b" in text


def test_identical_files_compare_equal_and_exit_zero(tmp_path, capsys):
    a, _ = before_after(tmp_path)
    copy_path = tmp_path / "again.json"
    copy_path.write_text(a.read_text())
    cmp = compare(a, copy_path)
    assert cmp.identical and cmp.probes_differing == 0
    assert main(["compare", str(a), str(copy_path)]) == 0
    assert "identical: 3 scenario(s), 103 probe(s) compared" in capsys.readouterr().out


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
    assert res.stdout.strip().splitlines()[-1].startswith("different: 2 of ")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    res = shell.run([sys.executable, "-m", "harness", "compare", str(a), str(bad)], timeout=60)
    assert res.returncode == 2 and "format is 'other'" in res.stderr
