"""What the kube backends' own code costs, offline: rendering and schema-validating a topology,
rewriting policies to real namespace names, parsing exec statuses, and KindBackend.up() with the
cluster replaced by fakes (the harness's overhead per bring-up, not kind's).

Why a script and not a timed test: figures depend on the machine. No cluster is involved: the
live step durations are printed by the backend's own status lines (docs/kind.md lists what the
sources expect). Usage: python bench/bench_kube.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kubernetes_validate as kv  # noqa: E402

from harness.backends.kube import manifests as km  # noqa: E402
from harness.backends.kube.exec import returncode_from_status  # noqa: E402
from harness.model import Model  # noqa: E402

STATUS = ('{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","details":'
          '{"causes":[{"reason":"ExitCode","message":"28"}]}}')


def timed(fn, repeat: int) -> float:
    """Median milliseconds of `repeat` calls."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    n = ap.parse_args().repeat
    model = Model.default()
    names = km.NameMap("abc123", [x.name for x in model.namespaces])
    objs = km.topology(model, names)
    pol = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "p", "namespace": "x"},
           "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
               "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                     "values": ["y", "z"]}]}}]}]}}
    print(f"topology render (default model, {len(objs)} objects): "
          f"{timed(lambda: km.topology(model, names), n):.2f} ms")
    print(f"schema validation of those objects (k8s 1.35): "
          f"{timed(lambda: [kv.validate(o, '1.35.0', strict=True) for o in objs], max(3, n // 5)):.1f} ms")
    print(f"policy rewrite x1000: {timed(lambda: [km.rewrite_policy(pol, names) for _ in range(1000)], max(3, n // 5)):.1f} ms")
    print(f"exec status parse x10000: "
          f"{timed(lambda: [returncode_from_status(STATUS, ['curl'], 'x/a') for _ in range(10000)], max(3, n // 5)):.1f} ms")
    print(f"KindBackend.up()+down() harness overhead with faked kind/API: {bring_up_overhead():.1f} ms")


def bring_up_overhead() -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_kind_backend import FakeKubeApi, FakeShell

    from harness.backends.kind import backend as kind_mod
    kind_mod.run, kind_mod.KubeApi = FakeShell(), FakeKubeApi
    kind_mod.resolve = lambda name, *a, **k: f"/bin/{name}"
    kind_mod.resolve_docker = lambda: "/bin/docker"
    kind_mod.kc.install_steps = lambda cni, t, cache: []
    with tempfile.TemporaryDirectory() as tmp:
        def once():
            b = kind_mod.KindBackend("kindnet", "abc123", cache_dir=tmp, status=lambda s: None)
            b.up()
            b.down()
        return timed(once, 5)


if __name__ == "__main__":
    main()
