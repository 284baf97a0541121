"""Capture the kube path's source batch (probes.source_batch_argv) as it runs on real nodes,
for tests/test_source_batch.py.

Why: the batch's lines must be tested on what the real driver prints inside a real agnhost
pod (bash, curl, the pod's /tmp), exec'd through a real API server and kubelet, not on lines
we imagine. Run as root with the real-node components built: `python tests/data/probe-outputs/
capture_real_nodes.py`. It brings up RealNodesCluster with kube-router (tests/real_nodes/
kube_path.py), deploys pods x/a, x/b, y/a, y/b serving TCP and UDP on 80 and 81, and from x/a
runs one source batch: a TCP batch (x/b:80 answers, x/b:82 is closed), a UDP batch (y/b:81
answers, y/b:82 is closed), the UDP client to a name, and a lookup of the kube-dns Service
(no CoreDNS behind it). Then a deny-all-ingress NetworkPolicy on y/b and, once kube-router
rejects, the same batch again. Writes kube-source-batch*.json with the probes of each job
(`probes`: job index, source, target, port, protocol, destination). All traffic stays inside
the run's namespaces; everything is removed at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

from harness.model import Model, Protocol  # noqa: E402
from harness.prober import _plan, _task_argv, probe_round  # noqa: E402
from harness.probes import Outcome, ProbeSpec, source_batch_argv  # noqa: E402

T = 2.0
MODEL = Model.default(namespaces=["x", "y"], pods=["a", "b"], ports=[80, 81],
                      protocols=[Protocol.TCP, Protocol.UDP])
DENY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "capture-deny", "namespace": "y"},
        "spec": {"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Ingress"]}}
SPECS = [ProbeSpec("x/a", "x/b", 80, Protocol.TCP), ProbeSpec("x/a", "x/b", 82, Protocol.TCP),
         ProbeSpec("x/a", "y/b", 80, Protocol.TCP),
         ProbeSpec("x/a", "y/b", 81, Protocol.UDP), ProbeSpec("x/a", "y/b", 82, Protocol.UDP),
         ProbeSpec("x/a", "x/b", 81, Protocol.UDP),
         ProbeSpec("x/a", "kube-dns", 53, Protocol.UDP, dns_name="kube-dns.kube-system")]


def one_batch(b, addr) -> dict:
    tasks = _plan(SPECS, addr, "agnhost", True, b)
    jobs, probes = [], []
    for i, task in enumerate(tasks):
        argv, items = _task_argv(task, addr, T, "agnhost", b)
        jobs.append(argv)
        probes += [{"job": i, "source": s.source, "target": s.target, "port": s.port,
                    "protocol": s.protocol.value, "dns_name": s.dns_name, "dest": d}
                   for s, d in items]
    argv = source_batch_argv(jobs)
    r = b.exec("x/a", argv, T * 2 + 10)
    return {"argv": list(r.argv), "returncode": r.returncode, "stdout": r.stdout,
            "stderr": r.stderr, "elapsed": round(r.elapsed, 3), "probes": probes}


def main(out_dir: str = HERE) -> None:
    from tests.real_nodes.kube_path import kube_path

    found = {}
    with kube_path(MODEL) as (_, b, addr):
        found["kube-source-batch"] = one_batch(b, addr)
        b.apply_policy(DENY)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:     # until kube-router rejects y/b's TCP
            got = probe_round(b, SPECS[2:3], addr, T, toolkit="agnhost")
            if got[SPECS[2]].outcome != Outcome.CONNECTED:
                break
            time.sleep(0.5)
        got = one_batch(b, addr)
        found["kube-source-batch-blocked"] = got
    os.makedirs(out_dir, exist_ok=True)
    for name, d in found.items():
        with open(os.path.join(out_dir, f"{name}.json"), "w") as fh:
            json.dump(d, fh, indent=1)
            fh.write("\n")
        print(f"{name}: exit {d['returncode']}, {d['elapsed']} s\n{d['stdout']}")


if __name__ == "__main__":
    main(*sys.argv[1:])
