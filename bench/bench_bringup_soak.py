"""Soak of the real-engine bring-up: `up()` and `down()` of kube-router and calico clusters N
times (default 20, two clusters at a time), each with its node processes' iptables calls traced
(harness.backends.real.tooltrace), and what each bring-up left checked.

Why: the bring-up race of issue 18 item 11 (kube-router's whole-table restore undoing
kube-proxy's first sync, docs/real-engines.md "Who writes a node's tables") showed once in many
runs and more often under load; only many runs in a row, two at a time, say it is gone.

A run fails when `up()` raises, or after it: kube-proxy lacks a jump on a node
(engines.missing_jumps), does not forward the kube-dns Service, exited with an iptables call it
could not make (exit status 2 or more), or wrote the filter table between kube-router's save of
it and its restore from that save (tooltrace.lost_updates; kube-router's first restore is waited
for before the check) or inserted into a chain between kube-router's listing of it and its
delete of a rule by number (tooltrace.stale_deletes), or when a line of its trace does not
parse. Prints one line per run and
the totals; exits 1 when a run failed. The trace and the error of a failed run are kept under
KEEP. Run as root:
`python bench/bench_bringup_soak.py [--runs 20] [--engines kube-router,calico] [--parallel 2]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness.backends.real import engines, tooltrace
from harness.lifecycle import install_sigterm_handler
from harness.model import DNS_SERVICE_IP

#: where the traces and errors of failed runs are kept
KEEP = Path(tempfile.gettempdir()) / f"netpol-proof-bringup-soak-{time.strftime('%Y%m%d-%H%M%S')}"
#: how long to wait after up() for kube-router's first restore of the filter table on each node
FIRST_RESTORE_WAIT = 60.0


@dataclass
class Result:
    index: int
    engine: str
    up: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    load: float = 0.0
    calls: int = 0
    problems: list[str] = field(default_factory=list)


def first_restores_done(log: str, nodes: list[str]) -> bool:
    restored = {c.node for c in tooltrace.read(log) if c.process == "kube-router"
                and c.tool.endswith("-restore") and "-T" in c.args}
    return restored >= set(nodes)


def one(index: int, engine: str, tmp: str) -> Result:
    from harness.backends.real.backend import RealBackend

    log = os.path.join(tmp, f"{index:02d}-{engine}.tools.log")
    r = Result(index, engine, load=os.getloadavg()[0])
    b = RealBackend(engine, probe_timeout=1.0, status=lambda m: None,
                    tool_trace=tooltrace.ToolTrace(log))
    nodes = [n.netns for n in b.nodes]
    t = time.monotonic()
    try:
        b.up()
        r.up = time.monotonic() - t
        r.phases = {k: v for k, v in b.timings.items() if k != "up"}
        if engine == "kube-router":
            deadline = time.monotonic() + FIRST_RESTORE_WAIT
            while not first_restores_done(log, nodes) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not first_restores_done(log, nodes):
                r.problems.append(f"kube-router restored no filter table on some node within "
                                  f"{FIRST_RESTORE_WAIT:.0f} s of up()")
        for n in nodes:
            missing = engines.missing_jumps(n)
            if missing:
                r.problems.append(f"{n}: kube-proxy's rules lack {', '.join(missing)}")
            ok, why = engines.kube_proxy_forwards(n, DNS_SERVICE_IP, ("udp", "tcp"))
            if not ok:
                r.problems.append(f"{n}: {why}")
    except Exception as exc:   # noqa: BLE001 - a failed bring-up is what this counts
        r.up = time.monotonic() - t
        r.problems.append(f"up() failed: {exc}")
    finally:
        try:
            b.down()
        except Exception as exc:   # noqa: BLE001
            r.problems.append(f"down() failed: {exc}")
    calls = tooltrace.read(log)
    r.calls = len(calls)
    r.problems += [f"unreadable trace line: {line}" for line in tooltrace.unreadable(log)]
    r.problems += [f"{c.label}: {c.tool} {' '.join(c.args)} exited {c.status}" for c in calls
                   if c.process == "kube-proxy" and c.status >= 2]
    r.problems += [f"{x.write.label}: {' '.join(x.write.args)} ran inside kube-router's save "
                   f"-> restore ({'certain' if x.certain else 'overlapping'})"
                   for x in tooltrace.lost_updates(calls)]
    r.problems += [f"{x.write.label}: {' '.join(x.write.args)} ran between kube-router's "
                   f"listing of the chain and its {' '.join(x.delete.args)}"
                   for x in tooltrace.stale_deletes(calls)]
    if r.problems:
        KEEP.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, KEEP)
        (KEEP / f"{index:02d}-{engine}.problems.txt").write_text("\n".join(r.problems) + "\n")
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--engines", default="kube-router,calico")
    p.add_argument("--parallel", type=int, default=2)
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)")
        return 1
    install_sigterm_handler()
    from harness.backends.real.engines import binaries
    from harness.components import ComponentMissing

    wanted = [e.strip() for e in a.engines.split(",") if e.strip()]
    for e in wanted:
        try:
            binaries(e)
        except (ComponentMissing, ValueError) as exc:
            print(f"{e}: cannot run: {exc}")
            return 1
    order = [(i, wanted[(i - 1) % len(wanted)]) for i in range(1, a.runs + 1)]
    print(f"bring-up soak: {a.runs} runs ({', '.join(wanted)} in turn), {a.parallel} at a time; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    lock = threading.Lock()
    results: list[Result] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="np-bringup-soak-") as tmp:
        def run(job: tuple[int, str]) -> None:
            r = one(job[0], job[1], tmp)
            with lock:
                results.append(r)
                phases = ", ".join(f"{k} {v:.1f}" for k, v in r.phases.items())
                print(f"  run {r.index:2d} {r.engine:11s} up {r.up:5.1f}s ({phases}) load "
                      f"{r.load:4.1f} calls {r.calls:4d}: "
                      f"{'ok' if not r.problems else 'FAILED'}", flush=True)
                for line in r.problems[:8]:
                    print(f"      {line[:300]}", flush=True)

        with ThreadPoolExecutor(max_workers=a.parallel) as pool:
            list(pool.map(run, order))
    failed = [r for r in results if r.problems]
    print(f"{len(results) - len(failed)}/{len(results)} bring-ups clean, {len(failed)} failed, "
          f"in {time.monotonic() - started:.0f}s")
    for e in wanted:
        ups = [r.up for r in results if r.engine == e and not r.problems]
        if ups:
            print(f"  {e}: up median {statistics.median(ups):.1f}s, max {max(ups):.1f}s "
                  f"({len(ups)} clean runs)")
    if failed:
        print(f"traces and errors of the failed runs: {KEEP}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
