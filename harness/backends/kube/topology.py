"""KubeTopology: one run's objects on a Kubernetes cluster (deploy a model, change labels, apply
policies, exec probes), and KubeBackendBase, the Backend methods the kind and kubeconfig
backends share.

Why shared: a kind cluster and an existing cluster differ only in how the cluster comes to
exist and what may be touched; everything after that is the same API calls, written once (not
as kind's near-identical docker and nerdctl `provision.go`). The API client itself is in api.py.
"""

from __future__ import annotations

import ipaddress
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence, cast

from harness import naming
from harness.backends.base import Backend
from harness.backends.kube import manifests as km
from harness.backends.kube.api import KubeApi, Obj, status_line
from harness.backends.kube.exec import stream_exec
from harness.backends.kube.waits import not_ready_optional, wait_deploy_ready, wait_pods_ready
from harness.errors import BackendError, ExecError, ExecResult
from harness.model import DNS_SERVICE, SYSTEM_NAMESPACE, Addresses, Endpoint, Model, Pod
from harness.waits import wait_for

#: containers whose readiness is not waited on (see waits.pod_ready)
SCTP_SUFFIX = ("-sctp",)
#: API calls a deploy makes at once (KubeTopology._create_all)
CREATE_AT_ONCE = 8


def cluster_pod_cidr(nodes: Iterable[Obj], pod_ips: Iterable[str | None]) -> str:
    """The pod CIDR of a cluster, for {{podCIDR}}: the smallest IPv4 network holding every node's
    `spec.podCIDRs` (or `spec.podCIDR`) and every pod address seen.

    Why both: a cluster's --cluster-cidr is not in the API; the nodes' ranges come from it, but
    some IPAMs (Calico's IP pools, Cilium's cluster-pool) hand out pod IPs outside them, so the
    pods' own addresses widen the range (and are all there is when nodes carry no podCIDR).
    A policy's `except: ["{{podIP y/b}}/32"]` must fall inside its `cidr: "{{podCIDR}}"`.
    """
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for node in nodes:
        spec = node.get("spec") or {}
        for text in list(spec.get("podCIDRs") or []) + [spec.get("podCIDR")]:
            if text:
                net = ipaddress.ip_network(str(text), strict=False)
                if net.version == 4:
                    nets.append(net)
    for ip in pod_ips:
        if ip and ipaddress.ip_address(ip).version == 4:
            nets.append(ipaddress.ip_network(f"{ip}/32"))
    if not nets:
        raise BackendError("reading the pod CIDR", "no node has a spec.podCIDR and no pod has "
                                                   "an IPv4 address")
    lo = min(int(n.network_address) for n in nets)
    hi = max(int(n.broadcast_address) for n in nets)
    prefix = 32 - (lo ^ hi).bit_length()
    return str(ipaddress.ip_network(f"{ipaddress.ip_address(lo)}/{prefix}", strict=False))


class Kept(NamedTuple):
    """A deploy kept after its scenario (KubeTopology.park): the model as it was created, and
    its real namespaces."""

    model: Model
    names: km.NameMap


def _namespaces_first(objs: list[Obj]) -> list[Obj]:
    """Namespaces before everything else, each kind keeping its order (pods need theirs)."""
    return [o for o in objs if o["kind"] == "Namespace"] + \
        [o for o in objs if o["kind"] != "Namespace"]


def _api_error(exc: Exception) -> str:
    reason = getattr(exc, "reason", "") or ""
    body = getattr(exc, "body", "") or ""
    return f"{getattr(exc, 'status', '')} {reason}: {str(body)[:300]}".strip()


class KubeTopology:
    """One run's objects on a cluster: namespaces, pods, Services, policies — all labelled with
    the run id, created only in the run's namespaces, deleted only by that label."""

    def __init__(self, api: KubeApi, run_id: str, allow_cluster_scoped: bool = True,
                 ready_timeout: float = 300.0, status: Callable[[str], None] = status_line,
                 image: str = km.AGNHOST_IMAGE, dns_control: bool = True,
                 node_of: Callable[[Model, Pod], str | None] | None = None,
                 checkpoint: Callable[[], None] | None = None):
        self.api, self.run_id, self.image = api, run_id, image
        #: called before each object deploy creates and each poll of its waits: raises to stop
        #: deploying (the backend's Backend.stop_if_interrupted); never during undeploy, which
        #: must remove what was created
        self.checkpoint = checkpoint
        #: deploy the DNS-control client pod (km.dns_control_objects) with every topology
        self.with_dns_control = dns_control
        self._dns_server = ""
        #: binds each pod to a node (spec.nodeName) on a cluster without a scheduler
        self.node_of = node_of
        self.allow_cluster_scoped = allow_cluster_scoped
        self.ready_timeout = ready_timeout
        self.status = status
        self.names: km.NameMap | None = None
        self.model: Model | None = None
        self._cluster_policies: dict[tuple[str, str, str, str], str] = {}  # resource -> name
        #: deploys so far: each gets namespaces of its own (manifests.generation_namespace)
        self.generation = 0
        #: the DNS-control pod is created once per topology, kept across deploys, seen Ready
        self._dns_control_created = self._dns_control_ready = False
        self._api_versions: dict[tuple[str, str, str], str] = {}  # (ns, name, kind) -> apiVersion
        #: the policies the current deploy's scenario applied and did not delete, (ns, name, kind)
        self._applied: set[tuple[str, str, str]] = set()
        #: the model as the current deploy created it, and whether a step relabelled it since
        self._deployed: Model | None = None
        self._relabelled = False
        #: the last scenario's deploy, kept for the next one of the same model (park)
        self.kept: Kept | None = None

    @property
    def selector(self) -> str:
        return f"{naming.RUN_LABEL}={self.run_id}"

    def for_run(self, run_id: str, checkpoint: Callable[[], None] | None) -> KubeTopology:
        """A topology of another run on the same cluster and API client, with this one's
        settings (a tenant's: harness.backends.kube.tenants)."""
        return KubeTopology(self.api, run_id, self.allow_cluster_scoped, self.ready_timeout,
                            self.status, self.image, self.with_dns_control, self.node_of,
                            checkpoint)

    # -- topology -----------------------------------------------------------------------------
    def deploy(self, model: Model) -> Addresses:
        if model.externals:
            raise BackendError("deploying external hosts",
                               "this backend has no external hosts (capability external-hosts "
                               "is missing); the scenario should have been skipped")
        if self.keeps(model):
            return self._reuse(model)
        self.drop_kept()
        self.model = self._deployed = model
        self._relabelled, self._applied = False, set()
        self.generation += 1
        self.names = km.NameMap(self.run_id, [n.name for n in model.namespaces], self.generation)
        node_of = self.node_of
        objs = km.topology(model, self.names, self.image,
                           (lambda p: node_of(model, p)) if node_of is not None else None)
        if self.with_dns_control and not self._dns_control_created:
            objs = _namespaces_first(objs + km.dns_control_objects(self.run_id, self.image))
            self._dns_control_created = True
        real = sorted(set(self.names.to_real.values()) - {SYSTEM_NAMESPACE})
        self.status(f"  creating {len(objs)} objects (namespaces {', '.join(real)})")
        t = time.monotonic()
        # namespaces first (each waits for its ServiceAccount), then the rest; each group at
        # once: one after the other, a deploy's dozen calls took seconds under load
        namespaces = [o for o in objs if o["kind"] == "Namespace"]
        # every one checked before any is created (none half-made); ours already there are kept
        self._create_all([o for o in namespaces if not self._ours_if_present(o)])
        self._create_all([o for o in objs if o["kind"] != "Namespace"])
        created = time.monotonic() - t
        self._wait_pods_ready(model)
        self.status(f"  objects created in {created:.2f}s, pods Ready "
                    f"{time.monotonic() - t - created:.2f}s later")
        return self._ready_addresses()

    def _wait_pods_ready(self, model: Model) -> None:
        """Every user pod of `model` in the current deploy's namespaces Ready (SCTP servers
        optional: a warning)."""
        assert self.names is not None
        expect = {self.names.real(ns.name): n for ns in model.namespaces if not ns.system
                  if (n := sum(1 for p in model.user_pods if p.namespace == ns.name))}
        if expect:
            pods = wait_deploy_ready(self.api, expect, self.selector, self.ready_timeout,
                                     f"probe pods of {', '.join(expect)} Ready and serving",
                                     optional=SCTP_SUFFIX, checkpoint=self.checkpoint)
            silent = not_ready_optional(pods, SCTP_SUFFIX)
            if silent:
                self.status(f"  warning: SCTP not serving in {', '.join(silent)} (is the "
                            f"host's sctp module loaded?); SCTP probes there will be probe "
                            f"errors")

    def _ready_addresses(self) -> Addresses:
        """The DNS-control pod Ready (once per topology), then the deploy's addresses."""
        if self.with_dns_control and not self._dns_control_ready:
            wait_pods_ready(self.api, naming.kube_dns_control_namespace(self.run_id),
                            self.selector, self.ready_timeout, "the DNS-control client pod Ready",
                            checkpoint=self.checkpoint)
            self._dns_control_ready = True
        addresses = self.addresses()
        self._dns_server = addresses.dns_service_ip
        return addresses

    # -- keeping a deploy for the next scenario ---------------------------------------------
    def keeps(self, model: Model) -> bool:
        """Whether a deploy of `model` would reuse the kept one (park): the same model, equal
        in every namespace, pod, label, port and Service."""
        return self.kept is not None and self.kept.model == model

    def park(self) -> bool:
        """The scenario ended without an error: delete the policies it applied and keep its
        namespaces and pods for the next scenario of the same model (`deploy` reuses them),
        instead of deleting them. Kept only when no step relabelled anything and the API
        server lists no policy of this run left in them; else undeploy(wait=False). At most
        one deploy is kept: a deploy of another model deletes it. True when kept.

        Why: on a cluster every pod is an API object, a sandbox, a veth and rules in every
        node's policy engine, made and unmade per scenario; most of the library shares one
        model (x/y/z x a/b/c on port 80). Why that is sound: with no policy left, the pods are
        what a fresh deploy gives, and the next scenario's baseline probes every cell it will
        judge before any policy of its own, as after a fresh deploy (runner.Run.baseline): a
        rule the engine has not removed yet shows there, never in a step."""
        if self.names is None or self._deployed is None:
            return False
        if self._relabelled or not self._clear_policies():
            self.undeploy(wait=False)
            return False
        self.drop_kept()
        self.kept = Kept(self._deployed, self.names)
        self.model = self._deployed = None
        self.names = None
        return True

    def drop_kept(self) -> None:
        """Delete the kept deploy's namespaces, not awaited (as undeploy(wait=False))."""
        kept, self.kept = self.kept, None
        if kept is None:
            return
        errors = self._delete_namespaces(sorted(set(kept.names.to_real.values())
                                                - {SYSTEM_NAMESPACE}))
        if errors:
            raise BackendError("removing a kept deploy's namespaces", "; ".join(errors))

    def _reuse(self, model: Model) -> Addresses:
        assert self.kept is not None
        kept, self.kept = self.kept, None
        self.model, self._deployed, self.names = model, kept.model, kept.names
        self._relabelled, self._applied = False, set()
        real = sorted(set(self.names.to_real.values()) - {SYSTEM_NAMESPACE})
        self.status(f"  reusing the last scenario's namespaces {', '.join(real)} (same model, "
                    f"its policies deleted)")
        t = time.monotonic()
        self._wait_pods_ready(model)
        self.status(f"  pods seen Ready in {time.monotonic() - t:.2f}s")
        return self._ready_addresses()

    def _clear_policies(self) -> bool:
        """Delete the cluster-scoped policies and those the current deploy's scenario applied;
        whether none of this run's policies is left in its namespaces (read back)."""
        assert self.names is not None
        if self._delete_cluster_policies():
            return False
        for ns, name, kind in sorted(self._applied):
            try:
                self.delete_policy(ns, name, kind)
            except BackendError as exc:
                self.status(f"  not kept: {exc}")
                return False
        real = set(self.names.to_real.values())
        left = [f"{m.get('namespace')}/{m.get('name')}" for m in self._policies()
                if m.get("namespace") in real]
        if left:
            self.status(f"  not kept: policies still listed: {', '.join(left)}")
        return not left

    def _policies(self) -> list[dict]:
        """The metadata of every policy carrying this run's label: NetworkPolicies, and every
        other kind this run applied."""
        found = self.api._dict(self.api.net.list_network_policy_for_all_namespaces(
            label_selector=self.selector)).get("items", [])
        others = {km.policy_resource({"apiVersion": api, "kind": kind})[:3]
                  for (_, _, kind), api in self._api_versions.items()
                  if not api.startswith("networking.k8s.io/")}
        for group, version, plural in sorted(others):
            listed = self.api.custom.list_cluster_custom_object(group, version, plural,
                                                                label_selector=self.selector)
            found += (listed or {}).get("items", [])
        return [i.get("metadata") or {} for i in found]

    def _create_all(self, objs: list[Obj]) -> None:
        """_create every object at once (a few threads); the first failure is raised once all
        have been tried, so nothing is left half-sent without being reported."""
        if not objs:
            return

        def one(obj: Obj) -> None:
            if self.checkpoint is not None:
                self.checkpoint()
            self._create(obj)

        with ThreadPoolExecutor(max_workers=min(CREATE_AT_ONCE, len(objs)),
                                thread_name_prefix="netpol-create") as pool:
            futures = [pool.submit(one, obj) for obj in objs]
        for f in futures:
            f.result()

    def _ours_if_present(self, obj: Obj) -> bool:
        """Whether namespace `obj` exists already (then it must carry this run's label: else
        BackendError, and nothing is touched)."""
        name = obj["metadata"]["name"]
        try:
            existing = self.api._absent_is_none(lambda: self.api.core.read_namespace(name))
        except self.api.client.ApiException as exc:
            raise BackendError(f"reading namespace {name}", _api_error(exc)) from None
        if existing is None:
            return False
        labels = (existing.get("metadata") or {}).get("labels") or {}
        if labels.get(naming.RUN_LABEL) != self.run_id:
            raise BackendError(f"creating namespace {name}", "it exists and does not carry this "
                               f"run's label {self.selector}; refusing to touch it")
        return True

    def _create(self, obj: Obj) -> None:
        kind, meta = obj["kind"], obj["metadata"]
        core = self.api.core
        try:
            if kind == "Namespace":   # deploy checked first that it is not there (or ours)
                core.create_namespace(obj)
                # Pods are refused until the namespace's `default` ServiceAccount exists
                # ("error looking up service account"); pytest-kubernetes waits for it too.
                name = meta["name"]
                wait_for(lambda: self.api._absent_is_none(
                    lambda: core.read_namespaced_service_account("default", name)),
                    lambda sa: sa is not None, 60, f"ServiceAccount {name}/default", 0.1,
                    describe=lambda sa: "does not exist yet")
            elif kind == "Pod":
                core.create_namespaced_pod(meta["namespace"], obj)
            elif kind == "Service":
                core.create_namespaced_service(meta["namespace"], obj)
        except self.api.client.ApiException as exc:
            raise BackendError(f"creating {kind} {meta.get('namespace', '')}/{meta['name']}",
                               _api_error(exc)) from None

    def addresses(self) -> Addresses:
        assert self.model is not None and self.names is not None
        # a pod the API gives no podIP yet holds None; every user pod is checked below
        pod_ips: dict[str, str | None] = {}
        svc_ips: dict[str, str] = {}
        for ns in {p.namespace for p in self.model.user_pods}:
            for p in self.api.list_pods(self.names.real(ns), self.selector):
                name = p["metadata"]["name"]
                pod_ips[f"{ns}/{name}"] = (p.get("status") or {}).get("podIP")
        dns = self.api.list_pods(SYSTEM_NAMESPACE, "k8s-app=kube-dns")
        if dns:
            pod_ips[f"{SYSTEM_NAMESPACE}/coredns"] = (dns[0].get("status") or {}).get("podIP")
        for s in self.model.services:
            real = SYSTEM_NAMESPACE if s.system else self.names.real(s.namespace)
            svc = self.api._dict(self.api.core.read_namespaced_service(s.name, real))
            svc_ips[s.key] = svc["spec"]["clusterIP"]
        missing = [k for k in (p.key for p in self.model.user_pods) if not pod_ips.get(k)]
        if missing:
            raise BackendError("reading pod addresses", f"no podIP for {', '.join(missing)}")
        node_objs = self.api.list_nodes()
        nodes = [a["address"] for n in node_objs
                 for a in (n.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"]
        # what the API server's names (kubernetes.default...) must resolve to; "" when absent
        api_svc = self.api._absent_is_none(
            lambda: self.api._dict(self.api.core.read_namespaced_service("kubernetes", "default")))
        api_ip = ((api_svc or {}).get("spec") or {}).get("clusterIP") or ""
        return Addresses(cast(dict[str, str], pod_ips), svc_ips, {},
                         cluster_pod_cidr(node_objs, pod_ips.values()),
                         svc_ips.get(f"{SYSTEM_NAMESPACE}/{DNS_SERVICE}", ""), tuple(nodes),
                         api_ip)

    def dns_control(self) -> tuple[str, str] | None:
        """(endpoint, DNS server address) from which the DNS server's positive control is asked:
        the DNS-control client pod querying the cluster DNS Service; None when not deployed."""
        if not self.with_dns_control or self.names is None or not self._dns_server:
            return None
        return km.DNS_CONTROL, self._dns_server

    def undeploy(self, timeout: float = 180.0, wait: bool = True) -> None:
        """Delete this run's cluster-scoped policies, then its namespaces (by label).

        wait=True: every namespace of the run (the DNS-control one too, and those of earlier
        deploys still terminating) is deleted and awaited until gone. wait=False: only this
        deploy's scenario namespaces, and their deletion is not awaited (the namespace
        controller and the kubelets finish it while the next scenario runs, in namespaces of
        its own: manifests.generation_namespace); a wait=True undeploy awaits them once, at
        the end of the run, and `cleanup` finds them by label if the run dies first. Why not
        awaited each time: a namespace's deletion waits for the controller and the kubelets,
        seconds per scenario on the critical path (bench/bench_kube_exec.py). Cluster-scoped
        policies are always deleted first: they select pods of any namespace."""
        errors = self._delete_cluster_policies()
        if wait:
            self.kept = None      # its namespaces are among own_namespaces()
        ours = self.own_namespaces()
        if not wait:
            mine = set((self.names.to_real if self.names is not None else {}).values())
            ours = [ns for ns in ours if ns in mine]
        errors += self._delete_namespaces(ours)
        if ours and wait:
            wait_for(self.own_namespaces, lambda left: not left, timeout,
                     f"deletion of namespaces {', '.join(ours)}", 1.0,
                     describe=lambda left: f"still present: {', '.join(left)}")
            self._dns_control_created = self._dns_control_ready = False
        self.model = self._deployed = None
        if errors:
            raise BackendError("removing this run's objects", "; ".join(errors))

    def _delete_namespaces(self, names: list[str]) -> list[str]:
        """Start the deletion of each namespace (not awaited); the failures (a 404 is none)."""
        errors = []
        for ns in names:
            try:
                self.api.core.delete_namespace(ns)
            except self.api.client.ApiException as exc:
                if exc.status != 404:
                    errors.append(f"namespace {ns}: {_api_error(exc)}")
        return errors

    def _delete_cluster_policies(self) -> list[str]:
        """Delete this run's cluster-scoped policies; the failures (a 404 is none)."""
        errors = []
        for (group, version, plural, name) in list(self._cluster_policies):
            try:
                self.api.custom.delete_cluster_custom_object(group, version, plural, name)
            except self.api.client.ApiException as exc:
                if exc.status != 404:
                    errors.append(f"{plural}/{name}: {_api_error(exc)}")
            self._cluster_policies.pop((group, version, plural, name), None)
        return errors

    def real_dns_name(self, name: str) -> str:
        """`name` with a logical namespace in it mapped to the run's real one (NameMap.dns_name);
        as written when nothing is deployed."""
        return self.names.dns_name(name) if self.names is not None else name

    def own_namespaces(self) -> list[str]:
        """Namespaces carrying both ownership labels with this run id — the only ones deleted."""
        sel = f"{naming.MANAGED_BY_LABEL}={naming.PROJECT},{self.selector}"
        items = self.api._dict(self.api.core.list_namespace(label_selector=sel)).get("items", [])
        return sorted(i["metadata"]["name"] for i in items)

    def set_labels(self, namespace_labels: Mapping, pod_labels: Mapping) -> None:
        assert self.names is not None
        self._relabelled = True
        for ns, change in namespace_labels.items():
            self.api.core.patch_namespace(self.names.real(ns), {"metadata": {"labels": dict(change)}})
        for key, change in pod_labels.items():
            ns, name = key.split("/", 1)
            self.api.core.patch_namespaced_pod(name, self.names.real(ns),
                                               {"metadata": {"labels": dict(change)}})
        if self.model is not None:
            self.model = self.model.with_labels(namespace_labels, pod_labels)

    # -- policies -------------------------------------------------------------------------------
    def apply_policy(self, manifest: Mapping) -> None:
        assert self.names is not None, "deploy() first"
        group, version, plural, namespaced = km.policy_resource(manifest)
        name = manifest["metadata"]["name"]
        if not namespaced and not self.allow_cluster_scoped:
            raise BackendError(f"applying {manifest.get('kind')} {name}",
                               "cluster-scoped policies are refused on an existing cluster; "
                               "pass --allow-cluster-scoped to allow them")
        body = km.rewrite_policy(manifest, self.names)
        ns = body["metadata"].get("namespace")
        try:
            if group == "networking.k8s.io":
                try:
                    self.api.net.create_namespaced_network_policy(ns, body)
                except self.api.client.ApiException as exc:
                    if exc.status != 409:
                        raise
                    self.api.net.replace_namespaced_network_policy(name, ns, body)
            elif namespaced:
                self._create_or_replace(body, group, version, plural, name, ns)
            else:
                self._create_or_replace(body, group, version, plural, name, None)
                self._cluster_policies[(group, version, plural, name)] = name
        except self.api.client.ApiException as exc:
            why = _api_error(exc)
            if exc.status == 404 and group != "networking.k8s.io":
                # a bare "404 page not found": the API server serves no such resource
                why = (f"the API server does not serve {group}/{version} {plural} (its CRD, or "
                       f"for projectcalico.org/v3 Calico's own API server, is not installed): "
                       f"{why}")
            raise BackendError(f"applying {manifest.get('apiVersion')} {manifest.get('kind')} "
                               f"{ns or ''}/{name}", why) from None
        # recorded only once applied: policy_count lists every group recorded here, and a group
        # the server refused (404) would make every later count fail
        key = (manifest["metadata"].get("namespace") or "", name, str(manifest.get("kind")))
        self._api_versions[key] = str(manifest.get("apiVersion"))
        self._applied.add(key)

    def _create_or_replace(self, body, group, version, plural, name, ns) -> None:
        c = self.api.custom
        try:
            if ns:
                c.create_namespaced_custom_object(group, version, ns, plural, body)
            else:
                c.create_cluster_custom_object(group, version, plural, body)
        except self.api.client.ApiException as exc:
            if exc.status != 409:
                raise
            cur = self.api.get_custom_object(group, version, plural, name, ns) or {}
            body["metadata"]["resourceVersion"] = cur.get("metadata", {}).get("resourceVersion")
            if ns:
                c.replace_namespaced_custom_object(group, version, ns, plural, name, body)
            else:
                c.replace_cluster_custom_object(group, version, plural, name, body)

    def delete_policy(self, namespace: str, name: str, kind: str = "NetworkPolicy") -> None:
        """Delete a policy this run applied; its API group is the one it was applied with (a
        Calico NetworkPolicy and a Kubernetes one share the kind name)."""
        assert self.names is not None
        api_version = self._api_versions.get((namespace or "", name, kind), "networking.k8s.io/v1")
        group, version, plural, namespaced = km.policy_resource(
            {"apiVersion": api_version, "kind": kind})
        try:
            if group == "networking.k8s.io":
                self.api.net.delete_namespaced_network_policy(name, self.names.real(namespace))
            elif namespaced:
                self.api.custom.delete_namespaced_custom_object(
                    group, version, self.names.real(namespace), plural, name)
            else:
                self.api.custom.delete_cluster_custom_object(group, version, plural, name)
                self._cluster_policies.pop((group, version, plural, name), None)
        except self.api.client.ApiException as exc:
            raise BackendError(f"deleting {kind} {namespace}/{name}", _api_error(exc)) from None
        self._applied.discard((namespace or "", name, kind))

    def policy_count(self) -> int:
        """Policies carrying this run's label, as the API server lists them: NetworkPolicies,
        plus every other policy kind this run applied (Calico, Cilium, AdminNetworkPolicy)."""
        return len(self._policies())

    # -- exec -----------------------------------------------------------------------------------
    def exec(self, endpoint: str, argv: Sequence[str], timeout: float) -> ExecResult:
        if Endpoint.parse(endpoint).is_external:
            raise ExecError(list(argv), "this backend has no external hosts", target=endpoint)
        if self.names is None:
            raise ExecError(list(argv), "no topology deployed", target=endpoint)
        if endpoint == km.DNS_CONTROL and self.with_dns_control:
            return stream_exec(self.api.exec_core(), naming.kube_dns_control_namespace(self.run_id),
                               km.DNS_CONTROL_POD, km.CLIENT_CONTAINER, argv, timeout,
                               target=endpoint)
        ns, name = endpoint.split("/", 1) if "/" in endpoint else ("", endpoint)
        if ns == SYSTEM_NAMESPACE:
            # Why refused: CoreDNS's image is distroless, with no shell and no tools; the DNS
            # server's control runs in the DNS-control client pod (dns_control()) instead
            raise ExecError(list(argv), "nothing can run inside the cluster DNS pod (its image "
                                        "has no tools); DNS controls use the DNS-control pod",
                            target=endpoint)
        return stream_exec(self.api.exec_core(), self.names.real(ns), name, km.CLIENT_CONTAINER, argv,
                           timeout, target=endpoint)


class KubeBackendBase(Backend):
    """The Backend methods the kube backends (and the real engines') share: each delegates to
    the run's KubeTopology, which `up()` of the concrete backend creates."""

    toolkit = "agnhost"     # probes.argv_for: kind/kubeconfig pods run agnhost, curl, nslookup
    topology: KubeTopology | None = None
    #: where progress lines go (each concrete backend takes it as an argument)
    status: Callable[[str], None]

    def _deploying(self) -> None:
        """The topology's checkpoint (KubeTopology.checkpoint): an interrupted run stops
        deploying, as it stops probing."""
        self.stop_if_interrupted("deploying a scenario")

    def _topo(self) -> KubeTopology:
        if self.topology is None:
            raise BackendError(f"using the {self.name} backend",
                               "up() has not run (or failed); no cluster is attached")
        return self.topology

    def deploy(self, model: Model) -> Addresses:
        return self._topo().deploy(model)

    def undeploy(self) -> None:
        """A scenario deployed: delete its namespaces, not awaited (KubeTopology.undeploy).
        Nothing deployed (the backends' down(), after the last scenario): delete what is left
        of the run and await every deletion started."""
        if self.topology is None or self.topology.generation == 0:
            return
        if self.topology.names is not None:
            self.topology.undeploy(wait=False)
            self.topology.names = None
        else:
            self.topology.undeploy(wait=True)

    def park(self) -> None:
        """The scenario ended without an error: its namespaces and pods are kept for the next
        scenario of the same model (KubeTopology.park), unless the run is stopping."""
        if self.topology is None or self.topology.names is None:
            return
        if self.interrupted:
            self.undeploy()
            return
        self.topology.park()

    def keeps(self, model: Model) -> bool:
        return self.topology is not None and self.topology.keeps(model)

    def set_labels(self, namespace_labels, pod_labels) -> None:
        self._topo().set_labels(namespace_labels, pod_labels)

    def apply_policy(self, manifest: Mapping) -> None:
        self._topo().apply_policy(manifest)

    def delete_policy(self, namespace: str, name: str, kind: str = "NetworkPolicy") -> None:
        self._topo().delete_policy(namespace, name, kind)

    def policy_count(self) -> int:
        return self._topo().policy_count()

    def exec(self, endpoint: str, argv: Sequence[str], timeout: float) -> ExecResult:
        self.stop_if_interrupted(f"running {argv[0] if argv else '?'} in {endpoint}")
        return self._topo().exec(endpoint, argv, timeout)

    def dns_control(self) -> tuple[str, str] | None:
        """See KubeTopology.dns_control (prober.loopback_probe asks it for DNS controls)."""
        return self.topology.dns_control() if self.topology is not None else None

    def real_dns_name(self, name: str) -> str:
        """The prober asks this before putting a name into a probe (see prober.real_name)."""
        return self.topology.real_dns_name(name) if self.topology is not None else name
