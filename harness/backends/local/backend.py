"""LocalBackend: an emulated cluster of Linux network namespaces on this kernel.

Why: no Docker, no images — a cluster that comes up in about a second, where probes are real
curl/nslookup processes and policy is enforced (or, in the `open` profile, not) by nftables.

Layout (everything named with harness.naming.local_prefix, `np-<run>-`):
  np-<run>-node   the node: routes every packet between endpoints (Calico-style /32 routes with
                  proxy ARP), holds the Service DNAT table and the policy filter table. It has no
                  default route and no link to the root namespace: nothing leaves the cluster.
  np-<run>-p<N>   one per pod: eth0 = <pod ip>/32, default via the node gateway (10.244.1.1).
  np-<run>-e<N>   one per external host, wired the same way with its own (non-pod) address.
Why routed rather than a bridge (measured on kernel 6.18 with CONFIG_BRIDGE_NETFILTER=y): a
bridge in the node namespace does work — bridge-nf-call-iptables is 1 per namespace and an
`ip` forward chain there sees bridged pod-to-pod packets with conntrack (`ct state new` drop,
`established` accept both counted). We still route /32s, Calico-style, because (1) on stock
Debian/Ubuntu kernels br_netfilter is a module that is not loaded until Docker or kubelet loads
it, and loading it changes filtering for every bridge on the host; routing needs no module;
(2) every packet — pod to pod, to a Service, to an external host — then takes one L3 path
through the node's forward hook, where the pod's interface name identifies it exactly;
(3) a pod reaching itself through its Service needs no bridge hairpin mode.
Run state: /run/netpol-proof/<run>.json holds the owning pid, so `cleanup` can tell a crashed run
from a live one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

from harness import naming
from harness.backends.base import Backend
from harness.backends.local import curl as probe_curl
from harness.backends.local import netns as nsx
from harness.backends.local import nft, preflight, profiles
from harness.backends.local.servers import ServerProcess
from harness.capabilities import Capabilities
from harness.errors import BackendError
from harness.faults.kinds import Target, kind_named
from harness.model import (
    CLUSTER_DOMAIN,
    KUBERNETES_SERVICE_IP,
    Addresses,
    ContainerPort,
    Endpoint,
    Model,
    Protocol,
    plan_addresses,
)
from harness.policy import NetworkPolicy, is_network_policy, parse_policy, policy_key
from harness.shell import ExecResult, run

STATE_DIR = "/run/netpol-proof"
READY_TIMEOUT = 30.0  # generous: only a failure waits this long, and loaded CI machines are slow
#: an external host that declares no ports serves HTTP on 80 and UDP on 80
DEFAULT_EXTERNAL_PORTS = (ContainerPort(80, Protocol.TCP, "http"), ContainerPort(80, Protocol.UDP, "udp"))


def state_path(run_id: str) -> str:
    return os.path.join(STATE_DIR, f"{run_id}.json")


def claim_run(run_id: str, **info) -> None:
    """Write the run's state file naming this process as its owner, before any object exists.

    Why: `cleanup` removes objects named np-<run>-* only when their owner is dead, so anything
    that creates such objects (the backend, the probe-output capture, bench checks) claims its
    run id first. BackendError when a live process already owns it.
    """
    os.makedirs(STATE_DIR, exist_ok=True)
    try:
        with open(state_path(run_id)) as fh:
            owner = int(json.load(fh).get("pid", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        owner = 0
    if owner and owner != os.getpid() and naming.pid_alive(owner):
        raise BackendError(f"starting local run {run_id}",
                           f"run id {run_id} is in use by live process {owner} "
                           f"({state_path(run_id)}); choose another run id")
    with open(state_path(run_id), "w") as fh:
        json.dump({"run_id": run_id, "pid": os.getpid(), "created": time.time(), **info}, fh)


def release_run(run_id: str) -> None:
    """Remove the run's state file (after its objects are gone)."""
    try:
        os.remove(state_path(run_id))
    except FileNotFoundError:
        pass


class LocalBackend(Backend):
    """The `local` backend (see the module docstring). A context manager: up() ... down()."""

    name = "local"
    #: clusters of this backend that can exist side by side in one run (harness.scheduler): each
    #: is a set of namespaces of its own
    max_parallel = 64
    #: the probe tools pods have: this machine's curl, nslookup and python3 (see probes.argv_for)
    toolkit = "debian"

    def __init__(self, profile: str = "enforcing", run_id: str | None = None,
                 probe_timeout: float = 1.0, workdir: str | None = None):
        if profile not in profiles.SPECS:
            raise BackendError(f"creating the local backend with profile {profile!r}",
                               f"expected {' or '.join(profiles.PROFILES)} (emulated dataplanes)")
        self.profile = profile
        #: whether the profile enforces (profiles.SPECS): only then is there an emulated engine
        self.enforcing = profiles.SPECS[profile].enforces
        self.run_id = run_id or naming.new_run_id()
        self.prefix = naming.local_prefix(self.run_id)
        self.node = f"{self.prefix}node"
        self.probe_timeout = probe_timeout
        # always a directory of our own, removed whole at down()
        self.workdir = os.path.join(workdir or STATE_DIR, self.run_id)
        self.model: Model | None = None
        self.addresses: Addresses | None = None
        self._netns: dict[str, str] = {}      # endpoint key -> netns
        self._veths: dict[str, str] = {}      # pod key -> node-side veth
        self._links: list[str] = []           # every node-side veth (pods and externals)
        self._servers = ServerProcess(self.workdir, READY_TIMEOUT)   # every endpoint's servers
        self._served: list[str] = []          # endpoint keys it serves now
        self._policies: dict[str, tuple[Mapping, NetworkPolicy]] = {}
        self._is_up = False
        #: the emulated engine (fault steps): running, stopped (its table removed) or killed
        #: (its table left as it was); only `running` programs policy changes
        self.engine = "running"

    def describe(self) -> str:
        """Exactly what runs: no Kubernetes component at all, an emulated dataplane."""
        what = ("policies compiled into nftables by netpol-proof's own policy.py"
                if self.enforcing else "policies stored, nothing enforces them")
        # (a fault step's own lines say what it did to the emulated engine: "stop engine:
        # policy table removed"; every run's header need not)
        return (f"emulated dataplane `{self.profile}` ({what}): no Kubernetes API server, no "
                f"policy engine, pods emulated in network namespaces")

    def probe_tools(self) -> str:
        """Which probe binaries run (the report's meta): the curl may be the HTTP-only build."""
        return probe_curl.describe()

    # -- capabilities / context manager ---------------------------------------------------------
    def capabilities(self) -> Capabilities:
        return profiles.capabilities(self.profile)

    def __enter__(self) -> LocalBackend:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    @property
    def gateway(self) -> str:
        return plan_addresses(Model.build([], [])).node_ips[0]

    # -- node -----------------------------------------------------------------------------------
    def up(self) -> None:
        """Create the node namespace (and the run state file). Idempotent."""
        if self._is_up:
            return
        preflight.check_privileges()
        preflight.check_tools()
        self._write_state()  # first: cleanup must never see our objects without a live owner
        os.makedirs(self.workdir, exist_ok=True)
        try:
            if self.node not in nsx.list_netns():
                nsx.add_netns([self.node])
            nsx.ip_batch(["link set lo up", f"addr replace {self.gateway}/32 dev lo"], self.node,
                         doing=f"configuring the node namespace {self.node}")
            nsx.sysctl(self.node, {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.proxy_arp": "1",
                                   "net.ipv4.conf.all.rp_filter": "0",
                                   "net.ipv4.conf.default.rp_filter": "0"})
        except BaseException:
            self.down()
            raise
        self._is_up = True

    def _write_state(self) -> None:
        claim_run(self.run_id, profile=self.profile, workdir=self.workdir)

    def down(self) -> None:
        """Remove everything up() and deploy() created; keeps going past failures, reports them."""
        errors = []
        try:
            self.undeploy()
        except BackendError as exc:
            errors.append(str(exc))
        status = self._servers.stop()
        if status not in (None, 0):
            errors.append(f"the servers process ended with status {status}: "
                          f"{self._servers._log()}")
        err = nsx.delete_netns(self.node)
        if err:
            errors.append(err)
        for path in (self.workdir,):
            shutil.rmtree(path, ignore_errors=True)
        release_run(self.run_id)
        self._is_up = False
        if errors:
            raise BackendError(f"tearing down local run {self.run_id}", "; ".join(errors))

    # -- topology -------------------------------------------------------------------------------
    def deploy(self, model: Model) -> Addresses:
        """Create pods, externals, Services and DNS; wait until every endpoint serves."""
        if not self._is_up:
            self.up()
        if self.model is not None:
            self.undeploy()
        addresses = plan_addresses(model)
        self.model, self.addresses = model, addresses
        try:
            self._create_endpoints(model, addresses)
            self._load_services()
            self._sync_policies()
            self._start_servers(model)
        except BaseException:
            try:
                self.undeploy()
            except BackendError:
                pass
            raise
        return addresses

    def _endpoint_plan(self, model: Model, addresses: Addresses) -> list[tuple[str, str, str, str]]:
        """(endpoint key, netns, node-side veth, ip) for every pod and external host."""
        plan = [(p.key, f"{self.prefix}p{i}", f"vp{i}", addresses.pod_ips[p.key])
                for i, p in enumerate(model.pods)]
        plan += [(e.key, f"{self.prefix}e{i}", f"vx{i}", addresses.external_ips[e.name])
                 for i, e in enumerate(model.externals)]
        return plan

    def _create_endpoints(self, model: Model, addresses: Addresses) -> None:
        plan = self._endpoint_plan(model, addresses)
        for key, ns, veth, _ in plan:
            self._netns[key] = ns
            self._links.append(veth)
            if not Endpoint.parse(key).is_external:
                self._veths[key] = veth
        nsx.add_netns([ns for _, ns, _, _ in plan])
        node_lines, per_ns = [], []
        for key, ns, veth, ip in plan:
            n, p = nsx.endpoint_lines(veth, ns, ip, self.gateway)
            node_lines += n
            per_ns.append((ns, p, key))
            if not Endpoint.parse(key).is_external:
                nsx.write_resolv_conf(ns, model.pod(key).namespace, max(1, round(self.probe_timeout)))
        nsx.ip_batch(node_lines, self.node, doing="wiring pods and external hosts to the node")
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(nsx.ip_batch, lines, ns, f"configuring {key} ({ns})")
                       for ns, lines, key in per_ns]
            for f in futures:
                f.result()

    def _start_servers(self, model: Model) -> None:
        """Every endpoint's sockets, opened in its namespace by the run's servers process;
        each request returns once its sockets are bound and listening."""
        records = self._dns_records(model)
        endpoints = [(p.key, p.ports, p.system and p.labels.get("k8s-app") == "kube-dns")
                     for p in model.pods]
        endpoints += [(e.key, e.ports or DEFAULT_EXTERNAL_PORTS, False) for e in model.externals]
        self._servers.start()
        for key, ports, is_dns in endpoints:
            netns = os.path.join(nsx.NETNS_DIR, self._netns[key])
            self._served.append(key)
            self._servers.request(
                f"starting the servers of {key}", op="serve", key=key, netns=netns,
                tcp=[cp.port for cp in ports if cp.protocol == Protocol.TCP],
                udp=[cp.port for cp in ports if cp.protocol == Protocol.UDP],
                dns=records if is_dns else None)

    def stop_server(self, endpoint: str) -> None:
        """Close every socket `endpoint` serves (its server "dies"; the pod stays): for tests
        of how a dead server is reported."""
        if endpoint in self._served:
            self._served.remove(endpoint)
            self._servers.request(f"stopping the servers of {endpoint}", op="stop", key=endpoint)

    def _dns_records(self, model: Model) -> dict[str, str]:
        """The cluster DNS's A records: every Service's name, and the API server's."""
        assert self.addresses is not None, "deploy sets the addresses before starting servers"
        records = {s.dns_name: self.addresses.service_ips[s.key] for s in model.services}
        records[f"kubernetes.default.svc.{CLUSTER_DOMAIN}"] = KUBERNETES_SERVICE_IP
        return records

    def undeploy(self) -> None:
        """Stop servers, delete pod/external namespaces and the node's tables. Idempotent."""
        errors = []
        # first: an open socket would keep its (deleted) namespace alive
        for key in self._served:
            try:
                self._servers.request(f"stopping the servers of {key}", op="stop", key=key)
            except BackendError as exc:
                errors.append(str(exc))
                self._servers.stop()   # closes every socket it held
                break
        self._served.clear()
        errors += nsx.remove_endpoints(self.node, self._links, self._netns.values())
        if self.node in nsx.list_netns():
            for what in ("svc", "policy"):
                run(["ip", "netns", "exec", self.node, "nft", "delete", "table", "ip",
                     nft.table_name(self.run_id, what)], timeout=10)
        self._netns.clear()
        self._veths.clear()
        self._links.clear()
        self._policies.clear()
        self.model = self.addresses = None
        self.engine = "running"   # the table is gone with the topology; the next one is programmed
        if errors:
            raise BackendError(f"removing the topology of local run {self.run_id}", "; ".join(errors))

    def _load_services(self) -> None:
        assert self.model is not None and self.addresses is not None, "called after deploy"
        body = nft.service_rules(self.model, self.addresses, self.gateway)
        nft.load(self.node, nft.replace_table("ip", nft.table_name(self.run_id, "svc"), body),
                 doing="loading the Service translation table into the node")

    # -- labels and policies --------------------------------------------------------------------
    def set_labels(self, namespace_labels, pod_labels) -> None:
        if self.model is None:
            raise BackendError("changing labels", "nothing is deployed: call deploy(model) first")
        self.model = self.model.with_labels(namespace_labels, pod_labels)
        if pod_labels:   # Service endpoints follow pod labels, as kube-proxy's do
            self._load_services()
        self._sync_policies()

    def apply_policy(self, manifest: Mapping) -> None:
        if not is_network_policy(manifest):
            raise BackendError(f"applying {manifest.get('kind')} {policy_key(manifest)}",
                               "the local backend (emulated dataplane) only understands "
                               "networking.k8s.io/v1 NetworkPolicy")
        try:
            parsed = parse_policy(manifest)
        except ValueError as exc:
            raise BackendError(f"applying NetworkPolicy {policy_key(manifest)}", str(exc)) from exc
        self._policies[parsed.key] = (manifest, parsed)
        self._sync_policies()

    def delete_policy(self, namespace: str, name: str, kind: str = "NetworkPolicy") -> None:
        if self._policies.pop(f"{namespace}/{name}", None) is None:
            raise BackendError(f"deleting {kind} {namespace}/{name}", "no such policy in this run")
        self._sync_policies()

    def policy_count(self) -> int:
        return len(self._policies)

    # -- fault steps: the emulated engine ----------------------------------------------------
    #: the emulated engine runs on one node (the node namespace)
    fault_nodes = 1

    def fault(self, action: str, target: str, node: int | None = None) -> str:
        """Stop, kill, start or restart the emulated engine (harness.scenario.faults); what was
        done, in words. The emulation: `stop` removes the policy table (fail open, like an
        agent that flushes its rules on exit), `kill` leaves it as it was and nothing
        reprograms it (an agent that died without cleaning up), `start` programs it again from
        the stored policies and labels; `restart` and `kill-restart` program it again in place
        (one atomic replace, no moment without rules: an agent that keeps its rules across a
        restart, as kube-router and Felix were measured to, docs/real-engines.md). Why not stop
        then start: the table would be gone for the milliseconds between, a window rounds
        0.5 s apart hit now and then, so a scenario requiring the restart to hold would pass
        or fail by chance; a flushing agent is what `stop` shows."""
        doing = f"{action} {target} on the emulated {self.profile} dataplane"
        if not self.enforcing or target != Target.ENGINE:
            raise BackendError(doing, "only the `enforcing` profile has an (emulated) engine, "
                                      "and no emulated profile has an API server to stop")
        if node not in (None, 1):
            raise BackendError(doing, f"there is no node {node}: the emulated engine runs on "
                                      "node 1 only")
        try:
            kind = kind_named(action)
        except ValueError as exc:
            raise BackendError(doing, str(exc)) from None
        if kind.leaves_down:
            if kind.signal == "TERM":
                self._remove_policy_table()
                self.engine = "stopped"
                return "policy table removed"
            self.engine = "killed"
            return "table left as it was, not reprogrammed"
        self.engine = "running"
        self._sync_policies()
        if kind.signal is None:
            return "policy table programmed from the stored policies"
        return ("policy table programmed again in place (kept across the restart)"
                if kind.signal == "TERM" else "table left as it was, then programmed again")

    def restore_faults(self) -> list[str]:
        """Start whatever fault steps stopped (the end of a fault step, an error, Ctrl-C,
        undeploy); what was restored."""
        if self.engine == "running":
            return []
        self.engine = "running"
        self._sync_policies()
        return ["emulated engine started again"]

    def _remove_policy_table(self) -> None:
        if self.node in nsx.list_netns():
            run(["ip", "netns", "exec", self.node, "nft", "delete", "table", "ip",
                 nft.table_name(self.run_id, "policy")], timeout=10)

    def _sync_policies(self) -> None:
        if not self.enforcing or self.model is None or self.addresses is None:
            return  # `open`: policies are stored, never enforced (or nothing is deployed yet)
        if self.engine != "running":
            return  # the emulated engine is down (a fault step): stored, programmed at start
        body = profiles.compile_policies(self.model, self.addresses,
                                         [p for _, p in self._policies.values()], self._veths)
        nft.load(self.node, nft.replace_table("ip", nft.table_name(self.run_id, "policy"), body),
                 doing="loading the compiled NetworkPolicy table into the node")

    # -- exec -----------------------------------------------------------------------------------
    def exec(self, endpoint: str, argv: Sequence[str], timeout: float) -> ExecResult:
        self.stop_if_interrupted(f"running {argv[0] if argv else '?'} in {endpoint}")
        ns = self._netns.get(endpoint)
        if ns is None:
            raise BackendError(f"running {argv[0] if argv else '?'} in {endpoint}",
                               f"unknown endpoint {endpoint!r}: expected a deployed pod key "
                               f"(x/a) or ext:<name>")
        return run(["ip", "netns", "exec", ns, *probe_curl.resolve(argv)], timeout=timeout,
                   target=endpoint)
