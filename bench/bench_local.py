"""Benchmark of the local backend: prints figures, asserts nothing.

Why a script and not a timed test: timings depend on the machine and its load; the targets
(cluster up < 3 s, a 9x9 TCP 80 matrix < 1.5 x the probe timeout) are read here, by people.
Run as root: `python bench/bench_local.py [--timeout 1.0] [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from harness.backends.local import LocalBackend
from harness.lifecycle import install_sigterm_handler
from harness.model import Model, Protocol
from harness.prober import probe_round
from harness.probes import Outcome, ProbeSpec


def deny_all(ns: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-all", "namespace": ns}, "spec": {"podSelector": {}}}


def bridge_conntrack_check() -> str:
    """Does a bridge in a netns give nftables conntrack on bridged packets (br_netfilter)?

    Why: the local backend routes /32s instead of bridging; this re-measures the fact its
    docstring cites. Builds np-<run>-{n,a,b} (bridge in n), drops new TCP a->b:80 in n's
    forward hook, and reports which probes connected and what the counters saw.
    """
    from harness import naming
    from harness.backends.local.backend import claim_run, release_run
    from harness.shell import run, spawn

    run_id = naming.new_run_id()
    claim_run(run_id, purpose="bench bridge check")   # so `cleanup` knows it is alive
    pre = naming.local_prefix(run_id)
    n, a, b = f"{pre}n", f"{pre}a", f"{pre}b"
    procs = []
    try:
        for ns in (n, a, b):
            run(["ip", "netns", "add", ns], check=True)
        run(["ip", "-n", n, "-batch", "-"], check=True, input="link add br0 type bridge\n"
            "link set br0 up\nlink set lo up\n")
        for ns, ip in ((a, "10.9.0.2"), (b, "10.9.0.3")):
            veth = f"v{ns[-1]}"
            run(["ip", "-n", n, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                 "netns", ns], check=True)
            run(["ip", "-n", n, "link", "set", veth, "master", "br0", "up"], check=True)
            run(["ip", "-n", ns, "-batch", "-"], check=True,
                input=f"link set lo up\nlink set eth0 up\naddr add {ip}/24 dev eth0\n")
            procs.append(spawn(["ip", "netns", "exec", ns, sys.executable, "-m",
                                "harness.backends.real.podserver", "--name", ns, "--tcp", "80"]))
        sysctl = run(["ip", "netns", "exec", n, "sysctl", "-n",
                      "net.bridge.bridge-nf-call-iptables"]).stdout.strip() or "absent"
        run(["ip", "netns", "exec", n, "nft", "-f", "-"], check=True, input=(
            "table ip t { chain forward { type filter hook forward priority 0; policy accept;\n"
            "ct state established,related counter accept\n"
            "ip daddr 10.9.0.3 tcp dport 80 ct state new counter drop\n"
            "ip daddr 10.9.0.2 tcp dport 80 ct state new counter accept\n}\n}\n"))
        time.sleep(0.5)
        def probe(ns: str, ip: str) -> int:
            return run(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null",
                        "--connect-timeout", "1", f"http://{ip}/"]).returncode
        ab, ba = probe(a, "10.9.0.3"), probe(b, "10.9.0.2")
        counters = run(["ip", "netns", "exec", n, "nft", "list", "table", "ip", "t"]).stdout
        seen = [ln.split("counter")[1].split("bytes")[0].strip() for ln in counters.splitlines()
                if "counter" in ln]
        return (f"bridge-nf-call-iptables={sysctl}; a->b (dropped when new): curl exit {ab}; "
                f"b->a (allowed): curl exit {ba}; counters est/drop/accept: {', '.join(seen)}")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for ns in (n, a, b):
            run(["ip", "netns", "del", ns])
        release_run(run_id)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeout", type=float, default=1.0, help="probe timeout in seconds")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=128)
    p.add_argument("--bridge-check", action="store_true",
                   help="also measure whether a bridge in a netns gets conntrack (br_netfilter)")
    a = p.parse_args(argv)
    install_sigterm_handler()
    model = Model.default()
    ups, deploys, downs, matrices, rates, singles, open_rates = [], [], [], [], [], [], []
    for _ in range(a.repeat):
        b = LocalBackend("enforcing", probe_timeout=a.timeout)
        try:
            t0 = time.monotonic()
            b.up()
            t1 = time.monotonic()
            addresses = b.deploy(model)
            t2 = time.monotonic()
            ups.append(t1 - t0)
            deploys.append(t2 - t1)
            specs = [ProbeSpec(s, d, 80, Protocol.TCP) for s in model.pod_keys for d in model.pod_keys]
            t6 = time.monotonic()     # no policy: every probe connects, nothing waits a timeout
            probe_round(b, specs, addresses, a.timeout, concurrency=a.concurrency)
            open_rates.append(len(specs) / (time.monotonic() - t6))
            for ns in ("x", "y", "z"):
                b.apply_policy(deny_all(ns))
            t3 = time.monotonic()
            got = probe_round(b, specs, addresses, a.timeout, concurrency=a.concurrency)
            el = time.monotonic() - t3
            matrices.append(el / a.timeout)
            rates.append(len(specs) / el)
            t5 = time.monotonic()
            probe_round(b, specs, addresses, a.timeout, concurrency=a.concurrency, batch=False)
            singles.append((time.monotonic() - t5) / a.timeout)
            blocked = sum(o.outcome == Outcome.TIMEOUT for o in got.values())
            errors = sum(o.outcome == Outcome.TOOL_ERROR for o in got.values())
        finally:
            t4 = time.monotonic()
            b.down()
            downs.append(time.monotonic() - t4)
    med = statistics.median
    print(f"local backend, default model ({len(model.pods)} pods incl. coredns), "
          f"probe timeout {a.timeout:g}s, {a.repeat} runs (median, min-max)")
    up_total = med([u + d for u, d in zip(ups, deploys, strict=True)])
    print(f"  cluster up (node + deploy + all serving): {up_total:.2f}s"
          f"  [node {med(ups):.2f}s, deploy {med(deploys):.2f}s]   target < 3 s")
    print(f"  cluster down:                             {med(downs):.2f}s")
    print(f"  9x9 TCP 80 matrix, deny-all:              {med(matrices):.2f} x timeout "
          f"({min(matrices):.2f}-{max(matrices):.2f})   target < 1.5 x")
    print(f"    same, one curl process per probe (batch=False): {med(singles):.2f} x timeout "
          f"({min(singles):.2f}-{max(singles):.2f})")
    print(f"    last run: {blocked} blocked, {81 - blocked - errors} connected (self), {errors} tool errors")
    print(f"  probes per second:                        {med(rates):.0f} with deny-all (bound by the "
          f"timeout), {med(open_rates):.0f} with no policy (all connect)")
    if a.bridge_check:
        print(f"  bridge + br_netfilter in a netns:          {bridge_conntrack_check()}")
    print(f"  machine load average (1 min) at the end:  {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
