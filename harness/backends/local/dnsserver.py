"""The emulated cluster DNS: a real DNS server (dnspython) on UDP and TCP 53 in the coredns pod.

Why real: "allow DNS" policies and DNS probes must meet a server that answers the way CoreDNS
does — A records for `<svc>.<ns>.svc.cluster.local` and `kubernetes.default.svc.cluster.local`,
NXDOMAIN for other names in cluster.local, REFUSED for names outside (this cluster has no
upstream: nothing leaves the emulated cluster). Exception: a single-label name (`web.`, the last
try of a search-path walk) gets NXDOMAIN, which is what CoreDNS relays from the root servers —
otherwise a short name that does not exist would end in REFUSED instead of NXDOMAIN. Records
come from a JSON file {name: ip}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

ZONE = "cluster.local."
TTL = 5


def answer(wire: bytes, records: dict[str, str]) -> bytes | None:
    """The wire-format reply to one query, or None when the query cannot be parsed."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return None
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.AA | dns.flags.RA  # CoreDNS sets RA; nslookup warns otherwise
    if not query.question:
        reply.set_rcode(dns.rcode.FORMERR)
        return reply.to_wire()
    q = query.question[0]
    name = q.name.to_text().lower()
    if name.count(".") == 1 and name != ZONE:
        reply.set_rcode(dns.rcode.NXDOMAIN)
    elif not (name == ZONE or name.endswith("." + ZONE)):
        reply.flags &= ~dns.flags.AA
        reply.set_rcode(dns.rcode.REFUSED)
    elif name in records:
        if q.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(q.name, TTL, "IN", "A", records[name]))
        # other types of a known name: NOERROR with no answer, as CoreDNS does
    else:
        reply.set_rcode(dns.rcode.NXDOMAIN)
    return reply.to_wire()


def _serve_udp(sock: socket.socket, records: dict[str, str]) -> None:
    while True:
        try:
            data, addr = sock.recvfrom(4096)
            out = answer(data, records)
            if out:
                sock.sendto(out, addr)
        except OSError:
            continue


def _tcp_handler(records: dict[str, str]):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                (length,) = struct.unpack("!H", head)
                data = b""
                while len(data) < length:
                    chunk = self.request.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                out = answer(data, records)
                if not out:
                    return
                self.request.sendall(struct.pack("!H", len(out)) + out)

    return Handler


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def normalise(records: dict[str, str]) -> dict[str, str]:
    """Record names as answer() looks them up: lower case, fully qualified (trailing dot)."""
    return {k.lower().rstrip(".") + ".": v for k, v in records.items()}


def load_records(path: str) -> dict[str, str]:
    with open(path) as fh:
        return normalise(json.load(fh))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="the emulated cluster DNS server")
    p.add_argument("--records", required=True, help="JSON file {name: ipv4}")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--ready", help="file written once both sockets are bound")
    a = p.parse_args(argv)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    records = load_records(a.records)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", a.port))
    tcp = _TCPServer(("0.0.0.0", a.port), _tcp_handler(records))
    threading.Thread(target=_serve_udp, args=(udp, records), daemon=True).start()
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    if a.ready:
        with open(a.ready + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(a.ready + ".tmp", a.ready)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


if __name__ == "__main__":
    sys.exit(main())
