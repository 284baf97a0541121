"""The servers of every endpoint of one local run, in one process: HTTP on each TCP port, a UDP
answer naming the endpoint on each UDP port, and the cluster DNS in the DNS pod.

Why one process for all endpoints: a Python interpreter that starts a pod's servers costs about
0.2 s of CPU (measured by bench/bench_library.py), ten per scenario, which was half of the
library's CPU. A socket belongs to the network namespace it was created in, whichever process
holds it, so this process opens each endpoint's sockets inside that endpoint's namespace
(setns(2) around socket(2), then back) and serves them all from one event loop. To a packet it
is the same: the listening socket, and every connection accepted on it, live in the pod's
namespace; a loopback probe inside the pod reaches it on 127.0.0.1.

What it answers (unchanged from one server per pod): HTTP/1.0 `GET` gets 200 with the endpoint
key as the body and in an `X-Pod` header (batched curl probes discard bodies); any other method
501. A UDP datagram gets the endpoint key back. The DNS pod's UDP and TCP 53 answer as
harness.backends.local.dnsserver does, from the records the backend sends.

Control: JSON lines on stdin, one JSON reply line on stdout per request, in order:
  {"op": "serve", "key": "x/a", "netns": "/run/netns/np-..-p0", "tcp": [80], "udp": [80],
   "dns": {name: ip} or null}  ->  {"ok": true} once every socket is bound and listening
  {"op": "stop", "key": "x/a"}  ->  {"ok": true} once its sockets and connections are closed
End of input (the harness exited, even by a crash) ends this process.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable

from harness.backends.local.dnsserver import answer, normalise
from harness.errors import BackendError
from harness.shell import spawn, stop

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def open_socket(netns: str, kind: int, port: int, home: int) -> socket.socket:
    """A socket bound to 0.0.0.0:`port` (listening, for TCP) inside the namespace at path
    `netns`; the calling thread is back in its own namespace (`home`) on return."""
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
        try:
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port))
                if kind == socket.SOCK_STREAM:
                    s.listen(512)
                s.setblocking(False)
            except BaseException:
                s.close()
                raise
        finally:
            setns(home)
    finally:
        os.close(fd)
    return s


def http_response(name: str, request_head: bytes) -> bytes:
    """The reply to one HTTP request head: 200 with the endpoint's name for GET, else 501."""
    method = request_head.split(b" ", 1)[0]
    body = name.encode()
    status = "200 OK" if method == b"GET" else "501 Not Implemented"
    if method != b"GET":
        body = b"unsupported method\n"
    return (f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"X-Pod: {name}\r\nConnection: close\r\n\r\n").encode() + body


class Endpoint:
    """The sockets of one endpoint: listening, datagram, and open connections."""

    def __init__(self, key: str):
        self.key = key
        self.socks: set[socket.socket] = set()


class Servers:
    """Every endpoint this process serves, on one selector loop (one thread).

    Why a plain selector loop rather than asyncio: a connection here is one request and one
    small answer; asyncio's transport and protocol objects per connection cost about as much
    CPU again as the exchange (measured: 0.23 ms of server CPU per HTTP connection with
    asyncio, 0.11 ms with this loop).
    """

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.sel = selectors.DefaultSelector()

    # -- requests --------------------------------------------------------------------------
    def serve(self, key: str, netns: str, tcp: list[int], udp: list[int],
              dns: dict[str, str] | None) -> None:
        if key in self.endpoints:
            raise ValueError(f"{key} is already served")
        ep = Endpoint(key)
        self.endpoints[key] = ep
        try:
            if dns is not None:
                records = normalise(dns)
                reply: Callable[[bytes], bytes | None] = lambda data: answer(data, records)  # noqa: E731
                on_tcp: Callable = lambda conn: self._dns_tcp(ep, conn, reply)  # noqa: E731
                tcp, udp = [53], [53]
            else:
                name = key.encode()
                reply = lambda data: name  # noqa: E731
                on_tcp = lambda conn: self._http(ep, conn)  # noqa: E731
            for port in tcp:
                sock = open_socket(netns, socket.SOCK_STREAM, port, self.home)
                ep.socks.add(sock)
                self.sel.register(sock, selectors.EVENT_READ, lambda s=sock: self._accept(ep, s, on_tcp))
            for port in udp:
                sock = open_socket(netns, socket.SOCK_DGRAM, port, self.home)
                ep.socks.add(sock)
                self.sel.register(sock, selectors.EVENT_READ, lambda s=sock: self._datagrams(s, reply))
        except BaseException:
            self.stop(key)
            raise

    def stop(self, key: str) -> None:
        ep = self.endpoints.pop(key, None)
        if ep is not None:
            for sock in list(ep.socks):
                self._close(ep, sock)

    # -- events ----------------------------------------------------------------------------
    def _close(self, ep: Endpoint, sock: socket.socket) -> None:
        ep.socks.discard(sock)
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def _accept(self, ep: Endpoint, listener: socket.socket, on_conn: Callable) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue   # that peer is gone; the listener is fine
                return
            conn.setblocking(False)
            ep.socks.add(conn)
            handler = on_conn(conn)
            self.sel.register(conn, selectors.EVENT_READ, handler)
            handler()   # the request is often there already

    def _read(self, ep: Endpoint, conn: socket.socket) -> bytes:
        """What the peer sent, b"" when nothing is there yet; a peer that closed (or broke) is
        closed here too, and gives b"" as well."""
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:
            self._close(ep, conn)
        return data

    def _http(self, ep: Endpoint, conn: socket.socket) -> Callable[[], None]:
        """One HTTP/1.0 exchange: read the request head, answer, close."""
        buf = bytearray()

        def on_read() -> None:
            data = self._read(ep, conn)
            if not data:
                return
            buf.extend(data)
            if b"\r\n\r\n" in buf or len(buf) > 16384:
                try:
                    conn.send(http_response(ep.key, bytes(buf)))   # small: fits the buffer
                except OSError:
                    pass
                self._close(ep, conn)

        return on_read

    def _dns_tcp(self, ep: Endpoint, conn: socket.socket,
                 reply: Callable[[bytes], bytes | None]) -> Callable[[], None]:
        """DNS over TCP: 2-byte length-prefixed messages, answered in order until the peer
        closes."""
        buf = bytearray()

        def on_read() -> None:
            data = self._read(ep, conn)
            if not data:
                return
            buf.extend(data)
            while len(buf) >= 2:
                (length,) = struct.unpack("!H", buf[:2])
                if len(buf) < 2 + length:
                    return
                msg = bytes(buf[2:2 + length])
                del buf[:2 + length]
                out = reply(msg)
                try:
                    if not out:
                        raise OSError("no answer")
                    conn.setblocking(True)   # an answer is small; never half-sent
                    conn.sendall(struct.pack("!H", len(out)) + out)
                    conn.setblocking(False)
                except OSError:
                    self._close(ep, conn)
                    return

        return on_read

    @staticmethod
    def _datagrams(sock: socket.socket, reply: Callable[[bytes], bytes | None]) -> None:
        while True:
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:   # an ICMP error for an earlier reply: nothing to do
                continue
            out = reply(data)
            if out:
                try:
                    sock.sendto(out, addr)
                except OSError:
                    pass

    # -- the loop --------------------------------------------------------------------------
    def run(self, control: int) -> None:
        """Serve until end of input on `control` (the harness is gone); answer its requests."""
        pending = bytearray()
        os.set_blocking(control, False)
        done = []

        def on_control() -> None:
            while True:
                try:
                    chunk = os.read(control, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    done.append(True)
                    return
                pending.extend(chunk)
            while b"\n" in pending:
                i = pending.index(b"\n")
                line = bytes(pending[:i])
                del pending[:i + 1]
                _reply(self._request(line))

        self.sel.register(control, selectors.EVENT_READ, on_control)
        while not done:
            for key, _ in self.sel.select():
                key.data()

    def _request(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if req["op"] == "serve":
                self.serve(req["key"], req["netns"], list(req.get("tcp") or []),
                           list(req.get("udp") or []), req.get("dns"))
            elif req["op"] == "stop":
                self.stop(req["key"])
            else:
                raise ValueError(f"unknown op {req['op']!r}")
            return {"ok": True}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _reply(reply: dict[str, Any]) -> None:
    data = json.dumps(reply).encode() + b"\n"
    os.set_blocking(1, True)
    while data:
        data = data[os.write(1, data):]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="serve the endpoints of one local run (requests "
                                            "on stdin, see the module docstring)")
    p.add_argument("--run", help="the run's directory (names whose process this is)")
    p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the harness stops us (SIGTERM or EOF)
    servers = Servers()
    try:
        servers.run(0)
    finally:
        for key in list(servers.endpoints):
            servers.stop(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- the harness side -------------------------------------------------------------------------
class ServerProcess:
    """The harness's handle on the servers process of one local run: start, requests, stop.

    Requests are answered in order, one at a time (a lock), each within `timeout` seconds; a
    failed request or a dead process is a BackendError carrying the process's log.
    """

    def __init__(self, workdir: str, timeout: float = 30.0):
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "servers.log")
        self.timeout = timeout
        self.proc: Any = None   # subprocess.Popen[bytes] once started
        self._buf = b""
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        # the workdir in argv says whose process this is (ps, the cleanup tests)
        self.proc = spawn([sys.executable, "-m", "harness.backends.local.servers", "--run",
                           self.workdir + "/"], log_path=self.log_path, pipes=True)
        self._buf = b""

    def request(self, doing: str, **req: Any) -> None:
        with self._lock:
            if self.proc is None or self.proc.poll() is not None:
                raise BackendError(doing, "the servers process is not running", self._log())
            try:
                os.write(self.proc.stdin.fileno(), json.dumps(req).encode() + b"\n")
            except OSError as exc:
                raise BackendError(doing, f"the servers process does not listen ({exc})",
                                   self._log()) from None
            line = self._readline(doing)
        reply = json.loads(line)
        if not reply.get("ok"):
            raise BackendError(doing, str(reply.get("error")), self._log())

    def _readline(self, doing: str) -> bytes:
        deadline = time.monotonic() + self.timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                raise BackendError(doing, f"no answer from the servers process within "
                                          f"{self.timeout:g}s", self._log())
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait(timeout=5)
                raise BackendError(doing, f"the servers process exited with status "
                                          f"{self.proc.returncode}", self._log())
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> int | None:
        """End the process (end of input, then SIGTERM, then SIGKILL); its exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        try:
            proc.stdin.close()
            return proc.wait(timeout=2)
        except (OSError, Exception):  # noqa: BLE001 - any failure: fall back to signals
            return stop(proc)
        finally:
            if proc.stdout:
                proc.stdout.close()
