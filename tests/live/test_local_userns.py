"""The local backend inside a private user namespace (python -m harness.backends.local.userns).

Run here from root with --always: the namespaces are created the same way an unprivileged user
gets them, although uid 0 inside still maps to root's files outside. (A truly unprivileged run
needs a Python and packages that user can read; this machine's interpreter is under /root.)
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from harness import naming
from harness.shell import run

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a namespaced run with --always"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)"),
]

SCRIPT = """
import os, sys
from harness.backends.local import LocalBackend
from harness.model import Model, Protocol
from harness.prober import probe_round
from harness.probes import ProbeSpec
b = LocalBackend("enforcing", run_id=sys.argv[1])
b.up()
addresses = b.deploy(Model.default(namespaces=["x"], pods=["a", "b"]))
spec = ProbeSpec("x/a", "x/b", 80, Protocol.TCP)
print("PROBE", probe_round(b, [spec], addresses, 1.0)[spec].answered_by, flush=True)
print("NETNS", len([n for n in os.listdir("/run/netns") if n.startswith(b.prefix)]), flush=True)
if sys.argv[2] == "crash":
    os._exit(7)          # no teardown at all (SIGKILL to itself is ignored: it is PID 1 here)
b.down()
"""


def in_userns(*command: str):
    return run([sys.executable, "-m", "harness.backends.local.userns", "--always", "--", *command],
               timeout=120)


def host_objects(run_id: str) -> list[str]:
    prefix = naming.local_prefix(run_id)
    found = [n for n in os.listdir("/run/netns") if n.startswith(prefix)] \
        if os.path.isdir("/run/netns") else []
    found += [n for n in os.listdir("/etc/netns") if n.startswith(prefix)] \
        if os.path.isdir("/etc/netns") else []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if f"/{run_id}/".encode() in fh.read():
                    found.append(f"process {pid}")
        except OSError:
            pass
    return found


@pytest.mark.parametrize("ending", ["clean", "crash"])
def test_a_run_in_a_user_namespace_works_and_leaves_nothing_on_the_host(ending):
    run_id = naming.new_run_id()
    res = in_userns(sys.executable, "-c", SCRIPT, run_id, ending)
    assert "PROBE x/b" in res.stdout and "NETNS 4" in res.stdout, res.stdout + res.stderr
    assert res.returncode == (0 if ending == "clean" else 7)
    # the namespaces lived in the private /run and /etc: the host never saw them, and the
    # PID namespace took every server process with it, even after the crash
    assert host_objects(run_id) == []


def test_exit_status_passes_through():
    assert in_userns("sh", "-c", "exit 3").returncode == 3
    usage = run([sys.executable, "-m", "harness.backends.local.userns"], timeout=30)
    assert usage.returncode == 2 and "usage:" in usage.stderr
