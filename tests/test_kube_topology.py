"""KubeTopology's exec path against FakeKubeApi, a fake of the Kubernetes API server at the client
boundary: exec needs a kubelet running the pods' containers, which cannot run here (cgroups v1,
no container runtime). Everything else KubeTopology does (namespaces, labels, policies,
cluster-scoped refusal, cleanup by labels) is tested against the real kube-apiserver in
tests/kube_real/test_kubeconfig_real.py, and was removed from this file."""

import pytest

from harness.backends.kube import topology as kube_mod
from harness.backends.kube.api import KubeApi
from harness.backends.kube.topology import KubeBackendBase, KubeTopology
from harness.errors import BackendError, ExecError
from harness.model import Model

RUN = "abc123"


class TopologyOnly(KubeBackendBase):
    """The kube backends' shared members over a topology handed in; what a concrete backend
    adds (bring-up, teardown, capabilities) is not what these tests exercise, so it fails."""

    name, profile, run_id = "kubeconfig", "test", RUN

    def __init__(self, topology: KubeTopology):
        self.topology = topology

    def capabilities(self):
        raise AssertionError("not part of this test")

    def up(self) -> None:
        raise AssertionError("not part of this test")

    def down(self) -> None:
        raise AssertionError("not part of this test")


class FakeApiException(Exception):
    def __init__(self, status, reason=""):
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.body = status, reason, reason


class _Client:
    ApiException = FakeApiException


def _match(labels, selector):
    for term in filter(None, (selector or "").split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    return True


class FakeKubeApi:
    """Objects in dicts; pods become Ready with an IP at once; namespaces vanish one poll after
    deletion (Terminating). Reads reuse KubeApi's own code on top of these fakes."""

    client = _Client
    _absent_is_none = KubeApi._absent_is_none
    list_pods = KubeApi.list_pods
    list_nodes = KubeApi.list_nodes

    def __init__(self):
        self.ns = {"kube-system": {"metadata": {"name": "kube-system", "labels": {}}},
                   "prod": {"metadata": {"name": "prod", "labels": {}}},
                   "np-zzz999-x": {"metadata": {"name": "np-zzz999-x", "labels": {
                       "app.kubernetes.io/managed-by": "netpol-proof", "netpol-proof/run": "zzz999"}}}}
        self.terminating: set[str] = set()
        self.pods = {("kube-system", "coredns-1"): {
            "metadata": {"name": "coredns-1", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns"}},
            "status": {"podIP": "10.244.0.3", "conditions": [{"type": "Ready", "status": "True"}]}}}
        self.services = {("kube-system", "kube-dns"): {"spec": {"clusterIP": "10.96.0.10"}},
                         ("default", "kubernetes"): {"spec": {"clusterIP": "10.96.0.1"}}}
        self.netpols: dict = {}
        self.sa_polls: dict[str, int] = {}
        self.store: dict = {}               # custom objects: (group, plural, ns, name) -> body
        self.log: list[tuple] = []
        #: where pod IPs come from, and each node's spec.podCIDRs (a kind cluster's by default)
        self.pod_net = "10.244.1."
        self.node_cidrs: list[list[str]] = [["10.244.0.0/24"], ["10.244.1.0/24"]]
        self.core, self.net, self.custom = self, self, _Custom(self)

    def get_custom_object(self, group, version, plural, name, namespace=None):
        return self.store.get((group, plural, namespace, name))

    def _dict(self, obj):
        return obj

    def exec_core(self):
        return ("exec-core", id(self))

    # core
    def read_namespace(self, name):
        if name not in self.ns:
            raise FakeApiException(404)
        return self.ns[name]

    def create_namespace(self, obj):
        self.log.append(("create", "ns", obj["metadata"]["name"]))
        self.ns[obj["metadata"]["name"]] = obj
        self.sa_polls[obj["metadata"]["name"]] = 0

    def read_namespaced_service_account(self, name, ns):
        """The `default` ServiceAccount appears on the second read (the controller is async)."""
        self.sa_polls[ns] = self.sa_polls.get(ns, 0) + 1
        if self.sa_polls[ns] < 2:
            raise FakeApiException(404)
        return {"metadata": {"name": name, "namespace": ns}}

    def create_namespaced_pod(self, ns, obj):
        if self.sa_polls.get(ns, 2) < 2:
            raise FakeApiException(403, f"error looking up service account {ns}/default")
        self._create_pod(ns, obj)

    def list_namespace(self, label_selector=""):
        for n in list(self.terminating):      # finish deletions one poll later
            self.ns.pop(n, None)
            self.terminating.discard(n)
        return {"items": [o for o in self.ns.values()
                          if _match(o["metadata"].get("labels") or {}, label_selector)]}

    def delete_namespace(self, name):
        self.log.append(("delete", "ns", name))
        self.terminating.add(name)
        for key in [k for k in self.pods if k[0] == name]:
            del self.pods[key]

    def _create_pod(self, ns, obj):
        if ns not in self.ns:
            raise FakeApiException(404, f"namespace {ns} not found")
        n = len(self.pods)
        self.pods[(ns, obj["metadata"]["name"])] = {**obj, "status": {
            "podIP": f"{self.pod_net}{10 + n}", "conditions": [{"type": "Ready", "status": "True"}]}}

    def create_namespaced_service(self, ns, obj):
        self.services[(ns, obj["metadata"]["name"])] = {**obj, "spec": {
            **obj["spec"], "clusterIP": f"10.96.1.{len(self.services)}"}}

    def read_namespaced_service(self, name, ns):
        if (ns, name) not in self.services:
            raise FakeApiException(404, "NotFound")
        return self.services[(ns, name)]

    def list_namespaced_pod(self, ns, label_selector=""):
        return {"items": [p for (n, _), p in self.pods.items()
                          if n == ns and _match(p["metadata"].get("labels") or {}, label_selector)]}

    def list_pod_for_all_namespaces(self, label_selector=""):
        return {"items": [p for p in self.pods.values()
                          if _match(p["metadata"].get("labels") or {}, label_selector)]}

    def list_node(self):
        return {"items": [{"metadata": {"name": f"w{i}"}, "spec": {"podCIDRs": cidrs},
                           "status": {"addresses": [
                               {"type": "InternalIP", "address": f"172.18.0.{3 + i}"}]}}
                          for i, cidrs in enumerate(self.node_cidrs)]}

    def patch_namespace(self, name, body):
        labels = self.ns[name]["metadata"].setdefault("labels", {})
        for k, v in body["metadata"]["labels"].items():
            labels.pop(k, None) if v is None else labels.__setitem__(k, v)

    def patch_namespaced_pod(self, name, ns, body):
        labels = self.pods[(ns, name)]["metadata"].setdefault("labels", {})
        for k, v in body["metadata"]["labels"].items():
            labels.pop(k, None) if v is None else labels.__setitem__(k, v)

    # networking
    def create_namespaced_network_policy(self, ns, body):
        if (ns, body["metadata"]["name"]) in self.netpols:
            raise FakeApiException(409, "AlreadyExists")
        self.log.append(("create", "netpol", ns, body["metadata"]["name"]))
        self.netpols[(ns, body["metadata"]["name"])] = body

    def replace_namespaced_network_policy(self, name, ns, body):
        self.log.append(("replace", "netpol", ns, name))
        self.netpols[(ns, name)] = body

    def delete_namespaced_network_policy(self, name, ns):
        if (ns, name) not in self.netpols:
            raise FakeApiException(404, "NotFound")
        del self.netpols[(ns, name)]

    def list_network_policy_for_all_namespaces(self, label_selector=""):
        return {"items": [p for p in self.netpols.values()
                          if _match(p["metadata"].get("labels") or {}, label_selector)]}


class _Custom:
    def __init__(self, api):
        self.api = api

    def create_namespaced_custom_object(self, group, version, ns, plural, body):
        self.api.store[(group, plural, ns, body["metadata"]["name"])] = body

    def create_cluster_custom_object(self, group, version, plural, body):
        key = (group, plural, None, body["metadata"]["name"])
        if key in self.api.store:
            raise FakeApiException(409)
        self.api.store[key] = {**body, "metadata": {**body["metadata"], "resourceVersion": "7"}}

    def replace_cluster_custom_object(self, group, version, plural, name, body):
        self.api.log.append(("replace", plural, body["metadata"].get("resourceVersion")))
        self.api.store[(group, plural, None, name)] = body

    def get_cluster_custom_object(self, group, version, plural, name):
        if (group, plural, None, name) not in self.api.store:
            raise FakeApiException(404)
        return self.api.store[(group, plural, None, name)]

    def list_cluster_custom_object(self, group, version, plural, label_selector=""):
        return {"items": [b for (g, p, _, _), b in self.api.store.items() if (g, p) == (group, plural)
                          and _match((b.get("metadata") or {}).get("labels") or {}, label_selector)]}

    def delete_namespaced_custom_object(self, group, version, ns, plural, name):
        del self.api.store[(group, plural, ns, name)]

    def delete_cluster_custom_object(self, group, version, plural, name):
        self.api.store.pop((group, plural, None, name), None)


@pytest.fixture
def fake():
    return FakeKubeApi()


def topo(api, allow=True):
    return KubeTopology(api, RUN, allow_cluster_scoped=allow, ready_timeout=2,
                        status=lambda s: None)


def test_deploy_creates_prefixed_labelled_namespaces_and_returns_real_addresses(fake):
    t = topo(fake)
    addr = t.deploy(Model.default(namespaces=["x", "y"], pods=["a", "b"]))
    assert {n for n in fake.ns} >= {"np-abc123-x", "np-abc123-y"}
    assert fake.ns["np-abc123-x"]["metadata"]["labels"] == {
        "ns": "x", "app.kubernetes.io/managed-by": "netpol-proof", "netpol-proof/run": RUN}
    assert sorted(addr.pod_ips) == ["kube-system/coredns", "x/a", "x/b", "y/a", "y/b"]
    assert addr.dns_service_ip == "10.96.0.10" and addr.node_ips == ("172.18.0.3", "172.18.0.4")
    assert all(ip.startswith("10.244.") for ip in addr.pod_ips.values())
    assert addr.pod_cidr == "10.244.0.0/23"     # the nodes' ranges
    assert addr.api_service_ip == "10.96.0.1"   # what kubernetes.default must resolve to


def test_pod_cidr_is_read_from_the_cluster_so_pod_cidr_policies_render_there(fake):
    """A cluster whose pods live in 10.100.0.0/16 (not kind's 10.244.0.0/16): {{podCIDR}} must
    hold every pod, or `except: [{{podIP y/b}}/32]` falls outside the cidr and the policy is
    invalid (it raised ValueError, a traceback, on the hard-coded 10.244.0.0/16)."""
    from pathlib import Path

    from harness.expected import oracle_at
    from harness.scenario import load_scenario

    fake.pod_net = "10.100.7."
    fake.node_cidrs = [["10.100.0.0/24"], ["10.100.1.0/24", "fd00:10::/64"]]
    fake.pods[("kube-system", "coredns-1")]["status"]["podIP"] = "10.100.0.3"
    scenario = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "conformance"
                             / "ipblock-egress-except.yaml")
    addr = topo(fake).deploy(scenario.model)
    # the nodes' ranges widened to the pods' own addresses (IPAMs that ignore node ranges)
    assert addr.pod_cidr == "10.100.0.0/21"
    oracle = oracle_at(scenario, 0, addr)        # renders and parses the policy
    assert oracle.decide("x/a", "y/b", 80, "TCP").expectation.value == "deny"
    assert oracle.decide("x/a", "y/a", 80, "TCP").expectation.value == "allow"


def test_pod_cidr_without_node_ranges_comes_from_the_pods():
    assert kube_mod.cluster_pod_cidr([{"spec": {}}], ["10.8.3.4", "10.8.3.200"]) == "10.8.3.0/24"
    assert kube_mod.cluster_pod_cidr([{"spec": {"podCIDR": "10.9.0.0/24"}}], []) == "10.9.0.0/24"
    with pytest.raises(BackendError, match="no node has a spec.podCIDR"):
        kube_mod.cluster_pod_cidr([], [])


def test_undeploy_deletes_only_this_runs_namespaces_and_waits_until_gone(fake):
    t = topo(fake)
    t.deploy(Model.default(namespaces=["x"], pods=["a"]))
    t.undeploy(timeout=5)
    deleted = [e[2] for e in fake.log if e[:2] == ("delete", "ns")]
    assert deleted == ["np-abc123--dns-control", "np-abc123-x"]     # both the run's own
    assert {"prod", "np-zzz999-x", "kube-system"} <= set(fake.ns)   # others survive
    assert "np-abc123-x" not in fake.ns


def test_existing_namespace_that_is_not_ours_is_refused(fake):
    fake.ns["np-abc123-x"] = {"metadata": {"name": "np-abc123-x", "labels": {"team": "a"}}}
    with pytest.raises(BackendError, match="does not carry this run's label"):
        topo(fake).deploy(Model.default(namespaces=["x"], pods=["a"]))
    assert not any(e[0] == "create" for e in fake.log)


def test_policy_is_rewritten_created_then_replaced_and_counted(fake):
    t = topo(fake)
    t.deploy(Model.default(namespaces=["x", "y"], pods=["a"]))
    pol = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "allow-y", "namespace": "x"},
           "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
               "matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}}
    t.apply_policy(pol)
    t.apply_policy(pol)
    assert [e[0] for e in fake.log if e[1] == "netpol"] == ["create", "replace"]
    stored = fake.netpols[("np-abc123-x", "allow-y")]
    sel = stored["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert sel == {"kubernetes.io/metadata.name": "np-abc123-y"}
    assert t.policy_count() == 1
    t.delete_policy("x", "allow-y")
    assert t.policy_count() == 0


def test_cluster_scoped_policy_refused_unless_allowed(fake):
    gnp = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
           "metadata": {"name": "deny"}, "spec": {"selector": "all()"}}
    t = topo(fake, allow=False)
    t.deploy(Model.default(namespaces=["x"], pods=["a"]))
    with pytest.raises(BackendError, match="--allow-cluster-scoped"):
        t.apply_policy(gnp)
    assert fake.store == {}
    t2 = topo(fake, allow=True)
    t2.deploy(Model.default(namespaces=["x"], pods=["a"]))
    t2.apply_policy(gnp)
    t2.apply_policy(gnp)                                 # 409 -> replace with resourceVersion
    assert ("replace", "globalnetworkpolicies", "7") in fake.log
    assert t2.policy_count() == 1
    t2.undeploy(timeout=5)                              # cluster-scoped ones go too
    assert fake.store == {}


def test_calico_namespaced_policy_is_deleted_through_its_own_group(fake):
    t = topo(fake)
    t.deploy(Model.default(namespaces=["x"], pods=["a"]))
    t.apply_policy({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                    "metadata": {"name": "c", "namespace": "x"}, "spec": {"selector": "all()"}})
    assert ("projectcalico.org", "networkpolicies", "np-abc123-x", "c") in fake.store
    assert t.policy_count() == 1
    t.delete_policy("x", "c", "NetworkPolicy")
    assert fake.store == {} and t.policy_count() == 0


def test_labels_are_patched_on_real_objects(fake):
    t = topo(fake)
    t.deploy(Model.default(namespaces=["x"], pods=["a"]))
    t.set_labels({"x": {"ns": None, "env": "prod"}}, {"x/a": {"role": "db"}})
    assert fake.ns["np-abc123-x"]["metadata"]["labels"].get("env") == "prod"
    assert "ns" not in fake.ns["np-abc123-x"]["metadata"]["labels"]
    assert fake.pods[("np-abc123-x", "a")]["metadata"]["labels"]["role"] == "db"


def test_exec_targets(fake, monkeypatch):
    calls = []
    monkeypatch.setattr(kube_mod, "stream_exec",
                        lambda core, ns, pod, container, argv, timeout, target="":
                        calls.append((ns, pod, container, target))
                        or ("result" if core == fake.exec_core() else "wrong client"))
    t = topo(fake)
    with pytest.raises(ExecError, match="no topology deployed"):
        t.exec("x/a", ["true"], 1)
    t.deploy(Model.default(namespaces=["x"], pods=["a"]))
    assert t.exec("x/a", ["true"], 1) == "result"
    t.exec("dns-control", ["true"], 1)
    assert calls == [("np-abc123-x", "a", "client", "x/a"),
                     ("np-abc123--dns-control", "dns-control", "client", "dns-control")]
    # the CoreDNS image is distroless: nothing is ever exec'd there
    with pytest.raises(ExecError, match="nothing can run inside the cluster DNS pod"):
        t.exec("kube-system/coredns", ["true"], 1)
    with pytest.raises(ExecError, match="no external hosts"):
        t.exec("ext:web", ["true"], 1)


def test_the_dns_positive_control_asks_the_dns_service_from_the_control_pod(fake, monkeypatch):
    """A blocked lookup is proven by the DNS server answering someone in the same round. It was
    `nslookup NAME 127.0.0.1` exec'd inside CoreDNS, whose image has no nslookup: every DNS-deny
    cell would have been a probe error on a real cluster."""
    from harness.model import Protocol
    from harness.prober import loopback_probe

    ran = []

    def exec_(core, ns, pod, container, argv, timeout, target=""):
        ran.append((ns, pod, container, list(argv)))
        from harness.errors import ExecResult
        return ExecResult(list(argv), 1, "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n"
                          "** server can't find nothing.x: NXDOMAIN\n", "", 0.01, target)

    monkeypatch.setattr(kube_mod, "stream_exec", exec_)
    t = topo(fake)
    t.deploy(Model.default(namespaces=["x"], pods=["a"]))
    # created with the topology, ready before the first probe, owned by the run
    assert ("np-abc123--dns-control", "dns-control") in fake.pods
    assert "np-abc123--dns-control" in t.own_namespaces()

    out = loopback_probe(TopologyOnly(t), "kube-system/coredns", 53, Protocol.UDP, 1.0, "nothing.x")
    (ns, pod, container, argv), = ran
    assert (ns, pod, container) == ("np-abc123--dns-control", "dns-control", "client")
    # the logical name <svc>.<ns> is asked as the cluster knows it: the run's real namespace
    assert argv[0] == "nslookup" and argv[-2:] == ["nothing.np-abc123-x", "10.96.0.10"]
    assert out.outcome.value == "dns-nxdomain"           # the DNS server answered
    t.undeploy(timeout=5)
    assert ("delete", "ns", "np-abc123--dns-control") in fake.log


def test_real_client_gives_each_thread_its_own_exec_api_client(tmp_path):
    import threading

    import yaml
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-t",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "kind-t", "context": {"cluster": "c", "user": "u"}}]}))
    api = KubeApi(str(cfg), "kind-t")           # nothing is contacted until a call
    mine = api.exec_core()
    assert api.exec_core() is mine
    assert mine.api_client is not api.core.api_client
    other = []
    t = threading.Thread(target=lambda: other.append(api.exec_core()))
    t.start()
    t.join()
    assert other[0].api_client is not mine.api_client
    assert other[0].api_client.configuration.host == api.server == "https://127.0.0.1:9"


def test_dns_names_in_probes_are_mapped_to_the_runs_real_namespaces(fake, monkeypatch):
    """Issue 10 item 3: scenarios name Services with logical namespaces; the kube path must ask
    for `np-<run>-<ns>` names, through the prober and the loopback control alike."""
    from harness.model import Protocol, Service, ServicePort
    from harness.prober import loopback_probe, probe_round
    from harness.probes import ProbeSpec
    from harness.shell import ExecResult

    argvs = []
    monkeypatch.setattr(kube_mod, "stream_exec",
                        lambda core, ns, pod, container, argv, timeout, target="":
                        argvs.append(tuple(argv)) or ExecResult(tuple(argv), 1, "", "", 0.0, target))
    base = Model.default(namespaces=["x", "y"], pods=["a"])
    model = Model.build(base.namespaces, base.user_pods,
                        [Service("y", "web", {"pod": "a"}, (ServicePort(80, 80),))])
    backend = TopologyOnly(topo(fake))
    addr = backend.deploy(model)
    specs = [ProbeSpec("x/a", "dns", 53, Protocol.UDP, "web.y.svc.cluster.local"),
             ProbeSpec("x/a", "dns", 53, Protocol.UDP, "web.y.svc"),
             ProbeSpec("x/a", "dns", 53, Protocol.UDP, "Web.Y."),
             ProbeSpec("x/a", "dns", 53, Protocol.UDP, "web"),            # search path's job
             ProbeSpec("x/a", "dns", 53, Protocol.UDP, "web.q.svc.cluster.local"),  # not ours
             ProbeSpec("x/a", "web.y", 80, Protocol.TCP),
             ProbeSpec("x/a", "web.y.svc.cluster.local", 81, Protocol.TCP)]
    probe_round(backend, specs, addr, 1.0, toolkit=backend.toolkit)
    loopback_probe(backend, "kube-system/coredns", 53, Protocol.UDP, 1.0, "web.y.svc")
    # a source's probes run in one exec (prober.probe_source): each job as its own exec's argv
    from harness.probe_clients import KUBE_BATCH_DRIVER
    from tests.test_prober import jobs_of

    argvs = [j for a in argvs for j in (jobs_of(a) if a[2:3] == (KUBE_BATCH_DRIVER,) else [a])]
    # the loopback control is asked from the DNS-control pod, of the DNS Service (10.96.0.10)
    names = sorted(a[-1] for a in argvs if a[0] == "nslookup") + \
        sorted(a[-2] for a in argvs if a[0] == "nslookup" and a[-1] == "10.96.0.10")
    assert names == ["10.96.0.10", "Web.np-abc123-y.", "web", "web.np-abc123-y.svc",
                     "web.np-abc123-y.svc.cluster.local", "web.q.svc.cluster.local",
                     "web.np-abc123-y.svc"]
    urls = sorted(u for a in argvs if a[3:4] == ("np-tcp",) for u in a[6:])
    assert urls == ["http://web.np-abc123-y.svc.cluster.local:81/", "http://web.np-abc123-y:80/"]


def test_an_interrupted_backend_stops_deploying_and_still_undeploys(fake):
    """Ctrl-C with -j: a scenario that is deploying ends at the next object or poll
    (KubeTopology.checkpoint is the backend's stop_if_interrupted), and its undeploy still
    removes what was created (on an existing cluster nothing else would)."""
    from harness.lifecycle import Terminated

    t = topo(fake)
    backend = TopologyOnly(t)
    t.checkpoint = backend._deploying
    created: list[str] = []
    create = fake.create_namespace

    def create_then_interrupt(obj):
        created.append(obj["metadata"]["name"])
        create(obj)
        backend.interrupt()            # the run stops after the first namespace

    fake.create_namespace = create_then_interrupt
    with pytest.raises(Terminated, match="kubeconfig run abc123 \\(test\\) is stopping: not "
                                         "deploying a scenario"):
        backend.deploy(Model.default(namespaces=["x", "y"], pods=["a", "b"]))
    assert len(created) == 1 and not [k for k in fake.pods if k[0].startswith("np-abc123-")]
    backend.undeploy()
    assert ("delete", "ns", created[0]) in fake.log


def test_a_scenarios_namespaces_are_deleted_in_the_background_and_awaited_at_the_end(fake):
    """Issue 20 item 3: undeploy starts the deletion and returns; the next scenario deploys
    into namespaces of its own while the last ones terminate; the DNS-control pod is made
    once; the backend's down (undeploy with nothing deployed) deletes and awaits the rest."""
    backend = TopologyOnly(topo(fake))
    model = Model.default(namespaces=["x", "y"], pods=["a"])
    backend.deploy(model)
    backend.undeploy()
    assert [e[2] for e in fake.log if e[:2] == ("delete", "ns")] == ["np-abc123-x", "np-abc123-y"]
    assert {"np-abc123-x", "np-abc123-y"} <= fake.terminating     # not awaited
    addr = backend.deploy(model)
    assert {"np-abc123--g2-x", "np-abc123--g2-y"} <= set(fake.ns)
    assert sorted(k for k in fake.pods if k[0].startswith("np-abc123")) == [
        ("np-abc123--dns-control", "dns-control"), ("np-abc123--g2-x", "a"),
        ("np-abc123--g2-y", "a")]
    assert backend.real_dns_name("web.y.svc") == "web.np-abc123--g2-y.svc"
    assert set(addr.pod_ips) == {"kube-system/coredns", "x/a", "y/a"}
    assert [e for e in fake.log if e[:2] == ("create", "ns") and "dns" in e[2]] == [
        ("create", "ns", "np-abc123--dns-control")]                  # made once
    backend.undeploy()
    backend.undeploy()                      # down(): nothing deployed, await everything
    assert not [n for n in fake.ns if n.startswith("np-abc123")]
    assert ("delete", "ns", "np-abc123--dns-control") in fake.log
    # a deploy after the end gets names of its own again, and the DNS-control pod back
    backend.deploy(model)
    assert "np-abc123--g3-x" in fake.ns and ("np-abc123--dns-control", "dns-control") in fake.pods


def test_generation_names_cannot_meet_a_logical_name_or_the_dns_control_namespace():
    from harness.backends.kube.manifests import generation_namespace
    from harness.naming import kube_dns_control_namespace

    assert generation_namespace("r1", "x") == "np-r1-x"
    assert generation_namespace("r1", "x", 2) == "np-r1--g2-x"
    assert generation_namespace("r1", "x", 2) != kube_dns_control_namespace("r1")


NETPOL = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}}
CALICO = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
          "metadata": {"name": "c", "namespace": "y"}, "spec": {"selector": "all()"}}


def test_a_parked_deploy_loses_its_policies_and_serves_the_next_scenario_of_its_model(fake):
    """Issue 20: a scenario that ended cleanly leaves its pods (KubeBackendBase.park); the
    next deploy of an equal model creates nothing, reuses the names, and starts with no
    policy of the run, of either API group, in those namespaces."""
    backend = TopologyOnly(topo(fake))
    model = Model.default(namespaces=["x", "y"], pods=["a", "b"])
    first = backend.deploy(model)
    backend.apply_policy(NETPOL)
    backend.apply_policy(CALICO)
    assert backend.policy_count() == 2
    backend.park()
    assert not fake.netpols and fake.store == {}                    # policies deleted
    assert not [e for e in fake.log if e[:2] == ("delete", "ns")]   # namespaces kept
    assert backend.keeps(Model.default(namespaces=["x", "y"], pods=["a", "b"]))
    assert not backend.keeps(Model.default(namespaces=["x", "y"], pods=["a"]))
    created = len([e for e in fake.log if e[0] == "create"])
    again = backend.deploy(Model.default(namespaces=["x", "y"], pods=["a", "b"]))
    assert len([e for e in fake.log if e[0] == "create"]) == created   # nothing new
    assert again.pod_ips == first.pod_ips
    assert backend.real_dns_name("web.y.svc") == "web.np-abc123-y.svc"
    assert backend.policy_count() == 0 and not backend.keeps(model)    # it is in use again
    backend.apply_policy(NETPOL)
    backend.park()
    backend.undeploy()                     # down(): the kept namespaces go, and are awaited
    assert not [n for n in fake.ns if n.startswith("np-abc123")]
    assert not backend.keeps(model)


def test_a_relabelled_or_other_model_deploy_is_never_reused(fake):
    """A step's label change makes the pods differ from the model as created: such a deploy
    is deleted, not kept. A deploy of another model deletes the kept one first (at most one
    is kept, so idle pods do not pile up)."""
    backend = TopologyOnly(topo(fake))
    model = Model.default(namespaces=["x"], pods=["a"])
    backend.deploy(model)
    backend.set_labels({}, {"x/a": {"pod": "z"}})
    backend.park()
    assert ("delete", "ns", "np-abc123-x") in fake.log and not backend.keeps(model)
    backend.deploy(model)                                   # fresh: generation 2
    backend.park()
    assert backend.keeps(model)
    backend.deploy(Model.default(namespaces=["x"], pods=["b"]))
    assert ("delete", "ns", "np-abc123--g2-x") in fake.log and not backend.keeps(model)
    assert "np-abc123--g3-x" in fake.ns


def test_a_deploy_whose_policy_cannot_be_deleted_is_not_kept(fake):
    """The read-back decides: a policy the API server still lists in the deploy's namespaces
    (here: its delete refused) and the namespaces are deleted instead of kept."""
    backend = TopologyOnly(topo(fake))
    model = Model.default(namespaces=["x"], pods=["a"])
    backend.deploy(model)
    backend.apply_policy(NETPOL)

    def refuse(name, ns):
        raise FakeApiException(403, "Forbidden")

    fake.delete_namespaced_network_policy = refuse
    backend.park()
    assert not backend.keeps(model) and ("delete", "ns", "np-abc123-x") in fake.log


def test_an_interrupted_run_keeps_nothing(fake):
    backend = TopologyOnly(topo(fake))
    model = Model.default(namespaces=["x"], pods=["a"])
    backend.deploy(model)
    backend.interrupt()
    backend.park()
    assert not backend.keeps(model) and ("delete", "ns", "np-abc123-x") in fake.log


def test_tenants_share_the_hosts_cluster_under_run_ids_of_their_own(fake):
    """harness.backends.kube.tenants: a tenant deploys into namespaces of its own run id on
    the host's API client, answers with the host's capabilities and faults, is interrupted
    with it, and is brought down (its namespaces deleted) before the host."""
    from harness.backends.kube.tenants import KubeTenant, SharedCluster

    class Host(SharedCluster):
        name, profile, run_id, status = "kubeconfig", "calico", RUN, staticmethod(print)
        faults: list = []

        def __init__(self):
            self.topology = topo(fake)

        def capabilities(self):
            return "the host's"

        def up(self):
            pass

        def down(self):
            errors = self.down_tenants()
            self.undeploy()
            assert not errors

        def fault(self, action, target, node=None):
            self.faults.append((action, target, node))
            return "done"

    host = Host()
    t1, t2 = host.tenant("abc123b1"), host.tenant("abc123b2")
    assert isinstance(t1, KubeTenant) and host.max_parallel > 1
    for t in (t1, t2):
        t.up()
        t.deploy(Model.default(namespaces=["x"], pods=["a"]))
    assert {"np-abc123b1-x", "np-abc123b2-x"} <= set(fake.ns)
    assert fake.ns["np-abc123b2-x"]["metadata"]["labels"]["netpol-proof/run"] == "abc123b2"
    assert t1.capabilities() == "the host's" and t1.fault("stop", "engine", 1) == "done"
    assert host.faults == [("stop", "engine", 1)]
    with t1.sharing(alone=False), t2.sharing(alone=False):
        assert host._shared()[0].running == (2, False)      # one Sharing, the host's
    host.interrupt()
    assert t1.interrupted and t2.interrupted
    host.interrupted = t1.interrupted = t2.interrupted = False
    host.down()
    assert not [n for n in fake.ns if n.startswith("np-abc123")]
    assert t1.topology is None and host._shared()[1] == []
