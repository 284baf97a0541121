"""A run's results file is written as it goes: killed or stopped, a run still leaves its results.

Why real: a CI job that hits its time limit is stopped by signals (and at last SIGKILL), and only
a real process, real signals and the file it leaves show what the matrix's `compare` job gets.
Each run here is on the local backend's `enforcing` profile; the file is polled until it holds
the first finished scenario, then the process is signalled.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from harness import naming
from harness.backends.local.cleanup import find_local_leftovers, remove_local_leftover
from harness.reports import json_report
from harness.shell import spawn
from tests.conftest import needs_local

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "run"
SMALL = DATA / "deny-ingress-small.yaml"     # deny-ingress-small
DNS = DATA / "egress-dns.yaml"               # egress-deny-breaks-dns
NAME = DATA / "name-deny.yaml"

pytestmark = needs_local
#: the file is under test here, not the verdicts: a short window makes each scenario quicker
WINDOW = ["--min-window", "1"]


def _pytest(files: list[Path], run_id: str, out: Path, jobs: int = 1) -> list[str]:
    return [sys.executable, "-m", "pytest", *map(str, files), "-p", "no:randomly", "-p",
            "no:cacheprovider", "-s", "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
            "--cni", "enforcing", "--netpol-run-id", run_id, "--netpol-jobs", str(jobs),
            "--netpol-json", str(out), *WINDOW]


def _cli(files: list[Path], run_id: str, out: Path, jobs: int = 1) -> list[str]:
    return [sys.executable, "-m", "harness", "run", *map(str, files), "--cni", "enforcing",
            "--run-id", run_id, "-j", str(jobs), "--json", str(out), *WINDOW]


def _read(path: Path):
    """(meta, results) when the file exists, else None; a file that exists must be whole."""
    if not path.exists():
        return None
    _, meta, results = json_report.read_versioned(path)   # raises on half a file
    return meta, results


def _wait_for(path: Path, proc, log: Path, finished: int, timeout: float = 120):
    """Poll the results file until it holds `finished` scenarios; every version seen is whole
    and, while the process runs, partial. Returns every (meta, results) seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended early:\n{log.read_text()[-3000:]}"
        got = _read(path)
        if got is not None:
            if not seen or got[0] != seen[-1][0] or len(got[1]) != len(seen[-1][1]):
                seen.append(got)
            assert got[0]["complete"] is False, got[0]
            if len(got[1]) >= finished:
                return seen
        time.sleep(0.1)
    pytest.fail(f"no results file with {finished} scenario(s) after {timeout}s:\n"
                f"{log.read_text()[-3000:]}")


def _planned(files: list[Path]) -> set[tuple[str, str]]:
    from harness.scenario import load_scenario
    return {(load_scenario(f).name, "enforcing") for f in files}


def _check_partial(path: Path, files: list[Path], stopped: str | None) -> list:
    """The file a stopped or killed run left: valid, partial, its finished scenarios whole, and
    every scenario it meant to run either finished or listed unfinished, never both."""
    fmt, meta, results = json_report.read_versioned(path)
    assert fmt == json_report.FORMAT
    assert meta["complete"] is False and meta["stopped"] == stopped, meta
    done = {(r.scenario, r.profile) for r in results}
    unfinished = {(u["scenario"], u["cni"]) for u in meta["unfinished"]}
    assert done and unfinished, (done, unfinished)
    assert not done & unfinished and done | unfinished == _planned(files)
    for r in results:                      # a finished scenario is there with its cells
        assert r.outcome == "passed" and r.steps and all(s.cells for s in r.steps), r.scenario
    progress = json_report.progress(meta)
    assert progress.partial and (stopped or "killed") in progress.sentence()
    return results


def _stop(proc, sig: int, log: Path) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, log.read_text()[-3000:]


def _local_objects(run_id: str) -> list:
    return [item for item in find_local_leftovers() if item.run_id.startswith(run_id[:5])]


#: a process started from a background shell inherits SIGINT ignored, and Python then installs
#: no KeyboardInterrupt handler: restored first, as in a CI step's foreground process
SIGINT_DEFAULT = ["-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                        "os.execv(sys.executable, [sys.executable] + sys.argv[1:])"]


@pytest.mark.parametrize("sig,said", [(signal.SIGTERM, "SIGTERM"),
                                      (signal.SIGINT, "SIGINT (Ctrl-C)")], ids=["term", "int"])
def test_a_signal_in_pytest_leaves_a_partial_file_with_the_finished_scenario(tmp_path, sig, said):
    """The CNI matrix's path: pytest with --netpol-json, stopped after the first scenario by
    SIGTERM, or by SIGINT (what a CI runner sends first to a step it stops)."""
    out, log, run_id = tmp_path / "r.json", tmp_path / "pytest.log", naming.new_run_id()
    files = [SMALL, DNS]
    argv = _pytest(files, run_id, out)
    proc = spawn([argv[0], *SIGINT_DEFAULT, *argv[1:]], log_path=str(log))
    try:
        seen = _wait_for(out, proc, log, finished=1)
    finally:
        _stop(proc, sig, log)
    # the first file came before any scenario ended: it lists both as unfinished
    first_meta, first = seen[0]
    assert first == [] and len(first_meta["unfinished"]) == 2 and first_meta["stopped"] is None
    results = _check_partial(out, files, said)
    assert results[0].scenario == "deny-ingress-small"
    assert _local_objects(run_id) == []     # and the teardown still ran


def test_sigkill_leaves_the_last_partial_file(tmp_path):
    """No handler runs on SIGKILL: the file is the last one written, after the first scenario."""
    out, log, run_id = tmp_path / "r.json", tmp_path / "run.log", naming.new_run_id()
    files = [SMALL, DNS]
    proc = spawn(_cli(files, run_id, out), log_path=str(log))
    try:
        _wait_for(out, proc, log, finished=1)
        before = out.read_bytes()
    finally:
        _stop(proc, signal.SIGKILL, log)
        time.sleep(1)   # the servers process ends by itself once its harness is gone
        for item in _local_objects(run_id):
            remove_local_leftover(item)
    assert out.read_bytes() == before   # nothing after the kill: the last partial file
    results = _check_partial(out, files, None)
    assert [r.scenario for r in results] == ["deny-ingress-small"]
    assert not [f for f in os.listdir(out.parent) if f.startswith(".r.json.")]   # no temp file


def test_sigterm_with_scenarios_at_once_keeps_every_finished_one(tmp_path):
    """`run -j 2`: scenarios finish in the pool's threads, out of order; the file holds each one
    that finished, whether or not the CLI had reached it when SIGTERM came."""
    out, log, run_id = tmp_path / "r.json", tmp_path / "run.log", naming.new_run_id()
    files = [SMALL, DNS, NAME]
    proc = spawn(_cli(files, run_id, out, jobs=2), log_path=str(log))
    try:
        _wait_for(out, proc, log, finished=1)
    finally:
        _stop(proc, signal.SIGTERM, log)
    _check_partial(out, files, "SIGTERM")
    assert _local_objects(run_id) == []


def test_a_complete_run_says_complete(tmp_path):
    out, log, run_id = tmp_path / "r.json", tmp_path / "pytest.log", naming.new_run_id()
    proc = spawn(_pytest([SMALL], run_id, out), log_path=str(log))
    seen = []
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            got = _read(out)
            if got is not None and (not seen or got[0]["complete"] != seen[-1][0]["complete"]):
                seen.append(got)
            time.sleep(0.1)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    # partial while it ran (the first file, before bring-up), complete at the end
    assert seen and seen[0][0]["complete"] is False and seen[0][0]["unfinished"] == [
        {"scenario": "deny-ingress-small", "path": str(SMALL), "cni": "enforcing"}]
    meta, results = json_report.read(out)
    assert (meta["complete"], meta["stopped"], meta["unfinished"]) == (True, None, [])
    assert [r.outcome for r in results] == ["passed"]
    assert not json_report.progress(meta).partial
    assert json.loads(out.read_text())["format"] == "netpol-proof/results/v6"
