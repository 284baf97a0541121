"""RealBackend: `--backend local --cni kube-router|calico|none` — a real control plane, real
engines, real kube-proxy and CoreDNS, with pods emulated as network namespaces and the harness as
kubelet.

What is real: etcd, kube-apiserver and kube-controller-manager (harness.backends.real.controlplane, one per
run on the root namespace's loopback), kube-proxy (iptables mode) on each node, CoreDNS as the
kube-system/coredns pod with the kube-dns Service at harness.model.DNS_SERVICE_IP, and the engine
(harness.backends.real.engines). What is not: there is no kubelet, no container runtime and no
scheduler — the harness binds pods to nodes (spec.nodeName), realises each as a network namespace
and writes Node and Pod status (harness.backends.real.kubelet); pods run the local backend's pod
server (its reply names the pod, so the report can tell who answered).

Same kube code as the kubeconfig backend: Namespaces, Pods and Services come from
harness.backends.kube.topology.KubeTopology and kube.manifests (labels, ownership, name map np-<run>-<ns>,
DNS names mapped the same way); only `exec` differs: probes run inside the pod's namespace with
this machine's curl, nslookup and python3 (never from a node namespace: kube-router accepts
traffic from the node's own addresses).

Spread: pods alternate between the two nodes in model order (x/a on n1, x/b on n2, ...), so
every matrix of three or more pods has same-node and cross-node cells; CoreDNS is on n1.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from harness import naming
from harness.backends.kube.api import KubeApi, status_line
from harness.backends.kube.topology import KubeBackendBase, KubeTopology
from harness.backends.kube.waits import wait_pods_ready
from harness.backends.local import curl as probe_curl
from harness.backends.local import netns as nsx
from harness.backends.local import preflight
from harness.backends.local.backend import DEFAULT_EXTERNAL_PORTS, STATE_DIR, claim_run, release_run
from harness.backends.real import calico, engines, tooltrace
from harness.backends.real import nodes as nodesx
from harness.backends.real.controlplane import ControlPlane
from harness.backends.real.kubelet import EmulatedKubelet, Process
from harness.capabilities import Capabilities
from harness.components import reported_version
from harness.errors import BackendError, ExecError
from harness.faults.kinds import Target, kind_named
from harness.model import (
    DNS_POD,
    DNS_SERVICE,
    DNS_SERVICE_IP,
    SYSTEM_NAMESPACE,
    Addresses,
    Model,
    Pod,
    Protocol,
    plan_addresses,
)
from harness.shell import ExecResult, run, spawn, stop
from harness.waits import poll

READY_TIMEOUT = 120.0   # only a failure waits this long (two shared cores)
#: the tools the real engines exec inside the node namespaces, besides the local backend's
ENGINE_TOOLS = {"iptables": "iptables", "ipset": "ipset"}
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns"


def without_sctp(model: Model) -> Model:
    """The model as this backend's pods are created: no SCTP containers (no SCTP in the kernel;
    declared missing in the capabilities)."""
    pods = tuple(replace(p, ports=tuple(cp for cp in p.ports if cp.protocol != Protocol.SCTP))
                 for p in model.pods)
    return replace(model, pods=pods)


def dns_objects(run_id: str, node: str, version: str) -> list[dict]:
    """The kube-dns Service (at the ClusterIP the model expects) and the CoreDNS pod on `node`,
    with CoreDNS's own port names (dns, dns-tcp), as a cluster's DNS add-on has them."""
    own = naming.ownership_labels(run_id)
    labels = {"k8s-app": "kube-dns", **own}
    ports = [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
             {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": DNS_SERVICE, "namespace": SYSTEM_NAMESPACE, "labels": labels},
         "spec": {"clusterIP": DNS_SERVICE_IP, "selector": {"k8s-app": "kube-dns"},
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                             "targetPort": "dns-tcp"}]}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": DNS_POD, "namespace": SYSTEM_NAMESPACE, "labels": labels},
         "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                  "containers": [{"name": "coredns", "image": f"{COREDNS_IMAGE}:{version}",
                                  "args": ["-conf", "/etc/coredns/Corefile"],
                                  "ports": ports}]}},
    ]


def _server_argv(name: str, ports: list[tuple[int, str]], ready: str) -> list[str]:
    """The local backend's pod server answering as `name` on every TCP and UDP port."""
    argv = [sys.executable, "-m", "harness.backends.real.podserver", "--name", name,
            "--ready", ready]
    for port, proto in ports:
        if proto in ("TCP", "UDP"):
            argv += [f"--{proto.lower()}", str(port)]
    return argv


def _version_word(text: str) -> str:
    for word in text.replace(",", " ").split():
        w = word.removeprefix("CoreDNS-")
        if w[:1] == "v" and w[1:2].isdigit() or w[:1].isdigit() and "." in w:
            return w if w.startswith("v") else f"v{w}"
    return text.strip() or "?"


class RealBackend(KubeBackendBase):
    """The real-engine local backend (see the module docstring). A context manager."""

    name = "local"
    toolkit = "debian"     # probes run this machine's curl/nslookup/python3 in pod namespaces
    #: clusters of this backend side by side in one run (harness.scheduler): each has a control
    #: plane and two nodes of its own, so a few, not dozens (memory, and API servers' start-up)
    max_parallel = 3

    def __init__(self, profile: str = "kube-router", run_id: str | None = None,
                 probe_timeout: float = 1.0, workdir: str | None = None,
                 ready_timeout: float = READY_TIMEOUT,
                 status: Callable[[str], None] = status_line,
                 tool_trace: tooltrace.ToolTrace | None = None, **_: Any):
        try:
            self.spec = engines.spec(profile)
        except ValueError as exc:
            raise BackendError(f"creating the local backend with CNI {profile!r}", str(exc)) \
                from None
        self.profile = profile
        self.run_id = run_id or naming.new_run_id()
        self.prefix = naming.local_prefix(self.run_id)
        self.probe_timeout = probe_timeout
        self.ready_timeout = ready_timeout
        self.status = status
        #: when set, every node process's iptables/ipset/nft calls are logged (tooltrace)
        self.tool_trace = tool_trace
        self.workdir = os.path.join(workdir or STATE_DIR, self.run_id)
        self.nodes = nodesx.plan_nodes(self.run_id)
        #: a fault step's `node: N` names one of the run's nodes
        self.fault_nodes = len(self.nodes)
        self.plane: ControlPlane | None = None
        self.api: KubeApi | None = None
        self.kubelets: list[EmulatedKubelet] = []
        self.topology: KubeTopology | None = None
        self.binaries: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._node_procs: list[tuple[str, engines.NodeProcess, Any]] = []
        #: external host key -> (netns, ip, server process)
        self._externals: dict[str, tuple[str, str, Any]] = {}
        self._is_up = False
        #: indexes into _node_procs of engines a fault step stopped or killed
        self._engines_down: set[int] = set()
        self._apiserver_down = False

    # -- what is declared / what ran ------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        return self.spec.caps

    def probe_tools(self) -> str:
        """Which probe binaries run (the report's meta): the curl may be the HTTP-only build."""
        return probe_curl.describe()

    def describe(self) -> str:
        """Exactly what runs, e.g. `real kube-apiserver v1.35.8 + real kube-router v2.10.0 + ...,
        pods emulated in network namespaces, no kubelet`."""
        names = ["kube-apiserver", *self.spec.components, "kube-proxy", "coredns"]
        parts = [f"real {n} {self.versions.get(n, '?')}" for n in names]
        if self.spec.node_process is None:
            parts.insert(1, "no policy engine")
        return " + ".join(parts) + ", pods emulated in network namespaces, no kubelet"

    def __enter__(self) -> RealBackend:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # -- up -------------------------------------------------------------------------------------
    def _find_binaries(self) -> None:

        self.binaries = engines.binaries(self.profile)   # ComponentMissing names what is missing
        for name in ("kube-proxy", "coredns", *self.spec.components):
            ok, said = reported_version(Path(self.binaries[name]), name)
            self.versions[name] = _version_word(said)

    def up(self) -> None:
        """Control plane, two nodes with their kubelets, kube-proxy and the engine on each,
        CoreDNS; returns once every engine and CoreDNS are ready. Idempotent."""
        if self._is_up:
            return
        started = time.monotonic()
        self._find_binaries()
        preflight.check_privileges()
        preflight.check_tools({**preflight.TOOLS, **ENGINE_TOOLS})
        claim_run(self.run_id, profile=self.profile, workdir=self.workdir)
        os.makedirs(os.path.join(self.workdir, "ready"), exist_ok=True)
        try:
            self._up()
        except BaseException:
            try:
                self.down()
            except BackendError as exc:
                self.status(f"  while cleaning up a failed bring-up: {exc}")
            raise
        self._is_up = True
        self.timings["up"] = time.monotonic() - started
        self.status(f"[local/{self.profile}] up in {self.timings['up']:.1f}s: {self.describe()}")

    def _plane(self) -> ControlPlane:
        if self.plane is None:
            raise BackendError(f"using local run {self.run_id}", "its control plane is not up")
        return self.plane

    def _api(self) -> KubeApi:
        if self.api is None:
            raise BackendError(f"using local run {self.run_id}", "its API client is not up")
        return self.api

    def _up(self) -> None:

        t = time.monotonic()
        self.plane = ControlPlane(self.run_id, status=self._log)   # details: the run's log
        self._plane().up()
        self.stop_if_interrupted("starting the nodes")
        self.versions["kube-apiserver"] = self._plane().versions.get("kube-apiserver", "?")
        self.timings["control-plane"] = time.monotonic() - t
        self.api = KubeApi(str(self._plane().kubeconfig), self._plane().context)
        t = time.monotonic()
        nodesx.create_nodes(self.nodes)
        counter = itertools.count()
        for node in self.nodes:
            kubelet = EmulatedKubelet(self.api, node, self.run_id, self.workdir, self, counter,
                                      max(1, round(self.probe_timeout)), self._log)
            kubelet.register()
            kubelet.start()
            self.kubelets.append(kubelet)
        self.timings["nodes"] = time.monotonic() - t
        t = time.monotonic()
        if self.spec.calico_datastore:
            count = calico.install(self.api, self.versions["calico-felix"])
            self._log(f"Calico datastore: {count} CRDs, ClusterInformation, tiers")
        self._grant_roles()
        # kube-proxy first. An engine that restores the whole filter table from a save
        # (kube-router) undoes whatever kube-proxy writes between its save and its restore,
        # chains included (docs/real-engines.md "Who writes a node's tables"); it starts once
        # kube-proxy has written all it writes during the bring-up: its first sync, and the
        # kube-dns Service's endpoints once CoreDNS is Ready.
        for node in self.nodes:
            self._start(node, engines.kube_proxy(self.binaries["kube-proxy"], node.netns,
                                                 node.name,
                                                 self._kubeconfig(node.netns, "kube-proxy")))
        for obj in dns_objects(self.run_id, self.nodes[0].name, self.versions["coredns"]):
            self._create_system(obj)
        engines_later = self.spec.restores_filter_table
        if not engines_later:
            self._start_engines()
        self._wait_node_processes()
        self.timings["engines"] = time.monotonic() - t
        self.stop_if_interrupted("waiting for CoreDNS")
        t = time.monotonic()
        wait_pods_ready(self.api, SYSTEM_NAMESPACE, "k8s-app=kube-dns", self.ready_timeout,
                        "the CoreDNS pod (kube-system/coredns) Ready", expect=1, interval=0.2)
        self._wait_dns_forwarded()
        self.timings["coredns"] = time.monotonic() - t
        if engines_later:
            t = time.monotonic()
            self._start_engines()
            self._wait_node_processes()
            self.timings["engines"] += time.monotonic() - t
        # no DNS-control client pod: here CoreDNS runs in a network namespace of ours with this
        # machine's nslookup at hand, so its positive control is asked inside it on 127.0.0.1,
        # as on the emulated profiles (the control pod is for distroless CoreDNS images)
        self.topology = KubeTopology(self.api, self.run_id, allow_cluster_scoped=True,
                                     ready_timeout=self.ready_timeout, status=self._log,
                                     node_of=self._place, dns_control=False,
                                     checkpoint=self._deploying)

    def _start(self, node: nodesx.NodeNet, p: engines.NodeProcess) -> None:
        """Start node process `p` in `node`'s namespace (with the tool trace's wrappers first
        on its PATH when there is one), logging to the run's directory."""
        if p.name != "felix" and self.tool_trace is not None:
            path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            traced = self._traced_tools(node.netns, p.name)
            p = replace(p, env={**os.environ, **(p.env or {}), "PATH": f"{traced}:{path}"})
        log = os.path.join(self.workdir, f"{node.netns}-{p.name}.log")
        proc = spawn(["ip", "netns", "exec", node.netns, *p.argv], env=p.env, log_path=log)
        self._node_procs.append((node.netns, p, proc))

    def _start_engines(self) -> None:
        """The engine of every node (its spec's node process: kube-router or Felix; nothing
        on `none`)."""
        if self.spec.node_process is None:
            return
        for node in self.nodes:
            self._start(node, self.spec.node_process(engines.NodeEnv(
                self.binaries, node.netns, node.name,
                functools.partial(self._kubeconfig, node.netns),
                functools.partial(self._admin_kubeconfig, node.netns), self.workdir,
                functools.partial(self._traced_tools, node.netns))))

    def _wait_services_forwarded(self, model: Model, addresses: Addresses) -> None:
        """kube-proxy on every node forwards each of the scenario's Services (TCP and UDP
        ports) to its endpoints. Why: this tier's pods are Ready as soon as they serve, so a
        deploy could return before kube-proxy wrote a new Service's rules, and a probe of it
        was refused (the deploy's API calls, now at once, no longer left it the time)."""
        def backed(svc) -> bool:   # a Service selecting no pod has no endpoints to forward to
            return any(p.namespace == svc.namespace and svc.selector and all(
                p.labels.get(k) == v for k, v in svc.selector.items()) for p in model.user_pods)

        wanted = [(addresses.service_ips[s.key],
                   tuple(sorted({p.protocol.value.lower() for p in s.ports} - {"sctp"})))
                  for s in model.services
                  if not s.system and s.key in addresses.service_ips and backed(s)]
        wanted = [(ip, protos) for ip, protos in wanted if protos]
        if wanted:
            self._wait_forwarded(wanted, "the scenario's Services", 0.1)

    def _wait_forwarded(self, wanted: list[tuple[str, tuple[str, ...]]], what: str,
                        interval: float, log_tail: Callable[[], str] | None = None) -> None:
        """Poll until kube-proxy on every node forwards each (cluster IP, protocols) of
        `wanted`; BackendError naming what it does not forward (and `log_tail()`) after the
        ready timeout."""
        polled = poll(lambda: [(n.name, *engines.kube_proxy_forwards(n.netns, ip, protos))
                               for n in self.nodes for ip, protos in wanted],
                      lambda states: all(ok for _, ok, _ in states), self.ready_timeout,
                      interval)
        if not polled.ok:
            raise BackendError(f"waiting for kube-proxy to forward {what}",
                               "; ".join(f"{node}: {why}" for node, ok, why
                                         in polled.value or [] if not ok),
                               log_tail() if log_tail is not None else "")

    def _wait_dns_forwarded(self) -> None:
        """kube-proxy on every node forwards the kube-dns Service to CoreDNS (it wrote the
        Service's endpoints), so it has no write left to make before the scenario's."""
        self._wait_forwarded([(DNS_SERVICE_IP, ("udp", "tcp"))], "the kube-dns Service", 0.2,
                             lambda: "\n".join(self._log_tail(f"{n.netns}-kube-proxy.log")
                                               for n in self.nodes))

    def _traced_tools(self, netns: str, process: str,
                      tools: tuple[str, ...] = tooltrace.TOOLS) -> str | None:
        """With a tool trace: a directory of wrappers for `process` on node `netns`, first on
        its PATH (harness.backends.real.tooltrace); else None."""
        if self.tool_trace is None:
            return None
        return tooltrace.wrapper_dir(os.path.join(self.workdir, f"tools-{netns}-{process}"),
                                     f"{process}@{netns}", self.tool_trace, process, tools)

    def _kubeconfig(self, netns: str, process: str) -> str:
        """A kubeconfig for `process` inside `netns`, as that process's own user."""
        return str(self._plane().kubeconfig_for_netns(netns, engines.USERS[process]))

    def _admin_kubeconfig(self, netns: str) -> str:
        """The admin's kubeconfig inside `netns`."""
        return str(self._plane().kubeconfig_for_netns(netns))

    def _grant_roles(self) -> None:
        rbac = self._api().client.RbacAuthorizationV1Api(self._api().api_client)
        for obj in engines.rbac_objects(naming.ownership_labels(self.run_id)):
            try:
                if obj["kind"] == "ClusterRole":
                    rbac.create_cluster_role(obj)
                else:
                    rbac.create_cluster_role_binding(obj)
            except self._api().client.ApiException as exc:
                raise BackendError(f"creating {obj['kind']} {obj['metadata']['name']}",
                                   f"{exc.status} {exc.reason}: {str(exc.body)[:300]}") from None

    def _create_system(self, obj: dict) -> None:
        core = self._api().core
        try:
            if obj["kind"] == "Service":
                core.create_namespaced_service(SYSTEM_NAMESPACE, obj)
            else:
                core.create_namespaced_pod(SYSTEM_NAMESPACE, obj)
        except self._api().client.ApiException as exc:
            raise BackendError(f"creating {obj['kind']} kube-system/{obj['metadata']['name']}",
                               f"{exc.status} {exc.reason}: {str(exc.body)[:300]}") from None

    def _wait_node_processes(self) -> None:
        """Every node process started so far ready (kube-proxy synced with its jumps in place,
        the engine's chains exist); a process that exits fails the bring-up with the end of
        its log."""
        def states():
            self.stop_if_interrupted("waiting for the node processes")
            out = []
            for netns, p, proc in self._node_procs:
                if proc.poll() is not None:
                    out.append((netns, p.name, "exited", f"exit status {proc.returncode}"))
                    continue
                ok, why = p.ready()
                out.append((netns, p.name, "ready" if ok else "waiting", why))
            return out

        polled = poll(states, lambda s: all(x[2] == "ready" for x in s)
                      or any(x[2] == "exited" for x in s), self.ready_timeout, 0.5)
        bad = [x for x in (polled.value or []) if x[2] != "ready"]
        if bad:
            tails = "\n".join(self._log_tail(f"{ns}-{name}.log") for ns, name, _, _ in bad)
            raise BackendError("starting the node processes",
                               "; ".join(f"{name} on {ns}: {state} ({why})"
                                         for ns, name, state, why in bad), tails)

    def _log_tail(self, fname: str, size: int = 3000) -> str:
        try:
            with open(os.path.join(self.workdir, fname), "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - size))
                return f"--- {fname}:\n" + fh.read().decode(errors="replace")
        except OSError:
            return f"--- {fname}: (no log)"

    def _log(self, msg: str) -> None:
        """Details (the control plane's, the kubelets') go to the run's log, not the terminal."""
        try:
            with open(os.path.join(self.workdir, "harness.log"), "a") as fh:
                fh.write(msg + "\n")
        except OSError:
            pass

    def _place(self, model: Model, pod: Pod) -> str:
        """Pods alternate between the nodes in model order (see the module docstring)."""
        return self.nodes[model.user_pods.index(pod) % len(self.nodes)].name

    # -- the kubelet's runtime ------------------------------------------------------------------
    def _identity(self, namespace: str, name: str) -> str:
        """The model's key of a pod (`x/a`): what its server answers with."""
        names = self.topology.names if self.topology else None
        logical = names.to_logical.get(namespace, namespace) if names else namespace
        return f"{logical}/{name}"

    def processes(self, pod: dict, netns: str, ip: str) -> list[Process]:
        meta = pod.get("metadata") or {}
        if meta.get("namespace") == SYSTEM_NAMESPACE and \
                (meta.get("labels") or {}).get("k8s-app") == "kube-dns":
            kc = self._kubeconfig(netns, "coredns")
            conf = os.path.join(self.workdir, f"{netns}.Corefile")
            with open(conf, "w") as fh:
                fh.write(engines.corefile(str(kc), self._plane().context))
            return [Process("coredns", [self.binaries["coredns"], "-conf", conf],
                            lambda: engines.coredns_ready(netns)[0])]
        ready = os.path.join(self.workdir, "ready", netns)
        ports = [(int(port["containerPort"]), str(port.get("protocol", "TCP")).upper())
                 for c in (pod.get("spec") or {}).get("containers") or []
                 for port in c.get("ports") or []]
        argv = _server_argv(self._identity(meta.get("namespace", ""), meta.get("name", "")),
                            ports, ready)
        return [Process("server", argv, lambda: os.path.exists(ready))]

    def released(self, pod: dict, netns: str) -> None:
        if self.plane is not None:
            self._plane().release_netns(netns)
        try:
            os.remove(os.path.join(self.workdir, "ready", netns))
        except FileNotFoundError:
            pass

    # -- topology -------------------------------------------------------------------------------
    def deploy(self, model: Model) -> Addresses:
        if not self._is_up:
            self.up()
        addresses = self._topo().deploy(replace(without_sctp(model), externals=()))
        try:
            self._wait_services_forwarded(model, addresses)
            external_ips = self._create_externals(model)
        except BaseException:
            self.undeploy()
            raise
        return replace(addresses, external_ips=external_ips)

    def _create_externals(self, model: Model) -> dict[str, str]:
        """Hosts outside the cluster: a namespace each behind node 1 (an uplink, as far as the
        pods can tell), with its address as the scenario declares it (else from TEST-NET-3),
        serving its ports with the pod server; node 2 routes it via node 1. Not Pods: no
        engine knows them, only ipBlock rules match them."""
        if not model.externals:
            return {}
        ips = dict(plan_addresses(model).external_ips)
        via, other = self.nodes
        for i, e in enumerate(model.externals):
            ip, netns = ips[e.name], f"{self.prefix}e{i}"
            self._externals[e.key] = (netns, ip, None)
            nodesx.wire_pod(via, netns, f"ext{i}", ip)
            nsx.ip_batch([f"route replace {ip}/32 via {via.address} dev eth0"], other.netns,
                         doing=f"routing external host {e.name} on {other.name}")
            ready = os.path.join(self.workdir, "ready", netns)
            ports = [(cp.port, cp.protocol.value) for cp in (e.ports or DEFAULT_EXTERNAL_PORTS)]
            proc = spawn(["ip", "netns", "exec", netns, *_server_argv(e.key, ports, ready)],
                         log_path=os.path.join(self.workdir, f"{netns}-server.log"))
            self._externals[e.key] = (netns, ip, proc)
        def states() -> list[bool | str]:
            self.stop_if_interrupted("waiting for the external hosts' servers")
            return [os.path.exists(os.path.join(self.workdir, "ready", n)) or
                    (p.poll() is not None and "exited") for n, _, p in self._externals.values()]

        polled = poll(states,
                      lambda states: all(x is True for x in states) or "exited" in states,
                      self.ready_timeout, 0.05)
        if not polled.ok or "exited" in (polled.value or []):
            raise BackendError("starting the servers of the external hosts",
                               f"not serving: {', '.join(sorted(self._externals))}",
                               "\n".join(self._log_tail(f"{n}-server.log")
                                         for n, _, _ in self._externals.values()))
        return ips

    def _remove_externals(self) -> list[str]:
        errors = []
        for key, (netns, ip, proc) in list(self._externals.items()):
            if proc is not None and stop(proc, grace=2.0) is None:
                errors.append(f"the server of {key} (pid {proc.pid}) survived SIGKILL")
            err = nsx.delete_netns(netns)
            if err:
                errors.append(err)
            run(["ip", "-n", self.nodes[1].netns, "route", "del", f"{ip}/32"], timeout=10)
            try:
                os.remove(os.path.join(self.workdir, "ready", netns))
            except FileNotFoundError:
                pass
            del self._externals[key]
        return errors

    def undeploy(self) -> None:
        """Delete the scenario's namespaces (the namespace controller deletes their pods, the
        kubelets tear them down) and wait until no pod of them is left on any node. After
        `interrupt()` only the external hosts go: `down()` follows and takes every pod with
        the nodes, so waiting for the API's deletions would only delay the stop."""
        errors = self._remove_externals()
        topo = self.topology
        if topo is None or topo.names is None or self.interrupted:
            if errors:
                raise BackendError("removing the external hosts", "; ".join(errors))
            return
        real = {n for n in topo.names.to_real.values() if n != SYSTEM_NAMESPACE}
        super().undeploy()
        if errors:
            raise BackendError("removing the external hosts", "; ".join(errors))
        polled = poll(lambda: all(k.idle(real) for k in self.kubelets), bool,
                      self.ready_timeout, 0.1)
        if not polled.ok:
            left = [f"{rp.namespace}/{rp.name}" for k in self.kubelets for rp in k.pods()
                    if rp.namespace in real]
            raise BackendError("removing the scenario's pods", f"still realised: {left}")

    def exec(self, endpoint: str, argv: Sequence[str], timeout: float) -> ExecResult:
        """Run argv in the pod's network namespace (never in a node's)."""
        self.stop_if_interrupted(f"running {argv[0] if argv else '?'} in {endpoint}")
        if endpoint.startswith("ext:"):
            if endpoint not in self._externals:
                raise ExecError(list(argv), f"no external host {endpoint!r} in this scenario",
                                target=endpoint)
            return run(["ip", "netns", "exec", self._externals[endpoint][0],
                        *probe_curl.resolve(argv)], timeout=timeout, target=endpoint)
        ns, _, name = endpoint.partition("/")
        topo = self.topology
        real = SYSTEM_NAMESPACE if ns == SYSTEM_NAMESPACE else \
            (topo.names.to_real.get(ns) if topo and topo.names else None)
        netns = None
        if real:
            for k in self.kubelets:
                netns = netns or k.netns_of(real, name)
        if netns is None:
            raise ExecError(list(argv), f"no realised pod {endpoint!r} on this run's nodes",
                            target=endpoint)
        return run(["ip", "netns", "exec", netns, *probe_curl.resolve(argv)], timeout=timeout,
                   target=endpoint)

    # -- fault steps ----------------------------------------------------------------------------

    def fault(self, action: str, target: str, node: int | None = None) -> str:
        """Stop (SIGTERM), kill (SIGKILL), start, restart or kill-restart (SIGKILL, then start)
        the engine process on `node` (1-based; None: every node), or stop / start this run's
        kube-apiserver; what was done.
        A started engine is not waited for: how long it takes to program its rules is what
        the fault step's timeline measures. Only processes this run started are touched."""
        doing = f"{action} {target}" + (f" on node {node}" if node else "") + \
            f" of local run {self.run_id} ({self.profile})"
        try:
            kind = kind_named(action)
        except ValueError as exc:
            raise BackendError(doing, str(exc)) from None
        if target == Target.APISERVER:
            if kind.leaves_down and kind.signal == "TERM":
                t = time.monotonic()
                self._plane().stop_apiserver()
                self._apiserver_down = True
                return f"kube-apiserver stopped (SIGTERM) in {time.monotonic() - t:.1f}s"
            if kind.starts and kind.signal is None:
                t = time.monotonic()
                self._plane().start_apiserver()
                self._apiserver_down = False
                return f"kube-apiserver started on the same port, ready after " \
                       f"{time.monotonic() - t:.1f}s"
            raise BackendError(doing, "the API server can be stopped and started only")
        if target != Target.ENGINE:
            raise BackendError(doing, "expected the engine or the apiserver")
        if node is not None and not 1 <= node <= len(self.nodes):
            raise BackendError(doing, f"this run has nodes 1-{len(self.nodes)}")
        wanted = {n.netns for i, n in enumerate(self.nodes, 1) if node in (None, i)}
        slots = [i for i, (netns, p, _) in enumerate(self._node_procs)
                 if p.engine and netns in wanted]
        if not slots:
            raise BackendError(doing, f"no policy engine runs on `{self.profile}`")
        said = []
        for i in slots:
            netns, p, proc = self._node_procs[i]
            if kind.signal == "TERM":
                code = stop(proc, grace=10.0)
                self._engines_down.add(i)
                said.append(f"{p.name} on {netns} stopped (SIGTERM; exit status {code})")
            elif kind.signal == "KILL":
                if proc.poll() is None:
                    proc.kill()
                code = proc.wait(timeout=10)
                self._engines_down.add(i)
                said.append(f"{p.name} on {netns} killed (SIGKILL; exit status {code})")
            if kind.starts:
                pid = self._respawn(i)
                said.append(f"{p.name} on {netns} started (pid {pid})")
        return "; ".join(said)

    def _respawn(self, i: int) -> int:
        """Start the node process of slot `i` again, as it was started at up(), appending to
        its log."""
        netns, p, proc = self._node_procs[i]
        if proc.poll() is None:
            self._engines_down.discard(i)
            return proc.pid
        log = os.path.join(self.workdir, f"{netns}-{p.name}.log")
        new = spawn(["ip", "netns", "exec", netns, *p.argv], env=p.env, log_path=log)
        self._node_procs[i] = (netns, p, new)
        self._engines_down.discard(i)
        return new.pid

    def restore_faults(self) -> list[str]:
        """Start whatever fault steps stopped: the API server first, then every engine."""
        out = []
        if self._apiserver_down and self.plane is not None:
            self._plane().start_apiserver()
            self._apiserver_down = False
            out.append("kube-apiserver started again")
        for i in sorted(self._engines_down):
            netns, p, _ = self._node_procs[i]
            out.append(f"{p.name} on {netns} started again (pid {self._respawn(i)})")
        return out

    # -- down -----------------------------------------------------------------------------------
    def down(self) -> None:
        """Stop the engines, tear down every pod and node namespace, stop the control plane,
        remove the run's directory. The API objects go with the run's etcd. Keeps going past
        failures and reports them; idempotent."""
        t = time.monotonic()
        errors: list[str] = []
        self.topology = None
        errors += self._remove_externals()
        for netns, p, proc in reversed(self._node_procs):
            if stop(proc, grace=3.0) is None:
                errors.append(f"{p.name} in {netns} (pid {proc.pid}) survived SIGKILL")
        self._node_procs.clear()
        for kubelet in self.kubelets:
            errors += kubelet.stop()
        self.kubelets.clear()
        if self.plane is not None:
            for node in self.nodes:
                self._plane().release_netns(node.netns)
        errors += nodesx.delete_nodes(self.nodes)
        if self.plane is not None:
            try:
                self._plane().down()
            except BackendError as exc:
                errors.append(str(exc))
            self.plane = None
        shutil.rmtree(self.workdir, ignore_errors=True)
        release_run(self.run_id)
        self._is_up = False
        self.timings["down"] = time.monotonic() - t
        if errors:
            raise BackendError(f"tearing down local run {self.run_id} ({self.profile})",
                               "; ".join(errors))
