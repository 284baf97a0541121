"""The `kubeconfig` backend: an existing cluster (EKS, GKE, AKS, on-premises, or a kind cluster
someone else made), reached through one explicitly named context — with a safety guard first.

Why a guard: this backend writes to a cluster the harness did not create. It refuses any
context whose name does not start with `kind-` (and whose API server is not on loopback) unless
the user names it again with --allow-context; it minifies that one context into a private temp
kubeconfig at start, so a later `kubectl config use-context` cannot redirect the run (Tilt does
the same, docs/sources.md §8); it creates only prefixed namespaces carrying the run's ownership labels,
deletes only namespaces carrying that label and run id, and refuses cluster-scoped policies
unless --allow-cluster-scoped. The enforcement canary (harness.canary, run by the runner before
the first scenario) then tells whether this cluster enforces anything at all.

Fault steps are refused unless the user names the context a third time with
--allow-faults-on-context; then the only fault is a restart of the CNI agent by deleting its
pods, which its DaemonSet replaces (harness.backends.kube.agent). Holding an engine down (stop,
kill, start) would mean changing the user's DaemonSet, and the API server is not ours: both
stay refused, as capabilities, so such scenarios are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

import yaml

from harness import naming
from harness.backends import cni as cnis
from harness.backends.kube.agent import (
    AGENT_PODS,
    AgentPods,
    AgentRestarts,
    parse_agent_pods,
)
from harness.backends.kube.api import KubeApi, status_line
from harness.backends.kube.tenants import SharedCluster
from harness.backends.kube.topology import KubeTopology
from harness.capabilities import Capabilities
from harness.errors import BackendError, UsageError

_BASE = frozenset({"networkpolicy", "egress", "ipblock", "named-ports", "endport", "udp"})
#: kubeconfig fields holding file paths, which are relative to the file that names them
_PATH_FIELDS = {"cluster": ("certificate-authority",),
                "user": ("client-certificate", "client-key", "tokenFile")}


def kubeconfig_files(explicit: str | None = None, env: Mapping[str, str] | None = None
                     ) -> list[Path]:
    """The kubeconfig files kubectl would read: --kubeconfig, else $KUBECONFIG, else ~/.kube/config."""
    env = os.environ if env is None else env   # os.environ is a Mapping[str, str]
    if explicit:
        return [Path(explicit)]
    if env.get("KUBECONFIG"):
        return [Path(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _named(entries: Any, name: Any) -> dict | None:
    for e in entries or []:
        if isinstance(e, dict) and e.get("name") == name:
            return e
    return None


def minify(files: list[Path], context: str) -> dict:
    """A kubeconfig holding only `context`, its cluster and its user, with relative file paths
    made absolute; UsageError naming the files when any piece is missing."""
    docs = []
    for f in files:
        try:
            doc = yaml.safe_load(f.read_text()) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"--context {context}: cannot read kubeconfig {f}: {exc}") from None
        docs.append((f, doc if isinstance(doc, dict) else {}))
    where = ", ".join(str(f) for f in files)
    ctx = next(((f, c) for f, d in docs if (c := _named(d.get("contexts"), context))), None)
    if ctx is None:
        known = sorted({c["name"] for _, d in docs for c in d.get("contexts") or []
                        if isinstance(c, dict) and isinstance(c.get("name"), str)})
        raise UsageError(f"--context {context}: no such context in {where} "
                         f"(known: {', '.join(known) or 'none'})")
    spec = ctx[1].get("context") or {}
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": context,
                           "contexts": [{"name": context, "context": dict(spec)}]}
    for section, key in (("clusters", "cluster"), ("users", "user")):
        wanted = spec.get(key)
        found = next(((f, e) for f, d in docs if (e := _named(d.get(section), wanted))), None)
        if not wanted or found is None:
            raise UsageError(f"--context {context}: its {key} {wanted!r} is not defined in {where}")
        f, entry = found
        body = dict(entry.get(key) or {})
        for field in _PATH_FIELDS[key]:
            if body.get(field) and not os.path.isabs(body[field]):
                body[field] = str((f.parent / body[field]).resolve())
        out[section] = [{"name": wanted, key: body}]
    return out


def server_of(config: dict) -> str:
    return ((config.get("clusters") or [{}])[0].get("cluster") or {}).get("server", "")


def check_context(context: str | None, allow_context: str | None, server: str) -> None:
    """The guard: a `kind-` context on a loopback API server, or a context the user named again
    with --allow-context. Anything else raises UsageError saying how to allow it."""
    if not context:
        raise UsageError("--context: the kubeconfig backend needs the name of the context to use")
    if allow_context == context:
        return
    host = urlparse(server).hostname or ""
    if context.startswith("kind-") and host in ("127.0.0.1", "localhost", "::1"):
        return
    why = ("its name does not start with 'kind-'" if not context.startswith("kind-") else
           f"its API server {server or '(none)'} is not on loopback, so the 'kind-' name proves "
           f"nothing")
    raise UsageError(f"--context {context}: refusing to modify this cluster: {why}. netpol-proof "
                     f"creates namespaces and policies there; if that is intended, run again with "
                     f"--allow-context {context}")


def check_fault_context(context: str | None, allow_faults_on_context: str | None) -> None:
    """--allow-faults-on-context must name the context the run uses; UsageError naming both."""
    if allow_faults_on_context is not None and allow_faults_on_context != context:
        raise UsageError(f"--allow-faults-on-context: names context {allow_faults_on_context!r}, "
                         f"but this run uses context {context!r}; fault steps restart the CNI "
                         f"agent of the context the run uses, so name that one "
                         f"(--allow-faults-on-context {context}) or leave it out")


_HOLD = ("refused on an existing cluster: stop, kill and start hold the engine down, which "
         "would mean changing the user's DaemonSet; there netpol-proof only restarts the CNI "
         "agent ({restart: engine}, or with signal: KILL) by deleting its pods, which the "
         "DaemonSet replaces")
_APISERVER = ("refused on an existing cluster: netpol-proof never stops an API server it did "
              "not start")


class KubeconfigBackend(AgentRestarts, SharedCluster):
    """An existing cluster through one context; see the module docstring."""

    name = "kubeconfig"

    def __init__(self, profile: str = "unknown", run_id: str | None = None,
                 probe_timeout: float = 1.0, keep_cluster: bool = False,
                 reuse_cluster: bool = False, context: str | None = None,
                 allow_context: str | None = None, allow_cluster_scoped: bool = False,
                 kubeconfig: str | None = None, ready_timeout: float = 300.0,
                 status: Callable[[str], None] = status_line,
                 allow_faults_on_context: str | None = None, engine_pods: str | None = None,
                 fault_timeout: float = 300.0, image: str = cnis.AGNHOST_IMAGE):
        # keep/reuse mean nothing here: the harness never creates or deletes this cluster
        self.profile = profile
        self.run_id = run_id or naming.new_run_id()
        self.probe_timeout = probe_timeout
        self.context, self.allow_context = context, allow_context
        self.allow_cluster_scoped = allow_cluster_scoped
        self.files = kubeconfig_files(kubeconfig)
        self.ready_timeout = ready_timeout
        self.status = status
        self.private_dir: str | None = None
        self.topology: KubeTopology | None = None
        self.allow_faults_on_context = allow_faults_on_context
        #: where the CNI agent's pods are: --engine-pods, else the CNI's known places
        self.agent_pods: tuple[AgentPods, ...] = (
            (parse_agent_pods(engine_pods),) if engine_pods else AGENT_PODS.get(profile, ()))
        #: how long a restarted agent's replacement pods may take to be Ready
        self.fault_timeout = fault_timeout
        #: the probe pods' image (the setting --agnhost-image): pulled by the cluster itself
        self.image = image

    def _engine_fault_refusal(self) -> str | None:
        """Why engine faults are refused here, or None when the user allowed them."""
        if self.allow_faults_on_context is None:
            return (f"refused on an existing cluster unless named: pass "
                    f"--allow-faults-on-context {self.context or 'CONTEXT'} to let fault steps "
                    f"restart the CNI agent there (its pods are deleted, the DaemonSet replaces "
                    f"them); netpol-proof never stops anything else on a cluster it did not "
                    f"create")
        if self.allow_faults_on_context != self.context:
            return (f"--allow-faults-on-context names context "
                    f"{self.allow_faults_on_context!r}, but this run uses context "
                    f"{self.context!r}")
        if not self.agent_pods:
            return (f"netpol-proof does not know where CNI {self.profile!r} runs its agent's "
                    f"pods: pass --engine-pods NAMESPACE/SELECTOR")
        return None

    def capabilities(self) -> Capabilities:
        """The named CNI's declarations if it is one we know, else what the API accepts; the
        canary decides whether anything is enforced. Cluster-scoped policies only if allowed."""
        if self.profile in cnis.SPECS:
            base = cnis.capabilities(self.profile)
            supported, notes = set(base.supported), dict(base.notes)
            deny, enforces = base.deny_response, base.enforces
        else:
            supported, deny, enforces = set(_BASE), "drop", True
            notes = {"enforces": f"CNI {self.profile!r} is not one netpol-proof knows; the "
                                 f"canary decides whether it enforces",
                     "ipblock-pod-ip": f"CNI {self.profile!r} is not one netpol-proof knows, and "
                                       f"whether its ipBlocks match pod IPs differs between CNIs "
                                       f"(Cilium's never do): not assumed"}
        supported.discard("external-hosts")
        # never held down, never the API server; restarts only when the user named the context
        self.declare_faults(supported, notes, f"allowed on context {self.context} by "
                                              f"--allow-faults-on-context: restarts delete the "
                                              f"pods matching "
                                              f"{' or '.join(map(str, self.agent_pods))}")
        if not self.allow_cluster_scoped:
            supported.discard("cluster-scoped-policy")
            notes["cluster-scoped-policy"] = ("refused on an existing cluster; pass "
                                              "--allow-cluster-scoped to allow")
        return Capabilities(frozenset(supported), deny, enforces, notes)

    def up(self) -> None:
        if self.topology is not None:
            return
        check_fault_context(self.context, self.allow_faults_on_context)
        config = minify(self.files, self.context or "")
        check_context(self.context, self.allow_context, server_of(config))
        self.private_dir = tempfile.mkdtemp(prefix=f"netpol-proof-{self.run_id}-")
        path = os.path.join(self.private_dir, "kubeconfig")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(config, fh, sort_keys=False)
        self.status(f"[kubeconfig] context {self.context} ({server_of(config)}) pinned in {path}")
        try:
            api = KubeApi(path, self.context or "")
        except Exception as exc:  # noqa: BLE001 - the client's ConfigException and file errors
            shutil.rmtree(self.private_dir, ignore_errors=True)
            self.private_dir = None
            raise UsageError(f"--context {self.context}: the kubernetes client cannot use it: "
                             f"{exc}") from None
        self.topology = KubeTopology(api, self.run_id, self.allow_cluster_scoped,
                                     self.ready_timeout, self.status, image=self.image,
                                     checkpoint=self._deploying)

    def down(self) -> None:
        errors = self.down_tenants()
        try:
            self.undeploy()
            if errors:
                raise BackendError(f"tearing down the scenarios' namespaces on context "
                                   f"{self.context}", "; ".join(errors))
        finally:
            self.topology = None
            if self.private_dir:
                shutil.rmtree(self.private_dir, ignore_errors=True)
                self.private_dir = None

    # -- fault steps: restarts of the CNI agent, only when allowed (agent.AgentRestarts) --------
    HOLD_REFUSAL = _HOLD
    APISERVER_REFUSAL = _APISERVER

    def _fault_where(self) -> str:
        return f" on context {self.context}"
