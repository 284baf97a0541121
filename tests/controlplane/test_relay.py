"""The API server relay on its own, against a stand-in upstream (a TCP echo server on the root
namespace's loopback): it listens inside the chosen harness namespace and nowhere else, refuses
namespaces that are not the harness's, and closes its connections when a namespace is released.
The relay against the real API server is in test_plane.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from harness import naming
from harness.backends.real.controlplane.relay import Relay, RelayError
from harness.shell import run, spawn
from tests.controlplane.conftest import ClaimedNetns, needs_root

pytestmark = needs_root

CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode())
s.shutdown(socket.SHUT_WR)
data = b""
while chunk := s.recv(4096):
    data += chunk
print(data.decode())
"""

HOLD = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"x")
print("CONNECTED", flush=True)
s.settimeout(30)
print("EOF" if s.recv(1) == b"" else "DATA", flush=True)
"""


class UpperEcho:
    """Stand-in upstream: answers each connection with what it read, upper-cased."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _one(conn):
        with conn:
            data = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
                if data == b"x":
                    continue        # HOLD's byte: keep the connection open, answer nothing
            conn.sendall(data.upper())


@pytest.fixture
def setup():
    run_id = naming.new_run_id()
    netns = ClaimedNetns(run_id)
    upstream = UpperEcho()
    relay = Relay(("127.0.0.1", upstream.port))
    relay.start()
    try:
        yield netns, relay, upstream
    finally:
        relay.stop()
        upstream.sock.close()
        netns.close()


def in_netns(ns: str, code: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                          capture_output=True, text=True, timeout=timeout)


def held_connection(ns: str, tmp_path):
    """HOLD run in namespace `ns` against the relay's port, once it is connected: (its process,
    its log)."""
    log = tmp_path / "hold.log"
    proc = spawn(["ip", "netns", "exec", ns, sys.executable, "-c", HOLD, "6443"], log_path=str(log))
    deadline = time.monotonic() + 20
    while "CONNECTED" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    if "CONNECTED" not in log.read_text():
        proc.kill()
        pytest.fail(f"the client in {ns} never connected: {log.read_text()!r}")
    return proc, log


def test_a_client_in_the_namespace_reaches_the_root_loopback_server_through_the_relay(setup):
    netns, relay, upstream = setup
    ns = netns.add("r1")
    assert relay.add(ns, "127.0.0.1", 6443) == ("127.0.0.1", 6443)
    assert relay.add(ns) == ("127.0.0.1", 6443)            # idempotent
    out = in_netns(ns, CLIENT, "6443", "hello relay")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "HELLO RELAY"
    assert relay.accepted(ns) == 1
    # the upstream port itself is not reachable from the namespace: only the relay joins them
    direct = in_netns(ns, CLIENT, str(upstream.port), "x")
    assert direct.returncode != 0 and "Connection refused" in direct.stderr
    # the namespace's only interface is loopback: nothing routes anywhere
    links = run(["ip", "-n", ns, "-o", "link"], check=True).stdout
    assert [ln.split(":")[1].strip() for ln in links.splitlines()] == ["lo"]


def test_the_listener_is_inside_the_namespace_only(setup):
    netns, relay, _ = setup
    ns, other = netns.add("r2"), netns.add("r3")
    run(["ip", "-n", other, "link", "set", "lo", "up"], check=True)
    port = 16443
    relay.add(ns, "127.0.0.1", port)
    inside = run(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"], check=True).stdout
    assert f"127.0.0.1:{port}" in inside
    for where in (["ss"], ["ip", "netns", "exec", other, "ss"]):
        listed = run([*where, "-Hltnp", f"sport = :{port}"], check=True).stdout
        assert f"pid={os.getpid()}," not in listed, listed
    refused = in_netns(other, CLIENT, str(port), "x")
    assert refused.returncode != 0 and "Connection refused" in refused.stderr


def test_namespaces_that_are_not_the_harnesss_are_refused(setup):
    _, relay, _ = setup
    foreign = "npx-not-ours"
    run(["ip", "netns", "add", foreign], check=True)
    try:
        with pytest.raises(RelayError, match="not one of the harness's namespaces"):
            relay.add(foreign)
        # refused before anything was done in it: its loopback is still down
        assert "state DOWN" in run(["ip", "-n", foreign, "link", "show", "lo"]).stdout or \
            "DOWN" in run(["ip", "-n", foreign, "-br", "link", "show", "lo"]).stdout
    finally:
        run(["ip", "netns", "del", foreign])
    with pytest.raises(RelayError, match="no such network namespace"):
        relay.add(f"{naming.local_prefix(naming.new_run_id())}absent")


def test_releasing_a_namespace_closes_its_connections(setup, tmp_path):
    netns, relay, _ = setup
    ns = netns.add("r4")
    relay.add(ns)
    proc, log = held_connection(ns, tmp_path)
    try:
        relay.remove(ns)
        proc.wait(timeout=20)
        assert "EOF" in log.read_text()
        assert relay.served() == {}
        refused = in_netns(ns, CLIENT, "6443", "x")
        assert refused.returncode != 0 and "Connection refused" in refused.stderr
    finally:
        proc.kill()
    relay.remove(ns)   # idempotent


def test_a_stopped_relay_says_so():
    relay = Relay(("127.0.0.1", 1))
    with pytest.raises(RelayError, match="not running"):
        relay._call(_noop())
    relay.stop()       # idempotent before start


async def _noop():
    return None


def test_stopping_while_a_connection_waits_for_the_upstream_leaves_no_task_behind(tmp_path):
    """stop() while a client's connection is still being joined to an upstream that does not
    answer yet (the API server busy at the run's end): the loop is closed with no task left
    half-run; one left for the garbage collector printed "Event loop is closed" tracebacks
    (and "Task was destroyed but it is pending") at the end of runs."""
    import asyncio

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(0)          # never accepted: once its backlog is full, a connect hangs
    port = busy.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    netns = ClaimedNetns(naming.new_run_id())
    relay = Relay(("127.0.0.1", port))
    relay.start()
    ns = netns.add("r5")
    relay.add(ns)
    proc, _ = held_connection(ns, tmp_path)
    try:
        time.sleep(0.3)                       # the relay is now waiting for the upstream
        loop = relay._loop
        assert loop is not None and asyncio.run_coroutine_threadsafe(
            _pending(), loop).result(5) >= 1
        # what asyncio would print: "Exception in callback ... CancelledError" from the
        # stream's connection callback, once per connection ended by the stop
        reported: list[dict] = []
        loop.call_soon_threadsafe(loop.set_exception_handler,
                                  lambda _loop, context: reported.append(context))
        relay.stop()
        assert loop.is_closed() and not asyncio.all_tasks(loop)
        assert [c.get("message") for c in reported] == []
    finally:
        proc.kill()
        relay.stop()
        busy.close()
        for c in fillers:
            c.close()
        netns.close()


async def _pending() -> int:
    import asyncio
    return len(asyncio.all_tasks()) - 1       # but this one
