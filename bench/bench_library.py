"""Benchmark of the scenario library on the local backend: where the time and the CPU go.

Prints, and asserts nothing (targets are read by people; a busy machine makes a slow run):
- per probe kind (TCP through curl, UDP, DNS through nslookup), on the default model: CPU
  seconds per probe (the probe tools, the harness, and the pod servers that answered) and the
  processes and threads started per probe;
- the whole library through `python -m harness run` on both local profiles: wall time, CPU
  seconds (user+sys of every process of the run), processes started, probes (every attempt of
  every cell), CPU and processes per probe, and the floor: the sum over scenario runs of
  rounds x probe timeout, divided by the number of scenarios run at once.
CPU seconds and process counts are what to compare between runs on a shared machine: wall time
depends on what else runs (the load average is printed beside it).
Run as root: `python bench/bench_library.py [--jobs N] [--only micro|library]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from proctrace import Tracer, waited_cpu  # noqa: E402  (a helper next to this script)

REPO = HERE.parent


def _cpu(tracer: Tracer) -> float:
    own, children = waited_cpu()
    return own + children + tracer.alive_cpu()


def micro(tracer: Tracer, rounds: int, timeout: float) -> None:
    """CPU and processes per probe of each kind, on the default model with no policy."""
    from harness.backends.local import LocalBackend
    from harness.model import Model, Protocol
    from harness.prober import probe_round
    from harness.probes import Outcome, ProbeSpec
    from harness.settings import Settings

    concurrency = Settings().concurrency   # as the runner probes

    model = Model.default()
    # UDP last: a probe killed at its deadline can orphan what its tool started, whose CPU
    # then escapes every count (and would be subtracted from the next kind's)
    pods = [p for p in model.pod_keys]
    kinds = {
        "TCP (curl, batched per source as rounds run)":
            ([ProbeSpec(s, d, port, Protocol.TCP) for s in pods for d in pods for port in (80, 81)],
             True),
        "TCP (one curl per probe: loopback controls, canary)":
            ([ProbeSpec(s, d, 80, Protocol.TCP) for s in pods for d in pods], False),
        "DNS (nslookup)": ([ProbeSpec(s, "kube-dns", 53, Protocol.UDP, name) for s in pods
                            for name in ("kubernetes.default.svc.cluster.local",
                                         "absent.x.svc.cluster.local")], True),
        "UDP": ([ProbeSpec(s, d, port, Protocol.UDP) for s in pods for d in pods
                 for port in (80, 81)], True),
    }
    b = LocalBackend("enforcing", probe_timeout=timeout)
    try:
        addresses = b.deploy(model)
        print(f"per probe, default model ({len(pods)} pods), no policy, {rounds} rounds per kind "
              f"(CPU: probe tools + harness + the servers that answered), {concurrency} in flight")
        for name, (specs, batch) in kinds.items():
            probe_round(b, specs[:4], addresses, timeout, concurrency, batch=batch)   # warm up
            c0, (p0, t0), w0 = _cpu(tracer), tracer.counts(), time.monotonic()
            bad = 0
            for _ in range(rounds):
                got = probe_round(b, specs, addresses, timeout, concurrency, batch=batch)
                bad += sum(o.outcome in (Outcome.TOOL_ERROR,) for o in got.values())
            time.sleep(0.2)   # let the proc connector catch up
            n = len(specs) * rounds
            c1, (p1, t1), w1 = _cpu(tracer), tracer.counts(), time.monotonic()
            print(f"  {name:52s} {1000 * (c1 - c0) / n:7.2f} ms CPU   {(p1 - p0) / n:5.2f} "
                  f"processes  {(t1 - t0) / n:5.2f} threads   ({n} probes, "
                  f"{(w1 - w0) / rounds:.2f}s per round{f', {bad} tool errors' if bad else ''})")
    finally:
        b.down()


def library(tracer: Tracer, paths: list[str], cnis: str, jobs: int | None,
            extra: list[str]) -> None:
    """The library through the CLI, as a user runs it."""
    with tempfile.TemporaryDirectory(prefix="np-bench-") as tmp:
        out = os.path.join(tmp, "results.json")
        argv = [sys.executable, "-m", "harness", "run", *paths, "--backend", "local",
                "--cni", cnis, "--json", out, *extra]
        if jobs is not None:
            argv += ["-j", str(jobs)]
        load0 = os.getloadavg()[0]
        c0, (p0, t0) = _cpu(tracer), tracer.counts()
        w0 = time.monotonic()
        with open(os.path.join(tmp, "log"), "w") as log:
            rc = subprocess.call(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        wall = time.monotonic() - w0
        time.sleep(0.2)
        c1, (p1, t1) = _cpu(tracer), tracer.counts()
        load1 = os.getloadavg()[0]
        if not os.path.exists(out):
            print(f"  the run wrote no results (exit {rc}); its log ends:")
            print(Path(tmp, "log").read_text()[-3000:])
            return
        doc = json.loads(Path(out).read_text())
    meta = doc.get("meta", {})
    timeout = float(meta.get("probe_timeout", 1.0))
    used = int(meta.get("jobs", jobs or 1))
    runs = [s for s in doc["scenarios"] if s.get("outcome") != "skipped"]
    rounds = probes = 0
    kinds = {"TCP": 0, "UDP": 0, "SCTP": 0, "DNS": 0}
    for s in runs:
        for step in [s.get("baseline")] + list(s.get("steps") or []):
            if not step:
                continue
            rounds += int(step.get("rounds") or 0)
            for c in step.get("cells") or []:
                n = len(c.get("attempts") or [])
                probes += n
                kinds["DNS" if c.get("dns_name") else c.get("protocol", "TCP")] += n
    busy = sum(float(s.get("duration") or 0) for s in runs)   # the runs one after the other
    outcomes: dict[str, int] = {}
    for s in doc["scenarios"]:
        outcomes[s["outcome"]] = outcomes.get(s["outcome"], 0) + 1
    infra = sum(1 for s in runs if s.get("infra_error"))
    floor = rounds * timeout / used
    cpu = c1 - c0
    procs = p1 - p0
    print(f"library: {' '.join(paths)} on {cnis} through the CLI "
          f"({'-j ' + str(jobs) if jobs is not None else 'default concurrency'}; used {used})")
    print(f"  exit {rc}; {len(runs)} scenario runs: "
          + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
          + f"; {infra} infrastructure errors")
    print(f"  wall {wall:.1f}s (load average {load0:.1f} at the start, {load1:.1f} at the end, "
          f"{os.cpu_count()} cores)")
    print(f"  CPU {cpu:.1f}s user+sys of every process of the run; {procs} processes, "
          f"{t1 - t0} threads started")
    print(f"  probes {probes} (" + ", ".join(f"{k} {v}" for k, v in kinds.items() if v) +
          f"): {1000 * cpu / max(probes, 1):.2f} ms CPU and {procs / max(probes, 1):.2f} "
          f"processes per probe (all bring-up and teardown included)")
    print(f"  floor {floor:.1f}s = {rounds} rounds x {timeout:g}s / {used} at once; "
          f"wall = {wall / floor if floor else 0:.2f} x the floor   targets: < 90 s, < 1.5 x")
    if busy and probes:
        from harness.scheduler import PROBE_CPU_SECONDS, PROBES_PER_SECOND, default_jobs
        pps, cpp = probes / busy * timeout, cpu / probes
        print(f"  measured for harness.scheduler.default_jobs: {cpp:.4f} CPU s per probe, "
              f"{pps:.0f} probes per second of a scenario at a 1 s timeout (sum of scenario "
              f"times {busy:.0f}s) -> {default_jobs(os.cpu_count(), timeout)} jobs here with "
              f"the constants in use ({PROBE_CPU_SECONDS:g}, {PROBES_PER_SECOND:g})")
    if tracer.lost:
        print("  (the kernel dropped some process events: process counts are a lower bound)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("micro", "library"))
    p.add_argument("--rounds", type=int, default=5, help="rounds per probe kind (micro)")
    p.add_argument("--timeout", type=float, default=1.0, help="probe timeout (micro)")
    p.add_argument("--paths", nargs="+", default=["scenarios/"])
    p.add_argument("--cni", default="enforcing,open")
    p.add_argument("-j", "--jobs", type=int, help="scenarios at once (`run -j`); default: the "
                   "CLI's own default")
    p.add_argument("extra", nargs="*", help="more `run` arguments, after --")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces, the kernel's process events)")
        return 1
    from harness.lifecycle import install_sigterm_handler
    install_sigterm_handler()
    tracer = Tracer().start()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if a.only in (None, "micro"):
        micro(tracer, a.rounds, a.timeout)
    if a.only in (None, "library"):
        library(tracer, a.paths, a.cni, a.jobs, a.extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
