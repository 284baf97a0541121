"""The one server process of an emulated pod: answers every declared TCP and UDP port.

Why one process per pod serving its identity: probes learn who answered (through a Service the
answer names the backing pod), and bring-up starts ten processes, not forty. TCP speaks HTTP so
that `curl` gets a response; UDP echoes the pod key for each datagram. Run as
`ip netns exec <ns> python -m harness.backends.real.podserver --name x/a --tcp 80 --udp 80`.
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import socket
import sys
import threading


def _http_handler(name: str):
    body = name.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Pod", name)  # for batched curl probes, which discard bodies
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet: one line per probe would flood the log
            pass

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    # socketserver's default backlog is 5; a round sends every source's probe to a pod at once
    request_queue_size = 128


def _serve_udp(sock: socket.socket, name: bytes) -> None:
    while True:
        try:
            _, addr = sock.recvfrom(4096)
            sock.sendto(name, addr)
        except OSError:
            continue


def serve(name: str, tcp_ports: list[int], udp_ports: list[int], ready: str | None) -> None:
    """Bind every port, then write `ready` (the backend waits for it), then serve forever."""
    threads = []
    for port in tcp_ports:
        srv = _Server(("0.0.0.0", port), _http_handler(name))
        threads.append(threading.Thread(target=srv.serve_forever, daemon=True))
    for port in udp_ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
        threads.append(threading.Thread(target=_serve_udp, args=(sock, name.encode()), daemon=True))
    for t in threads:
        t.start()
    if ready:
        tmp = ready + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(tmp, ready)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="serve an emulated pod's ports")
    p.add_argument("--name", required=True, help="the pod key, e.g. x/a (the reply body)")
    p.add_argument("--tcp", type=int, action="append", default=[])
    p.add_argument("--udp", type=int, action="append", default=[])
    p.add_argument("--ready", help="file written once every port is bound")
    a = p.parse_args(argv)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    serve(a.name, a.tcp, a.udp, a.ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
