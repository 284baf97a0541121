"""Dataplanes that do the wrong thing on purpose: the real local backend (network namespaces,
nftables, real servers) with one deliberate fault each, so that tests can show how a wrong CNI
is reported. Not fakes: every packet is real, only the rules programmed are wrong.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
import threading
import time
from typing import Mapping

from harness.backends.local import LocalBackend, nft, profiles
from harness.errors import BackendError
from harness.shell import run, spawn, stop


class PoliciesInTheWrongNamespace(LocalBackend):
    """Programs every NetworkPolicy of namespace x as if it were in namespace y (and deletes it
    from there): x stays open (not enforced), y is isolated instead (over-blocked)."""

    moves = {"x": "y"}

    def _moved(self, manifest: Mapping) -> dict:
        out = copy.deepcopy(dict(manifest))
        meta = out.setdefault("metadata", {})
        meta["namespace"] = self.moves.get(meta.get("namespace"), meta.get("namespace"))
        return out

    def apply_policy(self, manifest: Mapping) -> None:
        super().apply_policy(self._moved(manifest))

    def delete_policy(self, namespace: str, name: str, kind: str = "NetworkPolicy") -> None:
        super().delete_policy(self.moves.get(namespace, namespace), name, kind)


class ReportsAnotherPodCidr(LocalBackend):
    """Reports a pod CIDR that does not hold its pods (as the kube backends did when they
    hard-coded 10.244.0.0/16 on a cluster with other ranges)."""

    pod_cidr = "10.99.0.0/16"

    def deploy(self, model):
        return dataclasses.replace(super().deploy(model), pod_cidr=self.pod_cidr)


class BreaksOnLabels(LocalBackend):
    """A backend with a bug: changing labels raises an error that is not a HarnessError."""

    def set_labels(self, namespace_labels, pod_labels) -> None:
        raise TypeError("set_labels got an unexpected mapping (a bug on purpose)")


class DnsWithWrongRecords(LocalBackend):
    """The cluster DNS answers from wrong records: `missing` names are NXDOMAIN, `moved` names
    resolve to another address (a broken DNS, not a policy)."""

    missing: tuple[str, ...] = ()
    moved: dict[str, str] = {}

    def _dns_records(self, model):
        records = super()._dns_records(model)
        for name in self.missing:
            records.pop(name, None)
        records.update(self.moved)
        return records


class DnsBlockedForEveryone(LocalBackend):
    """Every applied policy also isolates the cluster DNS pod for ingress, so every lookup
    times out (DNS over-blocked) while the DNS server itself still answers on loopback."""

    def apply_policy(self, manifest: Mapping) -> None:
        super().apply_policy(manifest)
        super().apply_policy({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "faulty-dns-isolation", "namespace": "kube-system"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})

    def policy_count(self) -> int:
        return max(0, super().policy_count() - 1)


#: An HTTP server answering every request with one status and body, for pods whose real server
#: is replaced (argv: port status body ready-file).
REPLY_SERVER = (
    "import http.server,sys\n"
    "port,code,body,ready=int(sys.argv[1]),int(sys.argv[2]),sys.argv[3].encode(),sys.argv[4]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    " def do_GET(s):\n"
    "  s.send_response(code);s.send_header('Content-Length',str(len(body)));s.end_headers()\n"
    "  s.wfile.write(body)\n"
    " def log_message(s,*a):pass\n"
    "srv=http.server.ThreadingHTTPServer(('0.0.0.0',port),H)\n"
    "open(ready,'w').close()\n"
    "srv.serve_forever()\n"
)


class SomeoneElseAnswers(LocalBackend):
    """The HTTP server of pod `target` on port 80 is replaced by one answering `status` with
    `body`: a proxy in the path (an Envoy 503), another pod's name, or an L7 proxy's deny."""

    target = "x/b"
    status = 503
    body = "upstream connect error or disconnect/reset before headers"

    def _start_servers(self, model) -> None:
        super()._start_servers(model)
        self.stop_server(self.target)   # the pod's own servers go; this one answers instead
        ready = os.path.join(self.workdir, f"{self._netns[self.target]}.reply-ready")
        log = os.path.join(self.workdir, f"{self._netns[self.target]}.log")
        self._reply = spawn(
            ["ip", "netns", "exec", self._netns[self.target], sys.executable, "-c",
             REPLY_SERVER, "80", str(self.status), self.body, ready], log_path=log)
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self._reply.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the reply server did not start: {open(log).read()}")
            time.sleep(0.01)

    def undeploy(self) -> None:
        reply = getattr(self, "_reply", None)
        if reply is not None:
            stop(reply)
            self._reply = None
        super().undeploy()


class Flapping(LocalBackend):
    """Enforces the applied policies for `period` seconds, then nothing for `period` seconds,
    and so on (a CNI agent that keeps reloading an empty ruleset), until the topology goes."""

    period = 1.5

    def apply_policy(self, manifest: Mapping) -> None:
        super().apply_policy(manifest)
        if getattr(self, "_flapper", None) is None:
            self._stop_flapping = threading.Event()
            self._flapper = threading.Thread(target=self._flap, daemon=True)
            self._flapper.start()

    def _flap(self) -> None:
        # Why against the clock: waiting `period` after each reload would let a loaded machine's
        # slow reloads stretch the period; the k-th switch is due at start + k * period.
        start, k, enforcing = time.monotonic(), 0, True
        while True:
            k += 1
            if self._stop_flapping.wait(max(0.0, start + k * self.period - time.monotonic())):
                return
            enforcing = not enforcing
            with self._flap_lock:
                if self.model is None:
                    return
                if enforcing:
                    LocalBackend._sync_policies(self)
                else:   # the same table, compiled from no policy at all
                    body = profiles.compile_policies(self.model, self.addresses, [], self._veths)
                    nft.load(self.node, nft.replace_table(
                        "ip", nft.table_name(self.run_id, "policy"), body),
                        doing="loading an empty policy table (a flapping dataplane, on purpose)")

    _flap_lock = threading.Lock()

    def _sync_policies(self) -> None:
        with self._flap_lock:
            super()._sync_policies()

    def undeploy(self) -> None:
        flapper = getattr(self, "_flapper", None)
        if flapper is not None:
            self._stop_flapping.set()
            flapper.join(timeout=10)
            self._flapper = None
        super().undeploy()


class ReloadsFromScratch(LocalBackend):
    """On every apply, loads an empty policy table and `gap` seconds later the full one (a CNI
    agent that flushes and rebuilds its rules on each update): every isolated pod is open for a
    moment after any change, even one that concerns it not at all."""

    gap = 0.6

    def apply_policy(self, manifest: Mapping) -> None:
        self._flushing = True
        try:
            super().apply_policy(manifest)     # stored; _sync_policies loads the empty table
        finally:
            self._flushing = False
        with self._reload_lock:
            if getattr(self, "_reload", None) is not None:
                self._reload.cancel()
            self._reload = threading.Timer(self.gap, self._full)
            self._reload.daemon = True
            self._reload.start()

    def _sync_policies(self) -> None:
        with self._reload_lock:
            if not getattr(self, "_flushing", False):
                super()._sync_policies()
            elif self.model is not None and self.addresses is not None:
                body = profiles.compile_policies(self.model, self.addresses, [], self._veths)
                nft.load(self.node, nft.replace_table(
                    "ip", nft.table_name(self.run_id, "policy"), body),
                    doing="flushing the policy table before reloading it (on purpose)")

    def _full(self) -> None:
        with self._reload_lock:
            if self.model is not None:
                LocalBackend._sync_policies(self)

    _reload_lock = threading.RLock()

    def undeploy(self) -> None:
        with self._reload_lock:
            reload, self._reload = getattr(self, "_reload", None), None
            if reload is not None:
                reload.cancel()
        if reload is not None:
            reload.join(timeout=10)
        super().undeploy()


class LateAfterProbes(LocalBackend):
    """A dataplane that does something late: `late()` runs once `after` probe rounds have
    started since the last apply (in the round after those, before its probes are all run).

    Why counted in rounds, not seconds: on a loaded machine the first round can start seconds
    after the apply, so a fault timed in seconds lands in whatever round the load decides; in
    rounds it lands where the test says. A round is counted when `marker` (y/b of
    deny-ingress-small) runs its TCP probes, one batched curl per source and round.
    """

    after = 1
    marker = "y/b"

    def apply_policy(self, manifest: Mapping) -> None:
        self._rounds = 0
        self._late_done = False
        self.on_time(manifest)

    def on_time(self, manifest: Mapping) -> None:
        LocalBackend.apply_policy(self, manifest)

    def late(self) -> None:
        raise NotImplementedError

    def exec(self, endpoint, argv, timeout):
        with _exec_lock:
            if endpoint == self.marker and "--parallel" in argv:
                self._rounds = getattr(self, "_rounds", 0) + 1
            due = not getattr(self, "_late_done", True) and getattr(self, "_rounds", 0) > self.after
            if due:
                self._late_done = True
                self.late()
        return super().exec(endpoint, argv, timeout)


_exec_lock = threading.Lock()


class SlowToEnforce(LateAfterProbes):
    """Programs the applied policies only after the first `after` probe rounds (a CNI agent that
    programs a policy some time after the API accepted it)."""

    def on_time(self, manifest: Mapping) -> None:
        self._pending = True
        self._sync = False
        LocalBackend.apply_policy(self, manifest)    # stored (and counted), not programmed

    def _sync_policies(self) -> None:
        if not getattr(self, "_pending", False) or getattr(self, "_sync", False):
            super()._sync_policies()

    def late(self) -> None:
        self._sync = True
        try:
            self._sync_policies()
        finally:
            self._sync = False
            self._pending = False


class LateAndWrong(LateAfterProbes, PoliciesInTheWrongNamespace):
    """Programs every policy correctly at once, and after the first `after` probes replaces
    the rules by wrong ones (the policies of x programmed in y): right while a hasty harness
    looks, wrong after: the wrong rules meet the third round."""

    after = 2

    def on_time(self, manifest: Mapping) -> None:
        LocalBackend.apply_policy(self, manifest)          # right at first
        self._manifests = getattr(self, "_manifests", []) + [manifest]

    def late(self) -> None:
        self._policies = {}
        for m in self._manifests:
            LocalBackend.apply_policy(self, self._moved(m))

    def delete_policy(self, namespace: str, name: str, kind: str = "NetworkPolicy") -> None:
        self._manifests = [m for m in self._manifests
                           if (m["metadata"].get("namespace"), m["metadata"]["name"])
                           != (namespace, name)]
        moved = f"{self.moves.get(namespace, namespace)}/{name}"
        target = moved if moved in self._policies else f"{namespace}/{name}"
        LocalBackend.delete_policy(self, *target.split("/", 1), kind)


class DropsForAMomentThenOpen(LocalBackend):
    """Programs an applied policy for `moment` seconds, then enforces nothing again (an agent
    that restarts with an empty ruleset): open, after a brief drop."""

    moment = 1.5

    def apply_policy(self, manifest: Mapping) -> None:
        super().apply_policy(manifest)
        timer = threading.Timer(self.moment, self._open)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _open(self) -> None:
        if self.model is None:
            return
        body = profiles.compile_policies(self.model, self.addresses, [], self._veths)
        nft.load(self.node, nft.replace_table("ip", nft.table_name(self.run_id, "policy"), body),
                 doing="loading an empty policy table (an open dataplane, on purpose)")

    def undeploy(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
        super().undeploy()


class FlapsEveryFewProbes(LocalBackend):
    """Switches between enforcing the applied policies and enforcing nothing every `every`
    probe execs: a flap whose period is counted in probes, so load cannot stretch it past the
    observation window. 9 execs are one round of deny-ingress-small (4 sources, each with one
    curl for its TCP probes and one UDP client for its UDP probes, and one nslookup: the prober
    batches per source), so most cells see the other state in each new round."""

    every = 9

    def apply_policy(self, manifest: Mapping) -> None:
        super().apply_policy(manifest)
        self._count, self._on = 0, True

    def exec(self, endpoint, argv, timeout):
        with _exec_lock:
            self._count = getattr(self, "_count", 0) + 1
            if self._count % self.every == 0 and self.model is not None and self._policies:
                self._on = not self._on
                policies = [p for _, p in self._policies.values()] if self._on else []
                body = profiles.compile_policies(self.model, self.addresses, policies, self._veths)
                nft.load(self.node, nft.replace_table(
                    "ip", nft.table_name(self.run_id, "policy"), body),
                    doing="switching the policy table (a flapping dataplane, on purpose)")
        return super().exec(endpoint, argv, timeout)


class EngineThatWillNotStart(LocalBackend):
    """The emulated engine's `start` fails with `error` (a BackendError, or KeyboardInterrupt
    for a Ctrl-C in the middle of a fault step); restore_faults still starts it, so a fault step
    that goes wrong must leave the engine running."""

    error: BaseException = BackendError("starting the emulated engine", "it will not (on purpose)")

    def fault(self, action: str, target: str, node: int | None = None) -> str:
        if action == "start":
            raise self.error
        return super().fault(action, target, node)


class EnforcesThoughDeclaredOpen(LocalBackend):
    """Runs as the `open` profile, so it declares what `open` declares (it enforces nothing,
    like a cluster named flannel), but programs every policy as `enforcing` does: a cluster
    whose name lies. `unfiltered` are protocols its rules let through whatever the policies say
    (("udp",): a partly enforcing cluster: TCP filtered, UDP open)."""

    unfiltered: tuple[str, ...] = ()

    def _sync_policies(self) -> None:
        if self.model is None or self.addresses is None:
            return
        body = profiles.compile_policies(self.model, self.addresses,
                                         [p for _, p in self._policies.values()], self._veths)
        # after `ct state established,related accept`: before any pod's chain
        at = next(i for i, line in enumerate(body) if "ct state established" in line) + 1
        body[at:at] = [f"  meta l4proto {proto} accept" for proto in self.unfiltered]
        nft.load(self.node, nft.replace_table("ip", nft.table_name(self.run_id, "policy"), body),
                 doing="loading the compiled table of a cluster declared open (on purpose)")


class PartlyEnforcesThoughDeclaredOpen(EnforcesThoughDeclaredOpen):
    """Declared `open`; filters TCP as the policies say and lets every UDP packet through."""

    unfiltered = ("udp",)


class IpBlockOutsideTheClusterOnly(LocalBackend):
    """A CNI that applies ipBlock peers to traffic from or to outside the cluster only, and
    declares so (no `ipblock-pod-ip`, as harness/backends/cni.py says of Cilium): every ipBlock
    is programmed as one that holds no address of this cluster, so a pod matched by its IP is
    not matched. A documented limitation, not a policy it fails to enforce."""

    nowhere = "198.51.100.1/32"   # TEST-NET-2: no pod, Service or external host of a run

    def capabilities(self):
        caps = super().capabilities()
        return dataclasses.replace(caps, supported=caps.supported - {"ipblock-pod-ip"})

    def apply_policy(self, manifest: Mapping) -> None:
        out = copy.deepcopy(dict(manifest))
        spec = out.get("spec") or {}
        for direction, peers in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for peer in rule.get(peers) or []:
                    if "ipBlock" in peer:
                        peer["ipBlock"] = {"cidr": self.nowhere}
        super().apply_policy(out)


class EnforcesAfterADelay(LocalBackend):
    """Programs every change `delay` seconds after it was made (an agent slow to program what
    the API accepted): right, but late. A probe sent at once after an apply connects."""

    delay = 1.5

    def _sync_policies(self) -> None:
        if getattr(self, "_now", False):
            super()._sync_policies()
            return
        timer = threading.Timer(self.delay, self._late)
        timer.daemon = True
        self._timers = [t for t in getattr(self, "_timers", []) if t.is_alive()] + [timer]
        timer.start()

    def _late(self) -> None:
        with _exec_lock:
            if self.model is None:
                return
            self._now = True
            try:
                super()._sync_policies()
            finally:
                self._now = False

    def undeploy(self) -> None:
        for timer in getattr(self, "_timers", []):
            timer.cancel()
        with _exec_lock:
            super().undeploy()


#: Holds every packet of an NFQUEUE queue for a while, then accepts it (argv: queue delay
#: ready-file). Plain nfnetlink (the kernel's queue protocol, docs/sources.md §15: bind the
#: queue, ask for packet metadata only, answer each packet id with NF_ACCEPT), so that no
#: library is needed. Why a queue: this kernel has no netem qdisc and no nft `queue`, but it
#: has the xtables NFQUEUE target (§15).
NFQUEUE_DELAYER = (
    "import heapq,select,socket,struct,sys,time\n"
    "q,delay,ready=int(sys.argv[1]),float(sys.argv[2]),sys.argv[3]\n"
    "s=socket.socket(socket.AF_NETLINK,socket.SOCK_RAW,12);s.bind((0,0))\n"
    "def msg(kind,flags,attrs):\n"
    " body=struct.pack('=BB',0,0)+struct.pack('!H',q)\n"
    " for t,v in attrs:body+=struct.pack('=HH',4+len(v),t)+v+bytes(-len(v)%4)\n"
    " return struct.pack('=IHHII',16+len(body),(3<<8)|kind,flags,0,0)+body\n"
    "def config(attr):\n"
    " s.send(msg(2,5,[attr]));d=s.recv(65536)\n"
    " if struct.unpack_from('=H',d,4)[0]==2 and struct.unpack_from('=i',d,16)[0]:\n"
    "  raise SystemExit('nfqueue config refused: %d'%struct.unpack_from('=i',d,16)[0])\n"
    "config((1,struct.pack('!BBH',1,0,0)))\n"       # NFQA_CFG_CMD: bind the queue
    "config((2,struct.pack('!IB',0,1)))\n"          # NFQA_CFG_PARAMS: metadata only
    "open(ready,'w').close();due=[]\n"
    "while True:\n"
    " if select.select([s],[],[],max(0,due[0][0]-time.monotonic()) if due else None)[0]:\n"
    "  d=s.recv(1<<20);o=0\n"
    "  while o+16<=len(d):\n"
    "   n,t=struct.unpack_from('=IH',d,o);a=o+20\n"
    "   while t==(3<<8) and a+4<=o+n:\n"             # NFQNL_MSG_PACKET: find its packet id
    "    al,at=struct.unpack_from('=HH',d,a)\n"
    "    if at&0x3fff==1:heapq.heappush(due,(time.monotonic()+delay,struct.unpack_from('!I',d,a+4)[0]))\n"
    "    a+=(al+3)&~3\n"
    "   o+=(n+3)&~3\n"
    " while due and due[0][0]<=time.monotonic():\n"  # NFQNL_MSG_VERDICT: NF_ACCEPT, id
    "  s.send(msg(1,1,[(2,struct.pack('!II',1,heapq.heappop(due)[1]))]))\n"
)


class SlowInsteadOfBlocked(LocalBackend):
    """Enforces nothing, and is slow where it should block: every packet a policy denies goes
    through, and the UDP replies of those flows come `delay` seconds late (a dataplane whose
    denied path is a slow detour, not a drop).

    The enforcing table is compiled as usual, but its drops mark the flow (conntrack mark)
    and accept it; an iptables NFQUEUE rule in the node hands the UDP replies of marked flows
    to NFQUEUE_DELAYER, which accepts each one `delay` s later. A probe that stops listening
    at its timeout reads that late reply as a drop, and the loopback control then makes it a
    pass; UDP probes and lookups of those flows must never read as blocked."""

    delay = 1.2
    mark = 0x4E50
    queue = 0

    def _sync_policies(self) -> None:
        if self.model is None or self.addresses is None:
            return
        body = profiles.compile_policies(self.model, self.addresses,
                                         [p for _, p in self._policies.values()], self._veths)
        body = [line.replace("counter drop", f"counter ct mark set {self.mark:#x} accept")
                for line in body]
        nft.load(self.node, nft.replace_table("ip", nft.table_name(self.run_id, "policy"), body),
                 doing="loading a table that marks what it should drop (a slow path, on purpose)")
        if self._policies and getattr(self, "_delayer", None) is None:
            self._start_delaying()

    def _rule(self, op: str) -> list[str]:
        return ["ip", "netns", "exec", self.node, "iptables", "-w", op, "FORWARD", "-p", "udp",
                "-m", "connmark", "--mark", f"{self.mark:#x}", "-m", "conntrack", "--ctdir",
                "REPLY", "-j", "NFQUEUE", "--queue-num", str(self.queue)]

    def _start_delaying(self) -> None:
        ready = os.path.join(self.workdir, f"{self.node}.delayer-ready")
        log = os.path.join(self.workdir, f"{self.node}.delayer.log")
        self._delayer = spawn(["ip", "netns", "exec", self.node, sys.executable, "-c",
                               NFQUEUE_DELAYER, str(self.queue), str(self.delay), ready],
                              log_path=log)
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self._delayer.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the NFQUEUE delayer did not start: {open(log).read()}")
            time.sleep(0.01)
        # only once the queue has a reader: a queue without one drops what it is given
        res = run(self._rule("-A"), timeout=30)
        if res.returncode != 0:
            raise AssertionError(f"adding the NFQUEUE rule: {res.stderr.strip()}")

    def undeploy(self) -> None:
        delayer = getattr(self, "_delayer", None)
        if delayer is not None:
            run(self._rule("-D"), timeout=30)
            stop(delayer)
            self._delayer = None
        super().undeploy()


class DnsLeftOpen(LocalBackend):
    """Enforces every policy except on DNS: any packet to port 53 is accepted before the
    policy chains (a dataplane that exempts DNS), so a pod whose egress is denied still
    resolves names, and only the rest of its traffic is blocked."""

    def _sync_policies(self) -> None:
        if self.model is None or self.addresses is None:
            return
        body = profiles.compile_policies(self.model, self.addresses,
                                         [p for _, p in self._policies.values()], self._veths)
        at = body.index("  ct state established,related accept") + 1
        body[at:at] = ["  meta l4proto { tcp, udp } th dport 53 accept"]
        nft.load(self.node, nft.replace_table("ip", nft.table_name(self.run_id, "policy"), body),
                 doing="loading a policy table that lets DNS through (on purpose)")
