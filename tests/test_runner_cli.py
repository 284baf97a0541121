"""`python -m harness run` and `capabilities`: exit statuses, output, and no pytest import.

Why: CI scripts read the exit status; 0 must mean "every scenario as the spec says (or failed
exactly as declared on a non-enforcing CNI)", and the library must work without pytest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.cli import main
from harness.shell import run
from tests.conftest import needs_local

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
def test_run_exits_1_on_a_policy_failure_and_skips_with_reason(capsys):
    code = main(["run", str(DATA / "wrong-expectations.yaml"), str(DATA / "needs-sctp.yaml"),
                 "--cni", "enforcing", "--no-canary"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED wrong-expectations [enforcing]" in out and "OVER-BLOCKED" in out
    assert "scenario needs-sctp [enforcing]: skipped: missing capability: sctp" in out
