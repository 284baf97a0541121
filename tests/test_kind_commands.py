"""Every command the kind backend runs, as argv lists: private kubeconfig and explicit context
everywhere, kind --wait 0s, server-side apply, helm with pinned values, the image pre-load
dance; plus the Calico Installation and the Flannel CNI-plugins preparation.

Why not the argv copied from the code: a copy certifies whatever the code said when it was
copied. Each argv is read as a command line (its flags, what each names) and checked against a
property a wrong command would break, or against the upstream fact it implements as
docs/sources.md states it (pins, checksums, values, flags): the code and that record must agree.
"""

import hashlib
import io
import ipaddress
import re
import tarfile
from pathlib import Path

import pytest
import yaml

from harness.backends import cni
from harness.backends.kind import commands as kc
from harness.backends.kind import config as kind_config
from harness.errors import BackendError

SOURCES = (Path(__file__).resolve().parents[1] / "docs" / "sources.md").read_text()


def section(number: str) -> str:
    """The text of docs/sources.md section §number (up to the next heading of any level)."""
    m = re.search(rf"^#+ §{re.escape(number)}[ .].*?$(.*?)(?=^#+ |\Z)", SOURCES, re.M | re.S)
    assert m, f"docs/sources.md has no §{number}"
    return m.group(1)


def flags(argv: list[str], start: int) -> dict[str, str]:
    """argv[start:] as `--flag value` (or `-f value`) pairs; each flag once, with a value."""
    out: dict[str, str] = {}
    rest = argv[start:]
    assert len(rest) % 2 == 0, rest
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        assert flag.startswith("-") and not value.startswith("-"), (flag, value)
        assert flag not in out, f"{flag} given twice"
        out[flag] = value
    return out


def tools(name: str = "netpol-proof-calico") -> kc.Tools:
    return kc.Tools("/c/bin/kind", "/c/bin/kubectl", "/c/bin/helm", "/usr/bin/docker",
                    f"/c/clusters/{name}/kubeconfig", f"kind-{name}")


T = tools()


def test_kind_create_names_the_cluster_its_config_the_private_kubeconfig_and_waits_itself():
    argv = kc.kind_create(T, "netpol-proof-calico", "/c/cfg.yaml")
    assert argv[:3] == [T.kind, "create", "cluster"]
    got = flags(argv, 3)
    assert got.pop("--name") == "netpol-proof-calico" and got.pop("--config") == "/c/cfg.yaml"
    # without --kubeconfig kind merges into the user's kubeconfig and switches its context
    assert "Without `--kubeconfig`" in section("1.6") and got.pop("--kubeconfig") == T.kubeconfig
    # kind's own wait exits 0 on timeout and cannot see nodes Ready before the CNI
    (wait,) = re.findall(r"`--wait (\S+)`", section("1.5"))
    assert got.pop("--wait") == wait
    assert got == {}


def test_kind_delete_and_export_name_only_this_cluster_and_the_private_kubeconfig():
    for verb, argv in (("delete", kc.kind_delete(T, "netpol-proof-calico")),
                       ("export", kc.kind_export_kubeconfig(T, "netpol-proof-calico"))):
        assert argv[:3] == [T.kind, verb, "cluster" if verb == "delete" else "kubeconfig"]
        assert flags(argv, 3) == {"--name": "netpol-proof-calico", "--kubeconfig": T.kubeconfig}
    assert kc.kind_get_clusters("kind")[1:] == ["get", "clusters"]


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_image_preload_saves_what_it_pulled_for_one_platform_and_loads_that_archive(arch):
    """docs/sources.md §1.9 pitfalls 3 and 4: pull by digest, save one platform, load the
    archive; pods then name the tag."""
    pull, tag, save, load = kc.image_prepull(T, "netpol-proof-x", cni.AGNHOST_IMAGE,
                                             cni.AGNHOST_TAG, "/c/agnhost.tar", arch)
    assert pull[:2] == [T.docker, "pull"] and pull[-1] == cni.AGNHOST_IMAGE
    assert flags(pull[:-1], 2) == {"--platform": f"linux/{arch}"}
    assert tag == [T.docker, "tag", cni.AGNHOST_IMAGE, cni.AGNHOST_TAG]     # digest -> tag
    assert save[:2] == [T.docker, "save"] and save[-1] == cni.AGNHOST_TAG
    assert flags(save[:-1], 2) == {"--platform": f"linux/{arch}", "-o": "/c/agnhost.tar"}
    assert load[:4] == [T.kind, "load", "image-archive", "/c/agnhost.tar"]
    assert flags(load, 4) == {"--name": "netpol-proof-x"}


def test_the_probe_image_is_the_one_docs_sources_pins():
    row = next(line for line in section("0").splitlines() if line.startswith("| probe image"))
    tag, digest = re.search(r"`([^`]+)`, digest `(sha256:[0-9a-f]{64})`", row).groups()
    assert (cni.AGNHOST_TAG, cni.AGNHOST_DIGEST) == (tag, digest)
    assert cni.AGNHOST_IMAGE == f"{tag}@{digest}"


def test_every_kubectl_and_helm_call_names_the_private_kubeconfig_and_its_context(
        tmp_path, monkeypatch):
    """docs/sources.md §1.6: a call without them reads (and a kind create writes) the user's
    kubeconfig and current context. Every call the builders make, whatever its purpose."""
    monkeypatch.setattr(kc, "fetch_verified", lambda url, sha, dest: dest)
    monkeypatch.setattr(kc, "br_netfilter_loaded", lambda: True)
    calls = [kc.kubectl(T, "get", "nodes"), kc.kubectl_apply_server_side(T, "/m/x.yaml"),
             kc.helm_install_cilium(T)]
    calls += [argv for c in cni.CNIS for _, argv in kc.install_steps(c, T, tmp_path)]
    assert {a[0] for a in calls} == {T.kubectl, T.helm}
    for argv in calls:
        context_flag = "--context" if argv[0] == T.kubectl else "--kube-context"
        # global flags first, before the subcommand: the whole call runs against them
        assert flags(argv[:5], 1) == {"--kubeconfig": T.kubeconfig, context_flag: T.context}


def test_kubectl_applies_server_side():
    """docs/sources.md §2.5 #1: a client-side apply of Calico's CRD bundle fails (the
    last-applied annotation limit)."""
    assert "server-side apply" in section("2.5")
    argv = kc.kubectl_apply_server_side(T, "/m/crds.yaml")
    assert argv[5] == "apply" and "--server-side" in argv
    assert argv[argv.index("-f") + 1] == "/m/crds.yaml"


def test_helm_installs_the_chart_docs_sources_pins_with_its_values_without_repo_add():
    argv = kc.helm_install_cilium(T)
    assert argv[5:9] == ["upgrade", "--install", "cilium", "cilium"]
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    rest = [a for i, a in enumerate(argv[9:], 9) if a != "--set" and argv[i - 1] != "--set"]
    got = flags(rest, 0)
    row = next(line for line in section("0").splitlines() if line.startswith("| Cilium"))
    series, repo = re.search(r"\| (\d+\.\d+)\.x, chart from (\S+) \|", row).groups()
    assert got["--repo"] == repo and got["--version"].startswith(series + ".")
    assert got["--namespace"] == "kube-system"
    # the values docs/sources.md §3.1 gives, each once, and no other
    assert sorted(sets) == sorted(re.findall(r"`([\w.]+=\w+)`", section("3.1")))
    assert "repo" not in argv[5:7]      # never `helm repo add`: the user's repo file is untouched


def test_calico_installation_pool_is_inside_the_pod_subnet_kind_is_given():
    """docs/sources.md §2.2: the operator refuses an IPPool outside kubeadm's podSubnet. The
    podSubnet is the one the rendered kind config gives the cluster."""
    docs = kc.calico_installation()
    assert [d["kind"] for d in docs] == ["Installation", "APIServer"]
    assert all(d["apiVersion"] == "operator.tigera.io/v1" for d in docs)
    (pool,) = docs[0]["spec"]["calicoNetwork"]["ipPools"]
    subnet = ipaddress.ip_network(kind_config.render("calico")["networking"]["podSubnet"])
    assert ipaddress.ip_network(pool["cidr"]).subnet_of(subnet)
    assert "`10.244.0.0/16`" in section("1.3") and str(subnet) == "10.244.0.0/16"
    # Goldmane and Whisker (observability) are not installed: only what enforcement needs
    assert {"goldmane", "whisker"}.isdisjoint(str(docs).lower().split("'"))


def test_install_steps_kindnet_needs_nothing(tmp_path):
    assert kc.install_steps("kindnet", T, tmp_path) == []
    with pytest.raises(ValueError, match="unknown CNI 'weave'"):
        kc.install_steps("weave", T, tmp_path)


def _fetches(monkeypatch) -> list[tuple[str, str, Path]]:
    fetched: list[tuple[str, str, Path]] = []

    def fake_fetch(url, sha, dest):
        fetched.append((url, sha, dest))
        return dest
    monkeypatch.setattr(kc, "fetch_verified", fake_fetch)
    return fetched


def test_calico_is_installed_from_the_files_and_checksums_docs_sources_gives(tmp_path, monkeypatch):
    """docs/sources.md §2.1: operator-crds.yaml, then tigera-operator.yaml, then the
    Installation, from manifestsUrl at the pinned tag, each checked against its SHA-256."""
    fetched = _fetches(monkeypatch)
    steps = kc.install_steps("calico", T, tmp_path)
    tag = re.search(r"^\| Calico \| (v[\d.]+),", section("0"), re.M).group(1)
    base = re.search(r"`manifestsUrl` is `(\S+)/<tag>`", section("2.1")).group(1)
    pinned = dict(re.findall(r"([\w-]+\.yaml)\s+`([0-9a-f]{64})`", section("2.1")))
    assert [(u, sha) for u, sha, _ in fetched] == [
        (f"{base}/{tag}/manifests/{f}", pinned[f]) for f in ("operator-crds.yaml",
                                                           "tigera-operator.yaml")]
    # each step applies (server-side) the very file fetched and verified for it, then the
    # Installation rendered by calico_installation()
    applied = [argv[argv.index("-f") + 1] for _, argv in steps]
    assert applied[:2] == [str(dest) for _, _, dest in fetched]
    assert all("--server-side" in argv for _, argv in steps)
    assert yaml_docs(Path(applied[2])) == kc.calico_installation()


def yaml_docs(path: Path) -> list:
    return list(yaml.safe_load_all(path.read_text()))


def test_flannel_and_its_plugins_are_the_files_docs_sources_pins(tmp_path, monkeypatch):
    fetched = _fetches(monkeypatch)
    monkeypatch.setattr(kc, "br_netfilter_loaded", lambda: True)
    ((_, argv),) = kc.install_steps("flannel", T, tmp_path)
    tag = re.search(r"^\| Flannel \| (v[\d.]+) \|", section("0"), re.M).group(1)
    (url, sha, dest), = fetched
    assert tag in url and url.endswith("/Documentation/kube-flannel.yml")
    assert sha == re.search(r"sha256\s+`([0-9a-f]{64})`", section("4.1")).group(1)
    assert argv[argv.index("-f") + 1] == str(dest)
    row = next(line for line in section("0").splitlines() if line.startswith("| CNI plugins"))
    version = re.search(r"plugins (v[\d.]+);", row).group(1)
    assert cni.CNI_PLUGINS_VERSION == version
    assert cni.CNI_PLUGINS_SHA256 == dict(re.findall(r"(amd64|arm64) `([0-9a-f]{64})`", row))
    assert cni.cni_plugins_url("arm64").endswith(f"/{version}/cni-plugins-linux-arm64-{version}.tgz")


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
    """docs/sources.md §1.9 pitfall 5: node images for 1.35+ need a cgroup v2 host, read
    from `docker info`'s CgroupVersion."""
    (field,) = re.findall(r"`docker info` `(\w+)`", section("1.9"))
    argv = kc.docker_cgroup_version("/usr/bin/docker")
    assert argv[:2] == ["/usr/bin/docker", "info"]
    assert flags(argv, 2) == {"--format": "{{." + field + "}}"}
