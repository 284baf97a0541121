"""Benchmark: the fault scenarios (scenarios/faults/) on the emulated engine and each real engine.

Prints, per engine: the fail-open (and fail-closed) window of a restart and of a 3 s stop, as the
fault step's timeline bounds it (docs/scenarios.md, "Fault steps"), or that no watched cell
failed with how far apart the rounds were (a shorter window can be missed); and how long after
the engine's start a policy applied, and a pod relabelled, while it was down took effect.
Asserts nothing; run as root: `python bench/bench_faults.py [--engines enforcing,kube-router,
calico] [--from results.json]` (`--from` reads a results file of such a run instead of running).
A real engine whose components are missing is skipped with the reason.
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

ROOT = Path(__file__).resolve().parents[1]
FAULTS = "scenarios/faults/"
#: scenario name -> what its figure is called
WINDOWS = {"fault-engine-restart": "restart", "fault-engine-stop": "stop 3 s",
           "fault-engine-kill": "kill 3 s", "fault-apiserver-down": "API server down 5 s"}
EFFECTS = {"fault-policy-while-down": "policy applied while down",
           "fault-relabel-while-down": "pod relabelled while down"}


def _span(lo: float, hi: float | None) -> str:
    return f"{lo:.1f}-{hi:.1f} s" if hi is not None else f"at least {lo:.1f} s"


def figures(doc: dict) -> dict[str, list[str]]:
    """engine -> one line per fault scenario it ran, from a results document."""
    out: dict[str, list[str]] = {}
    for s in doc["scenarios"]:
        name = s["scenario"]
        if not name.startswith("fault-"):
            continue     # a results file of the whole library: only its fault scenarios
        lines = out.setdefault(s["profile"], [])
        if s["outcome"] == "skipped":
            lines.append(f"{name}: skipped ({s.get('skip_reason')})")
            continue
        timelines = [st["fault"] for st in s.get("steps") or [] if st.get("fault")]
        if not timelines:
            lines.append(f"{name}: {s['outcome']}, no timeline ({s.get('infra_error') or ''})")
            continue
        tl = timelines[0]
        if name in WINDOWS:
            steady = [c for c in tl["cells"] if c["expected_before"] == c["expected_after"]]
            windows = [w for c in steady for w in c["windows"]]
            blind = [c for c in steady if c["status"] == "not observed while down"]
            if not windows and blind:
                lines.append(f"{WINDOWS[name]}: not observed while down ({len(blind)} of "
                             f"{len(steady)} watched cells gave no verdict while down)")
            elif not windows:
                # v3 files have no per-cell gap: the spacing of round starts, said as such
                gaps = [c.get("max_gap") for c in steady]
                gap = (f"attempts with a verdict at most {max(gaps):.2f} s apart"
                       if gaps and None not in gaps else
                       f"rounds at most {tl['max_gap']:.2f} s apart")
                lines.append(f"{WINDOWS[name]}: held (no watched cell failed; {gap})")
            for kind in ("open", "closed"):
                ws = [w for w in windows if w["kind"] == kind]
                if ws:
                    his = [w["at_most"] for w in ws]
                    hi = None if None in his else max(his)
                    lines.append(f"{WINDOWS[name]}: fails {kind} for "
                                 f"{_span(min(w['at_least'] for w in ws), hi)}")
        if name in EFFECTS:
            effects = [c["takes_effect"] for c in tl["cells"] if c.get("takes_effect")]
            if not effects:
                lines.append(f"{EFFECTS[name]}: no verdict after the change")
            else:
                his = [e[1] for e in effects]
                hi = None if None in his else max(his)
                lo = max(0.0, max(e[0] for e in effects))
                hi = None if hi is None else max(hi, 0.0)   # a round begun during the start
                lines.append(f"{EFFECTS[name]}: takes effect {_span(lo, hi)} after the start")
    return out


def run_engine(engine: str) -> dict | str:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        proc = subprocess.run([sys.executable, "-m", "harness", "run", FAULTS, "--backend",
                               "local", "--cni", engine, "-j", "1", "--json", out],
                              cwd=ROOT, capture_output=True, text=True)
        if not os.path.exists(out):
            return f"no results (exit {proc.returncode}): {proc.stderr[-400:]}"
        with open(out) as fh:
            return json.load(fh)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="enforcing,kube-router,calico")
    p.add_argument("--from", dest="source", help="read this results file instead of running")
    args = p.parse_args(argv)
    docs: list[dict] = []
    if args.source:
        with open(args.source) as fh:
            docs.append(json.load(fh))
    else:
        from harness.backends.real import engines
        from harness.components import ComponentMissing

        print(f"{FAULTS} per engine, through `python -m harness run -j 1`; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for engine in args.engines.split(","):
            if engine in engines.ENGINES:
                try:
                    engines.binaries(engine)
                except ComponentMissing as exc:
                    print(f"  {engine:<12} skipped: {exc}")
                    continue
            t = time.monotonic()
            got = run_engine(engine)
            if isinstance(got, str):
                print(f"  {engine:<12} {got}")
                continue
            print(f"  {engine:<12} {time.monotonic() - t:.0f} s")
            docs.append(got)
    for doc in docs:
        for engine, lines in figures(doc).items():
            for line in lines:
                print(f"  {engine:<12} {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
