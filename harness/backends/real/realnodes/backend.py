"""The `realnodes` backend: `--backend realnodes --cni kube-router,none` — the kube path (the
kubeconfig and kind backends' code in harness.backends.kube, unchanged) on a cluster of real
kubelets that the run brings up itself (harness.backends.real.realnodes.cluster).

What runs: the run's real etcd, kube-apiserver, kube-controller-manager and kube-scheduler; on
each of two node namespaces the real kubelet over netpol-cri (the project's CRI runtime:
namespaces, no cgroups, images from a local catalog, no registry), pods wired by the CNI of the
row (harness.backends.real.realnodes.cnis), the real kube-proxy and the row's policy engine;
then **CoreDNS as a pod**: the pinned coredns build as an image of the catalog, its Corefile in
a ConfigMap, a Deployment in kube-system reading the API with its ServiceAccount, and the
`kube-dns` Service at harness.model.DNS_SERVICE_IP, so the kubelets' clusterDNS and every DNS
probe go through the real kube-proxy to a pod the kubelet made.

How a pod reaches the API server: the `kubernetes` Service (10.96.0.1:443, in the API server's
certificate) gets an EndpointSlice of each node's address on API_PORT, where a relay of this
backend (harness.backends.real.controlplane.relay, one listener in each node namespace) joins
it to the API server on the root namespace's loopback. The API server itself writes no
endpoints for a loopback address (`--endpoint-reconciler-type=none`).

**Scenarios at once are tenants of one cluster** (issue 20 item 1), as on the kind and
kubeconfig backends: harness.backends.kube.tenants says how.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from harness import components, naming
from harness.backends.kube.api import KubeApi, status_line
from harness.backends.kube.tenants import SharedCluster
from harness.backends.kube.topology import KubeTopology
from harness.backends.kube.waits import wait_pods_ready
from harness.backends.local import curl as probe_curl
from harness.backends.local.backend import STATE_DIR
from harness.backends.real import engines
from harness.backends.real.controlplane.relay import Relay
from harness.backends.real.realnodes import cnis
from harness.backends.real.realnodes.cluster import RealNodesCluster
from harness.backends.real.realnodes.node import AGNHOST_REF, RealNode
from harness.capabilities import Capabilities
from harness.errors import BackendError
from harness.faults.kinds import Target, kind_named
from harness.model import DNS_SERVICE, DNS_SERVICE_IP, SYSTEM_NAMESPACE
from harness.shell import stop
from harness.waits import poll

#: where each node's relay listener to the API server is (the `kubernetes` Service's endpoints)
API_PORT = 6443
COREDNS_REPOSITORY = "registry.k8s.io/coredns/coredns"
READY_TIMEOUT = 180.0


def coredns_ref() -> str:
    """The CoreDNS image reference the catalog serves: the upstream repository at the pinned
    version (the pinned build, not the upstream image)."""
    return f"{COREDNS_REPOSITORY}:{components.get('coredns').version}"


def coredns_image(binary: Path | str) -> dict:
    """The catalog entry of CoreDNS: the pinned build alone at /coredns, as the upstream image
    has it (distroless: nothing else, so nothing can be exec'd in it)."""
    return {"binds": [{"source": str(binary), "target": "/coredns"}],
            "entrypoint": ["/coredns"], "cmd": []}


def dns_objects(run_id: str, image: str) -> list[dict]:
    """CoreDNS as a cluster's DNS add-on: its ServiceAccount bound to the role kubeadm grants
    CoreDNS (engines.ROLES, created with the engines' roles), the Corefile in a ConfigMap, a
    one-replica Deployment and the kube-dns Service at the ClusterIP every pod's resolv.conf
    names, with CoreDNS's own port names."""
    own = naming.ownership_labels(run_id)
    labels = {"k8s-app": "kube-dns"}
    ports = [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
             {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
             {"name": "ready", "containerPort": 8181, "protocol": "TCP"}]
    name = "coredns"
    role = f"{naming.PROJECT}:coredns"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE, "labels": own}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"{role}-sa", "labels": own},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": name,
                       "namespace": SYSTEM_NAMESPACE}]},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE, "labels": own},
         "data": {"Corefile": engines.corefile(None, ready=":8181")}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE, "labels": {**labels, **own}},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {
                      "metadata": {"labels": {**labels, **own}},
                      "spec": {
                          "serviceAccountName": name, "dnsPolicy": "Default",
                          "terminationGracePeriodSeconds": 0,
                          "containers": [{
                              "name": "coredns", "image": image,
                              "imagePullPolicy": "IfNotPresent",
                              "args": ["-conf", "/etc/coredns/Corefile"], "ports": ports,
                              "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns",
                                                "readOnly": True}],
                              "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181},
                                                 "periodSeconds": 1}}],
                          "volumes": [{"name": "config", "configMap": {"name": name}}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": DNS_SERVICE, "namespace": SYSTEM_NAMESPACE,
                      "labels": {**labels, **own}},
         "spec": {"clusterIP": DNS_SERVICE_IP, "selector": labels,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                             "targetPort": "dns-tcp"}]}},
    ]


def api_endpoints(run_id: str, addresses: list[str], port: int = API_PORT) -> dict:
    """The EndpointSlice of the `kubernetes` Service: every node's relay listener."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"kubernetes-{naming.PROJECT}", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes",
                                    "endpointslice.kubernetes.io/managed-by": naming.PROJECT,
                                    **naming.ownership_labels(run_id)}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


class RealNodesBackend(SharedCluster):
    """See the module docstring. The backend the session brings up is the cluster's host; the
    scheduler's extra clusters are its tenants (harness.backends.kube.tenants)."""

    name = "realnodes"

    def __init__(self, profile: str = "kube-router", run_id: str | None = None,
                 probe_timeout: float = 2.0, ready_timeout: float = READY_TIMEOUT,
                 status: Callable[[str], None] = status_line, workdir: str | None = None,
                 **_: Any):
        try:
            self.cni = cnis.spec(profile)
        except ValueError as exc:
            raise BackendError(f"creating the realnodes backend with CNI {profile!r}",
                               str(exc)) from None
        self.profile = profile
        self.run_id = run_id or naming.new_run_id()
        self.probe_timeout = probe_timeout
        self.ready_timeout = ready_timeout
        self.status = status
        self.state_root = workdir or STATE_DIR
        self.cluster: RealNodesCluster | None = None
        self.relay: Relay | None = None
        self.topology: KubeTopology | None = None
        self.timings: dict[str, float] = {}
        #: (node, process) of engines a fault step stopped or killed
        self._engines_down: set[tuple[str, str]] = set()
        #: a fault step's `node: N` names one of the cluster's two nodes
        self.fault_nodes = 2

    # -- what is declared / what ran ------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        return self.cni.caps

    def probe_tools(self) -> str:
        """Which curl the pods' probes run (the report's meta): the HTTP-only build over the
        node's (node.image_catalog), or the node's own where it is not built."""
        return probe_curl.describe()

    def describe(self) -> str:
        """Exactly what runs, every version from the pins (harness.components)."""
        def v(name: str) -> str:
            version = components.get(name).version
            return version if version.startswith("v") else f"v{version}"

        plane = " + ".join(f"real {n} {v(n)}" for n in (
            "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
            "kube-proxy", "coredns"))
        versions = {n: v(n) for n in ("kube-router", "calico-felix", "flanneld")}
        cni = self.cni.describe.format(cni=v("bridge"), **versions)
        routes = "routed by flannel's VXLAN" if self.cni.network == "flannel" else \
            "routes between them static"
        return (f"{plane} + {cni}, pods run by netpol-proof's CRI runtime netpol-cri "
                f"{v('netpol-cri')} (namespaces, no cgroups, images built locally), no "
                f"container registry; CoreDNS as a pod; two node namespaces, {routes}")

    # -- up -------------------------------------------------------------------------------------
    def up(self) -> None:
        if self.topology is not None:
            return
        t = time.monotonic()
        os.makedirs(self.state_root, exist_ok=True)
        cluster = RealNodesCluster(self.run_id, state_root=self.state_root, log=self._log,
                                   engine=self.cni.engine_row, ready_timeout=self.ready_timeout,
                                   images={coredns_ref(): coredns_image(
                                       components.find("coredns"))},
                                   before_engine=self._install_dns,
                                   network="flannel" if self.cni.network == "flannel"
                                   else "bridge")
        self.cluster = cluster
        try:
            cluster.up()
            assert cluster.plane is not None
            api = KubeApi(str(cluster.plane.kubeconfig), cluster.plane.context)
            self.topology = self._topology(api)
        except BaseException:
            try:
                self.down()
            except BackendError as exc:
                self.status(f"  while cleaning up a failed bring-up: {exc}")
            raise
        self.timings.update(cluster.timings)
        self.timings["up"] = time.monotonic() - t
        self.status(f"[realnodes/{self.profile}] up in {self.timings['up']:.1f}s (run "
                    f"{self.run_id})")

    def _topology(self, api: KubeApi) -> KubeTopology:
        return KubeTopology(api, self.run_id, allow_cluster_scoped=True,
                            ready_timeout=self.ready_timeout, status=self._log,
                            image=AGNHOST_REF, checkpoint=self._deploying)

    def _install_dns(self, cluster: RealNodesCluster) -> None:
        """The `kubernetes` Service's endpoints (the relay on every node), then CoreDNS, then
        kube-proxy forwarding kube-dns on every node; before the engine starts."""
        assert cluster.plane is not None
        t = time.monotonic()
        host, port = cluster.plane.server.removeprefix("https://").rsplit(":", 1)
        self.relay = Relay((host, int(port)), log=self._log)
        self.relay.start()
        for n in cluster.nodes:
            self.relay.add(n.netns, n.address, API_PORT)
        api = KubeApi(str(cluster.plane.kubeconfig), cluster.plane.context)
        self._create(api, api_endpoints(self.run_id, [n.address for n in cluster.nodes]))
        for obj in dns_objects(self.run_id, coredns_ref()):
            self._create(api, obj)
        wait_pods_ready(api, SYSTEM_NAMESPACE, "k8s-app=kube-dns", self.ready_timeout,
                        "the CoreDNS pod (Deployment kube-system/coredns) Ready", expect=1,
                        interval=0.2)
        polled = poll(lambda: [engines.kube_proxy_forwards(n.netns, DNS_SERVICE_IP,
                                                           ("udp", "tcp"))
                               for n in cluster.nodes],
                      lambda states: all(ok for ok, _ in states), self.ready_timeout, 0.2)
        if not polled.ok:
            raise BackendError("waiting for kube-proxy to forward the kube-dns Service",
                               "; ".join(why for ok, why in polled.value or [] if not ok))
        self.timings["coredns"] = time.monotonic() - t

    @staticmethod
    def _create(api: KubeApi, obj: dict) -> None:
        kind, meta = obj["kind"], obj["metadata"]
        ns = meta.get("namespace")
        c = api.client
        try:
            if kind == "ClusterRoleBinding":
                c.RbacAuthorizationV1Api(api.api_client).create_cluster_role_binding(obj)
            elif kind == "EndpointSlice":
                c.DiscoveryV1Api(api.api_client).create_namespaced_endpoint_slice(ns, obj)
            elif kind == "Deployment":
                api.apps.create_namespaced_deployment(ns, obj)
            elif kind == "ServiceAccount":
                api.core.create_namespaced_service_account(ns, obj)
            elif kind == "ConfigMap":
                api.core.create_namespaced_config_map(ns, obj)
            elif kind == "Service":
                api.core.create_namespaced_service(ns, obj)
            else:
                raise ValueError(f"no create call for {kind}")
        except c.ApiException as exc:
            raise BackendError(f"creating {kind} {ns or ''}/{meta['name']}",
                               f"{exc.status} {exc.reason}: {str(exc.body)[:300]}") from None

    def _log(self, msg: str) -> None:
        """Details (the control plane's, the nodes', the topology's: its tenants' too) go to
        the cluster's log (`<state dir>/<run>/harness.log`)."""
        try:
            with open(os.path.join(self.state_root, self.run_id, "harness.log"), "a") as fh:
                fh.write(msg + "\n")
        except OSError:
            pass

    # -- fault steps (they run alone: harness.scenario.sharing) -------------------------------
    def fault(self, action: str, target: str, node: int | None = None) -> str:
        """Stop (SIGTERM), kill (SIGKILL), start, restart or kill-restart the engine process on
        `node` (1-based; None: every node); what was done (never the API server: see
        cnis.NOT_HERE); a tenant's fault is its host's (KubeTenant). A started engine is not
        waited for (how long it takes to program its rules is what the step's timeline
        measures)."""
        cluster = self._cluster()
        doing = f"{action} {target}" + (f" on node {node}" if node else "") + \
            f" of realnodes run {self.run_id} ({self.profile})"
        try:
            kind = kind_named(action)
        except ValueError as exc:
            raise BackendError(doing, str(exc)) from None
        if target != Target.ENGINE:
            raise BackendError(doing, f"only the engine: {cnis.NOT_HERE['apiserver-fault']}")
        if node is not None and not 1 <= node <= len(cluster.nodes):
            raise BackendError(doing, f"this run has nodes 1-{len(cluster.nodes)}")
        wanted = {n.name for i, n in enumerate(cluster.nodes, 1) if node in (None, i)}
        procs = [(rn, p) for rn, p in cluster.node_procs if p.engine and rn.node.name in wanted]
        if not procs:
            raise BackendError(doing, f"no policy engine runs on `{self.profile}`")
        said = []
        for rn, p in procs:
            proc = rn.procs.get(p.name)
            if kind.signal is not None and proc is not None:
                if kind.signal == "TERM":
                    code = stop(proc, grace=10.0)
                else:
                    if proc.poll() is None:
                        proc.kill()
                    code = proc.wait(timeout=10)
                self._engines_down.add((rn.node.name, p.name))
                said.append(f"{p.name} on {rn.node.name} "
                            f"{'stopped' if kind.signal == 'TERM' else 'killed'} "
                            f"(SIG{kind.signal}; exit status {code})")
            if kind.starts:
                said.append(f"{p.name} on {rn.node.name} started (pid {self._respawn(rn, p)})")
        return "; ".join(said)

    def _respawn(self, rn: RealNode, p: engines.NodeProcess) -> int:
        """Start engine process `p` of node `rn` again as it was started (its log appended)."""
        proc = rn.procs.get(p.name)
        if proc is None or proc.poll() is not None:
            proc = rn.spawn(p.name, p.argv, p.env)
        self._engines_down.discard((rn.node.name, p.name))
        return proc.pid

    def restore_faults(self) -> list[str]:
        """Start every engine a fault step stopped."""
        out: list[str] = []
        cluster = self.cluster
        if cluster is None or cluster.plane is None:
            return out
        for rn, p in cluster.node_procs:
            if (rn.node.name, p.name) in self._engines_down:
                out.append(f"{p.name} on {rn.node.name} started again (pid "
                           f"{self._respawn(rn, p)})")
        return out

    def _cluster(self) -> RealNodesCluster:
        if self.cluster is None or self.cluster.plane is None:
            raise BackendError(f"using realnodes run {self.run_id}", "its cluster is not up")
        return self.cluster

    # -- down -----------------------------------------------------------------------------------
    def down(self) -> None:
        """The relay and the whole cluster, the tenants' pods and this run's with it. Keeps
        going past failures; idempotent.

        Why no API deletions first: the cluster is this run's alone and goes whole (its etcd
        data, node namespaces and runtimes; netpol-cri stops every container and undoes every
        pod's network on SIGTERM), so awaiting each tenant's namespace deletion through the API
        server before it only made the run's end longer (docs/real-nodes.md §14)."""
        errors = self.down_tenants(delete=False)
        self.topology = None
        if self.relay is not None:
            if self.cluster is not None:
                for n in self.cluster.nodes:
                    self.relay.remove(n.netns)
            self.relay.stop()
            self.relay = None
        if self.cluster is not None:
            errors += self.cluster.down()
            self.cluster = None
        if errors:
            raise BackendError(f"tearing down realnodes run {self.run_id} ({self.profile})",
                               "; ".join(errors))
