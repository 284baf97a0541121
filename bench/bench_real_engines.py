"""Benchmark of the real engines on the local backend (kube-router, none, calico): prints
bring-up (per phase), deploy/undeploy of the 3x3 model, time to enforce one deny-all-ingress,
and tear-down; asserts nothing.

Time to enforce: from the apply until every probe into the isolated namespace is blocked in one
round (a round of 18 probes from the other two namespaces), repeated `--policies` times in the
same cluster (apply, blocked, delete, connected again). An engine that enforces nothing (none)
shows "never" after the window. Run as root: `python bench/bench_real_engines.py [--engines
kube-router,none]`. An engine whose binaries are missing is skipped with the reason.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from harness.lifecycle import install_sigterm_handler
from harness.model import Model, Protocol
from harness.probes import Outcome, ProbeSpec

DENY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "bench-deny", "namespace": "x"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
WINDOW = 30.0


def _round(b, addr, specs):
    from harness.prober import probe_round
    return probe_round(b, specs, addr, 1.0)


def _until(b, addr, specs, blocked: bool, window: float) -> float | None:
    t = time.monotonic()
    while time.monotonic() - t < window:
        got = _round(b, addr, specs)
        if all((o.outcome != Outcome.CONNECTED) == blocked for o in got.values()):
            return time.monotonic() - t
        time.sleep(0.2)
    return None


def bench(engine: str, policies: int) -> None:
    from harness.backends.real.backend import RealBackend

    b = RealBackend(engine, probe_timeout=1.0, status=lambda m: None)
    model = Model.default(protocols=[Protocol.TCP, Protocol.UDP])
    specs = [ProbeSpec(s.key, d.key, 80, Protocol.TCP) for s in model.user_pods
             for d in model.user_pods if s.namespace != "x" and d.namespace == "x"]
    try:
        t = time.monotonic()
        b.up()
        up = time.monotonic() - t
        t = time.monotonic()
        addr = b.deploy(model)
        deploy = time.monotonic() - t
        ready = _until(b, addr, specs, False, WINDOW)
        enforce, restore = [], []
        for _ in range(policies):
            b.apply_policy(DENY)
            enforce.append(_until(b, addr, specs, True, WINDOW if engine != "none" else 5.0))
            b.delete_policy("x", "bench-deny")
            restore.append(_until(b, addr, specs, False, WINDOW))
        t = time.monotonic()
        b.undeploy()
        undeploy = time.monotonic() - t
    finally:
        t = time.monotonic()
        b.down()
        down = time.monotonic() - t
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in b.timings.items() if k not in ("up", "down"))
    print(f"{engine}: {b.describe()}")
    print(f"  up {up:.1f}s ({phases}); down {down:.1f}s")
    print(f"  deploy 3x3 (9 pods, TCP+UDP) {deploy:.1f}s, all 18 probes connected after "
          f"{'never' if ready is None else f'{ready:.2f}s'}; undeploy {undeploy:.1f}s "
          f"(namespace deletion by the controller manager)")

    def fig(xs):
        got = [x for x in xs if x is not None]
        if not got:
            return "never"
        return (f"median {statistics.median(got):.2f}s, max {max(got):.2f}s"
                + (f", {len(xs) - len(got)} never" if len(got) < len(xs) else ""))
    print(f"  time to enforce deny-all-ingress ({policies}x): {fig(enforce)}; "
          f"time to restore after delete: {fig(restore)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="kube-router,none,calico")
    p.add_argument("--policies", type=int, default=5)
    a = p.parse_args(argv)
    from harness.backends.real import engines
    from harness.components import ComponentMissing

    install_sigterm_handler()
    for engine in a.engines.split(","):
        try:
            engines.binaries(engine)
        except ComponentMissing as exc:
            print(f"{engine}: skipped: {exc}")
            continue
        bench(engine, a.policies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
