"""`python -m harness run` and `capabilities`: exit statuses, output, and no pytest import.

Why: CI scripts read the exit status; 0 must mean "every scenario as the spec says (or failed
exactly as declared on a non-enforcing CNI)", and the library must work without pytest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.shell import run
from tests.conftest import needs_local
from tests.faulty_dataplanes import BreaksOnLabels, PoliciesInTheWrongNamespace, ReportsAnotherPodCidr

DATA = Path(__file__).parent / "data" / "run"


def test_the_cli_never_imports_pytest():
    code = ("import sys, harness.cli, harness.commands.run, harness.runner, harness.canary, "
            "harness.settings, harness.verdicts; harness.cli.build_parser(); "
            "assert 'pytest' not in sys.modules, 'pytest imported'; print('ok')")
    out = run([sys.executable, "-c", code], timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_capabilities_table_lists_local_profiles_real_engines_and_kind_cnis(capsys):
    assert main(["capabilities", "--notes"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[1:6] == ["local/enforcing", "local/open", "local/kube-router", "local/calico",
                           "local/none"]
    assert "kind/flannel" in header
    declared = next(line for line in out.splitlines() if line.startswith("declared enforcing"))
    assert declared.split()[2:7] == ["yes", "NO", "yes", "yes", "NO"]   # open and none: NO
    assert "local/enforcing: sctp: SCTP is not available" in out


def test_bad_option_is_one_error_line(capsys):
    assert main(["run", str(DATA), "--cni", "cilium"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: --cni: 'cilium' is not a local profile")


@needs_local
def test_run_exits_0_when_enforcing_passes_and_open_fails_as_declared(tmp_path, capsys):
    out_json = tmp_path / "r.json"
    code = main(["run", str(DATA), "-k", "deny-ingress", "--cni", "enforcing,open",
                 "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "scenario deny-ingress-small [enforcing] on local" in out
    assert "applied NetworkPolicy x/deny-all" in out
    assert "XFAILED deny-ingress-small [open]" in out
    assert "every policy here is false security" in out
    doc = json.loads(out_json.read_text())
    assert {s["outcome"] for s in doc["scenarios"]} == {"passed", "xfailed"}


@needs_local
def test_run_exits_1_on_a_policy_failure_and_skips_with_reason(capsys, monkeypatch):
    import harness.backends.local as local
    monkeypatch.setattr(local, "LocalBackend", PoliciesInTheWrongNamespace)
    code = main(["run", str(DATA / "deny-ingress-small.yaml"), str(DATA / "needs-sctp.yaml"),
                 "--cni", "enforcing", "--no-canary"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED deny-ingress-small [enforcing]" in out and "OVER-BLOCKED" in out
    assert "scenario needs-sctp [enforcing]: skipped: missing capability: sctp" in out


def _verdicts(path: Path) -> dict:
    doc = json.loads(path.read_text())
    return {(s["scenario"], s["profile"]): (s["outcome"], sorted(
        (st["index"], c["source"], c["target"], c["port"], c["protocol"], c["verdict"])
        for st in ([s["baseline"]] if s["baseline"] else []) + s["steps"] for c in st["cells"]))
        for s in doc["scenarios"]}


@needs_local
def test_scenarios_at_once_give_the_same_verdicts_and_stories_printed_whole(tmp_path, capsys):
    """-j 3: every scenario on a cluster of its own, at the same time; the verdicts are those
    of a run one at a time, each story is printed in one piece in input order, and no
    namespace of either run is left."""
    from harness import naming
    from harness.backends.local import netns as nsx
    files = [str(DATA / f) for f in ("deny-ingress-small.yaml", "allow-only-open.yaml",
                                     "egress-dns.yaml", "name-deny.yaml")]
    outs = {}
    base = naming.new_run_id()[:4]   # a run id of its own, even when this test runs twice at once
    for jobs in ("1", "3"):
        code = main(["run", *files, "--cni", "enforcing,open", "-j", jobs,
                     "--run-id", f"{base}j{jobs}", "--json", str(tmp_path / f"{jobs}.json")])
        outs[jobs] = capsys.readouterr().out
        assert code == 0, outs[jobs][-3000:]
        assert f"jobs={jobs}" in outs[jobs].splitlines()[0]
        assert not [n for n in nsx.list_netns() if n.startswith(f"np-{base}j")]
    assert _verdicts(tmp_path / "1.json") == _verdicts(tmp_path / "3.json")
    assert f"cluster 2 (run {base}j" in outs["3"]     # the scenarios ran on clusters of their own
    lines = outs["3"].splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("scenario ") and " on local " in ln]
    names = [lines[i].split()[1:3] for i in starts]
    assert names == [[n, f"[{cni}]"] for cni in ("enforcing", "open")
                     for n in ("deny-ingress-small", "allow-only", "egress-deny-breaks-dns", "name-deny")]
    for i, j in zip(starts, starts[1:] + [next(k for k, ln in enumerate(lines)
                                               if ln.startswith("netpol-proof summary"))],
                    strict=True):
        story = lines[i + 1:j]
        ends = [k for k, ln in enumerate(story) if ln.startswith("  result: ")]
        assert ends, lines[i]
        # nothing of another scenario inside this one's story
        assert all(ln.startswith(("  ", "bringing up", "canary on", "!!")) for ln in story[:ends[0]])


@needs_local
def test_a_wrong_table_is_a_scenario_error_and_exits_1(capsys):
    code = main(["run", str(DATA / "deny-all-ingress-flipped.yaml"), "--cni", "enforcing",
                 "--no-canary"])
    out = capsys.readouterr().out
    assert code == 1
    assert "SCENARIO ERROR deny-all-ingress-flipped [enforcing]" in out
    assert "scenario error (the file is wrong here; no verdict on the CNI)" in out
    assert "OVER-BLOCKED" not in out


@needs_local
@pytest.mark.parametrize("faulty, outcome, says", [
    (ReportsAnotherPodCidr, "scenario error",
     "must be a strict subset of cidr 10.99.0.0/16"),
    (BreaksOnLabels, "error", "netpol-proof failed while running this scenario: TypeError: "
                              "set_labels got an unexpected mapping"),
])
def test_an_error_in_one_scenario_is_its_own_and_the_run_goes_on(tmp_path, capsys, monkeypatch,
                                                                 faulty, outcome, says):
    """A non-HarnessError while rendering or running one scenario (a traceback that aborted the
    whole run, with no report, before) is that scenario's error; the next scenario still runs
    and the reports are written."""
    import harness.backends.local as local
    monkeypatch.setattr(local, "LocalBackend", faulty)
    lib = Path(__file__).resolve().parents[1] / "scenarios" / "conformance"
    first = lib / ("ipblock-egress-except.yaml" if faulty is ReportsAnotherPodCidr
                   else "updated-pod-label-admits.yaml")
    out_json = tmp_path / "r.json"
    code = main(["run", str(first), str(DATA / "allow-only-open.yaml"), "--cni", "enforcing",
                 "--no-canary", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 1
    doc = json.loads(out_json.read_text())
    outcomes = [s["outcome"] for s in doc["scenarios"]]
    assert outcomes == [outcome, "passed"], out[-3000:]
    first_result = doc["scenarios"][0]
    assert says in (first_result["scenario_error"] or first_result["infra_error"] or "")
    assert "scenario allow-only [enforcing]" in out
