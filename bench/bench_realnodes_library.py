"""Benchmark: the whole scenario library on the kube path on real kubelets (`--backend realnodes`),
per CNI: wall time with bring-up, its floor, the ratio, and the outcomes.

The floor (issue 20's definition): every round of every step (baseline included) waits at most
one probe timeout, and `jobs` scenarios are in flight at once, so no run of the library can be
shorter than sum(rounds x probe timeout) / jobs. Scenarios that must run alone
(harness/scenario/sharing.py: fault steps, cluster-scoped objects) cannot share that division:
they run one at a time on each of the CNI's clusters apart (harness.backends.alone_apart), beside
the others, so the floor is the larger of their rounds / those clusters and the others' rounds
/ jobs. Exec round trips and execs per probe are bench_kube_exec.py's.

Runs each CNI in a `python -m harness run` of its own (`--cnis kube-router,calico,...`), or reads
a results file written by a run that is already done (`--results FILE --wall SECONDS`: the
figures of, say, the test command's step, where the CNIs ran side by side in one run).
Asserts nothing; run as root. A CNI whose components are missing is skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from harness.backends import alone_apart
from harness.backends.real.realnodes.cnis import SCENARIOS_AT_ONCE
from harness.scenario import load_scenario
from harness.scenario.sharing import runs_alone

ROOT = Path(__file__).resolve().parents[1]


def _step_seconds(step: dict, timeout: float, window: float | None) -> float:
    """What a step's rounds cost in the floor: rounds x probe timeout; with `window` (the
    window floor), at least the observation window plus the last round's timeout, for a step
    the window applies to (not the baseline, not a fault step: their own rules)."""
    spent = int(step.get("rounds") or 0) * timeout
    if window is not None and step.get("index") and step.get("fault") is None and spent:
        spent = max(spent, window + timeout)
    return spent


def _rounds(doc: dict, cni: str, window: bool = False) -> tuple[float, float, int]:
    """(round timeouts of the scenarios that run alone, of the others, scenarios counted) over
    the file's non-skipped scenarios of `cni`; `window`: each step at least its observation
    window (the window floor, _step_seconds)."""
    timeout = float(doc["meta"]["probe_timeout"])
    min_window = float(doc["meta"].get("min_window") or 0.0) if window else None
    shared = alone = 0.0
    count = 0
    for s in doc["scenarios"]:
        if s.get("profile") != cni or s.get("outcome") == "skipped":
            continue
        steps = [s["baseline"]] if s.get("baseline") else []
        rounds = sum(_step_seconds(st, timeout, min_window)
                     for st in steps + list(s.get("steps") or [])) / timeout
        path = Path(s["path"]) if Path(s["path"]).is_absolute() else ROOT / s["path"]
        if path.exists() and runs_alone(load_scenario(path)) is not None:
            alone += rounds * timeout
        else:
            shared += rounds * timeout
        count += 1
    return alone, shared, count


def floor_seconds(doc: dict, cni: str | None = None, window: bool = False
                  ) -> tuple[float, float, int]:
    """(floor, sum of round timeouts, scenarios counted) over the file's non-skipped scenarios
    of `cni` (all when None: the CNIs' clusters side by side, `jobs` in flight in all).
    `window`: the window floor, each step costing at least its observation window plus one
    probe timeout (the floor's own rule, each round one timeout, with the step's last round
    starting once the window is over: verdicts.Window), which issue 20's floor (rounds x
    probe timeout) does not count: with the kube window of 10 s over 3 rounds a step has 4
    rounds, 8 s in that floor and 12 s in this one."""
    meta = doc["meta"]
    jobs = max(1, int(meta.get("jobs") or 1))
    apart = alone_apart(meta.get("backend", "realnodes"))
    cnis = [cni] if cni else sorted({s["profile"] for s in doc["scenarios"]})
    parts = [_rounds(doc, c, window) for c in cnis]
    alone, shared = sum(a for a, _, _ in parts), sum(sh for _, sh, _ in parts)
    count = sum(n for _, _, n in parts)
    if apart:   # each CNI's alone ones on its own clusters apart, beside the pool
        floor = max([shared / jobs] + [a / apart for a, _, _ in parts])
    else:       # they hold the pool: added whole, per CNI's cluster
        floor = max([(alone + shared) / jobs] + [a + sh / jobs for a, sh, _ in parts])
    return floor, alone + shared, count


def report(doc: dict, wall: float, cnis: list[str]) -> None:
    for cni in cnis:
        floor, total, count = floor_seconds(doc, cni)
        outcomes = Counter(s.get("outcome") for s in doc["scenarios"] if s.get("profile") == cni)
        print(f"  {cni:12s} scenarios {count:3d}  round timeouts {total:7.0f} s  floor "
              f"{floor:6.0f} s  outcomes {dict(outcomes)}")
    floor, total, count = floor_seconds(doc)
    ratio = wall / floor if floor else float("nan")
    wfloor = floor_seconds(doc, window=True)[0]
    print(f"  all          scenarios {count:3d}  wall {wall:6.0f} s  floor {floor:6.0f} s  "
          f"ratio {ratio:4.2f}  (jobs {doc['meta'].get('jobs')}, probe timeout "
          f"{doc['meta']['probe_timeout']} s; target: under 180 s per engine, within 1.5 x "
          f"the floor)")
    print(f"               window floor {wfloor:6.0f} s  ratio {wall / wfloor if wfloor else 0:4.2f}"
          f"  (the floor's rule, each round one probe timeout, with each step's last round "
          f"starting after its {doc['meta'].get('min_window')} s window; the floor above is "
          f"{floor / wfloor if wfloor else 0:.2f} x it)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cnis", default="kube-router,calico,none")
    ap.add_argument("--dir", default="scenarios/")
    ap.add_argument("--jobs", type=int, default=SCENARIOS_AT_ONCE)
    ap.add_argument("--results", help="a results JSON of a finished realnodes run")
    ap.add_argument("--wall", type=float, help="that run's wall time in seconds")
    args = ap.parse_args()
    cnis = [c for c in args.cnis.split(",") if c]
    if args.results:
        if args.wall is None:
            ap.error("--results needs --wall (the run's wall time)")
        doc = json.loads(Path(args.results).read_text())
        report(doc, args.wall, sorted({s["profile"] for s in doc["scenarios"]}))
        return 0
    from harness.components import available

    for cni in cnis:
        with tempfile.TemporaryDirectory(prefix="netpol-proof-bench-") as tmp:
            out = Path(tmp) / "results.json"
            t = time.monotonic()
            rc = subprocess.call([sys.executable, "-m", "harness", "run", args.dir, "--backend",
                                  "realnodes", "--cni", cni, "-j", str(args.jobs), "--json",
                                  str(out)], stdout=subprocess.DEVNULL, cwd=ROOT)
            wall = time.monotonic() - t
            if not out.exists():
                ok, why = available("kubelet")
                print(f"  {cni}: no results (exit {rc}){'' if ok else ': ' + why}")
                continue
            report(json.loads(out.read_text()), wall, [cni])
    return 0


if __name__ == "__main__":
    sys.exit(main())
