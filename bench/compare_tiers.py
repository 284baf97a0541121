"""The cell-by-cell comparison of two runs of the library on two tiers, e.g. the kube path on
real kubelets (`--backend realnodes`) and today's harness-as-kubelet tier (`--backend local`
with a real engine), each run with `--netpol-json`:

    python bench/compare_tiers.py /tmp/rn.json /tmp/local.json

Scenarios are paired by (scenario, CNI) (harness.reports.compare). For each pair it lists:
an outcome that differs (with each side's skip reason), every cell whose verdict differs, and,
apart, cells whose verdict is the same but whose observed outcome differs (e.g. `refused` on one
tier and `timeout` on the other). Exit status 0 when no verdict and no outcome differ, 1 when
some do, 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from harness.errors import HarnessError
from harness.reports import json_report
from harness.reports import matrix as mx
from harness.reports.compare import compare


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="results JSON of the first tier (e.g. realnodes)")
    ap.add_argument("b", help="results JSON of the second tier (e.g. local with real engines)")
    args = ap.parse_args(argv)
    try:
        cmp = compare(args.a, args.b)
        _, results_a = json_report.read(args.a)
        _, results_b = json_report.read(args.b)
    except (HarnessError, OSError, ValueError) as exc:
        print(f"compare_tiers: {exc}", file=sys.stderr)
        return 2
    # keyed by side too: the same (scenario, CNI) pair is in both files
    skip = {(side, r.scenario, mx.cni_of(r)): r.skip_reason
            for side, results in (("A", results_a), ("B", results_b)) for r in results
            if r.skip_reason}
    print(f"A: {args.a} ({cmp.a_meta.get('backend')}, run {cmp.a_meta.get('run_id')})")
    print(f"B: {args.b} ({cmp.b_meta.get('backend')}, run {cmp.b_meta.get('run_id')})")
    verdicts = outcomes = observed_only = compared = 0
    kinds: Counter[str] = Counter()
    for s in cmp.scenarios:
        compared += s.probes_compared
        differ = [p for p in s.probes
                  if p.a is None or p.b is None or p.a.verdict != p.b.verdict]
        only_observed = [p for p in s.probes if p not in differ]
        if s.outcome_a == s.outcome_b and not differ and not only_observed:
            continue
        head = f"{s.scenario} [{s.cni_a}]"
        if s.outcome_a != s.outcome_b:
            outcomes += 1
            why = [f"{side}: {skip[(side, s.scenario, cni)]}" for side, cni in
                   (("A", s.cni_a), ("B", s.cni_b)) if (side, s.scenario, cni) in skip]
            print(f"{head}: outcome {s.outcome_a} -> {s.outcome_b}"
                  + (f" ({'; '.join(why)})" if why else ""))
        elif differ or only_observed:
            print(f"{head}: outcome {s.outcome_a} on both")
        for p in differ:
            verdicts += 1
            kinds[f"{p.a.verdict if p.a else 'not probed'} -> "
                  f"{p.b.verdict if p.b else 'not probed'}"] += 1
            print(f"  verdict  {p.describe()}")
        for p in only_observed:
            observed_only += 1
            kinds[f"observed {p.a.observed if p.a else '-'} -> "
                  f"{p.b.observed if p.b else '-'}"] += 1
            print(f"  observed {p.describe()}")
    for label, names in (("only in A", cmp.only_in_a), ("only in B", cmp.only_in_b)):
        if names:
            print(f"{label}: {', '.join(names)}")
    print(f"{len(cmp.scenarios)} scenario x CNI pairs, {compared} cells compared: {outcomes} "
          f"outcome(s), {verdicts} cell verdict(s) and {observed_only} observed outcome(s) "
          f"(same verdict) differ")
    for kind, n in kinds.most_common():
        print(f"  {n:4d}  {kind}")
    return 1 if outcomes or verdicts or cmp.only_in_a or cmp.only_in_b else 0


if __name__ == "__main__":
    sys.exit(main())
