"""Validate netpol-cri with critest (sigs.k8s.io/cri-tools v1.34.0): one node namespace, the
runtime in it, critest in it too (the streaming server answers on the node's loopback), a JSON
report read back into (state, spec) pairs.

`python -m harness.backends.real.realnodes.critest [--all]` runs the cases in scope (IN_SCOPE, the sandbox,
container, exec, DNS and hostname cases and their neighbours) or every case, and prints each
result; docs/real-nodes.md has the last full run and why the others are out of scope.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from harness import components, naming
from harness.backends.local import netns as nsx
from harness.backends.local.backend import STATE_DIR
from harness.backends.local.mounts import remove_tree
from harness.backends.real.nodes import plan_nodes
from harness.backends.real.realnodes.node import RealNode, busybox_image
from harness.shell import run

BUSYBOX_REF = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
#: a ginkgo --focus regex: the cases netpol-cri is meant to pass
IN_SCOPE = "|".join((
    r"PodSandbox runtime should support basic operations",
    r"Container runtime should support basic operations on container",
    r"Container runtime should support adding volume",
    r"Container runtime should support log",
    r"Networking runtime should support networking .*(DNS config|set hostname)",
    r"Streaming .*(exec with tty=false|support attach)",
    r"Runtime info",
    r"Idempotence",
    r"PodSandbox runtime should support sysctls",
    r"NamespaceOption .*(HostIpc|HostNetwork)",
    r"Security Context bucket .*(RunAsUser$|RunAsGroup|ReadOnlyRootfs|ReadonlyPaths|Privileged is true)",
    r"non-recursive readonly mounts",
    r"'rprivate'",
))


def run_critest(focus: str | None = IN_SCOPE, skip: str = "OOM",
                log: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """(state, "container texts / spec text") for every case critest reports."""
    run_id = naming.new_run_id()
    node = plan_nodes(run_id)[0]
    state_root = Path(STATE_DIR)
    run_dir = state_root / run_id
    state_file = state_root / f"{run_id}.json"
    state_root.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir()
    state_file.write_text(json.dumps({"pid": os.getpid(), "run_id": run_id, "kind": "critest"}))
    rn = RealNode(run_id, node, run_dir, log)
    try:
        nsx.add_netns([node.netns])
        nsx.ip_batch(["link set lo up"], node.netns, doing="bringing up the node's loopback")
        rn.start_runtime({BUSYBOX_REF: busybox_image(run_dir / "busybox")})
        report = run_dir / "critest.json"
        argv = ["nsenter", f"--net={nsx.NETNS_DIR}/{node.netns}", str(components.find("critest")),
                f"--runtime-endpoint=unix://{rn.cri_socket}", "--ginkgo.no-color",
                f"--ginkgo.json-report={report}", f"--ginkgo.skip={skip}"]
        if focus:
            argv.append(f"--ginkgo.focus={focus}")
        t = time.monotonic()
        res = run(argv, timeout=900, cwd=run_dir)
        log(f"critest ran {time.monotonic() - t:.0f}s, exit {res.returncode}")
        if not report.exists():
            raise RuntimeError(f"critest wrote no report: {res.pretty()}\n{res.stdout[-3000:]}")
        out = []
        for suite in json.loads(report.read_text()):
            for spec in suite.get("SpecReports") or []:
                if not spec.get("LeafNodeText"):
                    continue        # the suite's setup node
                name = " ".join(spec.get("ContainerHierarchyTexts") or [])
                out.append((spec["State"], f"{name} / {spec['LeafNodeText']}"))
        return out
    finally:
        rn.stop()
        prefix = naming.local_prefix(run_id)
        nsx.delete_netns_all(n for n in nsx.list_netns() if n.startswith(prefix))
        remove_tree(run_dir)
        state_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.backends.real.realnodes.critest",
                                description="critest v1.34.0 against netpol-cri in a node "
                                "namespace (root; components netpol-cri, critest, agnhost, "
                                "CNI plugins; busybox on PATH)")
    p.add_argument("--all", action="store_true", help="every case, not only those in scope")
    args = p.parse_args(argv)
    results = run_critest(None if args.all else IN_SCOPE, log=lambda m: print(m, file=sys.stderr))
    for state, name in sorted(results, key=lambda r: r[1]):
        print(f"{state:8} {name}")
    counts = {s: sum(1 for st, _ in results if st == s) for s in {st for st, _ in results}}
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0 if all(s in ("passed", "skipped") for s, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
