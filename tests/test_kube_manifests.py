"""What the kube backends send to the API server: every object valid against the Kubernetes 1.35
schema (kubernetes-validate, strict), pods shaped like the upstream conformance model, and
policies rewritten from logical to real namespace names."""

import kubernetes_validate as kv
import pytest

from harness import naming
from harness.backends.cni import AGNHOST_IMAGE, AGNHOST_TAG
from harness.backends.kube import manifests as km
from harness.model import ContainerPort, Model, Namespace, Pod, Protocol, Service, ServicePort

RUN = "abc123"


def names(model):
    return km.NameMap(RUN, [n.name for n in model.namespaces])


def test_every_object_of_the_default_model_passes_the_kubernetes_schema():
    model = Model.default()
    objs = km.topology(model, names(model))
    assert [o["kind"] for o in objs].count("Namespace") == 3      # kube-system exists already
    assert [o["kind"] for o in objs].count("Pod") == 9
    for obj in objs:
        kv.validate(obj, "1.35.0", strict=True)


def test_the_dns_control_pod_is_valid_owned_and_outside_every_scenario_namespace():
    ns, pod = km.dns_control_objects(RUN)
    for obj in (ns, pod):
        kv.validate(obj, "1.35.0", strict=True)
    assert ns["metadata"]["name"] == pod["metadata"]["namespace"] == "np-abc123--dns-control"
    assert naming.kube_namespace(RUN, "dns-control") != ns["metadata"]["name"]
    assert pod["metadata"]["labels"]["netpol-proof/run"] == RUN
    assert ns["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "netpol-proof"
    assert [c["name"] for c in pod["spec"]["containers"]] == [km.CLIENT_CONTAINER]


def test_namespaces_are_prefixed_and_carry_model_and_ownership_labels():
    model = Model.default()
    ns = km.topology(model, names(model))[0]
    assert ns["metadata"]["name"] == naming.kube_namespace(RUN, "x") == "np-abc123-x"
    assert ns["metadata"]["labels"] == {"ns": "x", "app.kubernetes.io/managed-by": "netpol-proof",
                                        "netpol-proof/run": RUN}


def test_pod_is_the_conformance_model_one_container_per_port_and_protocol():
    model = Model.default()
    pod = km.pod_manifest(model.pod("y/b"), names(model))
    cs = {c["name"]: c for c in pod["spec"]["containers"]}
    assert sorted(cs) == sorted(["client", "serve-80-tcp", "serve-80-udp", "serve-80-sctp",
                                 "serve-81-tcp", "serve-81-udp", "serve-81-sctp"])
    assert cs["serve-80-tcp"]["args"] == ["serve-hostname", "--http", "--port=80"]
    assert cs["serve-81-udp"]["args"] == ["serve-hostname", "--udp", "--http=false", "--port=81"]
    assert cs["serve-80-sctp"]["args"] == ["porter"]
    # porter writes the value to every association: the pod's hostname names the pod, as the
    # TCP and UDP servers' replies do (probes.KUBE_DIAL_CLIENT prints it)
    assert cs["serve-80-sctp"]["env"] == [{"name": "SERVE_SCTP_PORT_80", "value": "y-b"}]
    assert cs["serve-81-tcp"]["ports"] == [{"containerPort": 81, "protocol": "TCP",
                                            "name": "serve-81-tcp"}]
    assert cs["serve-80-udp"]["startupProbe"]["exec"]["command"] == [
        "/agnhost", "connect", "--protocol=udp", "--timeout=1s", "127.0.0.1:80"]
    # once: no readiness probe runs a process in the container every period for its life
    assert not any("readinessProbe" in c for c in cs.values())
    assert cs["client"]["args"] == ["pause"]
    assert {c["image"] for c in cs.values()} == {AGNHOST_IMAGE}
    assert pod["metadata"]["namespace"] == "np-abc123-y"
    assert pod["metadata"]["labels"]["pod"] == "b" and pod["spec"]["hostname"] == "y-b"


def test_kind_pods_name_the_preloaded_tag():
    model = Model.default(namespaces=["x"], pods=["a"])
    pod = km.pod_manifest(model.pod("x/a"), names(model), AGNHOST_TAG)
    assert {c["image"] for c in pod["spec"]["containers"]} == {AGNHOST_TAG}


def test_custom_model_named_ports_and_service():
    model = Model.build(
        [Namespace("prod", {"env": "prod"})],
        [Pod("prod", "backend", {"app": "backend"},
             (ContainerPort(80, Protocol.TCP, "http"), ContainerPort(5432, Protocol.TCP, "pg")))],
        [Service("prod", "backend", {"app": "backend"}, (ServicePort(8080, "http"),))])
    objs = km.topology(model, names(model))
    for obj in objs:
        kv.validate(obj, "1.35.0", strict=True)
    svc = objs[-1]
    assert svc["kind"] == "Service" and svc["metadata"]["namespace"] == "np-abc123-prod"
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    pod = objs[1]
    assert [c["ports"][0]["name"] for c in pod["spec"]["containers"][:-1]] == ["http", "pg"]


def _np(spec, ns="x"):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": ns}, "spec": spec}


def test_metadata_name_selectors_are_rewritten_to_real_names():
    model = Model.default()
    pol = _np({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y", "ns": "y"}}},
        {"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["z", "kube-system"]},
            {"key": "ns", "operator": "In", "values": ["z"]}]}}]}]})
    out = km.rewrite_policy(pol, names(model))
    kv.validate(out, "1.35.0", strict=True)
    frm = out["spec"]["ingress"][0]["from"]
    assert out["metadata"]["namespace"] == "np-abc123-x"
    assert frm[0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "np-abc123-y", "ns": "y"}   # other labels untouched
    exprs = frm[1]["namespaceSelector"]["matchExpressions"]
    assert exprs[0]["values"] == ["np-abc123-z", "kube-system"]   # kube-system keeps its name
    assert exprs[1]["values"] == ["z"]
    assert out["metadata"]["labels"] == naming.ownership_labels(RUN)
    assert pol["metadata"]["namespace"] == "x"                    # the input is not modified


def test_unknown_namespace_name_is_left_as_written():
    out = km.rewrite_policy(_np({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "elsewhere"}}}]}]}),
        names(Model.default()))
    sel = out["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert sel == {"kubernetes.io/metadata.name": "elsewhere"}


def test_cilium_namespace_keys_are_rewritten():
    cnp = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
           "metadata": {"name": "c", "namespace": "x"},
           "spec": {"endpointSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"toEndpoints": [
               {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y", "pod": "b"}},
               {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                "k8s:k8s-app": "kube-dns"}}]}]}}
    out = km.rewrite_policy(cnp, names(Model.default()))
    eps = out["spec"]["egress"][0]["toEndpoints"]
    assert eps[0]["matchLabels"] == {"k8s:io.kubernetes.pod.namespace": "np-abc123-y", "pod": "b"}
    assert eps[1]["matchLabels"]["k8s:io.kubernetes.pod.namespace"] == "kube-system"


def test_calico_selector_strings_are_rewritten():
    gnp = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
           "metadata": {"name": "c", "namespace": "x"},
           "spec": {"order": 10, "selector": "pod == 'a'", "ingress": [
               {"action": "Deny", "source": {
                   "namespaceSelector": "kubernetes.io/metadata.name == 'y'"}},
               {"action": "Allow", "source": {
                   "namespaceSelector": 'projectcalico.org/name in {"y", "z"} && ns != "q"'}}]}}
    out = km.rewrite_policy(gnp, names(Model.default()))
    src = [r["source"]["namespaceSelector"] for r in out["spec"]["ingress"]]
    assert src[0] == "kubernetes.io/metadata.name == 'np-abc123-y'"
    assert src[1] == 'projectcalico.org/name in {"np-abc123-y", "np-abc123-z"} && ns != "q"'
    assert out["spec"]["selector"] == "pod == 'a'"


@pytest.mark.parametrize("api, kind, plural, namespaced", [
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True),
    ("projectcalico.org/v3", "NetworkPolicy", "networkpolicies", True),
    ("projectcalico.org/v3", "GlobalNetworkPolicy", "globalnetworkpolicies", False),
    ("cilium.io/v2", "CiliumNetworkPolicy", "ciliumnetworkpolicies", True),
    ("cilium.io/v2", "CiliumClusterwideNetworkPolicy", "ciliumclusterwidenetworkpolicies", False),
    ("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy", "adminnetworkpolicies", False),
])
def test_policy_resource(api, kind, plural, namespaced):
    group, version, p, ns = km.policy_resource({"apiVersion": api, "kind": kind})
    assert (f"{group}/{version}", p, ns) == (api, plural, namespaced)
    assert km.is_cluster_scoped({"apiVersion": api, "kind": kind}) is (not namespaced)


def test_unknown_policy_kind_is_refused():
    with pytest.raises(ValueError, match="v1 ConfigMap is not one netpol-proof can apply"):
        km.policy_resource({"apiVersion": "v1", "kind": "ConfigMap"})


def test_name_map_rewrites_service_dns_names_with_a_logical_namespace():
    names = km.NameMap("abc123", ["x", "y", "kube-system"])
    assert names.dns_name("web.y.svc.cluster.local") == "web.np-abc123-y.svc.cluster.local"
    assert names.dns_name("web.y.svc.cluster.local.") == "web.np-abc123-y.svc.cluster.local."
    assert names.dns_name("web.y.svc") == "web.np-abc123-y.svc"
    assert names.dns_name("web.y") == "web.np-abc123-y"
    assert names.dns_name("kube-dns.kube-system.svc") == "kube-dns.kube-system.svc"
    # left as written: short names (search path), other namespaces, other shapes
    for name in ("web", "web.q.svc", "web.y.pod.cluster.local", "a.b.c", "example.com",
                 "web.y.svc.other.domain"):
        assert names.dns_name(name) == name
