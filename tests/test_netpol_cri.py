"""netpol-cri's own Go unit tests (components/netpol-cri/*_test.go: image references, the CRI
log's line splitting, which sysctls a pod may set, numeric users), run with the machine's Go.
The runtime itself is tested live by tests/real_nodes/ (critest and the real kubelet)."""

from __future__ import annotations

import os
import shutil

import pytest

from harness.components import MODULES_DIR
from harness.shell import run

GO = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK)
                            else None)


@pytest.mark.skipif(GO is None, reason="no Go toolchain (go is not on PATH)")
def test_netpol_cri_go_tests():
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=readonly -buildvcs=false",
               CGO_ENABLED="0")
    res = run([str(GO), "test", "-count=1", "./..."], cwd=MODULES_DIR / "netpol-cri", env=env,
              timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
