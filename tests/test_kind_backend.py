"""KindBackend bring-up and teardown with the two things that cannot run here replaced by fakes
at the boundary: FakeShell (kind/docker/kubectl/helm processes — no Docker engine) and
FakeKubeApi (the API server of the cluster). Checks the order of steps, the private kubeconfig,
--reuse-cluster, --keep-cluster, deletion on failure and Ctrl-C, and the cleaner."""

import json
import os

import pytest

from harness.backends.kind import backend as kind_mod
from harness.backends.kind import cleanup as kind_cleanup
from harness.backends.kind.backend import KindBackend, verify_identity
from harness.errors import BackendError
from harness.shell import ExecResult
from tests.test_kube_waits import cond, deploy, ds, node


class FakeShell:
    """Records argv; `kind get clusters` answers from `clusters`; kind create/delete update it;
    `fail_on` makes the first command containing that word exit 1."""

    def __init__(self, clusters=(), fail_on=None, interrupt_on=None):
        self.clusters = list(clusters)
        self.calls: list[list[str]] = []
        self.fail_on, self.interrupt_on = fail_on, interrupt_on
        self.cgroup = "2"

    def __call__(self, argv, timeout=None, check=False, doing="", **kw):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if self.interrupt_on and self.interrupt_on in argv:
            raise KeyboardInterrupt
        if self.fail_on and self.fail_on in argv:
            from harness.errors import ExecError
            raise ExecError(argv, f"{doing}: exit status 1")
        out = ""
        if argv[1:2] == ["info"]:
            out = self.cgroup + "\n"
        elif argv[1:3] == ["get", "clusters"]:
            out = "\n".join(self.clusters) + "\n"
        elif argv[1:3] == ["create", "cluster"]:
            self.clusters.append(argv[argv.index("--name") + 1])
            open(argv[argv.index("--kubeconfig") + 1], "w").write("apiVersion: v1\n")
        elif argv[1:3] == ["export", "kubeconfig"]:
            open(argv[argv.index("--kubeconfig") + 1], "w").write("apiVersion: v1\n")
        elif argv[1:3] == ["delete", "cluster"]:
            name = argv[argv.index("--name") + 1]
            self.clusters = [c for c in self.clusters if c != name]
        return ExecResult(tuple(argv), 0, out, "", 0.0)

    def names(self):
        return [" ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(c[:3]))
                for c in self.calls]


class FakeKubeApi:
    """The cluster's API for readiness: everything ready, loopback server, kind node names."""

    server = "https://127.0.0.1:41234"

    def __init__(self, kubeconfig, context):
        self.kubeconfig, self.context = kubeconfig, context

    def get_workload(self, kind, namespace, name):
        return ds(3, 3, 3) if kind == "DaemonSet" else deploy(1, 1, 1)

    def get_custom_object(self, *a, **kw):
        return cond("x", Available="True")

    def list_nodes(self):
        n = self.context[len("kind-"):]
        return [node(f"{n}-control-plane", "True"), node(f"{n}-worker", "True"),
                node(f"{n}-worker2", "True")]

    def list_pods(self, namespace, label_selector=""):
        return [{"metadata": {"name": "coredns-1"},
                 "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]


@pytest.fixture
def env(tmp_path, monkeypatch):
    shell = FakeShell()
    monkeypatch.setattr(kind_mod, "run", shell)
    monkeypatch.setattr(kind_mod, "KubeApi", FakeKubeApi)
    monkeypatch.setattr(kind_mod, "resolve", lambda name, *a, **k: f"/cache/bin/{name}")
    monkeypatch.setattr(kind_mod, "resolve_docker", lambda: "/usr/bin/docker")
    monkeypatch.setattr(kind_mod.kc, "install_steps",
                        lambda cni, t, cache: [] if cni == "kindnet" else
                        [(f"install {cni}", [t.kubectl, "--kubeconfig", t.kubeconfig, "apply"])])
    return shell


def backend(tmp_path, cni="calico", **kw):
    return KindBackend(cni, "abc123", cache_dir=tmp_path, status=lambda s: None, **kw)


def test_up_runs_the_steps_in_order_with_a_private_kubeconfig(env, tmp_path):
    b = backend(tmp_path)
    b.up()
    assert env.names() == ["docker info --format", "kind get clusters", "kind create cluster",
                           "kubectl --kubeconfig " + b.kubeconfig, "docker pull --platform", "docker tag "
                           + kind_mod.cnis.AGNHOST_IMAGE, "docker save --platform",
                           "kind load image-archive"]
    create = env.calls[2]
    assert create[create.index("--kubeconfig") + 1] == b.kubeconfig == \
        str(tmp_path / "clusters" / "netpol-proof-calico" / "kubeconfig")
    assert oct(os.stat(b.kubeconfig).st_mode & 0o777) == "0o600"
    cfg = open(create[create.index("--config") + 1]).read()
    assert "name: netpol-proof-calico" in cfg and "disableDefaultCNI: true" in cfg
    assert b.topology is not None and b.topology.image == kind_mod.cnis.AGNHOST_TAG
    b.down()
    assert env.calls[-1][1:5] == ["delete", "cluster", "--name", "netpol-proof-calico"]


def test_keep_cluster_keeps_it(env, tmp_path):
    b = backend(tmp_path, keep_cluster=True)
    b.up()
    b.down()
    assert not any(c[1:3] == ["delete", "cluster"] for c in env.calls)
    assert env.clusters == ["netpol-proof-calico"]


def test_existing_cluster_is_refused_without_reuse(env, tmp_path):
    env.clusters = ["netpol-proof-calico"]
    with pytest.raises(BackendError, match="already exists; pass --reuse-cluster"):
        backend(tmp_path).up()
    assert env.clusters == ["netpol-proof-calico"]      # not ours to delete: nothing was created


def test_reuse_cluster_exports_its_kubeconfig_and_skips_install_and_load(env, tmp_path):
    env.clusters = ["netpol-proof-calico"]
    b = backend(tmp_path, reuse_cluster=True, keep_cluster=True)
    b.up()
    verbs = [tuple(c[1:3]) for c in env.calls]
    assert ("export", "kubeconfig") in verbs and ("create", "cluster") not in verbs
    assert not any("apply" in c or "load" in c for c in env.calls)


def test_a_second_worker_of_the_same_session_shares_the_cluster(env, tmp_path):
    first = backend(tmp_path)
    first.up()
    second = KindBackend("calico", "abc1231", cache_dir=tmp_path, status=lambda s: None)
    second.up()                                   # same session (run id prefix): no refusal
    assert [c[1:3] for c in env.calls].count(["create", "cluster"]) == 1
    first.down()                                  # the other worker (this pid) is still using it
    assert env.clusters == ["netpol-proof-calico"]
    second.down()                                 # last one out deletes it
    assert env.clusters == []


def test_failed_cni_install_deletes_the_half_made_cluster(env, tmp_path):
    env.fail_on = "apply"
    with pytest.raises(Exception, match="install calico"):
        backend(tmp_path).up()
    assert env.clusters == [] and env.calls[-1][1:3] == ["delete", "cluster"]


def test_ctrl_c_during_bring_up_deletes_the_cluster(env, tmp_path):
    env.interrupt_on = "pull"
    with pytest.raises(KeyboardInterrupt):
        backend(tmp_path).up()
    assert env.clusters == []


def test_kindnet_installs_nothing_and_keeps_the_default_cni(env, tmp_path):
    b = backend(tmp_path, "kindnet")
    b.up()
    assert not any("apply" in c for c in env.calls)
    cfg = open(env.calls[2][env.calls[2].index("--config") + 1]).read()
    assert "disableDefaultCNI" not in cfg
    b.down()


def test_identity_check():
    verify_identity("netpol-proof-calico", "https://127.0.0.1:4000",
                    ["netpol-proof-calico-control-plane", "netpol-proof-calico-worker",
                     "netpol-proof-calico-worker2"])
    with pytest.raises(BackendError, match="not on loopback"):
        verify_identity("netpol-proof-calico", "https://10.0.0.5:6443",
                        ["netpol-proof-calico-control-plane"])
    with pytest.raises(BackendError, match=r"\['prod-node-1'\] are not netpol-proof-calico's"):
        verify_identity("netpol-proof-calico", "https://127.0.0.1:4000",
                        ["netpol-proof-calico-control-plane", "prod-node-1"])
    with pytest.raises(BackendError, match="none"):
        verify_identity("netpol-proof-calico", "https://127.0.0.1:4000", [])


def test_cleaner_finds_only_our_clusters_that_no_live_run_uses(tmp_path):
    def users(name, entries):
        d = tmp_path / "clusters" / name
        d.mkdir(parents=True)
        (d / "users.json").write_text(json.dumps(entries))
    users("netpol-proof-calico", [{"run_id": "dead01", "pid": 2 ** 22 + 12345, "keep": False}])
    users("netpol-proof-cilium", [{"run_id": "live01", "pid": os.getpid(), "keep": False}])
    users("netpol-proof-flannel", [{"run_id": "kept01", "pid": 2 ** 22 + 1, "keep": True}])
    found = kind_cleanup.leftover_clusters(
        ["kind", "netpol-proof-calico", "netpol-proof-cilium", "netpol-proof-flannel",
         "netpol-proof-kindnet", "my-netpol-proof-x"], tmp_path)
    assert found == [("netpol-proof-calico", "dead01"), ("netpol-proof-kindnet", "?")]


def test_cleaner_refuses_to_remove_what_is_not_ours(tmp_path):
    from harness.backends.base import Leftover
    assert "refusing" in kind_cleanup.remove(Leftover("kind-cluster", "kind", "?", "kind"), tmp_path)


def test_unknown_cni_is_a_usage_error_naming_the_choices(tmp_path):
    from harness.errors import UsageError
    with pytest.raises(UsageError, match="--cni: unknown CNI 'weave' .* kindnet, calico, cilium, "
                                         "flannel"):
        KindBackend("weave", cache_dir=tmp_path)


def test_cleaner_lists_through_kind_and_deletes_with_our_private_kubeconfig(tmp_path, monkeypatch):
    """A stand-in `kind` executable (FakeKind: a shell script at the Docker boundary) answers
    `get clusters` and logs every call; the cleaner runs it through harness.shell."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "kind.log"
    (bindir / "kind").write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'if [ "$1 $2" = "get clusters" ]; then printf "kind\\nnetpol-proof-calico\\n"; fi\n')
    (bindir / "kind").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    cache = tmp_path / "cache"
    found = kind_cleanup.find(cache)
    assert [(f.kind, f.name) for f in found] == [("kind-cluster", "netpol-proof-calico")]
    assert kind_cleanup.remove(found[0], cache) is None
    assert log.read_text().splitlines()[-1] == (
        f"delete cluster --name netpol-proof-calico --kubeconfig "
        f"{cache}/clusters/netpol-proof-calico/kubeconfig")


def test_cgroup_v1_host_is_refused_before_any_cluster_exists(env, tmp_path):
    env.cgroup = "1"
    with pytest.raises(BackendError, match="cgroup v1; kindest/node:v1.35.8 needs cgroup v2"):
        backend(tmp_path).up()
    assert not any(c[1:3] == ["create", "cluster"] for c in env.calls)


def test_a_cluster_that_is_not_ours_gets_no_cni_installed(env, tmp_path, monkeypatch):
    class RemoteApi(FakeKubeApi):
        server = "https://prod.example.com:6443"
    monkeypatch.setattr(kind_mod, "KubeApi", RemoteApi)
    with pytest.raises(BackendError, match="not on loopback"):
        backend(tmp_path).up()
    assert not any("apply" in c for c in env.calls)


def test_a_failing_cleanup_does_not_hide_the_bring_up_error(env, tmp_path, monkeypatch):
    said = []
    env.fail_on = "apply"
    b = KindBackend("calico", "abc123", cache_dir=tmp_path, status=said.append)
    monkeypatch.setattr(b, "undeploy", lambda: (_ for _ in ()).throw(RuntimeError("api gone")))
    with pytest.raises(Exception, match="install calico"):
        b.up()
    assert any("cleanup after the failure also failed" in s and "api gone" in s for s in said)


def test_docker_without_save_platform_falls_back_to_a_plain_save(env, tmp_path):
    real = env.__call__

    class OldDocker(FakeShell):
        def __call__(self, argv, **kw):
            argv = [str(a) for a in argv]
            if argv[1:2] == ["save"] and "--platform" in argv:
                self.calls.append(argv)
                from harness.errors import ExecError
                raise ExecError(argv, "exit status 125", output="unknown flag: --platform")
            return real(argv, **kw)
    shell = OldDocker()
    shell.calls = env.calls
    kind_mod.run = shell
    backend(tmp_path).up()
    saves = [c for c in env.calls if c[1:2] == ["save"]]
    assert saves[-1] == ["/usr/bin/docker", "save", "-o", str(tmp_path / "clusters" /
                         "netpol-proof-calico" / "agnhost.tar"), kind_mod.cnis.AGNHOST_TAG]


def test_flannel_nodes_mount_the_prepared_plugins_dir(env, tmp_path, monkeypatch):
    prepared = tmp_path / "cache-plugins" / "cni-plugins-v1.9.1-amd64"
    monkeypatch.setattr(kind_mod.kc, "prepare_cni_plugins", lambda cache: prepared)
    b = backend(tmp_path, "flannel")
    b.up()
    create = next(c for c in env.calls if c[1:3] == ["create", "cluster"])
    import yaml
    cfg = yaml.safe_load(open(create[create.index("--config") + 1]))
    assert {m["hostPath"] for n in cfg["nodes"] for m in n["extraMounts"]} == {str(prepared)}
    b.down()


def test_a_mirrored_agnhost_image_is_pulled_tagged_and_named_by_the_pods(env, tmp_path):
    """--agnhost-image: the mirror's reference is pulled by digest, loaded under its tag, and
    the pods name that tag (a preloaded image named by digest may be ignored by the kubelet)."""
    mirror = "mirror.example:5000/e2e/agnhost:2.66.1@sha256:" + "ab" * 32
    b = backend(tmp_path, image=mirror)
    b.up()
    pulls = [c for c in env.calls if c[1:3] == ["pull", "--platform"]]
    assert [c[-1] for c in pulls] == [mirror]
    assert ["tag", mirror, "mirror.example:5000/e2e/agnhost:2.66.1"] == \
        next(c[1:] for c in env.calls if c[1] == "tag")
    assert b.topology is not None and b.topology.image == "mirror.example:5000/e2e/agnhost:2.66.1"
    b.down()


@pytest.mark.parametrize("image,tag", [
    (kind_mod.cnis.AGNHOST_IMAGE, kind_mod.cnis.AGNHOST_TAG),
    ("mirror.example:5000/agnhost:2.66.1", "mirror.example:5000/agnhost:2.66.1"),
    ("mirror.example:5000/agnhost@sha256:" + "0" * 64, "mirror.example:5000/agnhost:netpol-proof"),
    ("agnhost", "agnhost:netpol-proof"),
])
def test_the_tag_the_pods_name(image, tag):
    assert kind_mod.cnis.image_tag(image) == tag
