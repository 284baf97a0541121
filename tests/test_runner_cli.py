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


def test_capabilities_table_lists_local_profiles_and_kind_cnis(capsys):
    assert main(["capabilities", "--notes"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "local/enforcing" in header and "local/open" in header and "kind/flannel" in header
    declared = next(line for line in out.splitlines() if line.startswith("declared enforcing"))
    assert declared.split()[2:4] == ["yes", "NO"]          # enforcing yes, open NO
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
