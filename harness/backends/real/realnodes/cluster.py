"""A cluster with real nodes: the run's real control plane (harness.backends.real.controlplane) with the Node
authorizer, NodeRestriction and an egress selector, the two node namespaces of the local
backend (harness.backends.real.nodes: linked, routed, no link to the root namespace), and on
each node netpol-cri + the real kubelet (harness.backends.real.realnodes.node), registered with a client
certificate of its own (`system:node:<name>` in `system:nodes`).

The kubelets, not the harness, write Node and Pod status. The real kube-scheduler places pods
that carry no spec.nodeName.

Teardown (also on an exception during bring-up): kubelets, runtimes (each stops its containers
and undoes its pods' networks), control plane, egress proxy, node namespaces (killing whatever
still runs in them), mounts left under the run directory, the run directory, the state file.
After a SIGKILL, `python -m harness cleanup` finds the namespaces (np-<run>-*), the run
directory (its mounts are unmounted first) and the control plane's directory.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

from harness import naming
from harness.backends.local import netns as nsx
from harness.backends.local.backend import STATE_DIR
from harness.backends.local.mounts import remove_tree
from harness.backends.real import nodes as nodesx
from harness.backends.real.controlplane.plane import ControlPlane
from harness.backends.real.realnodes.egress import NodeEgress, egress_config
from harness.backends.real.realnodes.node import NodeError, RealNode

NODE_READY_TIMEOUT = 180.0


class RealNodesCluster:
    """Context manager: `with RealNodesCluster() as c: c.plane.api_client() ...`."""

    def __init__(self, run_id: str | None = None, *, state_root: str | os.PathLike = STATE_DIR,
                 log: Callable[[str], None] | None = None):
        self.run_id = run_id or naming.new_run_id()
        self.state_root = Path(state_root)
        self.run_dir = self.state_root / self.run_id
        self.state_file = self.state_root / f"{self.run_id}.json"
        self.log = log or (lambda msg: None)
        self.nodes = nodesx.plan_nodes(self.run_id)
        self.real: list[RealNode] = []
        self.egress = NodeEgress(self.run_dir / "egress.sock", log=self.log)
        self.plane: ControlPlane | None = None
        self.timings: dict[str, float] = {}

    def __enter__(self) -> RealNodesCluster:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        errors = self.down()
        if errors:
            raise NodeError(f"tearing down real-node cluster {self.run_id}", "; ".join(errors))

    def up(self) -> None:
        t0 = time.monotonic()
        # the state file says "this run is alive" to `python -m harness cleanup` (local cleaner)
        self.state_root.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(mode=0o755)
        self.state_file.write_text(json.dumps({"pid": os.getpid(), "run_id": self.run_id,
                                               "kind": "real-nodes"}))
        nodesx.create_nodes(self.nodes)
        for n in self.nodes:
            self.egress.add(n.address, n.netns)
        self.egress.start()
        config = self.run_dir / "egress-selector.yaml"
        config.write_text(egress_config(self.egress.socket_path))
        self.plane = ControlPlane(self.run_id, kubelets=True, egress_config=config,
                                  scheduler=True, status=self.log)
        self.plane.up()
        self.timings["control plane"] = time.monotonic() - t0
        t = time.monotonic()
        for n in self.nodes:
            rn = RealNode(self.run_id, n, self.run_dir, self.log)
            self.real.append(rn)
            rn.start_runtime()
            kubeconfig = self.plane.kubeconfig_for_netns(
                n.netns, user=f"system:node:{n.name}", groups=["system:nodes"])
            rn.start_kubelet(kubeconfig, self.plane.kubelet_serving_cert(n.name, n.address),
                             self.plane.ca.cert)
        self.wait_nodes_ready()
        self.timings["nodes ready"] = time.monotonic() - t
        self.log(f"real nodes {self.run_id}: {', '.join(n.name for n in self.nodes)} Ready in "
                 f"{self.timings['nodes ready']:.1f}s (control plane "
                 f"{self.timings['control plane']:.1f}s)")

    def wait_nodes_ready(self, timeout: float = NODE_READY_TIMEOUT) -> None:
        from kubernetes import client

        assert self.plane is not None
        core = client.CoreV1Api(self.plane.api_client())
        deadline = time.monotonic() + timeout
        waiting = [n.name for n in self.nodes]
        while waiting and time.monotonic() < deadline:
            for rn in self.real:
                for name, proc in rn.procs.items():
                    if proc.poll() is not None:
                        raise NodeError(f"bringing up node {rn.node.name}",
                                        f"{name} exited with status {proc.returncode}",
                                        rn.log_tail(name))
            ready = set()
            for node in core.list_node().items:
                conds = {c.type: c.status for c in (node.status.conditions or [])}
                if conds.get("Ready") == "True":
                    ready.add(node.metadata.name)
            waiting = [n for n in waiting if n not in ready]
            if waiting:
                time.sleep(1.0)
        if waiting:
            tails = "\n".join(rn.log_tail("kubelet") for rn in self.real
                              if rn.node.name in waiting)
            raise NodeError("waiting for the nodes to be Ready",
                            f"{', '.join(waiting)} not Ready after {timeout:g}s", tails)

    def down(self) -> list[str]:
        """Tear everything down (see the module docstring); returns errors. Idempotent."""
        errors: list[str] = []
        for rn in self.real:
            errors += rn.stop()
        self.real = []
        if self.plane is not None:
            try:
                for n in self.nodes:
                    self.plane.release_netns(n.netns)
                self.plane.down()
            except Exception as exc:  # noqa: BLE001 - reported, teardown goes on
                errors.append(str(exc))
            self.plane = None
        self.egress.stop()
        errors += nodesx.delete_nodes(self.nodes)
        # pods' namespaces the runtimes did not remove (a runtime that died)
        prefix = naming.local_prefix(self.run_id)
        errors += nsx.delete_netns_all(n for n in nsx.list_netns() if n.startswith(prefix))
        if self.run_dir.exists():
            errors += remove_tree(self.run_dir)
        self.state_file.unlink(missing_ok=True)
        return errors
