"""`check`, `expect` and `explain` through harness.cli.main, as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.truthtable import TruthTable

DATA = Path(__file__).parent / "data" / "scenarios"
DENY = DATA / "valid-deny-all-ingress.yaml"
KEYS = tuple(f"{n}/{p}" for n in "xyz" for p in "abc")


@pytest.fixture
def valid_dir(tmp_path):
    """A copy of the valid fixtures (and the policy files they reference), nothing invalid."""
    for f in DATA.glob("valid-*.yaml"):
        shutil.copy(f, tmp_path)
    shutil.copytree(DATA / "policies", tmp_path / "policies")
    (tmp_path / "policies" / "not-a-scenario.yaml").write_text("kind: NetworkPolicy\n")
    return tmp_path


def test_check_valid_directory_exits_0(valid_dir, capsys):
    assert main(["check", str(valid_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok   ") == len(list(valid_dir.glob("valid-*.yaml")))
    assert "not-a-scenario" not in out
    assert "0 with problems" in out


def test_check_lists_every_problem_and_exits_1(valid_dir, capsys):
    for name in ("invalid-disagreeing-expectation.yaml", "invalid-matrix-size.yaml"):
        shutil.copy(DATA / name, valid_dir)
    assert main(["check", str(valid_dir)]) == 1
    out = capsys.readouterr().out
    bad = valid_dir / "invalid-disagreeing-expectation.yaml"
    assert f"FAIL {bad}" in out
    assert (f"{bad}:20: steps[0].expect[0].matrix: step 1 (deny all ingress in x): y/a -> x/a "
            f"on TCP 80: expected allow, the oracle computes deny: x/deny-all isolates x/a") in out
    assert f"{valid_dir / 'invalid-matrix-size.yaml'}:13: steps[0].expect[0].matrix: expected 2 " \
           f"cells" in out
    assert "2 with problems" in out


def test_check_a_file_that_is_not_a_scenario_fails(tmp_path, capsys):
    other = tmp_path / "policy.yaml"
    other.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n")
    assert main(["check", str(other)]) == 1
    assert "not a scenario file" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "nothing-here")]) == 1
    assert "no such file or directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["check", str(empty)]) == 1
    assert "no scenario files" in capsys.readouterr().out


def test_expect_text_prints_the_tables_the_scenario_asserts(capsys):
    assert main(["expect", str(DENY)]) == 0
    out = capsys.readouterr().out
    assert "step 1: deny all ingress in x" in out and "step 2: deleting the policy" in out
    block = out.split("step 1:")[1].split("TCP 80\n")[1].split("\n\n")[0]
    table = TruthTable.parse(block, KEYS, KEYS)
    hand_written = DENY.read_text().split("matrix: |\n")[1].split("    probes:")[0]
    assert table == TruthTable.parse(hand_written, KEYS, KEYS)
    after = out.split("step 2:")[1].split("TCP 80\n")[1]
    cells = [sym for _, _, sym in TruthTable.parse(after, KEYS, KEYS).items()]
    assert cells.count("-") == 9 and cells.count(".") == 72
    assert "y/a -> x/a TCP 80: deny" in out
    assert "x/a -> dns kubernetes.default.svc.cluster.local: allow" in out


def test_expect_json(capsys):
    assert main(["expect", str(DATA / "valid-named-port-endport-udp.yaml"), "--format",
                 "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scenario"] == "named-port-endport-udp"
    (step,) = data["steps"]
    assert step["step"] == 1                 # counted from 1, as `run` prints steps
    assert [(t["port"], t["protocol"]) for t in step["tables"]] == [
        (80, "TCP"), (80, "UDP"), (81, "TCP"), (81, "UDP")]
    tcp81 = step["tables"][2]
    assert tcp81["rows"] == ["x/a", "x/b", "y/a", "y/b"]
    assert [row[0] for row in tcp81["matrix"]] == ["-", "X", "X", "X"]
    assert tcp81["matrix"][0] == ["-", ".", ".", "."]


def test_expect_step_out_of_range(capsys):
    assert main(["expect", str(DENY), "--step", "5"]) == 1
    assert "--step 5" in capsys.readouterr().err


def test_explain_blocked_and_allowed_per_step(capsys):
    assert main(["explain", str(DENY), "--from", "y/a", "--to", "x/b", "--port", "80"]) == 0
    out = capsys.readouterr().out
    step0, step1 = out.split("step 2 (")
    assert "y/a -> x/b on TCP 80: BLOCKED" in step0 and "x/deny-all" in step0
    assert "ALLOWED" in step1 and "not isolated" in step1
    assert main(["explain", str(DENY), "--from", "y/a", "--to", "x/b", "--port", "80",
                 "--step", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("step 2 (deleting the policy restores traffic):") and "BLOCKED" not in out


def test_explain_services_dns_and_named_ports(capsys):
    shop = DATA / "valid-custom-model.yaml"
    assert main(["explain", str(shop), "--from", "dev/tool", "--to", "svc:prod/backend",
                 "--port", "8080", "--step", "1"]) == 0
    assert "BLOCKED" in capsys.readouterr().out
    assert main(["explain", str(shop), "--from", "prod/frontend", "--to", "prod/backend",
                 "--port", "http", "--step", "1"]) == 0
    out = capsys.readouterr().out
    assert "ALLOWED" in out and "allow-frontend-to-backend" in out
    assert main(["explain", str(shop), "--from", "prod/backend", "--dns",
                 "nothing.prod.svc.cluster.local", "--step", "1"]) == 0
    assert "does not exist" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--from", "y/q", "--to", "x/b", "--port", "80"], "unknown source 'y/q'"),
    (["--from", "y/a", "--to", "x/b"], "--port is required"),
    (["--from", "y/a"], "either --to"),
    (["--from", "y/a", "--to", "x/b", "--port", "80", "--protocol", "ICMP"], "--protocol"),
])
def test_explain_usage_errors_exit_1_with_a_message(argv, message, capsys):
    assert main(["explain", str(DENY)] + argv) == 1
    assert message in capsys.readouterr().err


def test_help_texts_have_examples(capsys):
    for cmd in ("check", "expect", "explain"):
        with pytest.raises(SystemExit) as info:
            main([cmd, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and f"python -m harness {cmd}" in out


def test_check_reports_duplicate_scenario_names(valid_dir, capsys):
    twin = valid_dir / "zz-twin.yaml"
    twin.write_text((valid_dir / "valid-deny-all-ingress.yaml").read_text())
    assert main(["check", str(valid_dir)]) == 1
    out = capsys.readouterr().out
    assert f"{twin}: name: 'deny-all-ingress-x' is also the name of " \
           f"{valid_dir / 'valid-deny-all-ingress.yaml'}" in out


def test_check_notes_missing_requirements_without_failing(valid_dir, capsys):
    f = valid_dir / "valid-named-port-endport-udp.yaml"
    f.write_text(f.read_text().replace("requires: [networkpolicy, named-ports, endport, udp]",
                                       "requires: [networkpolicy]"))
    assert main(["check", str(f)]) == 0
    out = capsys.readouterr().out
    for cap in ("endport", "named-ports", "udp"):
        assert f"note: {f}: requires: {cap} is used" in out
