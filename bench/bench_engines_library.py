"""Benchmark: the whole scenario library on each real engine (kube-router, calico, none).

Prints, per engine: the library's wall time through the CLI, its outcomes, and the **time to
enforce** over the library: for every step that applies, deletes or relabels something, the
seconds from that change to the first round after which no verdict changed (the runner's
`converge_seconds`, docs/ARCHITECTURE.md "The observation window"), median and max. A step that
never settled is counted apart, not as a time. Asserts nothing; run as root:
`python bench/bench_engines_library.py [--engines kube-router,calico,none] [--dir scenarios/]`.
An engine whose components are missing is skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def changing_steps(path: str) -> set[int]:
    """1-based indexes of the steps of a scenario file that change policies or labels."""
    scenario = load_scenario(ROOT / path if not os.path.isabs(path) else Path(path))
    return {i + 1 for i, st in enumerate(scenario.steps)
            if st.apply or st.delete or st.namespace_labels or st.pod_labels}


def figures(doc: dict) -> dict:
    """Outcomes, and the times to enforce of the steps that changed something."""
    outcomes: dict[str, int] = {}
    times: list[float] = []
    unsettled = 0
    for s in doc["scenarios"]:
        outcomes[s["outcome"]] = outcomes.get(s["outcome"], 0) + 1
        if s["outcome"] in ("skipped", "error", "scenario error") or not s.get("path"):
            continue
        changing = changing_steps(s["path"])
        for st in s.get("steps") or []:
            if st["index"] not in changing:
                continue
            if st.get("converge_seconds") is None:
                unsettled += 1
            else:
                times.append(float(st["converge_seconds"]))
    return {"outcomes": outcomes, "times": times, "unsettled": unsettled}


def run_engine(engine: str, directory: str) -> tuple[float, dict] | str:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        t = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "harness", "run", directory, "--backend",
                               "local", "--cni", engine, "--json", out],
                              cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - t
        if not os.path.exists(out):
            return f"no results (exit {proc.returncode}): {proc.stderr[-400:]}"
        with open(out) as fh:
            return wall, json.load(fh)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="kube-router,calico,none")
    p.add_argument("--dir", default="scenarios/")
    args = p.parse_args(argv)
    from harness.components import COMPONENTS, available
    missing = [why for name in COMPONENTS for ok, why in [available(name)] if not ok]
    if missing:
        print(f"skipped: the real components are not built: {'; '.join(missing)[:300]}")
        return 0
    print(f"the library ({args.dir}) on each real engine, through `python -m harness run`; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for engine in args.engines.split(","):
        got = run_engine(engine, args.dir)
        if isinstance(got, str):
            print(f"  {engine:<12} {got}")
            continue
        wall, doc = got
        f = figures(doc)
        times = f["times"]
        enforce = (f"median {statistics.median(times):.2f} s, max {max(times):.2f} s over "
                   f"{len(times)} changing steps" if times else "no settled changing step")
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(f["outcomes"].items()))
        what = "time to settle (it enforces nothing)" if engine == "none" else "time to enforce"
        print(f"  {engine:<12} library {wall:.0f} s ({outcomes}); {what}: {enforce}"
              + (f"; {f['unsettled']} step(s) never settled" if f["unsettled"] else ""))
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
