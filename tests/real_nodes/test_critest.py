"""netpol-cri passes critest's cases in scope (harness.backends.real.realnodes.critest.IN_SCOPE: sandboxes,
containers, exec, attach, logs, DNS config, hostname, sysctls, host network and IPC, users,
read-only root and paths, idempotence) in a node namespace. The others and why they are out of
scope: docs/real-nodes.md."""

from __future__ import annotations

import shutil

import pytest

from harness.backends.real.realnodes.critest import run_critest
from tests.real_nodes.conftest import needs_real_nodes

pytestmark = [needs_real_nodes("critest"),
              pytest.mark.skipif(shutil.which("busybox") is None,
                                 reason="critest's image is made from busybox (apt-get install "
                                        "busybox-static)")]


def test_critest_cases_in_scope_pass():
    results = run_critest(log=lambda m: None)
    ran = [(s, n) for s, n in results if s != "skipped"]
    assert len(ran) >= 40, results
    assert [n for s, n in ran if s != "passed"] == []
