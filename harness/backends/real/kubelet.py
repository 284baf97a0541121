"""The harness as kubelet: one EmulatedKubelet per emulated node realises the Pods bound to it.

Why a kubelet of our own: a real kubelet needs cgroup v2 (or a container runtime this machine
does not have), and what engines read from the API is only what a kubelet writes: the Node
(addresses, spec.podCIDR, Ready) and each Pod's status (podIP(s), hostIP, phase, Ready). That
is exactly what Calico's own Felix tests do in their Kubernetes-datastore mode. So:
- `register()` creates the Node object and writes its status (InternalIP, Ready) through the
  status subresource;
- a watch on Pods with `spec.nodeName=<node>` (the field selector a real kubelet uses) realises
  each new Pod: a network namespace wired into the node (harness.backends.real.nodes), an
  address from the node's pod CIDR, /etc/netns/<ns>/resolv.conf with the Pod's real namespace in
  the search path, its processes (a `Runtime` decides which: the backend's pod servers, CoreDNS),
  then its status through the status subresource: podIP(s), hostIP, phase Running with Ready
  False as soon as the processes run, and Ready True only once every process serves;
- a Pod marked for deletion is torn down (processes, namespace, address) and its deletion
  confirmed with grace period 0, as a kubelet does when its containers are gone; a Pod that
  vanished from the API is torn down too.
Pods are never restarted, probed again or evicted: no container runtime, no probes after Ready.
The pod namespaces are named np-<run>-p<N> (harness.naming), so `cleanup` finds them.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable, Protocol, Sequence

from harness import naming
from harness.backends.local import netns as nsx
from harness.backends.real import nodes as nodesx
from harness.errors import BackendError
from harness.shell import spawn, stop
from harness.waits import poll

Obj = dict[str, Any]
#: how long a pod's processes may take to serve before its realisation is reported as failed
READY_TIMEOUT = 60.0
#: the server side of a watch ends after this long; the kubelet then lists and watches again
WATCH_SECONDS = 120
KUBELET_VERSION = "netpol-proof-emulated"


@dataclass
class Process:
    """One process of a pod (what a container would be): its argv, run inside the pod's netns,
    and the check that says it serves."""

    name: str
    argv: Sequence[str]
    ready: Callable[[], bool]
    env: dict[str, str] | None = None


class Runtime(Protocol):
    """What runs in a pod: the backend decides (pod servers, CoreDNS)."""

    def processes(self, pod: Obj, netns: str, ip: str) -> list[Process]: ...

    def released(self, pod: Obj, netns: str) -> None:
        """Called before the pod's namespace is deleted (e.g. to close a relay into it)."""


@dataclass
class RealisedPod:
    uid: str
    namespace: str
    name: str
    netns: str
    veth: str
    ip: str
    obj: Obj
    procs: list = field(default_factory=list)
    ready: bool = False
    error: str = ""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def node_manifest(node: nodesx.NodeNet, run_id: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name,
                         "labels": {**naming.ownership_labels(run_id),
                                    "kubernetes.io/hostname": node.name,
                                    "kubernetes.io/os": "linux"}},
            "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}}


def node_status(node: nodesx.NodeNet) -> Obj:
    t = now()
    return {"status": {
        "addresses": [{"type": "InternalIP", "address": node.address},
                      {"type": "Hostname", "address": node.name}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "emulated by netpol-proof: pods are network namespaces",
                        "lastHeartbeatTime": t, "lastTransitionTime": t}],
        "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                     "operatingSystem": "linux", "architecture": "amd64",
                     "containerRuntimeVersion": "none://netpol-proof", "osImage": "",
                     "kernelVersion": os.uname().release, "machineID": "", "systemUUID": "",
                     "bootID": ""}}}


def pod_status(node: nodesx.NodeNet, rp: RealisedPod, started: str, ready: bool,
               message: str = "") -> Obj:
    """The status a kubelet writes for a running pod; Ready only when every process serves."""
    t = now()
    flag = "True" if ready else "False"
    conds = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
             {"type": "Initialized", "status": "True", "lastTransitionTime": started},
             {"type": "ContainersReady", "status": flag, "lastTransitionTime": t},
             {"type": "Ready", "status": flag, "lastTransitionTime": t}]
    if message:
        for c in conds[2:]:
            c.update(reason="ContainersNotReady", message=message)
    containers = [{"name": c.get("name"), "image": c.get("image", ""), "imageID": "",
                   "ready": ready, "started": True, "restartCount": 0,
                   "state": {"running": {"startedAt": started}}}
                  for c in (rp.obj.get("spec") or {}).get("containers") or []]
    return {"status": {"phase": "Running", "hostIP": node.address,
                       "hostIPs": [{"ip": node.address}], "podIP": rp.ip,
                       "podIPs": [{"ip": rp.ip}], "startTime": started,
                       "conditions": conds, "containerStatuses": containers}}


class EmulatedKubelet:
    """The kubelet of one emulated node (see the module docstring)."""

    def __init__(self, api, node: nodesx.NodeNet, run_id: str, workdir: str, runtime: Runtime,
                 counter: itertools.count | None = None, resolv_timeout: int = 1,
                 log: Callable[[str], None] | None = None):
        self.api, self.node, self.run_id = api, node, run_id
        self.prefix = naming.local_prefix(run_id)
        self.workdir = workdir
        self.runtime = runtime
        self.counter = counter or itertools.count()
        self.resolv_timeout = resolv_timeout
        self.ipam = nodesx.PodAddresses(node)
        self._log = log or (lambda msg: None)
        self._pods: dict[str, RealisedPod] = {}
        self._gone: set[str] = set()             # uids torn down: never realised again
        self._locks: dict[str, threading.Lock] = {}
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix=f"kubelet-{node.index}")
        self._thread: threading.Thread | None = None
        self._resp = None
        #: teardown failures (returned by stop); realisation failures go to the Pod's status
        self.errors: list[str] = []

    # -- node -----------------------------------------------------------------------------------
    def register(self) -> None:
        """Create the Node object and write its status (addresses, Ready)."""
        core = self.api.core
        try:
            core.create_node(node_manifest(self.node, self.run_id))
            core.patch_node_status(self.node.name, node_status(self.node))
        except self.api.client.ApiException as exc:
            raise BackendError(f"registering Node {self.node.name}",
                               f"{exc.status} {exc.reason}: {str(exc.body)[:300]}") from None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name=f"kubelet-{self.node.name}")
            self._thread.start()

    def stop(self) -> list[str]:
        """Stop watching and tear every pod down; returns teardown errors."""
        self._stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001 - already closed
                pass
        if self._thread is not None:
            self._thread.join(10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for uid in list(self._pods):
            self._teardown(uid, confirm=False)
        return list(self.errors)

    def pods(self) -> list[RealisedPod]:
        return list(self._pods.values())

    def netns_of(self, namespace: str, name: str) -> str | None:
        for rp in list(self._pods.values()):
            if rp.namespace == namespace and rp.name == name:
                return rp.netns
        return None

    def idle(self, namespaces: set[str]) -> bool:
        """True when no pod of `namespaces` is realised any more."""
        return not any(rp.namespace in namespaces for rp in list(self._pods.values()))

    # -- watch ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        selector = f"spec.nodeName={self.node.name}"
        while not self._stop.is_set():
            try:
                listed = self.api.core.list_pod_for_all_namespaces(
                    field_selector=selector, _preload_content=False)
                data = json.loads(listed.data)
                self._reconcile(data.get("items") or [])
                self._watch(selector, (data.get("metadata") or {}).get("resourceVersion"))
            except Exception as exc:  # noqa: BLE001 - the API restarting, a dropped watch
                if self._stop.is_set():
                    return
                self._log(f"kubelet {self.node.name}: watch: {type(exc).__name__}: {exc}")
                self._stop.wait(0.5)

    def _watch(self, selector: str, rv: str | None) -> None:
        # the kubernetes client (~1 s) loads for kube backends only
        from kubernetes.watch.watch import iter_resp_lines

        resp = self.api.core.list_pod_for_all_namespaces(
            field_selector=selector, watch=True, resource_version=rv,
            allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS, _preload_content=False)
        self._resp = resp
        try:
            for line in iter_resp_lines(resp):
                if self._stop.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return                   # e.g. 410 Gone: list again
                if kind == "DELETED":
                    self._submit_teardown(obj)
                elif kind in ("ADDED", "MODIFIED"):
                    self._handle(obj)
        finally:
            self._resp = None
            resp.release_conn()

    def _reconcile(self, items: list[Obj]) -> None:
        present = {_meta(p).get("uid") for p in items}
        for uid, rp in list(self._pods.items()):
            if uid not in present:
                self._submit_teardown(rp.obj)
        for p in items:
            self._handle(p)

    def _handle(self, pod: Obj) -> None:
        meta = _meta(pod)
        uid = meta.get("uid")
        if not uid:
            return
        if meta.get("deletionTimestamp"):
            self._submit_teardown(pod, confirm=True)
        elif uid not in self._pods and uid not in self._gone:
            phase = (pod.get("status") or {}).get("phase")
            if phase not in ("Succeeded", "Failed"):
                with self._mutex:
                    if uid in self._gone or uid in self._pods:
                        return
                    self._pods[uid] = RealisedPod(uid, meta.get("namespace", ""),
                                                  meta.get("name", ""), "", "", "", pod)
                self._pool.submit(self._realise_safely, uid)

    def _submit_teardown(self, pod: Obj, confirm: bool = False) -> None:
        uid = str(_meta(pod).get("uid") or "")
        with self._mutex:
            if uid in self._gone:
                return
            self._gone.add(uid)
        if not self._stop.is_set():
            self._pool.submit(self._teardown, uid, confirm, pod)

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        """One lock per pod name: a Pod recreated under the same name (the next scenario) uses
        the same interface name, so its realisation waits for the old one's teardown."""
        with self._mutex:
            return self._locks.setdefault(f"{namespace}/{name}", threading.Lock())

    # -- realise / tear down --------------------------------------------------------------------
    def _realise_safely(self, uid: str) -> None:
        try:
            self._realise(uid)
        except Exception as exc:  # noqa: BLE001 - reported on the Pod and in the run's log
            rp = self._pods.get(uid)
            what = f"{rp.namespace}/{rp.name}" if rp else uid
            self._log(f"kubelet {self.node.name}: realising pod {what}: {exc}")
            if rp is not None:
                rp.error = str(exc)

    def _realise(self, uid: str) -> None:
        rp = self._pods.get(uid)
        if rp is None:
            return
        with self._lock(rp.namespace, rp.name):
            if uid in self._gone or self._stop.is_set():
                return
            started = now()
            rp.veth = nodesx.veth_name(rp.namespace, rp.name)
            rp.ip = self.ipam.allocate()
            rp.netns = f"{self.prefix}p{next(self.counter)}"
            self._note(rp, "realising")
            nodesx.wire_pod(self.node, rp.netns, rp.veth, rp.ip)
            nsx.write_resolv_conf(rp.netns, rp.namespace, self.resolv_timeout)
            processes = self.runtime.processes(rp.obj, rp.netns, rp.ip)
            for p in processes:
                log = os.path.join(self.workdir, f"{rp.netns}-{p.name}.log")
                rp.procs.append(spawn(["ip", "netns", "exec", rp.netns, *p.argv], env=p.env,
                                      log_path=log))
            self._write_status(rp, pod_status(self.node, rp, started, False,
                                              "starting its servers"))
            polled = poll(lambda: [p.ready() for p in processes] +
                          [proc.poll() is None for proc in rp.procs],
                          lambda states: all(states) or uid in self._gone or self._stop.is_set(),
                          READY_TIMEOUT, 0.05)
            if uid in self._gone or self._stop.is_set():
                return
            if not polled.ok:
                dead = [p.name for p, proc in zip(processes, rp.procs, strict=True)
                        if proc.poll() is not None]
                why = (f"exited: {', '.join(dead)}" if dead else
                       f"not serving after {READY_TIMEOUT:g}s")
                self._write_status(rp, pod_status(self.node, rp, started, False, why))
                raise BackendError(f"starting the processes of pod {rp.namespace}/{rp.name}",
                                   f"{why} (logs in {self.workdir}/{rp.netns}-*.log)")
            rp.ready = True
            self._write_status(rp, pod_status(self.node, rp, started, True))

    def _write_status(self, rp: RealisedPod, body: Obj) -> None:
        try:
            self.api.core.patch_namespaced_pod_status(rp.name, rp.namespace, body)
        except self.api.client.ApiException as exc:
            if exc.status == 404:
                return                       # deleted meanwhile: the teardown follows
            raise BackendError(f"writing the status of pod {rp.namespace}/{rp.name}",
                               f"{exc.status} {exc.reason}: {str(exc.body)[:300]}") from None

    def _note(self, rp: RealisedPod, what: str) -> None:
        with open(os.path.join(self.workdir, "pods.log"), "a") as fh:
            fh.write(f"{now()} {self.node.name} {what} {rp.namespace}/{rp.name} uid={rp.uid} "
                     f"netns={rp.netns} veth={rp.veth} ip={rp.ip}\n")

    def _teardown(self, uid: str, confirm: bool, pod: Obj | None = None) -> None:
        rp = self._pods.get(uid)
        meta = _meta(pod or (rp.obj if rp else {}))
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        try:
            with self._lock(ns, name):
                with self._mutex:
                    self._gone.add(uid)
                rp = self._pods.get(uid)
                if rp is not None:
                    for proc in rp.procs:
                        if stop(proc, grace=2.0) is None:
                            self.errors.append(f"pod {ns}/{name}: pid {proc.pid} survived SIGKILL")
                    if rp.netns:
                        try:
                            self.runtime.released(rp.obj, rp.netns)
                        finally:
                            err = nsx.delete_netns(rp.netns)
                            if err:
                                self.errors.append(err)
                    if rp.ip:
                        self.ipam.release(rp.ip)
                    self._note(rp, "removed")
                    self._pods.pop(uid, None)
            if confirm:
                try:
                    self.api.core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
                except self.api.client.ApiException as exc:
                    if exc.status != 404:
                        raise
        except Exception as exc:  # noqa: BLE001 - reported, teardown goes on
            msg = f"kubelet {self.node.name}: removing pod {ns}/{name}: {exc}"
            self._log(msg)
            self.errors.append(msg)
