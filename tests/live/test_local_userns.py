"""The local backend inside a private user namespace (python -m harness.backends.local.userns).

Two ways: from root with --always (the same namespaces, but uid 0 inside maps to root's files),
and as the truly unprivileged user `nobody`, with the system Python and a readable copy of
dnspython (this machine's own interpreter lives under /root, which nobody cannot read).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

from harness import naming
from harness.shell import run
from tests.conftest import needs_world_readable_checkout

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


SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON) or shutil.which("setpriv") is None,
                    reason="needs /usr/bin/python3 and setpriv to run as an unprivileged user")
@needs_world_readable_checkout
def test_an_unprivileged_user_runs_the_local_backend():
    import dns

    run_id = naming.new_run_id()
    site = tempfile.mkdtemp(prefix="np-userns-")
    try:
        shutil.copytree(os.path.dirname(dns.__file__), os.path.join(site, "dns"))
        script = os.path.join(site, "run.py")
        with open(script, "w") as fh:
            fh.write(SCRIPT)
        for root, dirs, files in os.walk(site):
            for name in dirs + files + ["."]:
                os.chmod(os.path.join(root, name), 0o755)
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": site,
               "PYTHONPATH": f"{repo}:{site}"}
        res = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                   SYSTEM_PYTHON, "-m", "harness.backends.local.userns", "--",
                   SYSTEM_PYTHON, script, run_id, "clean"], env=env, timeout=120)
    finally:
        shutil.rmtree(site, ignore_errors=True)
    if "Operation not permitted" in res.stderr and "unshare" in res.stderr:
        pytest.skip(f"this kernel does not allow unprivileged user namespaces: {res.stderr.strip()}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PROBE x/b" in res.stdout and "NETNS 4" in res.stdout
    assert host_objects(run_id) == []
