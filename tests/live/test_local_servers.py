"""The servers process of a local run: sockets opened inside endpoint namespaces, requests on
its stdin, and an end that does not depend on the harness ending well."""

from __future__ import annotations

import os
import sys

import pytest

from harness import naming
from harness.backends.local import netns as nsx
from harness.backends.local.backend import claim_run, release_run
from harness.backends.local.servers import ServerProcess
from harness.errors import BackendError
from harness.shell import run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


@pytest.fixture
def pod(tmp_path):
    run_id = naming.new_run_id()
    claim_run(run_id, purpose="test of the servers process")
    ns = f"{naming.local_prefix(run_id)}p0"
    nsx.add_netns([ns])
    nsx.ip_batch(["link set lo up"], ns)
    servers = ServerProcess(str(tmp_path), timeout=30)
    servers.start()
    yield ns, servers
    servers.stop()
    nsx.delete_netns(ns)
    release_run(run_id)


def curl(ns: str, port: int) -> str:
    res = run(["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "5", "-D", "-",
               f"http://127.0.0.1:{port}/"], timeout=30)
    return res.stdout + res.stderr


def test_an_endpoint_is_served_inside_its_namespace_and_stops_on_request(pod):
    ns, servers = pod
    servers.request("serving x/a", op="serve", key="x/a", netns=f"/run/netns/{ns}", tcp=[80],
                    udp=[])
    out = curl(ns, 80)
    assert "HTTP/1.0 200 OK" in out and "X-Pod: x/a" in out and out.endswith("x/a")
    servers.request("stopping x/a", op="stop", key="x/a")
    assert "curl: (7)" in curl(ns, 80)   # refused: nothing listens any more
    # the port is free again: the same endpoint can be served anew
    servers.request("serving x/a again", op="serve", key="x/a", netns=f"/run/netns/{ns}",
                    tcp=[80], udp=[])
    assert curl(ns, 80).endswith("x/a")


def test_a_bad_request_is_an_error_naming_it_and_the_process_goes_on(pod):
    ns, servers = pod
    servers.request("serving x/a", op="serve", key="x/a", netns=f"/run/netns/{ns}", tcp=[80])
    with pytest.raises(BackendError, match="serving x/b: OSError: .*Address already in use"):
        servers.request("serving x/b", op="serve", key="x/b", netns=f"/run/netns/{ns}", tcp=[80])
    with pytest.raises(BackendError, match="no such namespace: FileNotFoundError"):
        servers.request("no such namespace", op="serve", key="x/c", netns="/run/netns/np-none",
                        tcp=[81])
    assert curl(ns, 80).endswith("x/a")


def test_end_of_input_ends_the_process(tmp_path):
    """What a crashed harness leaves: its end of the pipe closes, and the servers go."""
    servers = ServerProcess(str(tmp_path), timeout=30)
    servers.start()
    proc = servers.proc
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    assert f"{tmp_path}/" in " ".join(proc.args)   # whose process it was, for ps and cleanup
    servers.stop()
    assert sys.executable in proc.args
