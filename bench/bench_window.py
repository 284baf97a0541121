"""Benchmark of the scenario library on both local profiles: what a whole run costs.

Why: every step is observed for a minimum window (docs/ARCHITECTURE.md, "The observation
window"), whatever the results; this shows what that costs the library. It runs
`python -m harness run scenarios/ --backend local --cni enforcing,open --json ...` once and
prints the wall time, the scenario time per profile, the probe rounds and the seconds spent
observing steps. `--checkout DIR` runs another checkout's harness and library the same way
(for a before/after figure). Run as root: `python bench/bench_window.py [--checkout DIR]`.
Prints figures, asserts nothing: a busy machine makes a slow run, not a broken one.
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

ROOT = Path(__file__).resolve().parent.parent


def run_library(checkout: Path, cnis: str, keyword: str | None) -> tuple[float, dict, int]:
    """(wall seconds, the results document, exit status) of one library run in `checkout`."""
    with tempfile.TemporaryDirectory(prefix="netpol-proof-bench-") as tmp:
        out = Path(tmp) / "r.json"
        argv = [sys.executable, "-m", "harness", "run", str(checkout / "scenarios"),
                "--backend", "local", "--cni", cnis, "--json", str(out)]
        if keyword:
            argv += ["-k", keyword]
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=checkout, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        wall = time.monotonic() - started
        if not out.exists():
            raise SystemExit(f"the run wrote no results (exit {proc.returncode}): "
                             f"{proc.stderr[-2000:]}")
        return wall, json.loads(out.read_text()), proc.returncode


def figures(doc: dict) -> dict[str, dict[str, float]]:
    """Per profile: scenarios, their seconds, step rounds, steps, seconds observing steps."""
    per: dict[str, dict[str, float]] = {}
    for s in doc["scenarios"]:
        f = per.setdefault(s["profile"], {"scenarios": 0, "seconds": 0.0, "steps": 0,
                                          "rounds": 0, "outcomes_ok": 0})
        f["scenarios"] += 1
        f["seconds"] += s.get("duration") or 0.0
        f["outcomes_ok"] += s["outcome"] in ("passed", "xfailed", "skipped")
        for st in s.get("steps") or []:
            f["steps"] += 1
            f["rounds"] += st.get("rounds") or 0
    return per


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", type=Path, default=ROOT,
                   help="the checkout whose harness and scenarios/ run (default: this one)")
    p.add_argument("--cni", default="enforcing,open")
    p.add_argument("-k", dest="keyword", help="only scenarios whose name contains this")
    a = p.parse_args(argv)
    checkout = a.checkout.resolve()
    load0 = os.getloadavg()[0]
    wall, doc, rc = run_library(checkout, a.cni, a.keyword)
    window = {k: doc["meta"].get(k) for k in ("min_rounds", "min_window") if k in doc["meta"]}
    print(f"scenario library of {checkout} on local {a.cni} "
          f"(observation window: {window or 'none (before it existed)'})")
    print(f"  wall time of the whole run:            {wall:.0f}s (exit {rc})")
    for profile, f in figures(doc).items():
        rounds = f["rounds"] / f["steps"] if f["steps"] else 0.0
        print(f"  {profile:<10} {int(f['scenarios'])} scenarios in {f['seconds']:.0f}s, "
              f"{int(f['steps'])} steps, {int(f['rounds'])} rounds ({rounds:.1f} per step), "
              f"{int(f['outcomes_ok'])} passed/xfailed/skipped")
    for s in doc["scenarios"]:
        if s["outcome"] not in ("passed", "xfailed", "skipped"):
            print(f"  not ok: {s['scenario']} [{s['profile']}]: {s['outcome']} "
                  f"({(s.get('scenario_error') or s.get('infra_error') or '')[:160]})")
    print(f"  machine load average (1 min) before / after: {load0:.1f} / "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
