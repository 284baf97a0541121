"""A real Kubernetes control plane per run: etcd + kube-apiserver + kube-controller-manager on
the root namespace's loopback, named by the run id, torn down on exit, Ctrl-C and SIGTERM.

What is real and what is not: the three binaries are the pinned upstream ones (see
harness.components); there is no kubelet, no scheduler and no cloud provider, so the controllers
that only make sense with them are off (`CONTROLLERS`), unless `kubelets` (real kubelets will
register: harness.backends.real.realnodes) and `scheduler` (the real kube-scheduler) ask for them. Everything
a plane makes lives in one state directory, `<state root>/cp-<run>/` (certificates, etcd's
data, logs, kubeconfigs and `plane.json`, the record `python -m harness cleanup` uses after a
SIGKILL).

Authorization is RBAC with an admin client certificate in `system:masters`, the way kubeadm
sets a cluster up: the admin bypasses RBAC through its group, the controller manager runs as
`system:kube-controller-manager` with one service account per controller
(`--use-service-account-credentials`), and engines given their own users later meet real
permission errors. AlwaysAllow would accept any request and hide exactly those.

Network: every listener binds 127.0.0.1 (etcd's client and peer URLs, the API server's and the
controller manager's secure ports). Processes inside harness-made network namespaces reach the
API server through `relay.Relay` (`kubeconfig_for_netns`), never through a route.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from harness import components, naming
from harness.backends.local.backend import STATE_DIR
from harness.backends.real.controlplane import certs, procs
from harness.backends.real.controlplane.relay import Relay
from harness.errors import BackendError
from harness.model import SERVICE_CIDR
from harness.shell import run, spawn, stop
from harness.waits import poll

#: kube-controller-manager's controllers: all that are on by default, minus the two that act on
#: kubelet heartbeats, which never come here: node-lifecycle-controller would mark every Node
#: NotReady after its grace period, taint it and flip its Pods' Ready condition to False (which
#: removes them from EndpointSlices); taint-eviction-controller would then delete those Pods.
#: The cloud controllers (cloud-node-lifecycle, service-lb, node-route) switch themselves off
#: without a cloud provider, and node-ipam-controller without --allocate-node-cidrs (the
#: harness writes spec.podCIDR itself).
CONTROLLERS = "*,-node-lifecycle-controller,-taint-eviction-controller"
#: with real kubelets (`kubelets=True`) every default controller runs: their heartbeats come, and
#: the node-lifecycle controller is what lifts the `node.kubernetes.io/not-ready` taint a
#: kubelet registers its Node with (without it no pod is ever scheduled)
CONTROLLERS_WITH_KUBELETS = "*"
DEFAULT_READY_TIMEOUT = 120.0  # generous: only a failure waits this long (2 shared cores)
RELAY_PORT = 6443
ADMIN_USER = "netpol-proof-admin"
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 25


class ControlPlaneError(BackendError):
    """The control plane could not be brought up or torn down; names the component and carries
    the last lines of its log."""


@dataclass
class _Running:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    record: procs.ProcRecord
    url: str = ""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _get(url: str, context: ssl.SSLContext | None = None, timeout: float = 3.0) -> tuple[int | None, str]:
    """(HTTP status, body) of a GET, or (None, why it failed)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        return None, str(getattr(exc, "reason", exc))


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) for one run. A context manager.

    `kubeconfig` (admin, server on the root namespace's loopback) and `api_client()` are for the
    harness itself; `kubeconfig_for_netns(ns)` is for processes inside a harness namespace.
    """

    def __init__(self, run_id: str | None = None, *, service_cidr: str = SERVICE_CIDR,
                 controller_manager: bool = True, ready_timeout: float = DEFAULT_READY_TIMEOUT,
                 state_root: str | os.PathLike = STATE_DIR, relay_port: int = RELAY_PORT,
                 status: Callable[[str], None] | None = None, kubelets: bool = False,
                 egress_config: Path | None = None, scheduler: bool = False,
                 cluster_cidr: str | None = None):
        self.run_id = run_id or naming.new_run_id()
        self.dir = Path(state_root) / naming.controlplane_dir(self.run_id)
        try:
            net = ipaddress.ip_network(service_cidr)
        except ValueError as exc:
            raise ControlPlaneError("configuring a control plane",
                                    f"service_cidr {service_cidr!r} is not a network: {exc}") from None
        if net.num_addresses < 16:
            raise ControlPlaneError("configuring a control plane",
                                    f"service_cidr {service_cidr!r} is too small for Services")
        self.service_cidr = service_cidr
        self.with_kcm = controller_manager
        #: real kubelets will register (harness.backends.real.realnodes): the Node authorizer and
        #: NodeRestriction, a client certificate for the API server's calls to kubelets, and
        #: `egress_config` (an EgressSelectorConfiguration) for the way to them
        self.kubelets = kubelets
        self.egress_config = egress_config
        #: the real kube-scheduler (for real kubelets: pods without spec.nodeName get placed)
        self.with_scheduler = scheduler
        #: the controller manager's node-ipam controller hands each Node a /24 of this network
        #: as spec.podCIDR (a network that reads it: flannel on real nodes); None: nobody does
        self.cluster_cidr = cluster_cidr
        self.ready_timeout = ready_timeout
        self.relay_port = relay_port
        self._status = status or (lambda msg: None)
        self.context = f"{naming.PROJECT}-{self.run_id}"
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self.etcd_url = ""
        self.server = ""
        self.versions: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._running: list[_Running] = []
        self._state: procs.PlaneState | None = None
        self._relay: Relay | None = None
        self._netns_kubeconfigs: dict[tuple[str, str], Path] = {}   # (netns, user) -> file
        self._client_certs: dict[str, certs.Issued] = {}
        self._is_up = False

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def describe(self) -> str:
        """What ran, exactly: e.g. `real etcd 3.6.16 + real kube-apiserver v1.35.8 + ...`."""
        parts = [f"real {name} {self.versions.get(name, '?')}" for name in
                 ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
                 if (name != "kube-controller-manager" or self.with_kcm)
                 and (name != "kube-scheduler" or self.with_scheduler)]
        missing = [what for what, there in (("kubelet", self.kubelets),
                                            ("scheduler", self.with_scheduler)) if not there]
        return " + ".join(parts) + (f" (no {', no '.join(missing)})" if missing else "")

    # -- up -------------------------------------------------------------------------------------
    def up(self) -> None:
        """Start etcd, the API server and the controller manager; wait until each is ready."""
        if self._is_up:
            return
        started = time.monotonic()
        binaries = {n: components.find(n) for n in
                    ("etcd", "kube-apiserver")
                    + (("kube-controller-manager",) if self.with_kcm else ())
                    + (("kube-scheduler",) if self.with_scheduler else ())}
        self._claim()
        try:
            t = time.monotonic()
            self._pki()
            self.timings["certs"] = time.monotonic() - t
            self._start_etcd(binaries["etcd"])
            self._start_apiserver(binaries["kube-apiserver"])
            if self.with_kcm:
                self._start_kcm(binaries["kube-controller-manager"])
            if self.with_scheduler:
                self._start_scheduler(binaries["kube-scheduler"])
            self._read_versions(binaries)
        except BaseException:
            try:
                self.down()
            except ControlPlaneError as exc:
                self._status(f"  while cleaning up a failed control plane: {exc}")
            raise
        self._is_up = True
        atexit.register(self._down_at_exit)   # a caller that never calls down() still tears down
        self.timings["up"] = time.monotonic() - started
        self._status(f"control plane {self.run_id} up in {self.timings['up']:.1f}s: "
                     f"{self.server} ({self.describe()})")

    def _claim(self) -> None:
        """Create the state directory and record this process as its owner, before anything
        runs: cleanup must never find a process of ours without a record of its owner."""
        if self.dir.exists():
            if procs.owner_alive(self.dir):
                raise ControlPlaneError(f"starting control plane {self.run_id}",
                                        f"{self.dir} belongs to a live run; choose another run id")
            raise ControlPlaneError(f"starting control plane {self.run_id}",
                                    f"{self.dir} is left from a crashed run; remove it with "
                                    "`python -m harness cleanup`")
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(mode=0o700)
        for sub in ("pki", "logs"):
            (self.dir / sub).mkdir()
        self._state = procs.PlaneState(self.dir, self.run_id)
        self._state.write()

    def _pki(self) -> None:
        pki = self.dir / "pki"
        self.ca = certs.CertAuthority(pki, f"{naming.PROJECT} {self.run_id} CA")
        first_service_ip = str(next(ipaddress.ip_network(self.service_cidr).hosts()))
        self.apiserver_cert = self.ca.issue(
            "apiserver", "kube-apiserver", server=True, ips=["127.0.0.1", first_service_ip],
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local"])
        self.admin_cert = self.ca.issue("admin", ADMIN_USER, organizations=["system:masters"],
                                        client=True)
        self.kcm_cert = self.ca.issue("kcm-client", "system:kube-controller-manager", client=True)
        self.kcm_serving = self.ca.issue("kcm-serving", "kube-controller-manager", server=True,
                                         ips=["127.0.0.1"], dns_names=["localhost"])
        if self.kubelets:
            # the API server's identity towards the kubelets (exec, logs): kubeadm's
            # apiserver-kubelet-client, allowed by the kubelets' webhook authorization
            self.kubelet_client_cert = self.ca.issue(
                "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                organizations=["system:masters"], client=True)
        self.sa_key, self.sa_pub = certs.signing_key(pki)
        self._tls = ssl.create_default_context(cafile=str(self.ca.cert))
        self._tls.load_cert_chain(str(self.admin_cert.cert), str(self.admin_cert.key))

    # -- processes ------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: Sequence[str]) -> _Running:
        log = self.dir / "logs" / f"{name}.log"
        proc = spawn(argv, log_path=str(log))
        rec = procs.ProcRecord(name, proc.pid, procs.start_time(proc.pid) or "",
                               tuple(str(a) for a in argv))
        assert self._state is not None
        self._state.add(rec)
        running = _Running(name, proc, log, rec)
        self._running.append(running)
        return running

    def _start(self, name: str, argv_for: Callable[[int], list[str]],
               ready: Callable[[_Running, int], tuple[bool, str]],
               port: int | None = None) -> tuple[_Running, int]:
        """Start `name` on a free port (or on `port`, once) and wait until `ready` says so;
        retries with another port when the one chosen was taken in between."""
        t = time.monotonic()
        fixed = port
        for attempt in range(1, (PORT_ATTEMPTS if fixed is None else 1) + 1):
            port = fixed if fixed is not None else procs.free_port()
            running = self._spawn(name, argv_for(port))
            last = ""

            def check(running: _Running = running, port: int = port) -> tuple[bool, str]:
                if running.proc.poll() is not None:
                    return False, "exited"
                return ready(running, port)

            polled = poll(check, lambda r: r[0] or r[1] == "exited", self.ready_timeout, 0.1)
            ok, last = polled.value if polled.value else (False, "no answer")
            if ok:
                self.timings[name] = time.monotonic() - t
                return running, port
            tail = log_tail(running.log)
            self._stop_one(running)
            if last == "exited" and "address already in use" in tail and attempt < PORT_ATTEMPTS:
                self._status(f"  {name}: port {port} was taken, retrying with another")
                continue
            if last == "exited":
                cause = (f"it exited with status {running.proc.returncode} before becoming "
                         f"ready (log {running.log})")
            else:
                cause = (f"it never became ready within {self.ready_timeout:g}s "
                         f"(last answer: {last.strip()[:600]}; log {running.log})")
            raise ControlPlaneError(f"starting {name} of control plane {self.run_id}", cause,
                                    f"last lines of {name}'s log:\n{tail}")
        raise AssertionError("unreachable")

    def _start_etcd(self, binary: Path) -> None:
        data = self.dir / "etcd"

        def argv(port: int) -> list[str]:
            url = f"http://127.0.0.1:{port}"
            return [str(binary), f"--name={self.context}", f"--data-dir={data}",
                    f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
                    "--listen-peer-urls=http://localhost:0", "--unsafe-no-fsync=true",
                    "--log-level=warn"]

        def ready(r: _Running, port: int) -> tuple[bool, str]:
            status, body = _get(f"http://127.0.0.1:{port}/health")
            return status == 200 and '"health":"true"' in body.replace(" ", ""), f"{status} {body}"

        _, port = self._start("etcd", argv, ready)
        self.etcd_url = f"http://127.0.0.1:{port}"

    # -- fault steps: the API server down for a while ----------------------------------------
    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (SIGTERM, then SIGKILL after 5 s) for a fault step; etcd, the
        controller manager and the relay keep running. `start_apiserver` starts it again."""
        running = next((r for r in self._running if r.name == "kube-apiserver"), None)
        if running is None:
            raise ControlPlaneError(f"stopping kube-apiserver of control plane {self.run_id}",
                                    "it is not running")
        err = self._stop_one(running)
        if err:
            raise ControlPlaneError(f"stopping kube-apiserver of control plane {self.run_id}", err)

    @property
    def apiserver_running(self) -> bool:
        return any(r.name == "kube-apiserver" and r.proc.poll() is None for r in self._running)

    def start_apiserver(self) -> None:
        """Start a stopped kube-apiserver again on the same port (every kubeconfig and the
        relay name it) and wait until it is ready. Nothing to do when it runs."""
        if self.apiserver_running or not self.server:
            return
        self._start_apiserver(components.find("kube-apiserver"),
                              port=int(self.server.rsplit(":", 1)[1]))

    def _start_apiserver(self, binary: Path, port: int | None = None) -> None:
        pki = self.dir / "pki"

        def argv(port: int) -> list[str]:
            return [str(binary),
                    f"--etcd-servers={self.etcd_url}",
                    "--bind-address=127.0.0.1", f"--secure-port={port}",
                    # advertised in the `kubernetes` Service's endpoints, which the reconciler
                    # would refuse to write for a loopback address: no reconciler, no host IP
                    "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
                    f"--cert-dir={pki}",
                    f"--tls-cert-file={self.apiserver_cert.cert}",
                    f"--tls-private-key-file={self.apiserver_cert.key}",
                    f"--client-ca-file={self.ca.cert}",
                    f"--service-cluster-ip-range={self.service_cidr}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={self.sa_pub}",
                    f"--service-account-signing-key-file={self.sa_key}",
                    "--authorization-mode=" + ("Node,RBAC" if self.kubelets else "RBAC"),
                    "--allow-privileged=true", "--profiling=false",
                    *self._kubelet_args()]

        def ready(r: _Running, port: int) -> tuple[bool, str]:
            status, body = _get(f"https://127.0.0.1:{port}/readyz?verbose", self._tls)
            return status == 200, f"{status} {body}" if status else body

        _, port = self._start("kube-apiserver", argv, ready, port)
        self.server = f"https://127.0.0.1:{port}"
        certs.write_kubeconfig(self.kubeconfig, certs.kubeconfig(
            self.server, self.ca.cert.read_bytes(), self.admin_cert, cluster=self.context,
            user=ADMIN_USER))

    def _kubelet_args(self) -> list[str]:
        if not self.kubelets:
            return []
        args = ["--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={self.kubelet_client_cert.cert}",
                f"--kubelet-client-key={self.kubelet_client_cert.key}",
                f"--kubelet-certificate-authority={self.ca.cert}",
                "--kubelet-preferred-address-types=InternalIP"]
        if self.egress_config is not None:
            args.append(f"--egress-selector-config-file={self.egress_config}")
        return args

    def kubelet_serving_cert(self, node: str, address: str) -> certs.Issued:
        """The serving certificate of node `node`'s kubelet (the API server checks it against
        the run's CA)."""
        return self.ca.issue(f"kubelet-{node}", f"system:node:{node}", server=True,
                             ips=[address], dns_names=[node])

    def _start_kcm(self, binary: Path) -> None:
        kc = certs.write_kubeconfig(self.dir / "kcm.kubeconfig", certs.kubeconfig(
            self.server, self.ca.cert.read_bytes(), self.kcm_cert, cluster=self.context,
            user="system:kube-controller-manager"))

        def argv(port: int) -> list[str]:
            # no --authentication/authorization-kubeconfig: its own endpoints serve only the
            # always-allowed /healthz, /readyz and /livez, and delegated authentication would
            # look for a front-proxy CA this API server does not have (a log full of errors)
            return [str(binary), f"--kubeconfig={kc}",
                    "--bind-address=127.0.0.1", f"--secure-port={port}",
                    f"--tls-cert-file={self.kcm_serving.cert}",
                    f"--tls-private-key-file={self.kcm_serving.key}",
                    f"--controllers={CONTROLLERS_WITH_KUBELETS if self.kubelets else CONTROLLERS}",
                    "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={self.sa_key}",
                    f"--root-ca-file={self.ca.cert}",
                    *(("--allocate-node-cidrs=true", f"--cluster-cidr={self.cluster_cidr}",
                       "--node-cidr-mask-size=24") if self.cluster_cidr else ())]

        sa_url = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"

        def ready(r: _Running, port: int) -> tuple[bool, str]:
            status, body = _get(f"https://127.0.0.1:{port}/healthz", self._tls)
            if status != 200:
                return False, f"/healthz: {status} {body}"
            # healthy is not working: the serviceaccount controller has made default/default
            status, body = _get(sa_url, self._tls)
            return status == 200, f"ServiceAccount default/default: {status} {body[:200]}"

        self._start("kube-controller-manager", argv, ready)

    def _start_scheduler(self, binary: Path) -> None:
        client = self.ca.issue("scheduler-client", "system:kube-scheduler", client=True)
        serving = self.ca.issue("scheduler-serving", "kube-scheduler", server=True,
                                ips=["127.0.0.1"], dns_names=["localhost"])
        kc = certs.write_kubeconfig(self.dir / "scheduler.kubeconfig", certs.kubeconfig(
            self.server, self.ca.cert.read_bytes(), client, cluster=self.context,
            user="system:kube-scheduler"))

        def argv(port: int) -> list[str]:
            return [str(binary), f"--kubeconfig={kc}", "--bind-address=127.0.0.1",
                    f"--secure-port={port}", f"--tls-cert-file={serving.cert}",
                    f"--tls-private-key-file={serving.key}", "--leader-elect=false"]

        def ready(r: _Running, port: int) -> tuple[bool, str]:
            status, body = _get(f"https://127.0.0.1:{port}/healthz", self._tls)
            return status == 200, f"/healthz: {status} {body}"

        self._start("kube-scheduler", argv, ready)

    def _read_versions(self, binaries: dict[str, Path]) -> None:
        status, body = _get(f"{self.etcd_url}/version")
        if status == 200:
            self.versions["etcd"] = json.loads(body).get("etcdserver", "?")
        status, body = _get(f"{self.server}/version", self._tls)
        if status == 200:
            self.versions["kube-apiserver"] = json.loads(body).get("gitVersion", "?")
        for name in ("kube-controller-manager", "kube-scheduler"):
            if name in binaries:
                res = run([str(binaries[name]), "--version"], timeout=30)
                self.versions[name] = (res.stdout.split() or ["?"])[-1]

    # -- clients --------------------------------------------------------------------------------
    def api_client(self):
        """A `kubernetes` ApiClient as the admin (system:masters)."""
        # the kubernetes client (~1 s) loads for kube backends only
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig), context=self.context)

    def client_cert(self, user: str, groups: Sequence[str] = ()) -> certs.Issued:
        """A client certificate for `user` in `groups`, from the run's CA (the admin's for
        ADMIN_USER). What it may do is up to RBAC: bind it a (Cluster)Role."""
        if user == ADMIN_USER:
            return self.admin_cert
        if user not in self._client_certs:
            stem = f"user-{len(self._client_certs)}"
            self._client_certs[user] = self.ca.issue(stem, user, organizations=groups, client=True)
        return self._client_certs[user]

    def kubeconfig_for_netns(self, netns: str, user: str = ADMIN_USER,
                             groups: Sequence[str] = ()) -> Path:
        """A kubeconfig for processes inside harness network namespace `netns`: its server is
        that namespace's own 127.0.0.1:<relay port>, relayed to the API server. As the admin
        unless `user` (and `groups`) name another identity, e.g. an engine's own."""
        if not self._is_up:
            raise ControlPlaneError(f"making a kubeconfig for {netns}", "the plane is not up")
        key = (netns, user)
        if key in self._netns_kubeconfigs:
            return self._netns_kubeconfigs[key]
        if self._relay is None:
            api_host, api_port = self.server.removeprefix("https://").rsplit(":", 1)
            self._relay = Relay((api_host, int(api_port)), log=self._status)
            self._relay.start()
        host, port = self._relay.add(netns, "127.0.0.1", self.relay_port)
        cert = self.client_cert(user, groups)
        suffix = "" if user == ADMIN_USER else f"-{cert.cert.stem}"
        path = certs.write_kubeconfig(self.dir / f"{netns}{suffix}.kubeconfig", certs.kubeconfig(
            f"https://{host}:{port}", self.ca.cert.read_bytes(), cert, cluster=self.context,
            user=user))
        self._netns_kubeconfigs[key] = path
        return path

    def release_netns(self, netns: str) -> None:
        """Stop relaying into `netns` (call before deleting it: an open socket keeps a deleted
        namespace alive in the kernel)."""
        if self._relay is not None:
            self._relay.remove(netns)
        for key in [k for k in self._netns_kubeconfigs if k[0] == netns]:
            self._netns_kubeconfigs.pop(key).unlink(missing_ok=True)

    @property
    def relay(self) -> Relay | None:
        return self._relay

    # -- down -----------------------------------------------------------------------------------
    def _stop_one(self, running: _Running) -> str | None:
        code = stop(running.proc, grace=5.0)
        if running in self._running:
            self._running.remove(running)
        if code is None:
            return f"{running.name} (pid {running.proc.pid}) still runs after SIGKILL"
        if self._state is not None and self.dir.exists():
            self._state.drop(running.proc.pid)
        return None

    def _down_at_exit(self) -> None:
        try:
            self.down()
        except ControlPlaneError as exc:
            print(f"netpol-proof: {exc}", file=sys.stderr)

    def down(self) -> None:
        """Stop the relay and every process (last started first), remove the state directory.
        Keeps going past failures and reports them; idempotent."""
        t = time.monotonic()
        atexit.unregister(self._down_at_exit)
        errors = []
        if self._relay is not None:
            try:
                self._relay.stop()
            except BackendError as exc:
                errors.append(str(exc))
            self._relay = None
        self._netns_kubeconfigs.clear()
        for running in reversed(list(self._running)):
            t_one = time.monotonic()
            err = self._stop_one(running)
            self.timings[f"stop {running.name}"] = time.monotonic() - t_one
            if err:
                errors.append(err)
        if not errors and self._state is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._state = None
        self._is_up = False
        self.timings["down"] = time.monotonic() - t
        if errors:
            raise ControlPlaneError(f"tearing down control plane {self.run_id}",
                                    "; ".join(errors) + f" (left {self.dir} for `python -m "
                                    "harness cleanup`)")
