"""The real engines of `--backend local --cni kube-router,calico,none`: what each declares, which
binaries it needs, and the processes it runs on every emulated node.

Why one module: capabilities, component names, command lines and readiness checks of an engine
change together (a new flag, a new version); harness.backends.real.backend only starts what this
module describes. Every process runs inside a node's network namespace (`ip netns exec`), so it
sees only that node's interfaces, and reaches the API server through the control plane's relay
on the namespace's own loopback (harness.backends.real.controlplane: `kubeconfig_for_netns`).

Per node, always: a real kube-proxy (iptables mode) forwarding ClusterIPs from the real
EndpointSlices. Then the engine:
  kube-router  its network-policy controller only (the router and the service proxy are off:
               the published advisories are in those two); it ends a pod's chain with REJECT,
               so a refused connection counts as blocked for it (`deny_response="reject"`).
  none         nothing: the API server stores every policy and nothing enforces them, exactly
               what a Flannel cluster does (flanneld programs no policy rules).
  calico       Felix, Kubernetes datastore (only when its binary exists).
Upstream sources for each fact: docs/sources.md §12.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from typing import Callable

from harness.backends.real.calico import crd_dir
from harness.capabilities import Capabilities
from harness.components import ComponentMissing, find
from harness.model import POD_CIDR, SERVICE_CIDR
from harness.shell import run

#: what every real-engine run needs besides its engine
BASE_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy", "coredns")

_L34 = frozenset({"networkpolicy", "egress", "ipblock", "ipblock-pod-ip", "named-ports",
                  "endport", "udp", "external-hosts"})
_COMMON_NOTES = {
    "sctp": "no SCTP in this kernel: the emulated kubelet creates pods without their SCTP "
            "containers",
    "fqdn": "not a feature of this engine",
    "l7-http": "not a feature of this engine",
    "calico-policy": "Calico's own policy kinds need the Calico API server, which is not run",
    "admin-network-policy": "not a feature of this engine",
    "cluster-scoped-policy": "this engine has no cluster-scoped policy kind",
}
#: fault steps: the engine process on a node and the run's own kube-apiserver (RealBackend.fault)
_FAULTS = frozenset({"engine-fault", "apiserver-fault", "engine-hold"})


@dataclass(frozen=True)
class EngineSpec:
    """One engine, every fact of it: the binaries it needs (besides BASE_COMPONENTS), what it
    declares, the process it runs on every node (None: no engine runs), whether Calico's
    datastore (CRDs, ClusterInformation, tiers) is installed before it starts, and the
    first words of the error when one of its binaries is missing."""

    name: str
    components: tuple[str, ...]
    caps: Capabilities
    #: whether its sync saves the whole filter table and restores it from that save (without
    #: --noflush): a write of another process in between is undone, so the harness starts it
    #: only once kube-proxy has written everything it will write during the bring-up
    restores_filter_table: bool = False
    node_process: Callable[[NodeEnv], NodeProcess] | None = None
    calico_datastore: bool = False
    missing: str = ""


@dataclass(frozen=True)
class NodeEnv:
    """What an engine's process on one node is started with: the run's binaries, the node's
    namespace and name, a kubeconfig for a user (ROLES, USERS) or the admin, inside that
    namespace, a directory of the run for the node's own files, and the directory of traced
    tools for a process (harness.backends.real.tooltrace; None without a trace)."""

    binaries: dict[str, str]
    netns: str
    node: str
    kubeconfig: Callable[[str], str]
    admin_kubeconfig: Callable[[], str]
    workdir: str
    traced_tools: Callable[[str, tuple[str, ...]], str | None]


def _kube_router(env: NodeEnv) -> NodeProcess:
    return kube_router(env.binaries["kube-router"], env.netns, env.node,
                       env.kubeconfig("kube-router"))


def _felix(env: NodeEnv) -> NodeProcess:
    state = os.path.join(env.workdir, f"felix-{env.netns}")
    for sub in ("mounts", "status"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    return felix(env.binaries["calico-felix"], env.netns, env.node, env.admin_kubeconfig(), state,
                 env.traced_tools("felix", FELIX_TOOLS))


SPECS: dict[str, EngineSpec] = {
    "kube-router": EngineSpec("kube-router", ("kube-router",), Capabilities(
        _L34 | _FAULTS, "reject", True,
        {**_COMMON_NOTES,
         "deny_response": "kube-router's pod chains end in REJECT (ICMP port unreachable): a "
                          "denied TCP connect is refused at once, a denied UDP datagram gets "
                          "an ICMP error; a refusal counts as blocked only with a positive "
                          "control"}), restores_filter_table=True, node_process=_kube_router),
    "calico": EngineSpec("calico", ("calico-felix",), Capabilities(
        _L34 | _FAULTS, "drop", True,
        {**_COMMON_NOTES,
         "deny_response": "Felix drops denied packets (its default deny action is DROP)"}),
        node_process=_felix, calico_datastore=True, missing="calico: Felix binary not available"),
    "none": EngineSpec("none", (), Capabilities(
        _L34, "drop", False,
        {**_COMMON_NOTES,
         "enforces": "no engine runs: the real API server accepts every policy and nothing "
                     "programs them (what Flannel does); every isolating policy is expected "
                     "to be reported not enforced",
         "engine-fault": "no policy engine runs on `none`: there is nothing to stop",
         "engine-hold": "no policy engine runs on `none`: there is nothing to stop",
         "apiserver-fault": "nothing enforces on `none`: an API server outage changes nothing "
                            "to observe"})),
}

ENGINES = tuple(SPECS)

def spec(engine: str) -> EngineSpec:
    try:
        return SPECS[engine]
    except KeyError:
        raise ValueError(f"unknown real engine {engine!r}: expected one of "
                         f"{', '.join(ENGINES)}") from None


def capabilities(engine: str) -> Capabilities:
    return spec(engine).caps


def binaries(engine: str) -> dict[str, str]:
    """Every binary `engine` runs, by component name; ComponentMissing says which is missing
    and why (for calico: "calico: Felix binary not available: <reason>")."""
    engine_spec = spec(engine)
    out = {}
    for name in (*BASE_COMPONENTS, *engine_spec.components):
        try:
            out[name] = str(find(name))
        except ComponentMissing as exc:
            if engine_spec.missing and name in engine_spec.components:
                raise ComponentMissing(f"{engine_spec.missing}: {exc}") from None
            raise
    if engine_spec.calico_datastore:
        crd_dir()   # Felix needs Calico's CRDs too; ComponentMissing says where they are not
    return out


# -- identities: each process reads the API as its own user, with the role upstream grants it --
#: user -> RBAC rules of its ClusterRole; kube-proxy uses the API server's built-in binding of
#: user system:kube-proxy to system:node-proxier. Felix reads as the admin (calico-node's role is
#: large and version-specific; an error there would hide behind the admin, not show as a result).
KUBE_PROXY_USER = "system:kube-proxy"
_READ = ["list", "get", "watch"]
ROLES: dict[str, list[dict]] = {
    # kube-router's own manifests (daemonset/generic-kuberouter.yaml, ClusterRole kube-router)
    "netpol-proof:kube-router": [
        {"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
         "verbs": _READ},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": _READ},
        {"apiGroups": ["extensions"], "resources": ["networkpolicies"], "verbs": _READ},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]},
        {"apiGroups": [""], "resources": ["services/status"], "verbs": ["update"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ}],
    # what kubeadm grants CoreDNS (ClusterRole system:coredns)
    "netpol-proof:coredns": [
        {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
         "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
         "verbs": ["list", "watch"]}],
}
USERS = {"kube-proxy": KUBE_PROXY_USER, "kube-router": "netpol-proof:kube-router",
         "coredns": "netpol-proof:coredns"}


def rbac_objects(run_id_labels: dict[str, str],
                 roles: dict[str, list[dict]] | None = None) -> list[dict]:
    """A ClusterRole and a ClusterRoleBinding (to the user of the same name) per entry of
    `roles` (default ROLES)."""
    out = []
    for user, rules in (ROLES if roles is None else roles).items():
        meta = {"name": user, "labels": dict(run_id_labels)}
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": meta, "rules": rules})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": dict(meta),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": user},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                  "name": user}]})
    return out


# -- processes of one node --------------------------------------------------------------------
@dataclass(frozen=True)
class NodeProcess:
    """A process of one node: its argv (run inside the node namespace), extra environment, and
    the check that says it is ready."""

    name: str
    argv: tuple[str, ...]
    ready: Callable[[], tuple[bool, str]]
    env: dict[str, str] | None = None
    #: the policy engine (what a fault step stops, kills and starts), not a node's other process
    engine: bool = False


def in_netns(netns: str, argv: list[str], timeout: float = 10.0):
    return run(["ip", "netns", "exec", netns, *argv], timeout=timeout)


def _http_ok(netns: str, url: str) -> tuple[bool, str]:
    res = in_netns(netns, ["curl", "-sS", "--max-time", "2", "-o", "/dev/null", "-w",
                           "%{http_code}", url])
    return res.stdout.strip() == "200", f"{url}: {res.stdout.strip() or res.stderr.strip()}"


def _chain_exists(netns: str, table: str, chain: str) -> tuple[bool, str]:
    """Whether `chain` is in `table` of `netns`, read with `iptables-save`. Not `iptables -S
    <chain>`: iptables-nft before 1.8.11 (Debian 12 has 1.8.9) answers that for a chain that
    does not exist with "chain `X' in table `nat' is incompatible, use 'nft' tool", which reads
    as a damaged table when the chain is only absent (docs/sources.md §12)."""
    lines = saved(netns, table)
    if isinstance(lines, str):
        return False, lines
    found = any(line.split()[0] == f":{chain}" for line in lines if line.startswith(":"))
    return found, f"chain {chain} {'present in' if found else 'absent from'} table {table}"


def _all(*checks: Callable[[], tuple[bool, str]]) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        for c in checks:
            ok, why = c()
            if not ok:
                return False, why
        return True, "ready"
    return check


KUBE_PROXY_HEALTHZ = "127.0.0.1:10256"
KUBE_PROXY_METRICS = "127.0.0.1:10249"
KUBE_ROUTER_HEALTH_PORT = 20244


def kube_proxy(binary: str, netns: str, node: str, kubeconfig: str) -> NodeProcess:
    """kube-proxy in iptables mode for one node. The conntrack flags at 0 leave every sysctl as
    it is (nf_conntrack_max is global to the host; the TCP timeouts are per namespace but need
    no change); metrics and healthz listen on the node namespace's loopback only."""
    argv = (binary, f"--kubeconfig={kubeconfig}", f"--hostname-override={node}",
            "--proxy-mode=iptables", f"--cluster-cidr={POD_CIDR}",
            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            f"--healthz-bind-address={KUBE_PROXY_HEALTHZ}",
            f"--metrics-bind-address={KUBE_PROXY_METRICS}", "--v=2")
    return NodeProcess("kube-proxy", argv, _all(
        lambda: kube_proxy_synced(netns),
        lambda: kube_proxy_jumps(netns)))


#: kube-proxy's jumps from the built-in chains to its own, by table (kube-proxy v1.35.8 in
#: iptables mode: iptablesJumpChains and iptablesKubeletJumpChains, docs/sources.md §12). It
#: writes them with one iptables call each at the start of a full sync, and a sync that cannot
#: write one ends there, before the nat table's rules.
KUBE_PROXY_JUMPS: dict[str, tuple[tuple[str, str], ...]] = {
    "filter": (("INPUT", "KUBE-EXTERNAL-SERVICES"), ("FORWARD", "KUBE-EXTERNAL-SERVICES"),
               ("INPUT", "KUBE-NODEPORTS"), ("FORWARD", "KUBE-SERVICES"),
               ("OUTPUT", "KUBE-SERVICES"), ("FORWARD", "KUBE-FORWARD"),
               ("INPUT", "KUBE-PROXY-FIREWALL"), ("OUTPUT", "KUBE-PROXY-FIREWALL"),
               ("FORWARD", "KUBE-PROXY-FIREWALL"), ("INPUT", "KUBE-FIREWALL"),
               ("OUTPUT", "KUBE-FIREWALL")),
    "nat": (("OUTPUT", "KUBE-SERVICES"), ("PREROUTING", "KUBE-SERVICES"),
            ("POSTROUTING", "KUBE-POSTROUTING")),
}


def saved(netns: str, table: str) -> list[str] | str:
    """`iptables-save -t <table>` of `netns` as lines, or why it could not be read."""
    res = in_netns(netns, ["iptables-save", "-t", table])
    if res.returncode != 0:
        return f"iptables-save -t {table}: {res.stderr.strip() or f'exit {res.returncode}'}"
    return res.stdout.splitlines()


def missing_jumps(netns: str) -> list[str]:
    """kube-proxy's chains or jumps (KUBE_PROXY_JUMPS) that `netns` lacks, as
    `table: FROM -> TO`, or the reason a table could not be read."""
    out = []
    for table, jumps in KUBE_PROXY_JUMPS.items():
        lines = saved(netns, table)
        if isinstance(lines, str):
            out.append(lines)
            continue
        have = {line[1:].split()[0] for line in lines if line.startswith(":") and len(line) > 1}
        for src, dst in jumps:
            jumped = any(line.startswith(f"-A {src} ") and line.endswith(f"-j {dst}")
                         for line in lines)
            if dst not in have or not jumped:
                out.append(f"{table}: {src} -> {dst}" + ("" if dst in have else
                                                         f" (no chain {dst})"))
    return out


def kube_proxy_jumps(netns: str) -> tuple[bool, str]:
    missing = missing_jumps(netns)
    return not missing, ("kube-proxy's jumps in place" if not missing else
                         f"kube-proxy's rules lack {', '.join(missing)}")


def kube_proxy_forwards(netns: str, ip: str, protocols: tuple[str, ...]) -> tuple[bool, str]:
    """Whether kube-proxy in `netns` forwards the Service at `ip` to endpoints for each of
    `protocols`: a rule of the nat table's KUBE-SERVICES for it per protocol, and none of the
    filter table's that kube-proxy writes while a Service has no endpoints (REJECT)."""
    nat = saved(netns, "nat")
    if isinstance(nat, str):
        return False, nat
    filt = saved(netns, "filter")
    if isinstance(filt, str):
        return False, filt
    dst = f"-d {ip}/32 "
    lacking = [p for p in protocols
               if not any(line.startswith("-A KUBE-SERVICES ") and dst in line
                          and f"-p {p} " in line for line in nat)]
    rejecting = [line for line in filt if dst in line and "-j REJECT" in line]
    if lacking or rejecting:
        why = ([f"no nat rule for {', '.join(lacking)}"] if lacking else []) + \
              ([f"the filter table rejects it ({rejecting[0]})"] if rejecting else [])
        return False, f"kube-proxy does not forward {ip} yet: {'; '.join(why)}"
    return True, f"kube-proxy forwards {ip}"


#: set by kube-proxy at the end of each sync that wrote its rules (none before the first)
KUBE_PROXY_SYNCED = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"


def kube_proxy_synced(netns: str) -> tuple[bool, str]:
    """Whether kube-proxy in `netns` has written its rules once. Not its /healthz: that answers
    200 while kube-proxy is starting, before its first sync (docs/sources.md §12)."""
    res = in_netns(netns, ["curl", "-sS", "--max-time", "2",
                           f"http://{KUBE_PROXY_METRICS}/metrics"])
    if res.returncode != 0:
        return False, f"kube-proxy metrics: {res.stderr.strip() or f'exit {res.returncode}'}"
    for line in res.stdout.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(KUBE_PROXY_SYNCED + "{"):
            try:
                if float(value) > 0:
                    return True, "kube-proxy synced its rules"
            except ValueError:
                pass
    return False, "kube-proxy has not synced its rules yet"


def kube_router(binary: str, netns: str, node: str, kubeconfig: str) -> NodeProcess:
    """kube-router's network-policy controller for one node (router and service proxy off)."""
    argv = (binary, f"--kubeconfig={kubeconfig}", "--run-firewall=true", "--run-router=false",
            "--run-service-proxy=false", "--run-loadbalancer=false", "--enable-cni=false",
            f"--hostname-override={node}", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--enable-ipv4=true", "--enable-ipv6=false", "--iptables-sync-period=30s",
            "--health-addr=127.0.0.1", f"--health-port={KUBE_ROUTER_HEALTH_PORT}",
            "--metrics-port=0", "--v=2")
    return NodeProcess("kube-router", argv, _all(
        lambda: _http_ok(netns, f"http://127.0.0.1:{KUBE_ROUTER_HEALTH_PORT}/healthz"),
        lambda: _chain_exists(netns, "filter", "KUBE-ROUTER-FORWARD")), engine=True)


def corefile(kubeconfig: str | None, context: str = "", ready: str = "127.0.0.1:8181") -> str:
    """CoreDNS's configuration: the kubernetes plugin for the cluster zone (reverse zones too),
    reading the API server through the relay (`kubeconfig`; None: the pod's in-cluster service
    account, as on real nodes); `ready` on the pod's loopback (real nodes: on every address,
    for the kubelet's readiness probe). No `forward`: nothing leaves the cluster, so names
    outside cluster.local get no answer from upstream."""
    where = f"        kubeconfig {kubeconfig} {context}\n" if kubeconfig else ""
    return (".:53 {\n"
            "    errors\n"
            f"    ready {ready}\n"
            "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
            f"{where}"
            "        pods insecure\n"
            "        fallthrough in-addr.arpa ip6.arpa\n"
            "        ttl 5\n"
            "    }\n"
            "}\n")


def coredns_ready(netns: str) -> tuple[bool, str]:
    return _http_ok(netns, "http://127.0.0.1:8181/ready")


FELIX_HEALTH = ("127.0.0.1", 9099)


#: what Felix (iptables dataplane) execs; not modprobe, not bpftool
FELIX_TOOLS = tuple(f"{fam}{kind}" for fam in ("iptables", "ip6tables")
                    for kind in ("", "-save", "-restore", "-nft", "-nft-save", "-nft-restore",
                                 "-legacy", "-legacy-save", "-legacy-restore")) + ("ipset",
                                                                                   "conntrack")


def tool_dir(path: str, tools: tuple[str, ...]) -> str:
    """A directory of symlinks to exactly `tools` (those this machine has), for a PATH."""
    os.makedirs(path, exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        link = os.path.join(path, tool)
        if found and not os.path.lexists(link):
            os.symlink(found, link)
    return path


def iptables_backend() -> str:
    """`nft` or `legacy`: what this machine's `iptables` is (kube-proxy runs that one)."""
    res = run(["iptables", "--version"], timeout=10)
    return "nft" if "nf_tables" in res.stdout else "legacy"


def felix(binary: str, netns: str, node: str, kubeconfig: str, state_dir: str,
          tools: str | None = None) -> NodeProcess:
    """Felix for one node: Kubernetes datastore, iptables dataplane, IPv4 only, workload routes
    from pod IPs (no Calico IPAM here), no BPF/XDP/encapsulation/usage reports, health on the
    node namespace's loopback. Its own files: endpoint status and its iptables lock under
    `state_dir` (a directory of the run); /var/lib/calico is a private overlay
    (harness.backends.real.privatemounts), so two instances never share a file and the host
    gets none. `tools`: the directory that is Felix's PATH (default: symlinks to FELIX_TOOLS
    under `state_dir`; harness.backends.real.tooltrace gives wrappers of the same tools)."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "FELIX_LOGSEVERITYSYS": "none",
           "KUBECONFIG": kubeconfig,
           "FELIX_DATASTORETYPE": "kubernetes", "FELIX_FELIXHOSTNAME": node,
           "FELIX_IPV6SUPPORT": "false", "FELIX_BPFENABLED": "false", "FELIX_XDPENABLED": "false",
           "FELIX_NFTABLESMODE": "Disabled",
           # the same iptables backend as kube-proxy's `iptables` on this machine (nft): auto
           # detection looks at the rules a node already has, and picks legacy on an empty node
           "FELIX_IPTABLESBACKEND": iptables_backend(),
           # iptables mode still removes BPF connect-time load balancing left by a BPF-mode
           # Felix, through libbpf, which a CGO_ENABLED=0 build has only as a panicking stub;
           # Felix's own tests skip it the same way (no BPF state exists in a fresh node)
           "FELIX_DebugSkipCTLBCleanup": "true",
           "FELIX_ROUTESOURCE": "WorkloadIPs", "FELIX_USAGEREPORTINGENABLED": "false",
           "FELIX_HEALTHENABLED": "true", "FELIX_HEALTHHOST": FELIX_HEALTH[0],
           "FELIX_HEALTHPORT": str(FELIX_HEALTH[1]), "FELIX_LOGFILEPATH": "none",
           "FELIX_LOGSEVERITYSCREEN": "Info", "FELIX_PROMETHEUSMETRICSENABLED": "false",
           "FELIX_ENDPOINTSTATUSPATHPREFIX": os.path.join(state_dir, "status"),
           "FELIX_IPTABLESLOCKFILEPATH": os.path.join(state_dir, "xtables.lock"),
           "FELIX_IPINIPENABLED": "false", "FELIX_VXLANENABLED": "false",
           "FELIX_WIREGUARDENABLED": "false"}
    scratch = os.path.join(state_dir, "mounts")
    argv = ("unshare", "--mount", "--propagation", "private", sys.executable, "-m",
            "harness.backends.real.privatemounts", "--scratch", scratch, "--overlay", "/var/lib",
            "--path", tools or tool_dir(os.path.join(state_dir, "bin"), FELIX_TOOLS), "--",
            binary)
    host, port = FELIX_HEALTH
    return NodeProcess("felix", argv, _all(
        lambda: _http_ok(netns, f"http://{host}:{port}/readiness"),
        lambda: _chain_exists(netns, "filter", "cali-FORWARD")), env, engine=True)
