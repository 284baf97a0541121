"""The `kind` backend: one kind cluster per CNI (`netpol-proof-<cni>`), brought up in small
ordered steps with a status line each, then the shared Kubernetes topology code (backends/kube/).

Why steps: bring-up fails in many places (a binary, the node image pull, the CNI, the nodes,
CoreDNS, the probe image); each step says what it does and how long it took, and each wait names
what never became ready (kind's own `create/create.go` runs small actions, each with a status
line). The cluster uses a PRIVATE kubeconfig file under the cache directory and an explicit
context (`kind-<name>`), so the user's kubeconfig is never read or switched. Creation runs
under a file lock, and a users file lets parallel pytest-xdist workers of one session share the
cluster: the first creates it, the last one out deletes it (unless --keep-cluster). NOT RUN
LIVE HERE: this machine has no Docker engine (docs/kind.md).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from filelock import FileLock

from harness import naming
from harness.backends import cni as cnis
from harness.backends.kind import commands as kc
from harness.backends.kind import config as kind_config
from harness.backends.kind.binaries import DEFAULT_CACHE, go_arch, resolve
from harness.backends.kube.agent import AGENT_PODS, AgentRestarts
from harness.backends.kube.api import KubeApi, status_line
from harness.backends.kube.tenants import SharedCluster
from harness.backends.kube.topology import KubeTopology
from harness.backends.kube.waits import wait_cni, wait_coredns, wait_nodes_ready
from harness.capabilities import Capabilities
from harness.errors import BackendError, ExecError, UsageError
from harness.shell import run

NODES = 3
__all__ = ["KindBackend", "verify_identity", "render", "render_text"]
render, render_text = kind_config.render, kind_config.render_text


def verify_identity(name: str, server: str, node_names: list[str]) -> None:
    """Refuse to write to a cluster that is not the kind cluster `name` (docs/sources.md §8 rule 2): its
    API server must be on loopback and its nodes named `<name>-control-plane` / `<name>-worker*`."""
    host = urlparse(server).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise BackendError(f"checking the identity of kind cluster {name}",
                           f"its API server {server} is not on loopback; refusing to use it")
    expected = {f"{name}-control-plane"} | {f"{name}-worker{s}" for s in ("", "2", "3", "4")}
    strangers = [n for n in node_names if n not in expected]
    if not node_names or strangers:
        raise BackendError(f"checking the identity of kind cluster {name}",
                           f"nodes {strangers or 'none'} are not {name}'s; refusing to use it")


class KindBackend(AgentRestarts, SharedCluster):
    """A kind cluster with one CNI; see the module docstring."""

    name = "kind"

    def __init__(self, profile: str = "kindnet", run_id: str | None = None,
                 probe_timeout: float = 1.0, keep_cluster: bool = False,
                 reuse_cluster: bool = False, cache_dir: str | os.PathLike | None = None,
                 ready_timeout: float = 600.0, status: Callable[[str], None] = status_line,
                 image: str = cnis.AGNHOST_IMAGE):
        try:
            self.spec = cnis.spec(profile)
        except ValueError as exc:
            raise UsageError(f"--cni: {exc}") from None
        self.profile = profile
        self.run_id = run_id or naming.new_run_id()
        self.probe_timeout = probe_timeout
        self.keep_cluster, self.reuse_cluster = keep_cluster, reuse_cluster
        self.cache_dir = Path(cache_dir or DEFAULT_CACHE).absolute()  # kind mounts need absolute paths
        self.ready_timeout = ready_timeout
        self.status = status
        #: the probe pods' image as pulled (the setting --agnhost-image), and the tag the pods
        #: name once it is loaded into the nodes
        self.image, self.image_tag = image, cnis.image_tag(image)
        #: where the CNI agent's pods are (fault steps restart them)
        self.agent_pods = AGENT_PODS.get(profile, ())
        self.cluster = naming.cluster_name(profile)
        self.home = self.cache_dir / "clusters" / self.cluster
        self.kubeconfig = str(self.home / "kubeconfig")
        self.context = f"kind-{self.cluster}"
        self.tools: kc.Tools | None = None
        self.topology: KubeTopology | None = None
        #: set once this backend created or attached to the cluster: only then may down()
        #: delete it (a cluster refused as "already exists" is never touched)
        self.attached = False

    def capabilities(self) -> Capabilities:
        """The CNI's declarations (harness.backends.cni), and the fault steps kind offers: a
        restart of the CNI agent (its pods deleted, its DaemonSet replaces them) where the CNI
        enforces anything; never holding an engine down, never the API server."""
        base = cnis.capabilities(self.profile)
        supported, notes = set(base.supported), dict(base.notes)
        self.declare_faults(supported, notes, f"restarts only: the pods matching "
                                              f"{' or '.join(map(str, self.agent_pods))} are "
                                              f"deleted and their DaemonSet replaces them")
        return Capabilities(frozenset(supported), base.deny_response, base.enforces, notes)

    # -- fault steps: restarts of the CNI agent (agent.AgentRestarts) ---------------------------
    HOLD_REFUSAL = ("not on kind: stop, kill and start would hold the CNI agent down, which "
                    "means changing its DaemonSet; kind offers restarts of the agent only "
                    "({restart: engine}, or with signal: KILL)")
    APISERVER_REFUSAL = ("not on kind: the API server runs inside kind's control-plane "
                         "container, which netpol-proof does not stop")

    def _engine_fault_refusal(self) -> str | None:
        if not cnis.capabilities(self.profile).enforces:
            return f"nothing enforces on {self.profile}: there is no policy engine to restart"
        return super()._engine_fault_refusal()

    def _fault_where(self) -> str:
        return f" on kind cluster {self.cluster}"

    # -- bring-up ---------------------------------------------------------------------------
    def up(self) -> None:
        if self.topology is not None:
            return
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.home / "create.lock")):
                self._step(1, "binaries (kind, kubectl, helm; pinned + SHA-256)", self._binaries)
                created = self._step(2, f"cluster {self.cluster}", self._cluster)
                # before anything is written to it: is this really our kind cluster?
                api = KubeApi(self.kubeconfig, self.context)
                verify_identity(self.cluster, api.server,
                                [n["metadata"]["name"] for n in api.list_nodes()])
                if created:
                    self._step(3, f"install CNI {self.profile}", self._install_cni)
                self._step(4, f"{self.profile} ready (its own condition)", lambda: wait_cni(
                    api, self.spec.workloads, self.spec.tigera_status, self.ready_timeout,
                    status=self.status))
                self._step(5, f"{NODES} nodes Ready",
                           lambda: wait_nodes_ready(api, NODES, self.ready_timeout))
                self._step(6, "CoreDNS Ready", lambda: wait_coredns(api, self.ready_timeout))
                if created:
                    self._step(7, "probe image pre-pull + kind load", self._load_image)
                self._users(add=True)
            self.topology = KubeTopology(api, self.run_id, True, self.ready_timeout,
                                         self.status, image=self.image_tag,
                                         checkpoint=self._deploying)
        except BaseException:   # Ctrl-C and failures: never leave a half-made cluster behind
            try:
                self.down()
            except Exception as exc:  # noqa: BLE001 - the bring-up error is the one to report
                self.status(f"[kind {self.profile}] cleanup after the failure also failed: {exc}")
            raise

    def _step(self, n: int, title: str, fn: Callable):
        self.status(f"[kind {self.profile}] {n}/7 {title} ...")
        started = time.monotonic()
        try:
            out = fn()
        except BaseException:
            self.status(f"[kind {self.profile}] {n}/7 {title}: FAILED after "
                        f"{time.monotonic() - started:.1f}s")
            raise
        self.status(f"[kind {self.profile}] {n}/7 {title}: ok ({time.monotonic() - started:.1f}s)")
        return out

    def _binaries(self) -> None:
        bins = self.cache_dir / "bin"
        docker = resolve_docker()
        self.tools = kc.Tools(resolve("kind", bins, self.status), resolve("kubectl", bins, self.status),
                              resolve("helm", bins, self.status) if self.profile == "cilium" else "helm",
                              docker, self.kubeconfig, self.context)
        self._check_cgroup(docker)

    def _check_cgroup(self, docker: str) -> None:
        """Node images for Kubernetes 1.35+ need a cgroup v2 host (docs/sources.md §1.9 pitfall 5): on
        cgroup v1 the kubelet health checks time out much later with a far vaguer message."""
        res = self._run(kc.docker_cgroup_version(docker), "asking Docker for its cgroup version", 60)
        version = res.stdout.strip()
        if version == "1":
            raise BackendError("checking the container engine",
                               f"Docker runs on cgroup v1; {cnis.NODE_IMAGE.split('@')[0]} needs "
                               f"cgroup v2 (use a newer Docker/host, or kind's v1.34 node image)")
        if version != "2":
            self.status(f"  warning: Docker reports cgroup version {version or '(nothing)'}; "
                        f"the node image needs cgroup v2")

    def _run(self, argv: list[str], doing: str, timeout: float = 900.0):
        return run(argv, timeout=timeout, check=True, doing=doing)

    def existing_clusters(self) -> list[str]:
        assert self.tools is not None
        res = self._run(kc.kind_get_clusters(self.tools.kind), "listing kind clusters", 60)
        return [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]

    def _cluster(self) -> bool:
        """Create the cluster, or attach to it; True when it was created now."""
        assert self.tools is not None
        if self.cluster in self.existing_clusters():
            users = self._read_users()
            same_session = any(u["run_id"][:6] == self.run_id[:6] for u in users)
            if not (self.reuse_cluster or same_session):
                raise BackendError(f"creating kind cluster {self.cluster}",
                                   "it already exists; pass --reuse-cluster to use it, or delete "
                                   f"it: kind delete cluster --name {self.cluster}")
            self.attached = True
            self._run(kc.kind_export_kubeconfig(self.tools, self.cluster),
                      f"writing {self.cluster}'s kubeconfig to the private file {self.kubeconfig}")
            os.chmod(self.kubeconfig, 0o600)
            return False
        plugins = None
        if self.spec.needs_cni_plugins:
            plugins = str(kc.prepare_cni_plugins(self.cache_dir / "cni-plugins"))
        problems = kind_config.validate(kind_config.render(self.profile, plugins))
        if problems:
            raise BackendError(f"rendering the kind config for {self.cluster}", "; ".join(problems))
        cfg = self.home / "kind-config.yaml"
        cfg.write_text(kind_config.render_text(self.profile, plugins))
        self.attached = True     # kind deletes a failed create itself; delete is idempotent
        self._run(kc.kind_create(self.tools, self.cluster, str(cfg)),
                  f"creating kind cluster {self.cluster} (pulls the pinned node image)")
        os.chmod(self.kubeconfig, 0o600)
        return True

    def _install_cni(self) -> None:
        assert self.tools is not None
        for title, argv in kc.install_steps(self.profile, self.tools, self.cache_dir):
            self.status(f"  {title}")
            self._run(argv, title)

    def _load_image(self) -> None:
        assert self.tools is not None
        archive = str(self.home / "agnhost.tar")
        for argv in kc.image_prepull(self.tools, self.cluster, self.image, self.image_tag,
                                     archive, go_arch()):
            try:
                self._run(argv, f"pre-loading {self.image_tag}")
            except ExecError as exc:
                # `docker save --platform` needs Docker >= 28; an older engine has the classic
                # image store, where a plain save works (pitfall 3 is the containerd store's)
                if "--platform" not in argv or "unknown flag" not in exc.output:
                    raise
                self.status("  docker save has no --platform here; saving without it")
                self._run([a for i, a in enumerate(argv) if a != "--platform"
                           and (i == 0 or argv[i - 1] != "--platform")],
                          f"pre-loading {self.image_tag}")

    # -- sharing the cluster between workers ----------------------------------------------------
    def _users_path(self) -> Path:
        return self.home / "users.json"

    def _read_users(self) -> list[dict]:
        try:
            users = json.loads(self._users_path().read_text())
        except (OSError, ValueError):
            return []
        return [u for u in users if isinstance(u, dict) and "run_id" in u]

    def _users(self, add: bool) -> list[dict]:
        users = [u for u in self._read_users() if u["run_id"] != self.run_id]
        if add:
            users.append({"run_id": self.run_id, "pid": os.getpid(), "keep": self.keep_cluster})
        self._users_path().write_text(json.dumps(users))
        return users

    # -- teardown -------------------------------------------------------------------------------
    def down(self) -> None:
        """Remove this run's objects; delete the cluster when no other worker of the session
        uses it and --keep-cluster was not given. Carries on past failures, reports them last."""
        errors = self.down_tenants()
        try:
            self.undeploy()
        except Exception as exc:  # noqa: BLE001 - the cluster may be gone already
            errors.append(str(exc))
        self.topology = None
        if not self.attached or not self.home.exists():
            if errors:
                raise BackendError(f"tearing down kind cluster {self.cluster}", "; ".join(errors))
            return
        with FileLock(str(self.home / "create.lock")):
            others = self._users(add=False)
            live = [u for u in others if naming.pid_alive(int(u.get("pid", 0)))]
            if not live and not self.keep_cluster and self.tools is not None:
                try:
                    self._run(kc.kind_delete(self.tools, self.cluster),
                              f"deleting kind cluster {self.cluster}", 300)
                except Exception as exc:  # noqa: BLE001
                    errors.append(str(exc))
        self.attached = False
        if errors:
            raise BackendError(f"tearing down kind cluster {self.cluster}", "; ".join(errors))


def resolve_docker() -> str:
    """kind needs a container engine; say so plainly when there is none."""
    docker = shutil.which("docker")
    if not docker:
        raise BackendError("looking for docker", "the kind backend needs Docker (or "
                                                 "KIND_EXPERIMENTAL_PROVIDER=podman); not on PATH")
    return docker
