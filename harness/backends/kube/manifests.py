"""Kubernetes objects for a scenario's model, and policies rewritten from logical to real names.

Why pure: what the kind and kubeconfig backends send to the API server is decided here, without
a cluster, so tests validate every object against the Kubernetes schema. Pods follow the upstream
conformance model (test/e2e/network/netpol/model.go, docs/sources.md §5.1): one agnhost container per
(port, protocol) named `serve-<port>-<proto>`, each with the exec readiness probe upstream uses,
plus a `client` container running `/agnhost pause` that probes are exec'd in (the image has
bash, curl, nslookup and agnhost; harness.probes builds the "agnhost" toolkit's argv from them).

Names: a scenario's namespace `x` is created as harness.naming.kube_namespace(run_id, "x")
(`np-<run>-x`). The API server labels it `kubernetes.io/metadata.name: np-<run>-x`, the REAL
name, so every selector on that key (NetworkPolicy namespaceSelector matchLabels and
matchExpressions, Cilium's namespace keys, Calico selector strings) is rewritten from the logical
name to the real one by `rewrite_policy`. Namespaces are labelled with the model's labels plus
the ownership labels (app.kubernetes.io/managed-by, netpol-proof/run).
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable, Mapping

from harness import naming
from harness.backends.cni import AGNHOST_IMAGE
from harness.model import (
    CLUSTER_DOMAIN,
    METADATA_NAME_LABEL,
    SYSTEM_NAMESPACE,
    ContainerPort,
    Model,
    Pod,
    Protocol,
    Service,
)

CLIENT_CONTAINER = "client"


def generation_namespace(run_id: str, logical: str, generation: int = 1) -> str:
    """The real name of `logical` in the run's `generation`-th deploy: `np-<run>-<ns>` for the
    first, `np-<run>--g<N>-<ns>` after it. Why per deploy: a scenario's namespaces are deleted
    in the background (KubeTopology.undeploy), so the next scenario cannot reuse their names
    while they terminate. `--g<N>-` cannot be the start of a logical name (a DNS label starts
    with a letter or digit) nor the DNS-control namespace's `--dns-control`."""
    if generation <= 1:
        return naming.kube_namespace(run_id, logical)
    return naming.kube_namespace(run_id, f"-g{generation}-{logical}")


class NameMap:
    """Logical <-> real namespace names of one run's deploy (kube-system keeps its name)."""

    def __init__(self, run_id: str, logical: list[str] | tuple[str, ...], generation: int = 1):
        self.run_id = run_id
        self.to_real = {n: (n if n == SYSTEM_NAMESPACE
                            else generation_namespace(run_id, n, generation))
                        for n in logical}
        self.to_logical = {v: k for k, v in self.to_real.items()}

    def real(self, logical: str) -> str:
        try:
            return self.to_real[logical]
        except KeyError:
            raise KeyError(f"namespace {logical!r} is not in this run's model "
                           f"({', '.join(self.to_real)})") from None

    def dns_name(self, name: str) -> str:
        """A DNS name as the cluster knows it: `<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`
        and `<svc>.<ns>` with the logical namespace `<ns>` replaced by its real name (case and
        a trailing dot kept). Short names are left alone: the pod's search path (written with
        the real namespace) completes them; a namespace outside the model is left as written.
        """
        labels = name.rstrip(".").split(".")
        tail = [x.lower() for x in labels[2:]]
        if len(labels) < 2 or tail not in ([], ["svc"], ["svc", *CLUSTER_DOMAIN.split(".")]):
            return name
        real = self.to_real.get(labels[1].lower())   # DNS is case-insensitive
        if real is None:
            return name
        labels[1] = real
        return ".".join(labels) + ("." if name.endswith(".") else "")


def namespace_manifest(name: str, labels: Mapping[str, str], run_id: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {**labels, **naming.ownership_labels(run_id)}}}


#: seconds between two tries of a server container's startup probe (see _server_container),
#: and how many tries it gets: a server not listening within about 10 minutes is restarted
STARTUP_PERIOD = 1
STARTUP_TRIES = 600


def _server_container(cp: ContainerPort, image: str, hostname: str) -> dict:
    proto = cp.protocol.value.lower()
    name = cp.name or f"serve-{cp.port}-{proto}"
    if cp.protocol == Protocol.TCP:
        # serve-hostname --http answers any path with the pod's hostname, so curl gets an HTTP
        # response and the report learns which pod answered (through a Service too); netexec's
        # "/" answers with a timestamp instead.
        args = ["serve-hostname", "--http", f"--port={cp.port}"]
        env: list[dict] = []
    elif cp.protocol == Protocol.UDP:
        args = ["serve-hostname", "--udp", "--http=false", f"--port={cp.port}"]
        env = []
    else:  # SCTP, as upstream: porter serving SERVE_SCTP_PORT_<p>, which writes the variable's
        # value to every association: the pod's hostname, so the reply names the pod
        args = ["porter"]
        env = [{"name": f"SERVE_SCTP_PORT_{cp.port}", "value": hostname}]
    # The check upstream's readiness probe makes (agnhost connect to the server on loopback),
    # as a *startup* probe: with no readiness probe, a container is Ready once its startup
    # probe succeeded, and that probe then never runs again. Why not upstream's readiness
    # probe every 10 s: each run is a process started in the container through the kubelet
    # and the runtime, for every server container of every pod, for as long as the pod lives:
    # on realnodes with 8 scenarios at once those were about a sixth of the machine's CPU
    # (1,227 agnhost processes in 120 s, most of them these, docs/real-nodes.md §13). A
    # longer readiness period would not do: the kubelet delays a probe's first run by a
    # random part of its period while it started less than a period ago (its prober worker's
    # jitter), so pods made in a cluster's first minute waited up to a minute to be Ready.
    # After Ready nothing of a verdict rests on readiness: each scenario's baseline and each
    # round's positive controls prove the servers. A server that never listens (SCTP without
    # the host's module) keeps its container not Ready, as before (deploy warns;
    # not_ready_optional).
    probe = {"exec": {"command": ["/agnhost", "connect", f"--protocol={proto}", "--timeout=1s",
                                  f"127.0.0.1:{cp.port}"]},
             "periodSeconds": STARTUP_PERIOD, "timeoutSeconds": 3,
             "failureThreshold": STARTUP_TRIES}
    c: dict[str, Any] = {"name": f"serve-{cp.port}-{proto}"[:63], "image": image,
                         "imagePullPolicy": "IfNotPresent", "args": args,
                         "ports": [{"containerPort": cp.port, "protocol": cp.protocol.value,
                                    "name": name}],
                         "startupProbe": probe}
    if env:
        c["env"] = env
    return c


def pod_manifest(pod: Pod, names: NameMap, image: str = AGNHOST_IMAGE,
                 node: str | None = None) -> dict:
    """The agnhost pod for one model pod (hostname `<ns>-<pod>` so replies name the pod),
    bound to `node` when one is given (a cluster without a scheduler)."""
    containers = [_server_container(cp, image, pod.hostname) for cp in pod.ports]
    containers.append({"name": CLIENT_CONTAINER, "image": image,
                       "imagePullPolicy": "IfNotPresent", "args": ["pause"]})
    hostname = pod.hostname
    spec: dict[str, Any] = {"hostname": hostname, "terminationGracePeriodSeconds": 0,
                            "containers": containers}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": names.real(pod.namespace),
                         "labels": {**pod.labels, **naming.ownership_labels(names.run_id)}},
            "spec": spec}


#: the endpoint key of the DNS-control client pod (not a model pod: no `/`, never in a scenario)
DNS_CONTROL = "dns-control"
DNS_CONTROL_POD = "dns-control"


def dns_control_objects(run_id: str, image: str = AGNHOST_IMAGE) -> list[dict]:
    """A namespace of the run's own with one client pod, from which the DNS server's positive
    control is asked.

    Why: the control of a blocked lookup is "the DNS server answered someone in the same
    round"; CoreDNS's image is distroless (no shell, no nslookup), so the query cannot run
    inside it as the local backend's loopback query does. This pod lives in no scenario
    namespace, so no scenario NetworkPolicy selects it.
    """
    ns = naming.kube_dns_control_namespace(run_id)
    labels = {**naming.ownership_labels(run_id), "netpol-proof/role": "dns-control"}
    return [namespace_manifest(ns, {"netpol-proof/role": "dns-control"}, run_id),
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": DNS_CONTROL_POD, "namespace": ns, "labels": labels},
             "spec": {"terminationGracePeriodSeconds": 0,
                      "containers": [{"name": CLIENT_CONTAINER, "image": image,
                                      "imagePullPolicy": "IfNotPresent", "args": ["pause"]}]}}]


def service_manifest(svc: Service, names: NameMap) -> dict:
    ports = []
    for i, sp in enumerate(svc.ports):
        p: dict[str, Any] = {"port": sp.port, "targetPort": sp.target_port,
                             "protocol": sp.protocol.value}
        p["name"] = sp.name or f"p{i}-{sp.port}-{sp.protocol.value.lower()}"
        ports.append(p)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc.name, "namespace": names.real(svc.namespace),
                         "labels": naming.ownership_labels(names.run_id)},
            "spec": {"type": "ClusterIP", "selector": dict(svc.selector), "ports": ports}}


def topology(model: Model, names: NameMap, image: str = AGNHOST_IMAGE,
             node_of: Callable[[Pod], str | None] | None = None) -> list[dict]:
    """Namespaces, then pods, then Services of the model's user part (system objects exist).
    `node_of` binds each pod to a node (spec.nodeName) where no scheduler runs."""
    objs = [namespace_manifest(names.real(n.name), n.labels, names.run_id)
            for n in model.namespaces if not n.system]
    objs += [pod_manifest(p, names, image, node_of(p) if node_of else None)
             for p in model.user_pods]
    objs += [service_manifest(s, names) for s in model.services if not s.system]
    return objs


# -- policies: logical -> real namespace names ---------------------------------------------------
#: label keys whose value is a namespace name: the automatic label, and Cilium's spellings
NAMESPACE_KEYS = {METADATA_NAME_LABEL, "io.kubernetes.pod.namespace",
                  "k8s:io.kubernetes.pod.namespace",
                  f"k8s:io.cilium.k8s.namespace.labels.{METADATA_NAME_LABEL}",
                  f"io.cilium.k8s.namespace.labels.{METADATA_NAME_LABEL}"}
#: Calico selector expressions comparing a namespace name: `kubernetes.io/metadata.name == 'x'`,
#: `projectcalico.org/name == "x"`, and `... in {'x', 'y'}`
_CALICO_EQ = re.compile(r"((?:kubernetes\.io/metadata\.name|projectcalico\.org/name)\s*(?:==|!=)\s*)"
                        r"(['\"])([^'\"]+)\2")
_CALICO_IN = re.compile(r"((?:kubernetes\.io/metadata\.name|projectcalico\.org/name)\s*(?:not\s+)?in\s*\{)"
                        r"([^}]*)\}")


def _map_value(value: Any, real: Callable[[str], str]) -> Any:
    return real(value) if isinstance(value, str) else value


def _rewrite(node: Any, real: Callable[[str], str]) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "matchLabels" and isinstance(v, dict):
                out[k] = {lk: (_map_value(lv, real) if lk in NAMESPACE_KEYS else lv)
                          for lk, lv in v.items()}
            elif k == "matchExpressions" and isinstance(v, list):
                out[k] = [({**e, "values": [_map_value(x, real) for x in e.get("values") or []]}
                           if isinstance(e, dict) and e.get("key") in NAMESPACE_KEYS
                           and "values" in e else _rewrite(e, real)) for e in v]
            elif k in ("selector", "namespaceSelector") and isinstance(v, str):
                out[k] = _rewrite_calico(v, real)
            else:
                out[k] = _rewrite(v, real)
        return out
    if isinstance(node, list):
        return [_rewrite(x, real) for x in node]
    return node


def _rewrite_calico(expr: str, real: Callable[[str], str]) -> str:
    expr = _CALICO_EQ.sub(lambda m: f"{m.group(1)}{m.group(2)}{real(m.group(3))}{m.group(2)}", expr)

    def in_set(m: re.Match) -> str:
        items = re.sub(r"(['\"])([^'\"]+)\1", lambda q: f"{q.group(1)}{real(q.group(2))}{q.group(1)}",
                       m.group(2))
        return f"{m.group(1)}{items}}}"
    return _CALICO_IN.sub(in_set, expr)


def rewrite_policy(manifest: Mapping, names: NameMap) -> dict:
    """A copy of `manifest` for the real cluster: metadata.namespace and every namespace-name
    selector value mapped to real names; a name outside the model is left as written (it
    selects nothing, as it would have in the model). Ownership labels are added."""
    def real(value: str) -> str:
        return names.to_real.get(value, value)

    out = _rewrite(copy.deepcopy(dict(manifest)), real)
    meta = out.setdefault("metadata", {})
    if meta.get("namespace"):
        meta["namespace"] = names.real(meta["namespace"])
    meta["labels"] = {**(meta.get("labels") or {}), **naming.ownership_labels(names.run_id)}
    return out


def policy_resource(manifest: Mapping) -> tuple[str, str, str, bool]:
    """(group, version, plural, namespaced) of a policy kind, for the custom-objects API."""
    api = str(manifest.get("apiVersion", ""))
    group, _, version = api.rpartition("/")
    kind = str(manifest.get("kind", ""))
    plural = {"NetworkPolicy": "networkpolicies", "GlobalNetworkPolicy": "globalnetworkpolicies",
              "CiliumNetworkPolicy": "ciliumnetworkpolicies",
              "CiliumClusterwideNetworkPolicy": "ciliumclusterwidenetworkpolicies",
              "AdminNetworkPolicy": "adminnetworkpolicies",
              "BaselineAdminNetworkPolicy": "baselineadminnetworkpolicies",
              "ClusterNetworkPolicy": "clusternetworkpolicies"}.get(kind)
    if plural is None:
        raise ValueError(f"policy kind {api} {kind} is not one netpol-proof can apply")
    namespaced = kind in ("NetworkPolicy", "CiliumNetworkPolicy")
    return group, version, plural, namespaced


def is_cluster_scoped(manifest: Mapping) -> bool:
    return not policy_resource(manifest)[3]
