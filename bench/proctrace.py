"""Counting the processes a benchmark's subtree starts, and the CPU of those still running.

Why the kernel's process events: a probe's cost includes what its tool starts in turn (a
`python3` on PATH may be a version-manager shim that forks dozens of times), and under heavy
contention from other work on the machine only counts and CPU seconds stay comparable. The
proc connector (netlink NETLINK_CONNECTOR, CN_IDX_PROC; root only) reports every fork on the
machine; we keep those whose parent is this process or one of its descendants. CPU of
descendants that were waited for is in getrusage(RUSAGE_CHILDREN); `alive_cpu()` adds the ones
still running (pod servers) from /proc/<pid>/stat.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import threading

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_FORK = 0x1
NLMSG_DONE = 3
SO_RCVBUFFORCE = 33
_TICK = os.sysconf("SC_CLK_TCK")


class Tracer:
    """Counts forks (processes) and clones (threads) in this process's subtree from start()."""

    def __init__(self) -> None:
        self.tree: set[int] = {os.getpid()}
        self.processes = 0
        self.threads = 0
        self.lost = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def start(self) -> Tracer:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        except OSError:
            pass
        s.bind((0, CN_IDX_PROC))
        cn = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, 4, 0) + \
            struct.pack("=I", PROC_CN_MCAST_LISTEN)
        s.send(struct.pack("=IHHII", 16 + len(cn), NLMSG_DONE, 0, 0, 0) + cn)
        self._sock = s
        threading.Thread(target=self._listen, daemon=True, name="proctrace").start()
        return self

    def _listen(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except OSError as exc:   # ENOBUFS: events were dropped; counts are a lower bound
                if exc.errno == 105:
                    self.lost = True
                    continue
                return
            off = 0
            while off + 16 <= len(data):
                length = struct.unpack_from("=I", data, off)[0]
                body = data[off + 16: off + length]
                if len(body) >= 52 and struct.unpack_from("=I", body, 20)[0] == PROC_EVENT_FORK:
                    _, ptgid, cpid, ctgid = struct.unpack_from("=IIII", body, 36)
                    with self._lock:
                        if ptgid in self.tree:
                            if cpid == ctgid:
                                self.tree.add(ctgid)
                                self.processes += 1
                            else:
                                self.threads += 1
                off += (length + 3) & ~3 if length else len(data)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.processes, self.threads

    def alive_cpu(self) -> float:
        """CPU seconds (user+sys) of descendants that are still running."""
        total = 0
        me = os.getpid()
        with self._lock:
            pids = [p for p in self.tree if p != me]
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15)
        return total / _TICK


def waited_cpu() -> tuple[float, float]:
    """(CPU seconds of this process, of its children that were waited for), user+sys."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime
