"""SIGTERM in the middle of a pytest run tears the local cluster down (CI cancels jobs so).

Why real: a cancelled CI job must not leave network namespaces behind; only a real pytest
process, a real signal and the real netns list show that the teardown runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from harness.backends.local import netns as nsx
from harness.shell import spawn
from tests.conftest import needs_local

ROOT = Path(__file__).parent.parent.parent
SCENARIO = ROOT / "tests" / "data" / "run" / "deny-ingress-small.yaml"
RUN_ID = "sigt01"
#: every cluster of the run: the slots of `--netpol-jobs` are named from the first five characters
PREFIX = f"np-{RUN_ID[:5]}"


def ours() -> list[str]:
    return [n for n in nsx.list_netns() if n.startswith(PREFIX)]


@needs_local
def test_sigterm_mid_run_removes_every_namespace(tmp_path):
    log = tmp_path / "pytest.log"
    proc = spawn([sys.executable, "-m", "pytest", str(SCENARIO), "-p", "no:randomly", "-s",
                  "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                  "--cni", "enforcing", "--netpol-run-id", RUN_ID, "--converge-timeout", "30",
                  "--netpol-jobs", "2"],
                 log_path=str(log))
    try:
        deadline = time.monotonic() + 60
        # wait until the scenario's pods exist (in a cluster of its own with --netpol-jobs
        # above 1, beside the first one's node and canary pods)
        while time.monotonic() < deadline and not any(
                n.endswith("-p0") and not n.startswith(f"np-{RUN_ID}a-") for n in ours()):
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        assert len(ours()) > 1, f"no pods found; log:\n{log.read_text()[-2000:]}"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert ours() == [], log.read_text()[-3000:]
    assert not os.path.exists(f"/run/netpol-proof/{RUN_ID}a.json")
    assert proc.returncode != 0


@needs_local
def test_sigterm_stops_scenarios_running_at_once_in_the_cli(tmp_path):
    """`run -j 3`: scenarios running on clusters of their own are interrupted at their next
    probe, the pending ones never start, and every cluster goes (in seconds, not after the
    scenarios' convergence deadlines)."""
    from harness import naming
    from harness.scheduler import slot_run_id
    run_id = naming.new_run_id()   # its own, even when this test runs twice at once
    prefix = f"np-{run_id[:5]}"
    log = tmp_path / "run.log"
    data = ROOT / "tests" / "data" / "run"
    proc = spawn([sys.executable, "-m", "harness", "run", str(data / "deny-ingress-small.yaml"),
                  str(data / "egress-dns.yaml"), str(data / "name-deny.yaml"),
                  str(data / "allow-only-open.yaml"), "--cni", "enforcing,open", "-j", "3",
                  "--run-id", run_id, "--converge-timeout", "60"], log_path=str(log))
    try:
        deadline = time.monotonic() + 60
        # an extra cluster's id is the run id's first five characters and three of its own
        # (scheduler.slot_run_id), a CNI's first cluster's the run id and one letter: told
        # apart by length (by prefix, a run id ending in "0" hid every extra cluster's)
        extra = len(slot_run_id(run_id, 0, 0, 1))
        slots = lambda: [n for n in nsx.list_netns()   # noqa: E731
                         if n.startswith(prefix) and n.endswith("-p0")
                         and len(n) == len(f"np-{'x' * extra}-p0")]
        while time.monotonic() < deadline and len(slots()) < 2:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.05)
        assert len(slots()) >= 2, log.read_text()[-2000:]
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        proc.wait(timeout=60)
        stopped = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [n for n in nsx.list_netns() if n.startswith(prefix)] == [], log.read_text()[-3000:]
    assert not [f for f in os.listdir("/run/netpol-proof") if f.startswith(run_id[:5])]
    assert proc.returncode != 0
    assert stopped < 30, f"took {stopped:.1f}s to stop"
