"""Every command the kind backend runs, as argv lists: private kubeconfig and explicit context
everywhere, kind --wait 0s, server-side apply, helm with pinned values, the image pre-load
dance; plus the Calico Installation and the Flannel CNI-plugins preparation."""

import hashlib
import io
import tarfile

import pytest

from harness.backends import cni
from harness.backends.kind import commands as kc
from harness.errors import BackendError

T = kc.Tools("/c/bin/kind", "/c/bin/kubectl", "/c/bin/helm", "/usr/bin/docker",
             "/c/clusters/netpol-proof-calico/kubeconfig", "kind-netpol-proof-calico")


def test_kind_create_uses_private_kubeconfig_and_no_wait():
    assert kc.kind_create(T, "netpol-proof-calico", "/c/cfg.yaml") == [
        "/c/bin/kind", "create", "cluster", "--name", "netpol-proof-calico", "--config",
        "/c/cfg.yaml", "--kubeconfig", "/c/clusters/netpol-proof-calico/kubeconfig", "--wait", "0s"]


def test_kind_delete_and_export_name_the_private_kubeconfig():
    assert kc.kind_delete(T, "netpol-proof-calico") == [
        "/c/bin/kind", "delete", "cluster", "--name", "netpol-proof-calico", "--kubeconfig",
        T.kubeconfig]
    assert kc.kind_export_kubeconfig(T, "netpol-proof-calico")[-2:] == ["--kubeconfig", T.kubeconfig]
    assert kc.kind_get_clusters("kind") == ["kind", "get", "clusters"]


def test_image_preload_pulls_by_digest_saves_one_platform_and_loads_the_archive():
    cmds = kc.image_prepull(T, "netpol-proof-calico", cni.AGNHOST_IMAGE, cni.AGNHOST_TAG,
                            "/c/agnhost.tar", "arm64")
    assert cmds == [
        ["/usr/bin/docker", "pull", "--platform", "linux/arm64", cni.AGNHOST_IMAGE],
        ["/usr/bin/docker", "tag", cni.AGNHOST_IMAGE, cni.AGNHOST_TAG],
        ["/usr/bin/docker", "save", "--platform", "linux/arm64", "-o", "/c/agnhost.tar",
         cni.AGNHOST_TAG],
        ["/c/bin/kind", "load", "image-archive", "/c/agnhost.tar", "--name", "netpol-proof-calico"]]
    assert cni.AGNHOST_IMAGE == ("registry.k8s.io/e2e-test-images/agnhost:2.66.1@sha256:"
                                 "6e2eef87d0dc77e070a7549bc5fdfa290c0fefe3359eb33c2ad1eda692fe66a4")


def test_kubectl_always_names_kubeconfig_and_context_and_applies_server_side():
    assert kc.kubectl_apply_server_side(T, "/m/crds.yaml") == [
        "/c/bin/kubectl", "--kubeconfig", T.kubeconfig, "--context", "kind-netpol-proof-calico",
        "apply", "--server-side", "--force-conflicts", "-f", "/m/crds.yaml"]


def test_helm_installs_the_pinned_chart_with_the_notes_values_without_repo_add():
    argv = kc.helm_install_cilium(T)
    assert argv[:14] == ["/c/bin/helm", "--kubeconfig", T.kubeconfig, "--kube-context",
                         "kind-netpol-proof-calico", "upgrade", "--install", "cilium", "cilium",
                         "--repo", "https://helm.cilium.io/", "--version", "1.20.0", "--namespace"]
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ["ipam.mode=kubernetes", "image.pullPolicy=IfNotPresent", "operator.replicas=1",
                    "kubeProxyReplacement=false", "routingMode=tunnel", "tunnelProtocol=vxlan"]
    assert "repo" not in argv[5:7]      # never `helm repo add`: the user's repo file is untouched


def test_calico_installation_pool_inside_kind_podsubnet_without_goldmane_or_whisker():
    docs = kc.calico_installation()
    assert [d["kind"] for d in docs] == ["Installation", "APIServer"]
    pool = docs[0]["spec"]["calicoNetwork"]["ipPools"][0]
    assert pool["cidr"] == "10.244.0.0/16" and pool["encapsulation"] == "VXLANCrossSubnet"
    assert docs[0]["spec"]["calicoNetwork"]["linuxPolicySetupTimeoutSeconds"] == 5
    assert all(d["apiVersion"] == "operator.tigera.io/v1" for d in docs)


def test_install_steps_kindnet_needs_nothing(tmp_path):
    assert kc.install_steps("kindnet", T, tmp_path) == []
    with pytest.raises(ValueError, match="unknown CNI 'weave'"):
        kc.install_steps("weave", T, tmp_path)


def test_install_steps_calico_from_verified_cache(tmp_path, monkeypatch):
    fetched = []

    def fake_fetch(url, sha, dest):
        fetched.append((url, sha))
        return dest
    monkeypatch.setattr(kc, "fetch_verified", fake_fetch)
    steps = kc.install_steps("calico", T, tmp_path)
    assert [u for u, _ in fetched] == [cni.CALICO_OPERATOR_CRDS[0], cni.CALICO_OPERATOR[0]]
    assert fetched[0][1] == "192f8b2d934ef24b62e86b7e1a6e1762d1c8af26a916f78057bc13fa5ed60f71"
    assert [argv[5:8] for _, argv in steps] == [["apply", "--server-side", "--force-conflicts"]] * 3
    assert steps[0][1][-1].endswith("operator-crds.yaml")
    assert "kind: Installation" in (tmp_path / "manifests" /
                                    "calico-v3.32.1-installation.yaml").read_text()


def test_flannel_refuses_without_br_netfilter(tmp_path, monkeypatch):
    monkeypatch.setattr(kc, "br_netfilter_loaded", lambda: False)
    with pytest.raises(BackendError, match="sudo modprobe br_netfilter"):
        kc.install_steps("flannel", T, tmp_path)


def test_br_netfilter_detection_reads_proc(tmp_path):
    assert kc.br_netfilter_loaded(str(tmp_path)) is False
    (tmp_path / "sys/net/bridge").mkdir(parents=True)
    (tmp_path / "sys/net/bridge/bridge-nf-call-iptables").write_text("1\n")
    assert kc.br_netfilter_loaded(str(tmp_path)) is True


def _tgz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in members:
            data = b"\x7fELF fake plugin\n"
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cni_plugins_extracted_and_checked(tmp_path):
    tgz = tmp_path / "plugins.tgz"
    tgz.write_bytes(_tgz(["bridge", "host-local", "portmap", "loopback", "vlan"]))
    kc.extract_plugins(tgz, tmp_path / "bin")
    assert (tmp_path / "bin" / "bridge").stat().st_mode & 0o111


def test_cni_plugins_without_bridge_are_refused(tmp_path):
    tgz = tmp_path / "plugins.tgz"
    tgz.write_bytes(_tgz(["host-local", "portmap", "loopback"]))
    with pytest.raises(BackendError, match="missing or not executable: bridge"):
        kc.extract_plugins(tgz, tmp_path / "bin")


def test_prepare_cni_plugins_verifies_the_pinned_sha(tmp_path, monkeypatch):
    body = _tgz(["bridge", "host-local", "portmap", "loopback"])
    monkeypatch.setitem(cni.CNI_PLUGINS_SHA256, "amd64", hashlib.sha256(body).hexdigest())
    monkeypatch.setattr("harness.backends.kind.binaries._fetch", lambda url, what, timeout: body)
    out = kc.prepare_cni_plugins(tmp_path, "amd64")
    assert out == tmp_path / "cni-plugins-v1.9.1-amd64" and (out / "bridge").exists()
    monkeypatch.setitem(cni.CNI_PLUGINS_SHA256, "amd64", "0" * 64)
    for f in tmp_path.glob("*.tgz"):
        f.unlink()
    with pytest.raises(BackendError, match="does not match the pinned"):
        kc.prepare_cni_plugins(tmp_path, "amd64")
    with pytest.raises(BackendError, match="no pinned checksum for s390x"):
        kc.prepare_cni_plugins(tmp_path, "s390x")


def test_docker_cgroup_version_query():
    assert kc.docker_cgroup_version("/usr/bin/docker") == [
        "/usr/bin/docker", "info", "--format", "{{.CgroupVersion}}"]
