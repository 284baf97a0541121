"""Capture real curl / nslookup / UDP-client / kube UDP and SCTP client outputs for
tests/test_probes.py.

Why: classify() must be tested on what the real tools print, not on strings we imagine. Run as
root: `python tests/data/probe-outputs/capture.py` (re-run after a tool upgrade). It creates a
throwaway network namespace `np-<run>-cap`, serves HTTP/UDP/DNS on loopback inside it, drops
some ports with nftables inside it, runs each tool once per case, writes <case>.json here, and
deletes the namespace. Nothing is sent anywhere but that namespace's loopback.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

from harness import naming  # noqa: E402
from harness.model import Protocol  # noqa: E402
from harness.probes import (  # noqa: E402
    Outcome,
    ProbeSpec,
    argv_for,
    batch_argv_for,
    second_look_argv,
    udp_argv_for,
)
from harness.shell import run  # noqa: E402

T = 1.0
DROP_IP = "127.0.0.53"   # nft drops everything sent to this address (a policy drop)
SLOW_DNS = "127.0.0.3"   # a DNS server that answers LATE s after each query
LATE = 1.3               # after the probe timeout T, within its grace (probes.late_grace)

NFT = f"""table ip cap {{
  chain input {{ type filter hook input priority 0; policy accept;
    ip daddr {DROP_IP} drop
  }}
}}
"""


def _spec(proto, port=80, dns=None):
    return ProbeSpec("x/a", "x/b", port, proto, dns)


TCP, UDP = _spec(Protocol.TCP), _spec(Protocol.UDP)
DNS, DNS_TCP = _spec(Protocol.UDP, 53, "kube-dns.kube-system.svc.cluster.local"), \
    _spec(Protocol.TCP, 53, "kube-dns.kube-system.svc.cluster.local")


#: the probes of the "curl-batch" case: (spec, destination), one per outcome
BATCH = [(TCP, "127.0.0.1"), (_spec(Protocol.TCP, 82), "127.0.0.1"), (TCP, DROP_IP),
         (_spec(Protocol.TCP, 8500), "127.0.0.1")]


def cases() -> dict[str, list[str]]:
    """case name -> argv (the same argv_for the prober uses, pointed at loopback servers)."""
    ns = lambda name: [*argv_for(_spec(Protocol.UDP, 53, name), "", T), "127.0.0.1"]
    return {
        "curl-connected": argv_for(TCP, "127.0.0.1", T),
        "curl-refused": argv_for(_spec(Protocol.TCP, 82), "127.0.0.1", T),
        "curl-timeout": argv_for(TCP, DROP_IP, T),
        "curl-http-403-access-denied": argv_for(_spec(Protocol.TCP, 8403), "127.0.0.1", T),
        "curl-http-500": argv_for(_spec(Protocol.TCP, 8500), "127.0.0.1", T),
        "curl-unresolvable-name": argv_for(TCP, "nosuch.invalid", T),
        "curl-connected-no-response": argv_for(_spec(Protocol.TCP, 8600), "127.0.0.1", T),
        "udp-connected": argv_for(_spec(Protocol.UDP, 81), "127.0.0.1", T),
        "udp-refused": argv_for(_spec(Protocol.UDP, 82), "127.0.0.1", T),
        "udp-timeout": argv_for(_spec(Protocol.UDP, 81), DROP_IP, T),
        # a server that answers LATE s after each datagram: the client is still listening
        "udp-late-reply": argv_for(_spec(Protocol.UDP, 83), "127.0.0.1", T),
        "nslookup-resolved": ns("kube-dns.kube-system.svc.cluster.local"),
        # a short name through the search path of /etc/netns/<ns>/resolv.conf, from a server
        # that does not set RA: nslookup adds ";; Got recursion not available" and still exits 0
        "nslookup-resolved-no-recursion-warning": argv_for(_spec(Protocol.UDP, 53, "kube-dns.kube-system"), "", T),
        "nslookup-resolved-tcp": [*argv_for(DNS_TCP, "", T), "127.0.0.1"],
        "nslookup-nxdomain": ns("nosuch.x.svc.cluster.local"),
        "nslookup-refused": ns("example.com"),
        "nslookup-servfail": ns("servfail.cluster.local"),
        "nslookup-timeout": [*argv_for(DNS, "", T), DROP_IP],
        # the second look after a lookup timed out (probes.second_look_argv), at a DNS server
        # that answers late, and at one that never answers (absolute names: no search path)
        "nslookup-second-look-late": [*second_look_argv(
            DNS, "kube-dns.kube-system.svc.cluster.local.", Outcome.DNS_TIMEOUT, T), SLOW_DNS],
        "nslookup-second-look-timeout": [*second_look_argv(
            DNS, "kube-dns.kube-system.svc.cluster.local.", Outcome.DNS_TIMEOUT, T), DROP_IP],
        "curl-batch": batch_argv_for(BATCH, T),
        # the kube backends' UDP client (toolkit "agnhost": bash, as in the agnhost image; this
        # machine's bash here)
        "kube-udp-connected": argv_for(_spec(Protocol.UDP, 81), "127.0.0.1", T, "agnhost"),
        "kube-udp-refused": argv_for(_spec(Protocol.UDP, 82), "127.0.0.1", T, "agnhost"),
        "kube-udp-timeout": argv_for(_spec(Protocol.UDP, 81), DROP_IP, T, "agnhost"),
        "kube-udp-batch": udp_argv_for(UDP_BATCH, T, "agnhost"),
    }


#: the probes of the "kube-udp-batch" case, one per outcome
UDP_BATCH = [(_spec(Protocol.UDP, 81), "127.0.0.1"), (_spec(Protocol.UDP, 82), "127.0.0.1"),
             (_spec(Protocol.UDP, 81), DROP_IP)]


def agnhost_cases(agnhost: str) -> dict[str, list[str]]:
    """The kube backends' SCTP client (probes.KUBE_DIAL_CLIENT) with a real agnhost: this
    kernel has no SCTP, so it asks netexec's /dial for UDP against the UDP server (the same
    client, JSON and errors; only the socket differs), and once for SCTP, which fails here as on
    any node without SCTP. `/agnhost` (the image's path) is pointed at `agnhost`."""
    def dial(proto: str, port: int, dest: str = "127.0.0.1") -> list[str]:
        argv = argv_for(_spec(Protocol.SCTP, port), dest, T, "agnhost")
        return [agnhost if a == "/agnhost" else proto if a == "sctp" else a for a in argv]
    return {"kube-dial-udp-connected": dial("udp", 81), "kube-dial-udp-refused": dial("udp", 82),
            "kube-dial-udp-timeout": dial("udp", 81, DROP_IP),
            "kube-dial-sctp-not-in-kernel": dial("sctp", 80)}


#: cases run last, after DNS to the resolv.conf server (127.0.0.2) is dropped too
AFTER_DNS_DROP = {
    "curl-name-dns-timeout": argv_for(TCP, "web.x.svc.cluster.local", T),
}


def _serve_inside() -> None:
    """Loopback servers inside the throwaway namespace."""
    import dns.flags
    import dns.message
    import dns.rcode

    from harness.backends.local.dnsserver import answer
    from harness.backends.real.podserver import _http_handler

    records = {"kube-dns.kube-system.svc.cluster.local.": "10.96.0.10"}

    def dns_reply(data: bytes, recursion: bool) -> bytes | None:
        q = dns.message.from_wire(data)
        if q.question and q.question[0].name.to_text() == "servfail.cluster.local.":
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.SERVFAIL)
            return r.to_wire()
        out = answer(data, records)
        if not recursion:
            r = dns.message.from_wire(out)
            r.flags &= ~dns.flags.RA
            return r.to_wire()
        return out

    def udp_dns(addr, recursion, delay=0.0):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 53))
        while True:
            d, a = s.recvfrom(4096)
            if delay:
                threading.Timer(delay, s.sendto, (dns_reply(d, recursion), a)).start()
            else:
                s.sendto(dns_reply(d, recursion), a)

    def tcp_dns():
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 53))
        srv.listen()
        while True:
            c, _ = srv.accept()
            n = int.from_bytes(c.recv(2), "big")
            out = dns_reply(c.recv(n), True)
            c.sendall(len(out).to_bytes(2, "big") + out)
            c.close()

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            code = int(self.server.server_address[1]) - 8000
            body = b"Access denied\r\n" if code == 403 else b"internal error\n"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    def udp_echo(port=81, delay=0.0):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        while True:
            _, a = s.recvfrom(4096)
            if delay:
                threading.Timer(delay, s.sendto, (b"x/b", a)).start()
            else:
                s.sendto(b"x/b", a)

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 80), _http_handler("x/b")),
               http.server.ThreadingHTTPServer(("127.0.0.1", 8403), Status),
               http.server.ThreadingHTTPServer(("127.0.0.1", 8500), Status)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    # a hung server: the kernel completes the handshake, nobody ever answers
    hung = socket.socket()
    hung.bind(("127.0.0.1", 8600))
    hung.listen(16)
    _serve_inside.keep = hung
    for target, args in ((udp_dns, ("127.0.0.1", True)), (udp_dns, ("127.0.0.2", False)),
                         (udp_dns, (SLOW_DNS, True, LATE)), (tcp_dns, ()), (udp_echo, ()),
                         (udp_echo, (83, LATE))):
        threading.Thread(target=target, args=args, daemon=True).start()


def capture_inside(out_dir: str, agnhost: str = "") -> dict[str, dict]:
    """Run every case inside the current (throwaway) namespace; write and return the results.
    With an agnhost binary, the kube SCTP client's cases too."""
    _serve_inside()
    import time
    time.sleep(0.2)
    results = {}
    todo = list(cases().items()) + list(agnhost_cases(agnhost).items() if agnhost else []) \
        + list(AFTER_DNS_DROP.items())
    for name, argv in todo:
        if name == next(iter(AFTER_DNS_DROP)):
            run(["nft", "add", "rule", "ip", "cap", "input", "ip", "daddr", "127.0.0.2", "drop"],
                check=True, doing="dropping DNS to 127.0.0.2")
        r = run(argv, timeout=T * 4 + 10)
        results[name] = {"argv": list(r.argv), "returncode": r.returncode, "stdout": r.stdout,
                         "stderr": r.stderr, "elapsed": round(r.elapsed, 3)}
        if out_dir:
            with open(os.path.join(out_dir, f"{name}.json"), "w") as fh:
                json.dump(results[name], fh, indent=1)
                fh.write("\n")
    return results


def capture(out_dir: str = HERE, agnhost: str = "") -> dict[str, dict]:
    """Create the throwaway namespace, capture inside it, delete it (also on failure)."""
    from harness.backends.local.backend import claim_run, release_run

    run_id = naming.new_run_id()
    ns = f"{naming.local_prefix(run_id)}cap"
    claim_run(run_id, purpose="probe-output capture")   # so `cleanup` knows it is alive
    run(["ip", "netns", "add", ns], check=True, doing="creating the capture namespace")
    etc = os.path.join("/etc/netns", ns)
    try:
        os.makedirs(etc)
        with open(os.path.join(etc, "resolv.conf"), "w") as fh:
            fh.write("nameserver 127.0.0.2\nsearch svc.cluster.local cluster.local\n"
                     "options ndots:5 timeout:1 attempts:1\n")
        run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=NFT, check=True,
            doing="loading the capture drop rules")
        r = run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--inside",
                 out_dir, agnhost], timeout=120, check=True, doing="capturing probe outputs")
        return json.loads(r.stdout)
    finally:
        run(["ip", "netns", "del", ns])
        shutil.rmtree(etc, ignore_errors=True)
        release_run(run_id)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        print(json.dumps(capture_inside(sys.argv[2] if len(sys.argv) > 2 else "",
                                        sys.argv[3] if len(sys.argv) > 3 else "")))
    else:
        # the kube SCTP client's cases need agnhost: $NETPOL_TEST_AGNHOST or the cached build
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
        from tests.conftest import agnhost_binary
        found = capture(sys.argv[1] if len(sys.argv) > 1 else HERE, agnhost_binary() or "")
        for name, r in found.items():
            print(f"{name:42} exit {r['returncode']:3}  {(r['stderr'] or r['stdout']).strip()[:70]!r}")
