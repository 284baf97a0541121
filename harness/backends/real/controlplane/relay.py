"""The relay that lets processes inside harness-made network namespaces reach the API server,
which listens only on the root namespace's loopback.

How: for each chosen namespace a listening socket on *that namespace's* 127.0.0.1:<port>; every
connection accepted there is joined to a fresh connection to the API server on the root
namespace's loopback. Nothing routes between the namespaces: no veth to the root namespace, no
address of the host, only bytes copied between two loopback sockets by this process.

Why in the harness process, one asyncio thread, rather than socat or a relay process:
- a socket belongs to the network namespace it was created in, for life. So a throwaway thread
  enters the namespace (setns), creates and binds the listener, and exits; the event loop thread
  never leaves the root namespace, and no thread ever serves while inside a foreign one;
- the relay dies with its owner: a SIGKILL of the harness leaves no relay process and no socket
  holding a deleted namespace alive, so cleanup has nothing extra to find;
- no new system package (socat), no per-connection fork, no control channel to add a namespace
  to a running relay: `add()` is a function call.
The API server traffic of a few engines (watches, a handful of lists) is light for one thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from harness import naming
from harness.backends.local import netns as nsx
from harness.errors import BackendError
from harness.shell import run

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


class RelayError(BackendError):
    """The relay could not listen in a namespace or is not running."""


def in_netns(netns: str, work: Callable[[], T], name: str) -> T:
    """`work()` run by a thread that enters network namespace `netns` and exits (the caller's
    thread stays where it is); its result, or its exception raised in the caller's thread."""
    path = os.path.join(nsx.NETNS_DIR, netns)
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            out["result"] = work()
        except BaseException as exc:  # handed to the caller's thread
            out["error"] = exc

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["result"]


def _bind_in_netns(netns: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket created inside network namespace `netns` (in_netns)."""

    def bind() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(64)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        return s

    try:
        return in_netns(netns, bind, f"relay-bind-{netns}")
    except BaseException as exc:  # noqa: BLE001 - every failure of the bind is the relay's
        hint = ""
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            hint = f" (something in {netns} already listens on {host}:{port})"
        raise RelayError(f"opening the API server relay in network namespace {netns}",
                         f"{exc}{hint}") from None


@dataclass
class _Listener:
    netns: str
    address: tuple[str, int]
    server: asyncio.AbstractServer
    writers: set = field(default_factory=set)
    accepted: int = 0


class Relay:
    """Listeners in chosen network namespaces forwarding to `upstream` in the root namespace."""

    def __init__(self, upstream: tuple[str, int], log: Callable[[str], None] | None = None):
        self.upstream = upstream
        self._log = log or (lambda msg: None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listeners: dict[str, _Listener] = {}
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_forever()
            # connections still being spliced when stop() came: end them here, on the running
            # loop (their `finally` closes both sides); left to the garbage collector after
            # close() they printed "Event loop is closed" tracebacks at the run's end
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=serve, name="apiserver-relay", daemon=True)
        self._thread.start()
        started.wait(10)
        self._loop = loop

    def stop(self) -> None:
        """Close every listener and connection, stop the loop. Idempotent."""
        if self._thread is None or self._loop is None:
            return
        for netns in list(self._listeners):
            self.remove(netns)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = self._loop = None

    def _call(self, coro, timeout: float = 10.0):
        if self._loop is None:
            coro.close()
            raise RelayError("using the API server relay", "it is not running (start() first)")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- namespaces -----------------------------------------------------------------------------
    def add(self, netns: str, host: str = "127.0.0.1", port: int = 6443) -> tuple[str, int]:
        """Listen on `host:port` inside `netns` (one of the harness's own namespaces) and return
        that address. Idempotent for a namespace already served."""
        with self._lock:
            if netns in self._listeners:
                return self._listeners[netns].address
            if naming.run_id_of_netns(netns) is None:
                raise RelayError(f"opening the API server relay in network namespace {netns}",
                                 "it is not one of the harness's namespaces (np-<run>-...); the "
                                 "relay only listens inside namespaces the harness made")
            if netns not in nsx.list_netns():
                raise RelayError(f"opening the API server relay in network namespace {netns}",
                                 "no such network namespace")
            # a new namespace has its loopback down, and then 127.0.0.1 cannot be bound
            res = run(["ip", "-n", netns, "link", "set", "lo", "up"], timeout=10)
            if res.returncode != 0:
                raise RelayError(f"bringing up loopback in network namespace {netns}",
                                 res.stderr.strip() or f"exit {res.returncode}")
            sock = _bind_in_netns(netns, host, port)
            try:
                listener = self._call(self._listen(netns, sock))
            except BaseException:
                sock.close()
                raise
            self._listeners[netns] = listener
            self._log(f"relay: {netns} {host}:{port} -> {self.upstream[0]}:{self.upstream[1]}")
            return listener.address

    def remove(self, netns: str) -> None:
        """Stop listening in `netns` and close its connections (they hold the namespace alive
        after `ip netns del`). Idempotent."""
        with self._lock:
            listener = self._listeners.pop(netns, None)
        if listener is not None and self._loop is not None:
            self._call(self._close(listener))

    def served(self) -> dict[str, tuple[str, int]]:
        return {ns: lst.address for ns, lst in self._listeners.items()}

    def accepted(self, netns: str) -> int:
        """Connections accepted so far in `netns` (0 when not served)."""
        lst = self._listeners.get(netns)
        return lst.accepted if lst else 0

    # -- event loop side ------------------------------------------------------------------------
    async def _listen(self, netns: str, sock: socket.socket) -> _Listener:
        holder: dict[str, _Listener] = {}

        async def handle(reader, writer):
            try:
                await self._join(holder["l"], reader, writer)
            except asyncio.CancelledError:
                # the relay is stopping (serve() cancels what is left): the connection ends
                # here; raised on, asyncio's stream callback printed "Exception in callback
                # ... CancelledError" for every connection still being joined
                writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        addr = sock.getsockname()
        holder["l"] = _Listener(netns, (addr[0], addr[1]), server)
        return holder["l"]

    async def _close(self, listener: _Listener) -> None:
        listener.server.close()
        for w in list(listener.writers):
            w.close()
        await listener.server.wait_closed()

    async def _join(self, listener: _Listener, reader, writer) -> None:
        listener.accepted += 1
        listener.writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), 10)
        except (TimeoutError, OSError) as exc:
            self._log(f"relay: {listener.netns}: cannot reach the API server at "
                      f"{self.upstream[0]}:{self.upstream[1]}: {exc}")
            writer.close()
            listener.writers.discard(writer)
            return
        await splice(reader, writer, up_reader, up_writer, listener.writers)


async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter,
                 writers: set) -> None:
    """Copy both ways between a client's connection and its upstream until both end, then
    close both; `writers` (the open connections a stop closes) holds them meanwhile."""
    writers.add(up_writer)
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        for w in (writer, up_writer):
            w.close()
            writers.discard(w)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (TLS close_notify still flows back)."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
