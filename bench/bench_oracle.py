"""How long the oracle takes for the full default matrix: 9 x 9 pods x 2 ports x 3 protocols.

Why a script and not a timed test: speed depends on the machine; a timed assertion would fail on
a busy CI box and prove nothing. This prints figures (target: < 50 ms for 100 policies).
The random policies come from tests/test_oracle_props.py (seeded, so every run times the same
inputs): selectors with every operator, ipBlocks, named ports, endPort, all three protocols.

Usage: python bench/bench_oracle.py [--repeat N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_oracle_props import random_policy  # noqa: E402

from harness.model import DEFAULT_PORTS, DEFAULT_PROTOCOLS, Model  # noqa: E402
from harness.oracle import Oracle  # noqa: E402
from harness.results import Expectation  # noqa: E402

TARGET_MS = 50.0


def full_matrix(model: Model, policies: list[dict]) -> dict[str, int]:
    """Build the oracle (parse + precompute) and decide every cell of every port/protocol."""
    oracle = Oracle(model, policies)
    counts = {e.value: 0 for e in Expectation}
    for port in DEFAULT_PORTS:
        for proto in DEFAULT_PROTOCOLS:
            for _, _, d in oracle.matrix(port, proto).items():
                counts[d.expectation.value] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    model = Model.default()
    print(f"oracle: full default matrix ({len(model.pod_keys)}x{len(model.pod_keys)} pods x "
          f"{len(DEFAULT_PORTS)} ports x {len(DEFAULT_PROTOCOLS)} protocols = "
          f"{len(model.pod_keys) ** 2 * len(DEFAULT_PORTS) * len(DEFAULT_PROTOCOLS)} cells), "
          f"best/median of {args.repeat}, seed {args.seed}")
    print(f"{'policies':>8}  {'best ms':>8}  {'median ms':>9}  {'allow':>6}  {'deny':>6}  "
          f"{'undef':>6}  target < {TARGET_MS:.0f} ms")
    worst = 0.0
    for n in (1, 10, 100):
        rng = random.Random(args.seed * 1000 + n)
        policies = [random_policy(rng, f"p{i}") for i in range(n)]
        times, counts = [], {}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            counts = full_matrix(model, policies)
            times.append((time.perf_counter() - t0) * 1000)
        best, med = min(times), statistics.median(times)
        worst = max(worst, med)
        ok = "ok" if med < TARGET_MS else "SLOW"
        print(f"{n:>8}  {best:>8.1f}  {med:>9.1f}  {counts['allow']:>6}  {counts['deny']:>6}  "
              f"{counts['undefined']:>6}  {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
