"""Preflight: without privileges or tools the local backend says so in one line, naming the fix."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from tests.conftest import needs_world_readable_checkout

from harness.backends.local.preflight import TOOLS, check_tools, missing_tools
from harness.errors import MissingToolError
from harness.shell import run


def test_missing_tool_names_the_debian_package():
    tools = {"ip": "iproute2", "netpol-proof-no-such-tool": "no-such-package"}
    assert missing_tools(tools) == {"netpol-proof-no-such-tool": "no-such-package"}
    with pytest.raises(MissingToolError, match="apt-get install -y no-such-package"):
        check_tools(tools)


def test_every_required_tool_names_a_package():
    assert set(TOOLS) >= {"ip", "nft", "curl", "nslookup"} and all(TOOLS.values())


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root (to drop to an unprivileged user) and setpriv")
@needs_world_readable_checkout
def test_unprivileged_user_gets_one_clear_line():
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
            sys.executable, "-c",
            "from harness.backends.local import LocalBackend; LocalBackend('enforcing').up()"]
    res = run(argv, timeout=60)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("harness.errors.PrivilegeError:") and "needs root or CAP_NET_ADMIN" in last
