"""Real nodes without root: the API server's egress proxy refuses every destination that is not a
node of the run, the cgroup check tells a runtime's cgroup from the process manager's, mounts
are unmounted deepest first, the kubelet's PATH has no systemd-run, and Calico's CNI
configuration keeps its files in the node's run directory."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import yaml

from harness.backends.local.mounts import mounts_under
from harness.backends.real.realnodes import cgroups
from harness.backends.real.realnodes.egress import NodeEgress, egress_config, parse_connect
from harness.backends.real.realnodes.node import kubelet_path


@pytest.mark.parametrize("head, want", [
    (b"CONNECT 172.18.0.2:10250 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", ("172.18.0.2", 10250)),
    (b"CONNECT [fd00::2]:10250 HTTP/1.1\r\n\r\n", ("fd00::2", 10250)),
    (b"GET http://172.18.0.2:10250/ HTTP/1.1\r\n\r\n", None),
    (b"CONNECT 172.18.0.2 HTTP/1.1\r\n\r\n", None),          # no port
    (b"CONNECT 172.18.0.2:x HTTP/1.1\r\n\r\n", None),
    (b"CONNECT 172.18.0.2:10250 SPDY/3\r\n\r\n", None),
    (b"\xff\xfe\r\n\r\n", None),
])
def test_parse_connect(head, want):
    assert parse_connect(head) == want


def _ask(path: Path, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(request)
        data = b""
        while not data.endswith(b"\r\n\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_egress_refuses_what_is_not_a_node_of_the_run(tmp_path):
    """Only the nodes' addresses are served: the API server can reach nothing else through it
    (every other address, or anything but CONNECT, gets 403 without a connection attempt)."""
    proxy = NodeEgress(tmp_path / "egress.sock")
    proxy.add("172.18.0.2", "np-test00-n1")
    proxy.start()
    try:
        assert (tmp_path / "egress.sock").exists()
        assert os.stat(tmp_path / "egress.sock").st_mode & 0o077 == 0
        for req in (b"CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    b"CONNECT 172.18.0.3:10250 HTTP/1.1\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
            assert _ask(tmp_path / "egress.sock", req).startswith(b"HTTP/1.1 403 ")
        assert proxy.refused == 3 and proxy.connections == 0
    finally:
        proxy.stop()
    assert not (tmp_path / "egress.sock").exists()


def test_egress_config_sends_cluster_traffic_to_the_socket(tmp_path):
    doc = yaml.safe_load(egress_config(tmp_path / "e.sock"))
    assert doc["kind"] == "EgressSelectorConfiguration"
    [sel] = doc["egressSelections"]
    assert sel["name"] == "cluster"
    assert sel["connection"] == {"proxyProtocol": "HTTPConnect",
                                 "transport": {"uds": {"udsName": str(tmp_path / "e.sock")}}}


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,memory
31 22 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct
32 22 0:28 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,xattr,name=systemd
33 22 0:29 / /sys/fs/cgroup/unified rw shared:12 - cgroup2 cgroup2 rw,nsdelegate
40 22 0:40 / /run/np/x/kubelet/pods/u/volumes/v rw shared:20 - tmpfs tmpfs rw
41 22 0:4 net:[1] /run/np/x/cri/sandboxes/s/uts rw shared:3 - nsfs nsfs rw
42 22 0:41 / /run/np/x rw shared:21 - tmpfs tmpfs rw
43 22 0:42 / /run/np/xy/a rw shared:22 - tmpfs tmpfs rw
44 22 0:43 / /run/my\\040dir/a rw shared:23 - tmpfs tmpfs rw
"""


def test_hierarchies_from_mountinfo(tmp_path):
    (tmp_path / "mi").write_text(MOUNTINFO)
    assert cgroups.hierarchies(str(tmp_path / "mi")) == {
        "memory": Path("/sys/fs/cgroup/memory"), "cpu,cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct"),
        "name=systemd": Path("/sys/fs/cgroup/systemd"), "": Path("/sys/fs/cgroup/unified")}


def test_created_ignores_the_process_managers_siblings_only(monkeypatch):
    """A new cgroup beside the harness's own is the machine's process manager's (one per
    session); one at a hierarchy's root (containerd's k8s.io) or below the harness's own is a
    runtime's, and is reported."""
    monkeypatch.setattr(cgroups, "_own_siblings",
                        lambda: {"/sys/fs/cgroup/memory/process_api"})
    before = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/process_api",
              "/sys/fs/cgroup/memory/process_api/mine"}
    after = before | {"/sys/fs/cgroup/memory/process_api/other-session",
                      "/sys/fs/cgroup/cpu/k8s.io", "/sys/fs/cgroup/memory/k8s.io/abc",
                      "/sys/fs/cgroup/memory/process_api/mine/child"}
    assert cgroups.created(before, after) == [
        "/sys/fs/cgroup/cpu/k8s.io", "/sys/fs/cgroup/memory/k8s.io/abc",
        "/sys/fs/cgroup/memory/process_api/mine/child"]


def test_moved_lists_processes_outside_the_harnesss_cgroups():
    assert cgroups.moved([os.getpid()]) == {}
    assert cgroups.moved([2 ** 22 + 12345]) == {}      # no such process: skipped


def test_mounts_under_is_strictly_below_and_deepest_first(tmp_path):
    (tmp_path / "mi").write_text(MOUNTINFO)
    assert mounts_under("/run/np/x", str(tmp_path / "mi")) == [
        "/run/np/x/kubelet/pods/u/volumes/v", "/run/np/x/cri/sandboxes/s/uts"]
    assert mounts_under("/run/my dir", str(tmp_path / "mi")) == ["/run/my dir/a"]


def test_the_kubelets_path_has_no_systemd_run(tmp_path):
    """The kubelet's mount helper runs `systemd-run --scope` when it finds it (a probe that
    makes a cgroup where systemd runs); its PATH must not have it, and must have mount."""
    d = Path(kubelet_path(tmp_path))
    names = set(os.listdir(d))
    assert "mount" in names and "umount" in names and "nsenter" in names
    assert not [n for n in names if n.startswith("systemd")]
    t = time.monotonic()
    assert kubelet_path(tmp_path) == str(d) and time.monotonic() - t < 0.5   # made once


def _strings(obj) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return [obj] if isinstance(obj, str) else []


def test_calicos_cni_configuration_keeps_its_files_in_the_nodes_directory(tmp_path):
    """Calico's plugin in Canal's host-local mode; every file it or host-local writes is under
    the node's run directory (left to themselves they write /var/lib/cni, /var/log/calico and
    read /var/lib/calico/nodename), so removing the run directory removes them."""
    from harness.backends.real.nodes import plan_nodes
    from harness.backends.real.realnodes import calico

    node = plan_nodes("abc123")[0]
    node_dir = tmp_path / node.name
    conf = calico.conflist("abc123", node, node_dir, tmp_path / "cni.kubeconfig")
    plugin = conf["plugins"][0]
    assert plugin["type"] == "calico" and plugin["nodename"] == node.name
    assert {k: plugin["ipam"][k] for k in ("type", "subnet")} == {"type": "host-local",
                                                                  "subnet": "usePodCidr"}
    assert plugin["nodename_file_optional"] is True
    paths = [s for s in _strings(conf) if s.startswith("/")]
    assert sorted(paths) == sorted([str(tmp_path / "cni.kubeconfig"),
                                    plugin["ipam"]["dataDir"], plugin["log_file_path"]])
    assert Path(plugin["ipam"]["dataDir"]).is_relative_to(node_dir)
    assert Path(plugin["log_file_path"]).is_relative_to(node_dir)


def test_calicos_plugin_directory_names_one_binary_calico_and_calico_ipam(tmp_path, monkeypatch):
    from harness.backends.real.realnodes import calico

    for name in ("calico", *calico.OTHER_PLUGINS):
        exe = tmp_path / "built" / name
        exe.parent.mkdir(exist_ok=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
        monkeypatch.setenv("TEST_ASSET_" + name.upper().replace("-", "_"), str(exe))
    d = calico.cni_bin_dir(tmp_path / "node")
    assert sorted(p.name for p in d.iterdir()) == ["calico", "calico-ipam", "host-local",
                                                   "loopback", "portmap"]
    assert (d / "calico").resolve() == (d / "calico-ipam").resolve() == tmp_path / "built" / \
        "calico"
    assert calico.cni_bin_dir(tmp_path / "node") == d          # again: the links are kept


# -- the realnodes backend, nothing brought up ------------------------------------------------
def test_the_realnodes_backend_says_what_runs_with_the_pinned_versions():
    from harness import components
    from harness.backends import get_backend

    b = get_backend("realnodes", "kube-router", run_id="abcd12")
    said = b.describe()
    for name in ("kube-apiserver", "kubelet", "kube-proxy", "kube-router", "bridge", "coredns"):
        version = components.get(name).version
        assert f"{version if version.startswith('v') else 'v' + version}" in said, (name, said)
    assert "netpol-cri" in said and "no cgroups" in said and "no container registry" in said
    assert "no policy engine" in get_backend("realnodes", "none").describe()


def test_the_realnodes_cnis_declare_their_engines_minus_what_real_nodes_do_not_do():
    from harness.backends import capabilities
    from harness.backends.real import engines
    from harness.backends.real.realnodes.cnis import NOT_HERE, spec

    kr = capabilities("realnodes", "kube-router")
    assert kr.deny_response == "reject" and kr.enforces
    assert kr.supported == engines.spec("kube-router").caps.supported - set(NOT_HERE)
    assert "external-hosts" in kr.notes and "engine-fault" in kr.supported
    none = capabilities("realnodes", "none")
    assert not none.enforces and "nothing to stop" in none.notes["engine-fault"]
    assert spec("none").engine is None and spec("none").engine_row == "none"
    with pytest.raises(ValueError, match="not a CNI the realnodes backend runs"):
        capabilities("realnodes", "cilium")


def test_coredns_is_a_pod_of_the_catalog_behind_the_kube_dns_service():
    from harness.backends.real.realnodes.backend import api_endpoints, coredns_ref, dns_objects
    from harness.model import DNS_SERVICE_IP

    objs = {o["kind"]: o for o in dns_objects("abcd12", coredns_ref())}
    assert coredns_ref() == "registry.k8s.io/coredns/coredns:v1.15.0"
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == coredns_ref()
    assert pod["serviceAccountName"] == objs["ServiceAccount"]["metadata"]["name"]
    assert "kubeconfig" not in objs["ConfigMap"]["data"]["Corefile"]   # in-cluster: its token
    assert "ready :8181" in objs["ConfigMap"]["data"]["Corefile"]
    assert objs["Service"]["spec"]["clusterIP"] == DNS_SERVICE_IP
    assert objs["Service"]["spec"]["selector"] == {"k8s-app": "kube-dns"}
    eps = api_endpoints("abcd12", ["172.18.0.2", "172.18.0.3"])
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert [e["addresses"] for e in eps["endpoints"]] == [["172.18.0.2"], ["172.18.0.3"]]


def test_realnodes_settings_refuse_an_unknown_cni_and_a_registry_image():
    from harness.settings import SettingsError, build

    s = build({"backend": "realnodes", "cnis": "kube-router,none"}, env={})
    assert s.probe_timeout == 2.0 and s.min_window == 10.0      # the kube path's window
    assert "image" not in s.backend_options()
    with pytest.raises(SettingsError, match="'cilium' is not a CNI the realnodes backend runs"):
        build({"backend": "realnodes", "cnis": "cilium"}, env={})
    with pytest.raises(SettingsError, match="the realnodes backend takes no image"):
        build({"backend": "realnodes", "cnis": "none", "agnhost_image": "x/agnhost:1"}, env={})


def test_the_agnhost_image_puts_the_probes_curl_over_the_nodes(tmp_path):
    from harness.backends.real.realnodes.node import AGNHOST_REF, image_catalog

    agnhost, curl = tmp_path / "agnhost", tmp_path / "curl"
    binds = image_catalog(agnhost, curl)["images"][AGNHOST_REF]["binds"]
    targets = [b["target"] for b in binds]
    # after /usr, so it lands over the node's curl inside the container
    assert targets.index("/usr/bin/curl") > targets.index("/usr")
    assert {"source": str(curl), "target": "/usr/bin/curl"} in binds
    plain = image_catalog(agnhost)["images"][AGNHOST_REF]["binds"]
    assert "/usr/bin/curl" not in [b["target"] for b in plain]
