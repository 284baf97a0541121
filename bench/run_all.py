"""`make bench`: every benchmark, one after the other, printing its figures.

Why one entry point: the figures quoted in the README and the issue notes come from here; each
benchmark also runs alone (`python bench/bench_<name>.py --help`). Targets are printed beside the
figures, never asserted: a busy machine makes a slow run, not a broken one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("oracle: full default matrix for 1/10/100 policies (target < 50 ms at 100)", "bench_oracle.py", False),
    ("local backend: up/down, 9x9 matrix in probe timeouts, probes/s (targets: up < 3 s, "
     "matrix < 1.5 x timeout)", "bench_local.py", True),
    ("control plane: real etcd + kube-apiserver + kube-controller-manager up/down (median, max)",
     "bench_controlplane.py", True),
    ("kube backends: rendering, validation, exec status parsing (no cluster)", "bench_kube.py", False),
    ("the kube path on real nodes: exec round trip through the API (p50/p95), execs per probe "
     "and a round's wall per exec mode, deploy/undeploy with the namespaces' deletion awaited or "
     "in the background", "bench_kube_exec.py", True),
    ("scenario library on both local profiles: CPU and processes per probe by kind, wall, CPU "
     "and the floor (targets: < 90 s, < 1.5 x the floor)", "bench_library.py", True),
    ("scenario library on local enforcing,open: wall time, rounds per step (what the observation "
     "window costs; several minutes)", "bench_window.py", True),
    ("real engines on the local backend: up/down, deploy/undeploy, time to enforce per engine",
     "bench_real_engines.py", True),
    ("the whole library on each real engine: library time, time to enforce over the library "
     "(median, max; tens of minutes)", "bench_engines_library.py", True),
    ("the whole library on the kube path on real kubelets (realnodes), per CNI: wall with "
     "bring-up, the floor (sum of rounds x probe timeout / jobs), the ratio (targets: < 3 min "
     "per engine, < 1.5 x the floor; tens of minutes)", "bench_realnodes_library.py", True),
    ("fault scenarios per engine (emulated, kube-router, calico): the fail-open window of a "
     "restart and a stop, how long after the start a change made while down takes effect",
     "bench_faults.py", True),
]


def main() -> int:
    failed = 0
    for title, script, needs_root in BENCHES:
        print(f"\n=== {title}", flush=True)
        if needs_root and os.geteuid() != 0:
            print("skipped: needs root (network namespaces); run `sudo make bench`")
            continue
        rc = subprocess.call([sys.executable, str(HERE / script)])
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
