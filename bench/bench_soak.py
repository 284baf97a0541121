"""Soak: the library run again and again with scenarios at once; the verdicts must not move.

Why: bring-up that fails now and then (issue 12: `ip -batch` exit 1 once in ~70 scenario runs)
shows only over many runs, and concurrency must not make it worse. Runs
`python -m harness run scenarios/ --backend local --cni enforcing,open` N times (default 20,
each with the CLI's default jobs unless -j is given; `--backend realnodes --cni kube-router`:
the kube path on real kubelets, a cluster brought up per run) and prints, per run, wall time, CPU and
the outcome counts, then whether every run gave identical verdicts (every cell of every step
of every scenario, and each scenario's outcome) and how many infrastructure errors there were
(targets: identical, 0). Prints, asserts nothing. Long: about N x 2 minutes on 2 cores
(realnodes: N x 4-5 minutes).
Run as root: `python bench/bench_soak.py [--runs 20] [-j N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: where the report and log of a run whose verdicts differ are kept
KEEP = Path(tempfile.gettempdir()) / f"netpol-proof-soak-{time.strftime('%Y%m%d-%H%M%S')}"


def verdicts(doc: dict) -> dict:
    """(scenario, profile) -> (outcome, every cell's verdict by step), from a results file."""
    out = {}
    for s in doc["scenarios"]:
        cells = []
        for st in ([s["baseline"]] if s.get("baseline") else []) + list(s.get("steps") or []):
            for c in st.get("cells") or []:
                cells.append((st.get("index"), c["source"], c["target"], str(c["port"]),
                              c["protocol"], c.get("dns_name"), c["verdict"]))
        out[(s["scenario"], s["profile"])] = (s["outcome"], tuple(sorted(cells, key=str)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("-j", "--jobs", type=int)
    p.add_argument("--paths", nargs="+", default=["scenarios/"])
    p.add_argument("--cni", default="enforcing,open")
    p.add_argument("--backend", default="local", choices=("local", "realnodes"))
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)")
        return 1
    first: dict | None = None
    differing, infra, broken = [], 0, 0
    print(f"soak: {a.runs} runs of {' '.join(a.paths)} on {a.backend} {a.cni}, "
          f"{'-j ' + str(a.jobs) if a.jobs else 'default jobs'}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="np-soak-") as tmp:
        for i in range(1, a.runs + 1):
            out = os.path.join(tmp, f"{i}.json")
            argv_ = [sys.executable, "-m", "harness", "run", *a.paths, "--backend", a.backend,
                     "--cni", a.cni, "--json", out] + (["-j", str(a.jobs)] if a.jobs else [])
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            load, t0 = os.getloadavg()[0], time.monotonic()
            with open(os.path.join(tmp, f"{i}.log"), "w") as log:
                rc = subprocess.call(argv_, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            wall = time.monotonic() - t0
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
            if not os.path.exists(out):
                broken += 1
                print(f"  run {i}: exit {rc}, no results; log ends: "
                      f"{Path(tmp, f'{i}.log').read_text()[-1500:]}")
                continue
            doc = json.loads(Path(out).read_text())
            v = verdicts(doc)
            errors = [f"{s['scenario']}[{s['profile']}]: {s.get('infra_error')}"
                      for s in doc["scenarios"] if s.get("infra_error")]
            infra += len(errors)
            counts: dict[str, int] = {}
            for outcome, _ in v.values():
                counts[outcome] = counts.get(outcome, 0) + 1
            same = "first" if first is None else ("identical" if v == first else "DIFFERENT")
            if first is None:
                first = v
            elif v != first:
                keys = sorted(k for k in set(v) | set(first) if v.get(k) != first.get(k))
                differing.append((i, keys))
            print(f"  run {i:2d}: exit {rc}, wall {wall:6.1f}s (load {load:4.1f}), CPU {cpu:6.1f}s, "
                  + ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
                  + f"; verdicts {same}; {len(errors)} infrastructure errors", flush=True)
            for e in errors:
                print(f"      {e[:300]}")
            if first is not None and differing and differing[-1][0] == i:
                for k in differing[-1][1][:5]:
                    print(f"      differs: {k[0]} [{k[1]}]")
                # the run's report and log outlive the soak: the difference is to be read
                kept = KEEP / f"run-{i}"
                kept.mkdir(parents=True, exist_ok=True)
                for name in (f"{i}.json", f"{i}.log"):
                    shutil.copy2(os.path.join(tmp, name), kept / name)
                print(f"      kept in {kept}")
    runs = a.runs - broken
    print(f"soak: {runs} of {a.runs} runs wrote results; verdicts "
          f"{'identical in every run' if not differing else f'differ in {len(differing)} runs'}"
          f"; {infra} infrastructure errors   targets: identical, 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
