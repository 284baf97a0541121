"""A cluster with real nodes: the run's real control plane (harness.backends.real.controlplane) with the Node
authorizer, NodeRestriction and an egress selector, the two node namespaces of the local
backend (harness.backends.real.nodes: linked, routed, no link to the root namespace), and on
each node netpol-cri + the real kubelet (harness.backends.real.realnodes.node), registered with a client
certificate of its own (`system:node:<name>` in `system:nodes`).

The kubelets, not the harness, write Node and Pod status. The real kube-scheduler places pods
that carry no spec.nodeName.

With `engine` (harness.backends.real.engines: kube-router, calico, none), each node also runs the
real kube-proxy (iptables mode) and the engine's node process, as the harness-as-kubelet tier
starts them (same command lines, users and readiness checks), in the node's namespace where the
bridge plugin wires the pods. kube-proxy first; an engine that restores the whole filter table
(kube-router) starts only once every kube-proxy has synced with its jumps in place
(docs/real-engines.md, "Who writes a node's tables"). For `calico` the pods are wired by
Calico's own CNI plugin instead, and Calico's datastore is installed before the nodes start
(harness.backends.real.realnodes.calico says what stands in for the rest of a Calico install).

`network` says how pods are connected: `bridge` (the harness's static routes between the
nodes, the bridge plugin on each) or `flannel` (no static pod routes: the controller manager
hands out each Node's spec.podCIDR, a real flanneld per node routes them over its VXLAN device,
and the bridge configuration flannel's CNI plugin would make is written from its subnet.env:
harness.backends.real.realnodes.flannel). Nodes become Ready only once that is written.
Both (`network="flannel", engine="calico"`) is Canal: flanneld between the nodes, Calico's CNI
plugin and Felix on them (harness.backends.real.realnodes.canal).

Teardown (also on an exception during bring-up): kubelets, runtimes (each stops its containers
and undoes its pods' networks), control plane, egress proxy, node namespaces (killing whatever
still runs in them), mounts left under the run directory, the run directory, the state file.
After a SIGKILL, `python -m harness cleanup` finds the namespaces (np-<run>-*), the run
directory (its mounts are unmounted first) and the control plane's directory.
"""

from __future__ import annotations

import functools
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from harness import components, naming
from harness.backends.local import netns as nsx
from harness.backends.local.backend import STATE_DIR
from harness.backends.local.mounts import remove_tree
from harness.backends.real import engines as enginesx
from harness.backends.real import nodes as nodesx
from harness.backends.real.controlplane.plane import ControlPlane
from harness.backends.real.realnodes import calico as calicox
from harness.backends.real.realnodes import canal as canalx
from harness.backends.real.realnodes import flannel as flannelx
from harness.backends.real.realnodes.egress import NodeEgress, egress_config
from harness.backends.real.realnodes.node import NodeError, RealNode

NODE_READY_TIMEOUT = 180.0


def _no_trace(process: str, tools: tuple[str, ...]) -> str | None:
    """No tool trace on real nodes (yet): engines run with the machine's own tools."""
    return None


class RealNodesCluster:
    """Context manager: `with RealNodesCluster() as c: c.plane.api_client() ...`."""

    def __init__(self, run_id: str | None = None, *, state_root: str | os.PathLike = STATE_DIR,
                 log: Callable[[str], None] | None = None, engine: str | None = None,
                 ready_timeout: float = NODE_READY_TIMEOUT, images: dict[str, dict] | None = None,
                 before_engine: Callable[[RealNodesCluster], None] | None = None,
                 network: str = "bridge"):
        if network not in flannelx.NETWORKS:
            raise ValueError(f"unknown real-node network {network!r}: expected one of "
                             f"{', '.join(flannelx.NETWORKS)}")
        self.network = network
        self.engine = engine
        #: Calico's CNI plugin wires the pods and its datastore is installed (engine calico)
        self.calico = engine is not None and enginesx.spec(engine).calico_datastore
        #: images the runtimes' catalogs serve besides agnhost (reference -> catalog entry)
        self.images = dict(images or {})
        #: called once every kube-proxy has synced, before the engine starts (a DNS add-on
        #: whose Service kube-proxy must forward before an engine that restores the filter table
        #: starts: docs/real-engines.md, "Who writes a node's tables")
        self.before_engine = before_engine
        self.ready_timeout = ready_timeout
        #: (node, process) of every node process started for the engine, for readiness checks
        self.node_procs: list[tuple[RealNode, enginesx.NodeProcess]] = []
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
        nodesx.create_nodes(self.nodes, pod_routes=self.network != "flannel")
        for n in self.nodes:
            self.egress.add(n.address, n.netns)
        self.egress.start()
        config = self.run_dir / "egress-selector.yaml"
        config.write_text(egress_config(self.egress.socket_path))
        self.plane = ControlPlane(self.run_id, kubelets=True, egress_config=config,
                                  scheduler=True, status=self.log,
                                  cluster_cidr=flannelx.NETWORK if self.network == "flannel"
                                  else None)
        self.plane.up()
        self.timings["control plane"] = time.monotonic() - t0
        if self.calico:
            t = time.monotonic()
            count = calicox.install(self.plane.kubeconfig, self.plane.context, self.run_id)
            calicox.route_gateway(self.nodes)
            self.timings["calico datastore"] = time.monotonic() - t
            self.log(f"Calico datastore: {count} CRDs, ClusterInformation, tiers, the CNI "
                     f"plugin's role in {self.timings['calico datastore']:.1f}s")
        t = time.monotonic()
        for n in self.nodes:
            rn = RealNode(self.run_id, n, self.run_dir, self.log)
            self.real.append(rn)
            rn.start_runtime(self.images, cni=self._cni(rn))
            kubeconfig = self.plane.kubeconfig_for_netns(
                n.netns, user=f"system:node:{n.name}", groups=["system:nodes"])
            rn.start_kubelet(kubeconfig, self.plane.kubelet_serving_cert(n.name, n.address),
                             self.plane.ca.cert)
        if self.network == "flannel":
            self.start_flannel()
        self.wait_nodes_ready()
        if self.calico and self.network != "flannel":
            from kubernetes import client

            calicox.assign_pod_cidrs(client.CoreV1Api(self.plane.api_client()), self.nodes)
        self.timings["nodes ready"] = time.monotonic() - t
        self.log(f"real nodes {self.run_id}: {', '.join(n.name for n in self.nodes)} Ready in "
                 f"{self.timings['nodes ready']:.1f}s (control plane "
                 f"{self.timings['control plane']:.1f}s)")
        if self.engine is not None:
            t = time.monotonic()
            self.start_engine(self.engine)
            self.timings["engine"] = time.monotonic() - t
            self.log(f"real nodes {self.run_id}: kube-proxy and {self.engine} ready in "
                     f"{self.timings['engine']:.1f}s")

    def _cni(self, rn: RealNode) -> tuple[dict | None, Path] | None:
        """The pods' CNI configuration and plugins on `rn`, a function of (network, engine):
        Calico's plugin for calico (Felix matches only the workloads it makes), over flannel
        too (Canal: harness.backends.real.realnodes.canal, with the pods' MTU under VXLAN);
        flannel alone: the bridge plugins with no configuration yet (start_flannel writes it
        from subnet.env); else the node's default (None: the bridge)."""
        if self.calico:
            assert self.plane is not None
            return (calicox.conflist(self.run_id, rn.node, rn.dir,
                                     self.plane.kubeconfig_for_netns(rn.node.netns,
                                                                     calicox.CNI_USER),
                                     canalx.MTU if self.network == "flannel" else calicox.MTU),
                    calicox.cni_bin_dir(rn.dir))
        if self.network == "flannel":
            return None, components.find("bridge").parent
        return None

    def start_flannel(self) -> None:
        """flanneld on every node once its Node has a spec.podCIDR, then each node's CNI
        configuration from the subnet.env it wrote (harness.backends.real.realnodes.flannel)."""
        from kubernetes import client

        assert self.plane is not None
        self._grant_roles({flannelx.USER: flannelx.ROLE})
        core = client.CoreV1Api(self.plane.api_client())
        binary = str(components.find("flanneld"))
        for rn in self.real:
            flannelx.wait_pod_cidr(core, rn.node.name, self.ready_timeout,
                                   functools.partial(self._alive, rn))
            self._start(rn, flannelx.flanneld(
                binary, rn.node, self._kubeconfig(rn, flannelx.USER), rn.dir / "flannel"))
        self.wait_node_processes()
        if self.calico:         # Canal: Calico's conflist, written with the runtime
            return
        for rn in self.real:
            env = self.subnet_env(rn)
            rn.write_conflist(flannelx.conflist(env, f"{naming.PROJECT}-{self.run_id}",
                                                rn.dir / "cni" / "ipam"))

    def subnet_env(self, rn: RealNode) -> flannelx.SubnetEnv:
        path = rn.dir / "flannel" / "subnet.env"
        return flannelx.parse_subnet_env(path.read_text(), path)

    def _alive(self, rn: RealNode) -> None:
        for name, proc in rn.procs.items():
            if proc.poll() is not None:
                raise NodeError(f"bringing up node {rn.node.name}",
                                f"{name} exited with status {proc.returncode}", rn.log_tail(name))

    def start_engine(self, engine: str) -> None:
        """kube-proxy on every node, then the engine's node process (module docstring)."""
        assert self.plane is not None
        spec = enginesx.spec(engine)
        binaries = {name: str(components.find(name)) for name in ("kube-proxy", *spec.components)}
        self._grant_roles()
        for rn in self.real:
            self._start(rn, enginesx.kube_proxy(
                binaries["kube-proxy"], rn.node.netns, rn.node.name,
                self._kubeconfig(rn, enginesx.USERS["kube-proxy"])))
        if spec.restores_filter_table or self.before_engine is not None:
            self.wait_node_processes()
        if self.before_engine is not None:
            self.before_engine(self)
        if spec.node_process is not None:
            for rn in self.real:
                p = spec.node_process(enginesx.NodeEnv(
                    binaries, rn.node.netns, rn.node.name,
                    functools.partial(self._user_kubeconfig, rn),
                    functools.partial(self._kubeconfig, rn, None), str(rn.dir), _no_trace))
                self._start(rn, canalx.felix(p) if self.calico and self.network == "flannel"
                            else p)
        self.wait_node_processes()

    def _user_kubeconfig(self, rn: RealNode, process: str) -> str:
        return self._kubeconfig(rn, enginesx.USERS[process])

    def _kubeconfig(self, rn: RealNode, user: str | None) -> str:
        assert self.plane is not None
        if user is None:
            return str(self.plane.kubeconfig_for_netns(rn.node.netns))
        return str(self.plane.kubeconfig_for_netns(rn.node.netns, user))

    def _start(self, rn: RealNode, p: enginesx.NodeProcess) -> None:
        rn.spawn(p.name, p.argv, p.env)
        self.node_procs.append((rn, p))

    def _grant_roles(self, roles: dict[str, list[dict]] | None = None) -> None:
        from kubernetes import client

        assert self.plane is not None
        rbac = client.RbacAuthorizationV1Api(self.plane.api_client())
        for obj in enginesx.rbac_objects(naming.ownership_labels(self.run_id), roles):
            if obj["kind"] == "ClusterRole":
                rbac.create_cluster_role(obj)
            else:
                rbac.create_cluster_role_binding(obj)

    def wait_node_processes(self) -> None:
        """Every node process started so far ready (kube-proxy synced with its jumps in place,
        the engine's chains present); one that exits fails the bring-up with its log's end."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            waiting = []
            for rn, p in self.node_procs:
                proc = rn.procs[p.name]
                if proc.poll() is not None:
                    raise NodeError(f"starting {p.name} on {rn.node.name}",
                                    f"exited with status {proc.returncode}", rn.log_tail(p.name))
                ok, why = p.ready()
                if not ok:
                    waiting.append((rn, p, why))
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise NodeError("waiting for the node processes",
                                "; ".join(f"{p.name} on {rn.node.name}: {why}"
                                          for rn, p, why in waiting),
                                "\n".join(rn.log_tail(p.name) for rn, p, _ in waiting))
            time.sleep(0.5)

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
        # the nodes side by side: each stop is mostly waiting (its runtime stopping every
        # container and undoing every pod's network: 2.5-3 s each at the end of a library run)
        with ThreadPoolExecutor(max_workers=max(1, len(self.real)),
                                thread_name_prefix="netpol-node-stop") as pool:
            for node_errors in list(pool.map(lambda rn: rn.stop(), self.real)):
                errors += node_errors
        self.real = []
        self.node_procs = []
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
