"""The API server's way to the kubelets: an HTTP CONNECT proxy on a unix socket (the API
server's egress selector, `cluster` traffic), which opens each connection inside the network
namespace of the node that owns the address asked for.

Why: the API server listens on the root namespace's loopback and the kubelets serve inside the
node namespaces, which have no link to the root namespace (harness/backends/real/nodes.py). For
exec, logs and port-forward the API server dials the kubelet at the Node's InternalIP; with
`--egress-selector-config-file` naming this socket it sends `CONNECT <ip>:<port>` here instead.
Only addresses registered with `add` are served: anything else is refused with 403, so the API
server can reach the nodes of this run and nothing else.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path
from typing import Callable

from harness.backends.real.controlplane.relay import in_netns, splice
from harness.errors import BackendError

#: the longest CONNECT request head read (the API server sends two short lines)
MAX_HEAD = 8192


class EgressError(BackendError):
    """The egress proxy could not start or serve."""


def connect_in_netns(netns: str, host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to host:port made from inside network namespace `netns` (in_netns)."""
    return in_netns(netns, lambda: socket.create_connection((host, port), timeout=timeout),
                    f"egress-connect-{netns}")


def parse_connect(head: bytes) -> tuple[str, int] | None:
    """(host, port) of an HTTP CONNECT request head, or None when it is not one."""
    try:
        line = head.split(b"\r\n", 1)[0].decode("ascii")
        method, target, version = line.split(" ")
        host, port = target.rsplit(":", 1)
        if method != "CONNECT" or not version.startswith("HTTP/1."):
            return None
        return host.strip("[]"), int(port)
    except (UnicodeDecodeError, ValueError):
        return None


class NodeEgress:
    """The proxy (see the module docstring): `start()`, `add(ip, netns)`, `stop()`."""

    def __init__(self, socket_path: Path, log: Callable[[str], None] | None = None):
        self.socket_path = Path(socket_path)
        self._routes: dict[str, str] = {}
        self._log = log or (lambda msg: None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.refused = 0

    def add(self, address: str, netns: str) -> None:
        self._routes[address] = netns

    def start(self) -> None:
        if self._thread is not None:
            return
        self.socket_path.unlink(missing_ok=True)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_unix_server(self._handle, path=str(self.socket_path)))
                os.chmod(self.socket_path, 0o600)
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                errors.append(exc)
                ready.set()
                loop.close()
                return
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="node-egress", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise EgressError(f"listening on {self.socket_path}", str(errors[0]))
        self._loop = loop

    def stop(self) -> None:
        """Close the socket and every connection; idempotent."""
        if self._loop is None or self._thread is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = self._loop = None
        self.socket_path.unlink(missing_ok=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            self._writers.discard(writer)
            return
        target = parse_connect(head[:MAX_HEAD])
        netns = self._routes.get(target[0]) if target else None
        if target is None or netns is None:
            self.refused += 1
            first = head.split(b"\r\n", 1)[0]
            self._log(f"egress: refused {first!r}: not a CONNECT to a node of this run")
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            self._writers.discard(writer)
            return
        host, port = target
        loop = asyncio.get_running_loop()
        try:
            sock = await loop.run_in_executor(None, connect_in_netns, netns, host, port)
        except OSError as exc:
            self._log(f"egress: {host}:{port} in {netns}: {exc}")
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            self._writers.discard(writer)
            return
        self.connections += 1
        sock.setblocking(False)
        up_reader, up_writer = await asyncio.open_connection(sock=sock)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await splice(reader, writer, up_reader, up_writer, self._writers)


def egress_config(socket_path: Path) -> str:
    """The API server's EgressSelectorConfiguration: `cluster` traffic (kubelets, pods,
    services) through the proxy's unix socket; the control plane and etcd direct."""
    return ("apiVersion: apiserver.k8s.io/v1beta1\n"
            "kind: EgressSelectorConfiguration\n"
            "egressSelections:\n"
            "- name: cluster\n"
            "  connection:\n"
            "    proxyProtocol: HTTPConnect\n"
            "    transport:\n"
            "      uds:\n"
            f"        udsName: {socket_path}\n")
