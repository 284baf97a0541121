"""Benchmark of the real control plane (etcd + kube-apiserver + kube-controller-manager): prints
up and down times, asserts nothing.

Up is from the first process start to the controller manager having made the `default`
ServiceAccount (the plane is then usable like a cluster's); down is stopping every process and
removing the state directory. Also the first request through the netns relay. Run as root:
`python bench/bench_controlplane.py [--repeat 3]`. Without the pinned binaries it prints why and
exits 0 (nothing measured).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from harness import naming
from harness.backends.local import netns as nsx
from harness.backends.local.backend import claim_run, release_run
from harness.lifecycle import install_sigterm_handler
from harness.shell import run

PHASES = ("certs", "etcd", "kube-apiserver", "kube-controller-manager")
RELAY_PROBE = """
import sys, time
from kubernetes import client, config
t = time.monotonic()
client.CoreV1Api(config.new_client_from_config(config_file=sys.argv[1])).read_namespace("default")
print(time.monotonic() - t)
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    from harness.backends.real.controlplane import ControlPlane
    from harness.components import ComponentMissing, find

    try:
        for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
            find(name)
    except ComponentMissing as exc:
        print(f"skipped: {exc}")
        return 0
    install_sigterm_handler()
    ups, downs, relays, phases = [], [], [], {ph: [] for ph in PHASES}
    stops: dict[str, list[float]] = {f"stop {n}": [] for n in PHASES[1:]}
    described = ""
    for _ in range(a.repeat):
        plane = ControlPlane()
        claim_run(plane.run_id, purpose="bench control plane relay")
        ns = f"{naming.local_prefix(plane.run_id)}node"
        try:
            t0 = time.monotonic()
            plane.up()
            ups.append(time.monotonic() - t0)
            for ph in PHASES:
                phases[ph].append(plane.timings.get(ph, 0.0))
            described = plane.describe()
            nsx.add_netns([ns])
            t1 = time.monotonic()
            kc = plane.kubeconfig_for_netns(ns)
            res = run(["ip", "netns", "exec", ns, sys.executable, "-c", RELAY_PROBE, str(kc)],
                      timeout=60, check=True, doing="reading a namespace through the relay")
            relays.append((time.monotonic() - t1, float(res.stdout.strip())))
        finally:
            t2 = time.monotonic()
            plane.down()
            downs.append(time.monotonic() - t2)
            for key in stops:
                stops[key].append(plane.timings.get(key, 0.0))
            nsx.delete_netns(ns)
            release_run(plane.run_id)
    med = statistics.median
    print(f"control plane: {described}; {a.repeat} runs (median, max)")
    print(f"  up (processes started .. default ServiceAccount made): {med(ups):.2f}s, "
          f"max {max(ups):.2f}s")
    print("    " + ", ".join(f"{ph} {med(phases[ph]):.2f}s" for ph in PHASES))
    print(f"  down (every process stopped, state dir removed):        {med(downs):.2f}s, "
          f"max {max(downs):.2f}s")
    print("    " + ", ".join(f"{key.split()[1]} {med(v):.2f}s" for key, v in stops.items()))
    print(f"  relay: kubeconfig_for_netns + a client in the netns reading a Namespace: "
          f"{med(r[0] for r in relays):.2f}s (the request itself {med(r[1] for r in relays) * 1000:.0f} ms)")
    print(f"  machine load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
