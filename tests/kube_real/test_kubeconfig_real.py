"""The kubeconfig backend's API path against a REAL kube-apiserver v1.35.8 + kube-controller-manager
v1.35.8 + etcd 3.6.16 (harness.backends.real.controlplane, one plane for this module), not the fakes.

What is real: the API server (validation, 409 on create, label selectors, CRD serving), the
namespace controller (namespaces finish deleting), the ServiceAccount controller (`default`
ServiceAccounts). What is emulated: there is no kubelet, so `EmulatedKubelet` below writes each
of this run's Pods' status through the status subresource (phase Running, podIP, Ready) the way a
kubelet would; nothing runs in the Pods. The `kube-system/kube-dns` Service, which a cluster's DNS
add-on would make, is created by the test. Skipped with the ComponentMissing reason when the
pinned binaries are absent.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from harness import naming, shell
from harness.backends.kubeconfig import KubeconfigBackend
from harness.components import ComponentMissing
from harness.errors import BackendError, ExecError, UsageError
from harness.model import Model
from tests.conftest import live
from tests.controlplane.conftest import plane_unavailable

# one xdist worker runs the whole module (scripts/test.sh uses --dist loadgroup): one plane
pytestmark = [live(plane_unavailable()),
              pytest.mark.xdist_group("kube_real")]

CALICO_CRDS = ("crd.projectcalico.org_networkpolicies.yaml",
               "crd.projectcalico.org_globalnetworkpolicies.yaml")


def calico_crd_dir() -> Path:
    """Calico's own CRDs, from the Go module cache entry of the calico module pinned in
    components/felix/go.mod; ComponentMissing when that module is not in the cache."""
    gomod = Path(__file__).resolve().parents[2] / "components" / "felix" / "go.mod"
    version = next((line.split()[1] for line in gomod.read_text().splitlines()
                    if line.strip().startswith("github.com/projectcalico/calico v")), None)
    if version is None:
        raise ComponentMissing(f"no github.com/projectcalico/calico pin in {gomod}")
    try:
        cache = shell.run(["go", "env", "GOMODCACHE"], timeout=60, check=True,
                          doing="finding the Go module cache").stdout.strip()
    except ExecError as exc:
        raise ComponentMissing(f"Calico's CRDs: {exc}") from None
    d = Path(cache) / "github.com/projectcalico" / f"calico@{version}" / "libcalico-go/config/crd"
    if not all((d / f).is_file() for f in CALICO_CRDS):
        raise ComponentMissing(f"Calico's CRDs are not in the Go module cache ({d}); run "
                               f"`bash scripts/setup.sh --with-components`")
    return d


class EmulatedKubelet:
    """Not a kubelet: a thread that writes the status a kubelet would (Running, podIP, Ready)
    onto every Pod of one run through the status subresource, so deploy()'s wait sees Ready."""

    def __init__(self, core, run_id: str):
        self.core, self.run_id = core, run_id
        self.stop = threading.Event()
        self.next_ip = 10
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        sel = f"{naming.RUN_LABEL}={self.run_id}"
        while not self.stop.wait(0.2):
            for pod in self.core.list_pod_for_all_namespaces(label_selector=sel).items:
                if pod.status and pod.status.pod_ip:
                    continue
                ip = f"10.244.0.{self.next_ip}"
                self.next_ip += 1
                self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {
                    "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                               "conditions": [{"type": "Ready", "status": "True"}]}})

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


@pytest.fixture(scope="module")
def plane():
    from harness.backends.real.controlplane import ControlPlane

    with ControlPlane() as p:
        core = p.api_client()
        from kubernetes import client

        core_api = client.CoreV1Api(core)
        core_api.create_namespaced_service("kube-system", {
            "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53,
                                                          "protocol": "UDP"}]}})
        yield p


@pytest.fixture(scope="module")
def core(plane):
    from kubernetes import client

    return client.CoreV1Api(plane.api_client())


def kubeconfig_with_contexts(plane, tmp_path: Path) -> Path:
    """The plane's admin kubeconfig plus a `kind-local` context on the same loopback server and
    a `kind-remote` context whose server is not loopback (never contacted: the guard refuses it
    first). current-context stays the plane's own, to show the backend ignores it."""
    doc = yaml.safe_load(Path(plane.kubeconfig).read_text())
    user = doc["contexts"][0]["context"]["user"]
    cluster = doc["contexts"][0]["context"]["cluster"]
    remote = {"name": "remote", "cluster": {**doc["clusters"][0]["cluster"],
                                            "server": "https://192.0.2.1:6443"}}
    doc["clusters"].append(remote)
    doc["contexts"] += [{"name": "kind-local", "context": {"cluster": cluster, "user": user}},
                        {"name": "kind-remote", "context": {"cluster": "remote", "user": user}}]
    out = tmp_path / "kubeconfig"
    out.write_text(yaml.safe_dump(doc))
    return out


@pytest.fixture
def backend(plane, core, tmp_path):
    path = kubeconfig_with_contexts(plane, tmp_path)
    b = KubeconfigBackend(run_id=naming.new_run_id(), context="kind-local", kubeconfig=str(path),
                          ready_timeout=30, status=lambda s: None)
    b.up()
    with EmulatedKubelet(core, b.run_id):
        try:
            yield b
        finally:
            b.down()


def test_guard_refuses_the_current_context_and_a_kind_name_off_loopback(plane, tmp_path):
    path = str(kubeconfig_with_contexts(plane, tmp_path))
    with pytest.raises(UsageError, match="does not start with 'kind-'"):
        KubeconfigBackend(context=plane.context, kubeconfig=path).up()
    with pytest.raises(UsageError, match="not on loopback"):
        KubeconfigBackend(context="kind-remote", kubeconfig=path).up()
    with pytest.raises(UsageError, match="no such context"):
        KubeconfigBackend(context="kind-absent", kubeconfig=path).up()
    # the current context, named again with --allow-context, is accepted and really answers
    b = KubeconfigBackend(context=plane.context, allow_context=plane.context, kubeconfig=path)
    b.up()
    try:
        assert b.topology is not None and b.topology.policy_count() == 0
    finally:
        b.down()


def test_deploy_creates_prefixed_labelled_namespaces_on_the_server(backend, core):
    addr = backend.deploy(Model.default(namespaces=["x", "y"], pods=["a"]))
    run = backend.run_id
    for ns in ("x", "y"):
        real = core.read_namespace(f"np-{run}-{ns}")
        assert real.metadata.labels[naming.RUN_LABEL] == run
        assert real.metadata.labels[naming.MANAGED_BY_LABEL] == naming.PROJECT
        assert real.metadata.labels["ns"] == ns
        assert real.metadata.labels["kubernetes.io/metadata.name"] == f"np-{run}-{ns}"
        pod = core.read_namespaced_pod("a", f"np-{run}-{ns}")
        assert pod.metadata.labels[naming.RUN_LABEL] == run
    assert set(addr.pod_ips) == {"x/a", "y/a"}
    assert addr.dns_service_ip == "10.96.0.10"


def test_pre_existing_namespace_without_the_run_label_is_refused_and_survives(backend, core):
    name = f"np-{backend.run_id}-x"
    core.create_namespace({"metadata": {"name": name, "labels": {"team": "a"}}})
    try:
        with pytest.raises(BackendError, match="does not carry this run's label"):
            backend.deploy(Model.default(namespaces=["x"], pods=["a"]))
        assert core.list_namespaced_pod(name).items == []
        backend.undeploy()
        assert core.read_namespace(name).status.phase == "Active"
    finally:
        core.delete_namespace(name)


def test_policy_created_replaced_rewritten_counted_and_deleted(backend, plane):
    from kubernetes import client

    net = client.NetworkingV1Api(plane.api_client())
    backend.deploy(Model.default(namespaces=["x", "y"], pods=["a"]))
    pol = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "allow-y", "namespace": "x"},
           "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
               "matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}}
    ns = f"np-{backend.run_id}-x"
    backend.apply_policy(pol)
    first = net.read_namespaced_network_policy("allow-y", ns)
    sel = first.spec.ingress[0]._from[0].namespace_selector.match_labels
    assert sel == {"kubernetes.io/metadata.name": f"np-{backend.run_id}-y"}
    assert first.metadata.labels[naming.RUN_LABEL] == backend.run_id
    changed = {**pol, "spec": {**pol["spec"], "policyTypes": ["Ingress", "Egress"]}}
    backend.apply_policy(changed)                       # 409 -> replace by name
    second = net.read_namespaced_network_policy("allow-y", ns)
    assert second.metadata.uid == first.metadata.uid
    assert second.spec.policy_types == ["Ingress", "Egress"]
    assert backend.policy_count() == 1
    backend.delete_policy("x", "allow-y")
    assert net.list_namespaced_network_policy(ns).items == []
    assert backend.policy_count() == 0


def test_cluster_scoped_policy_refused_without_the_flag(backend):
    backend.deploy(Model.default(namespaces=["x"], pods=["a"]))
    gnp = {"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
           "metadata": {"name": "deny"}, "spec": {"selector": "all()"}}
    assert "cluster-scoped-policy" not in backend.capabilities().supported
    with pytest.raises(BackendError, match="--allow-cluster-scoped"):
        backend.apply_policy(gnp)
    assert backend.policy_count() == 0


@pytest.fixture(scope="module")
def calico_crds(plane):
    """Calico's real CRDs installed by server-side apply (as the kind backend applies Calico's
    manifests), then waited Established."""
    try:
        d = calico_crd_dir()
    except ComponentMissing as exc:
        pytest.skip(str(exc))
    from kubernetes import client

    api = plane.api_client()
    ext = client.ApiextensionsV1Api(api)
    for f in CALICO_CRDS:
        crd = yaml.safe_load((d / f).read_text())
        ext.patch_custom_resource_definition(crd["metadata"]["name"], crd,
                                             field_manager=naming.PROJECT, force=True,
                                             _content_type="application/apply-patch+yaml")
    from harness.waits import wait_for

    for f in CALICO_CRDS:
        name = yaml.safe_load((d / f).read_text())["metadata"]["name"]
        wait_for(lambda n=name: ext.read_custom_resource_definition(n), lambda c: any(
            x.type == "Established" and x.status == "True" for x in c.status.conditions or []),
            30, f"CRD {name} Established", 0.5)
    return d


def test_calico_kinds_applied_replaced_counted_and_removed_with_real_crds(calico_crds, plane,
                                                                          core, tmp_path):
    from kubernetes import client

    custom = client.CustomObjectsApi(plane.api_client())
    path = kubeconfig_with_contexts(plane, tmp_path)
    b = KubeconfigBackend(run_id=naming.new_run_id(), context="kind-local", kubeconfig=str(path),
                          allow_cluster_scoped=True, ready_timeout=30, status=lambda s: None)
    b.up()
    group, version = "crd.projectcalico.org", "v1"
    with EmulatedKubelet(core, b.run_id):
        try:
            b.deploy(Model.default(namespaces=["x", "y"], pods=["a"]))
            np_ = {"apiVersion": f"{group}/{version}", "kind": "NetworkPolicy",
                   "metadata": {"name": "c", "namespace": "x"},
                   "spec": {"selector": "all()", "types": ["Ingress"], "ingress": [{
                       "action": "Allow", "source": {
                           "namespaceSelector": "kubernetes.io/metadata.name == 'y'"}}]}}
            gnp = {"apiVersion": f"{group}/{version}", "kind": "GlobalNetworkPolicy",
                   "metadata": {"name": f"np-{b.run_id}-deny"},
                   "spec": {"selector": "all()", "types": ["Ingress"]}}
            b.apply_policy(np_)
            b.apply_policy(np_)                                  # 409 -> replace
            b.apply_policy(gnp)
            b.apply_policy(gnp)
            ns = f"np-{b.run_id}-x"
            got = custom.get_namespaced_custom_object(group, version, ns, "networkpolicies", "c")
            assert (got["spec"]["ingress"][0]["source"]["namespaceSelector"]
                    == f"kubernetes.io/metadata.name == 'np-{b.run_id}-y'")
            assert got["metadata"]["labels"][naming.RUN_LABEL] == b.run_id
            assert b.policy_count() == 2
            b.delete_policy("x", "c", "NetworkPolicy")
            assert b.policy_count() == 1
        finally:
            b.down()
    gone = custom.list_cluster_custom_object(group, version, "globalnetworkpolicies",
                                             label_selector=f"{naming.RUN_LABEL}={b.run_id}")
    assert gone["items"] == []


def test_undeploy_deletes_only_this_runs_objects(backend, core):
    other = f"np-{naming.new_run_id()}-x"
    core.create_namespace({"metadata": {"name": other,
                                        "labels": naming.ownership_labels("zzzz9999")}})
    plain = f"np-{backend.run_id}-unlabelled"
    core.create_namespace({"metadata": {"name": plain}})
    try:
        backend.deploy(Model.default(namespaces=["x"], pods=["a"]))
        backend.undeploy()          # the scenario's: its namespace's deletion starts
        backend.undeploy()          # nothing deployed (the run's end): every deletion awaited
        left = {n.metadata.name for n in core.list_namespace().items}
        assert f"np-{backend.run_id}-x" not in left           # the namespace controller finished
        assert f"np-{backend.run_id}--dns-control" not in left
        assert {other, plain} <= left
    finally:
        core.delete_namespace(other)
        core.delete_namespace(plain)


def test_labels_patched_and_removed_on_the_server_and_the_next_deploy_has_names_of_its_own(
        backend, core):
    model = Model.default(namespaces=["x"], pods=["a"])
    backend.deploy(model)
    ns = f"np-{backend.run_id}-x"
    backend.set_labels({"x": {"ns": None, "env": "prod"}}, {"x/a": {"role": "db"}})
    labels = core.read_namespace(ns).metadata.labels
    assert labels.get("env") == "prod" and "ns" not in labels
    assert core.read_namespaced_pod("a", ns).metadata.labels["role"] == "db"
    backend.undeploy()                     # deleted in the background (issue 20 item 3)
    backend.deploy(model)                  # the next scenario: namespaces of its own
    again = f"np-{backend.run_id}--g2-x"
    assert core.read_namespace(again).metadata.labels["ns"] == "x"
    assert core.read_namespaced_pod("a", again).metadata.labels.get("role") is None


def test_calico_v3_kind_without_calicos_api_server_is_a_clear_error(backend):
    """projectcalico.org/v3 is served by Calico's own API server, not by its CRDs (group
    crd.projectcalico.org); on a cluster without it the apply fails and says what was refused."""
    backend.deploy(Model.default(namespaces=["x"], pods=["a"]))
    with pytest.raises(BackendError, match=r"projectcalico.org/v3 NetworkPolicy np-\w+-x/c.*"
                       r"does not serve projectcalico.org/v3 networkpolicies"):
        backend.apply_policy({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                              "metadata": {"name": "c", "namespace": "x"},
                              "spec": {"selector": "all()"}})
    assert backend.policy_count() == 0
