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


def ours() -> list[str]:
    return [n for n in nsx.list_netns() if n.startswith(f"np-{RUN_ID}")]


@needs_local
def test_sigterm_mid_run_removes_every_namespace(tmp_path):
    log = tmp_path / "pytest.log"
    proc = spawn([sys.executable, "-m", "pytest", str(SCENARIO), "-p", "no:randomly", "-s",
                  "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                  "--cni", "enforcing", "--netpol-run-id", RUN_ID, "--converge-timeout", "30"],
                 log_path=str(log))
    try:
        deadline = time.monotonic() + 60
        # wait until the scenario's pods exist (more than the node and the canary's pods)
        while time.monotonic() < deadline and not any("baseline" in line for line in
                                                     log.read_text().splitlines()):
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
