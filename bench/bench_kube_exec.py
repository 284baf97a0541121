"""The kube path's exec cost on the real-node cluster of this machine (issue 20, item 2): the exec
round trip through the API (p50/p95, one at a time and `--concurrency` at once), and probe
rounds of a matrix through the kubeconfig backend's code, per exec mode: execs per probe, each
exec's duration (p50/p95), a round's wall time. Asserts nothing.

The cluster is RealNodesCluster (real API server, real kubelets over netpol-cri, real
kube-router's policy controller) driven by KubeconfigBackend, as tests/real_nodes/
test_kube_path.py does. Modes: `per-probe` (prober batch=False: one exec per probe),
`per-kind` (per_source=False: one exec per source and kind, a TCP batch and a UDP batch; on
main before issue 20 only UDP was batched on this toolkit, every TCP probe its own exec: 0.55
execs per probe on this matrix) and `per-source` (every probe of a source in one exec,
probes.source_batch_argv). Figures vary with the machine's load, printed with them.
Run as root: `python bench/bench_kube_exec.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.model import Model, Protocol  # noqa: E402
from harness.probes import Outcome, ProbeSpec  # noqa: E402

TIMEOUT = 2.0   # the kube backends' probe timeout (harness.settings)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def ms(xs: list[float]) -> str:
    return f"p50 {pct(xs, 0.5) * 1000:.0f} ms, p95 {pct(xs, 0.95) * 1000:.0f} ms (n={len(xs)})"


class Counting:
    """Wraps a backend's exec: how many execs, and how long each took."""

    def __init__(self, backend):
        self.backend, self.times, self.lock = backend, [], threading.Lock()
        self.inner = backend.exec
        backend.exec = self.exec

    def exec(self, endpoint, argv, timeout):
        t = time.monotonic()
        try:
            return self.inner(endpoint, argv, timeout)
        finally:
            with self.lock:
                self.times.append(time.monotonic() - t)

    def take(self) -> list[float]:
        with self.lock:
            out, self.times = self.times, []
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--execs", type=int, default=40, help="round trips measured one at a time")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--modes", default="per-probe,per-kind,per-source")
    ap.add_argument("--cycles", type=int, default=3, help="deploy/undeploy cycles per way")
    args = ap.parse_args()
    from harness.components import available

    for name in ("kubelet", "netpol-cri", "agnhost", "kube-scheduler", "kube-router"):
        ok, why = available(name)
        if not ok:
            print(f"skipped: {why}")
            return 0
    from kubernetes import client

    from harness.backends.kubeconfig import KubeconfigBackend
    from harness.backends.real.realnodes.cluster import RealNodesCluster
    from harness.backends.real.realnodes.node import AGNHOST_REF
    from harness.prober import probe_round

    t0 = time.monotonic()
    with RealNodesCluster(engine="kube-router") as c:
        assert c.plane is not None
        up = time.monotonic() - t0
        client.CoreV1Api(c.plane.api_client()).create_namespaced_service("kube-system", {
            "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53,
                                                          "protocol": "UDP"}]}})
        b = KubeconfigBackend(context=c.plane.context, allow_context=c.plane.context,
                              kubeconfig=str(c.plane.kubeconfig), ready_timeout=180,
                              status=lambda m: None, image=AGNHOST_REF)
        b.up()
        try:
            model = Model.default(namespaces=["x", "y", "z"], pods=["a", "b"], ports=[80, 81],
                                  protocols=[Protocol.TCP, Protocol.UDP])
            t = time.monotonic()
            addr = b.deploy(model)
            deploy = time.monotonic() - t
            print(f"cluster up {up:.1f} s (kube-router), deploy of {len(model.user_pods)} pods "
                  f"{deploy:.1f} s; load average {os.getloadavg()[0]:.1f} (2 cores, shared)")
            count = Counting(b)
            for _ in range(args.execs):
                b.exec("x/a", ["true"], 10)
            print(f"exec round trip (`true`, one at a time): {ms(count.take())}")
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(lambda i: b.exec(model.user_pods[i % 6].key, ["true"], 20),
                              range(args.execs * 2)))
            print(f"exec round trip (`true`, {args.concurrency} at once): {ms(count.take())}")
            specs = [ProbeSpec(s.key, d.key, port, proto) for s in model.user_pods
                     for d in model.user_pods if d != s for port in (80, 81)
                     for proto in (Protocol.TCP, Protocol.UDP)]
            for mode in [m for m in args.modes.split(",") if m]:
                walls, execs, bad = [], [], Counter()
                for _ in range(args.rounds):
                    t = time.monotonic()
                    got = probe_round(b, specs, addr, TIMEOUT, concurrency=args.concurrency,
                                      toolkit="agnhost", **mode_args(mode))
                    walls.append(time.monotonic() - t)
                    execs += count.take()
                    bad.update(o.outcome.value for o in got.values()
                               if o.outcome != Outcome.CONNECTED)
                print(f"{mode}: {len(specs)} probes a round ({len(model.user_pods)} sources), "
                      f"{len(execs) / args.rounds / len(specs):.3f} execs per probe; exec "
                      f"{ms(execs)}; round wall {ms(walls)}; probes not connected: "
                      f"{dict(bad) or 0}")
            b.undeploy()
            cycles(b, model, args.cycles)
        finally:
            b.down()
    return 0


def cycles(b, model, n: int) -> None:
    """deploy + undeploy of the model, `n` times each way: the namespaces' deletion awaited
    in every undeploy (the kube path before issue 20 item 3) or started and left to the
    background (awaited once, by the backend's down); and the readiness poll every 1 s (the
    default) or every 0.2 s, what a watch could at best save."""
    import harness.backends.kube.topology as kt

    wait_ready = kt.wait_pods_ready
    for label, background, interval in (("awaited, poll 1 s", False, 1.0),
                                        ("background, poll 1 s", True, 1.0),
                                        ("background, poll 0.2 s", True, 0.2)):
        kt.wait_pods_ready = lambda *a, interval=interval, **k: wait_ready(
            *a, **{**k, "interval": interval})
        deploys, undeploys = [], []
        for _ in range(n):
            t = time.monotonic()
            b.deploy(model)
            deploys.append(time.monotonic() - t)
            t = time.monotonic()
            if background:
                b.undeploy()
            else:
                b.topology.undeploy(wait=True)
                b.topology.names = None
            undeploys.append(time.monotonic() - t)
        t = time.monotonic()
        b.undeploy()              # the end of the run: every deletion awaited once
        print(f"deploy/undeploy, namespaces' deletion {label}: deploy {ms(deploys)}; undeploy "
              f"{ms(undeploys)}; awaited at the end {time.monotonic() - t:.1f} s")
    kt.wait_pods_ready = wait_ready


def mode_args(mode: str) -> dict:
    """probe_round's arguments for a mode (see the module docstring)."""
    import inspect

    from harness.prober import probe_round
    has_sources = "per_source" in inspect.signature(probe_round).parameters
    if mode == "per-probe":
        return {"batch": False}
    if mode == "per-kind":
        return {"batch": True, **({"per_source": False} if has_sources else {})}
    if mode == "per-source":
        if not has_sources:
            raise SystemExit("this checkout's prober has no one-exec-per-source mode")
        return {"batch": True, "per_source": True}
    raise SystemExit(f"unknown mode {mode!r}: per-probe, per-kind or per-source")


if __name__ == "__main__":
    sys.exit(main())
