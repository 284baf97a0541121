"""One real node: netpol-cri (the project's CRI runtime) and the real kubelet, both started inside
the node's network namespace with `nsenter --net` (not `ip netns exec`, which remounts /sys and
hides the cgroup mounts the kubelet reads), plus what they read: the CNI configuration, the
image catalog, the kubelet's configuration, certificates and kubeconfig.

Everything lives in `<run dir>/<node>/`; the processes are the harness's children in their own
sessions. What the kubelet is configured to do and why: docs/real-nodes.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from harness import components, naming
from harness.backends.local import curl as probe_curl
from harness.backends.local import netns as nsx
from harness.backends.real.nodes import NodeNet
from harness.errors import BackendError
from harness.model import CLUSTER_DOMAIN, DNS_SERVICE_IP
from harness.shell import run, spawn, stop

#: the host directories an image made of the node's own userland binds (read-only)
HOST_USERLAND = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc/passwd", "/etc/group",
                 "/etc/nsswitch.conf", "/etc/services", "/etc/protocols")
#: the agnhost image reference the kube backend uses, served from the local catalog
AGNHOST_REF = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
KUBELET_PORT = 10250


class NodeError(BackendError):
    """A real node could not be brought up or torn down."""


def kubelet_path(run_dir: Path) -> str:
    """The kubelet's PATH: a directory of links to every program of /usr/bin and /usr/sbin
    except systemd's. The kubelet's mount helper probes for systemd by running `systemd-run
    --scope` (docs/sources.md §17), which makes a cgroup where systemd runs; here nothing may,
    so it must not find it."""
    d = run_dir / "kubelet-path"
    if not d.is_dir():
        d.mkdir(parents=True)
        for src in ("/usr/sbin", "/usr/bin"):
            for name in sorted(os.listdir(src)):
                if name.startswith("systemd") or (d / name).exists():
                    continue
                (d / name).symlink_to(os.path.join(src, name))
    return str(d)


def userland_binds() -> list[dict[str, str]]:
    return [{"source": p, "target": p} for p in HOST_USERLAND if os.path.lexists(p)]


def image_catalog(agnhost: Path, curl: Path | None = None) -> dict:
    """The local image catalog netpol-cri serves: agnhost built from the pinned kubernetes
    module at /agnhost, over the node's own userland (nslookup and bash from the node's
    packages), entrypoint and cmd as the upstream image has them; `curl` (the probes' HTTP-only
    build, harness/backends/local/curl.py) at /usr/bin/curl when given, else the node's.

    Why the build: every probe round starts a curl in each source pod, and the node's curl
    spends most of a start in the dynamic linker (33 libraries); the same release built for
    HTTP alone links libc only. The bind is inside the container's own mount namespace
    (private: netpol-cri's init), the host's curl is never touched."""
    binds = userland_binds() + [{"source": str(agnhost), "target": "/agnhost"}]
    if curl is not None:
        binds.append({"source": str(curl), "target": "/usr/bin/curl"})
    return {"images": {
        AGNHOST_REF: {"binds": binds, "entrypoint": ["/agnhost"], "cmd": ["pause"]},
    }}


def busybox_image(directory: Path) -> dict:
    """critest's default image (registry.k8s.io/e2e-test-images/busybox:1.29-2) made here: the
    machine's busybox (Debian's busybox-static) in `directory`/bin with a hard link per applet,
    as the image has them, over the node's /usr (for what busybox lacks, e.g. pgrep)."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise NodeError("making critest's busybox image", "no busybox on PATH (apt-get install "
                        "busybox-static)")
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, bin_dir / "busybox")
    res = run([busybox, "--list"], timeout=30, check=True, doing="listing busybox's applets")
    for applet in res.stdout.split():
        if applet != "busybox" and "/" not in applet:
            os.link(bin_dir / "busybox", bin_dir / applet)
    binds = [{"source": str(bin_dir), "target": "/bin"}]
    binds += [b for b in userland_binds() if b["target"] not in ("/bin", "/sbin")]
    return {"binds": binds, "cmd": ["sh"], "env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"]}


def cni_conflist(run_id: str, node: NodeNet, data_dir: Path) -> dict:
    """bridge + host-local + portmap, the node's pod CIDR, the bridge as the pods' gateway."""
    return {"cniVersion": "1.0.0", "name": f"{naming.PROJECT}-{run_id}", "plugins": [
        {"type": "bridge", "bridge": f"{naming.local_prefix(run_id)}br", "isGateway": True,
         "ipMasq": False, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_cidr}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(data_dir)}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]}


def kubelet_config(socket: Path, serving, ca: Path, node: NodeNet, resolv: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        # no cgroups: the kubelet makes none with these four (docs/real-nodes.md)
        "failCgroupV1": False, "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False, "localStorageCapacityIsolation": False,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "address": node.address, "port": KUBELET_PORT, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "tlsCertFile": str(serving.cert), "tlsPrivateKeyFile": str(serving.key),
        "authentication": {"x509": {"clientCAFile": str(ca)}, "webhook": {"enabled": True},
                           "anonymous": {"enabled": False}},
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [DNS_SERVICE_IP], "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(resolv),
        "rotateCertificates": False, "serverTLSBootstrap": False,
        # the node's disk is the machine's: no image garbage collection, no eviction by disk
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "0%", "nodefs.available": "0%",
                         "imagefs.available": "0%"},
        "serializeImagePulls": False,
    }


@dataclass
class RealNode:
    """netpol-cri + kubelet of one node (see the module docstring)."""

    run_id: str
    node: NodeNet
    run_dir: Path
    log: Callable[[str], None] = print
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.run_dir / self.node.name

    @property
    def cri_socket(self) -> Path:
        return self.dir / "cri" / "cri.sock"

    def spawn(self, name: str, argv: list[str] | tuple[str, ...],
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process of this node (kube-proxy, the policy engine) in its namespace,
        logging to `<node dir>/logs/<name>.log`; stop() ends it before the kubelet."""
        self._spawn(name, list(argv), env)
        return self.procs[name]

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.dir / "logs" / f"{name}.log"
        self.procs[name] = spawn(["nsenter", f"--net={nsx.NETNS_DIR}/{self.node.netns}", *argv],
                                 env=env, log_path=str(log))

    @property
    def cni_conf_dir(self) -> Path:
        return self.dir / "cni" / "net.d"

    def write_conflist(self, conflist: dict) -> Path:
        """The node's CNI configuration, `10-<first plugin's type>.conflist` (netpol-cri reads
        the directory for every sandbox, and reports the network not ready while it is
        empty)."""
        conf = self.cni_conf_dir / f"10-{conflist['plugins'][0]['type']}.conflist"
        tmp = conf.with_suffix(".tmp")
        tmp.write_text(json.dumps(conflist, indent=1))
        tmp.rename(conf)
        return conf

    def start_runtime(self, extra_images: dict[str, dict] | None = None,
                      cni: tuple[dict | None, Path] | None = None) -> None:
        """`cni`: the pods' CNI configuration and plugin directory (default: the bridge's,
        cni_conflist, with the cni-plugins build's directory); a configuration of None: none
        yet, written later with write_conflist (flannel's, from subnet.env)."""
        for sub in ("cri", "logs", "cni/net.d", "cni/ipam", "kubelet", "pod-logs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if cni is None:
            cni = (cni_conflist(self.run_id, self.node, self.dir / "cni" / "ipam"),
                   components.find("bridge").parent)
        conf_data, bin_dir = cni
        if conf_data is not None:
            self.write_conflist(conf_data)
        catalog = self.dir / "images.json"
        images = image_catalog(components.find("agnhost"), probe_curl.built())
        images["images"].update(extra_images or {})
        catalog.write_text(json.dumps(images, indent=1))
        self._spawn("netpol-cri", [
            str(components.find("netpol-cri")), "--socket", str(self.cri_socket),
            "--root", str(self.dir / "cri"), "--netns-prefix", naming.local_prefix(self.run_id),
            "--image-catalog", str(catalog), "--cni-conf-dir", str(self.cni_conf_dir),
            "--cni-bin-dir", str(bin_dir)])
        self._wait(lambda: self.cri_socket.exists(), "netpol-cri", "serving its socket", 30)

    def start_kubelet(self, kubeconfig: Path, serving, ca: Path) -> None:
        resolv = self.dir / "kubelet" / "resolv.conf"
        resolv.write_text("")   # no upstream resolver: pods with dnsPolicy Default get none
        config = self.dir / "kubelet" / "config.yaml"
        config.write_text(yaml.safe_dump(kubelet_config(self.cri_socket, serving, ca,
                                                        self.node, resolv)))
        env = {"PATH": kubelet_path(self.run_dir), "HOME": str(self.dir / "kubelet")}
        self._spawn("kubelet", [
            str(components.find("kubelet")), f"--config={config}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.dir / 'kubelet' / 'root'}",
            f"--cert-dir={self.dir / 'kubelet' / 'pki'}",
            f"--hostname-override={self.node.name}", f"--node-ip={self.node.address}",
            "--v=2"], env=env)

    def _wait(self, ok: Callable[[], bool], name: str, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.1)
        raise NodeError(f"starting {name} on {self.node.name}", f"not {what} within {timeout:g}s",
                        self.log_tail(name))

    def log_tail(self, name: str, lines: int = 25) -> str:
        path = self.dir / "logs" / f"{name}.log"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return f"(no log at {path})"
        return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> list[str]:
        """The node's other processes (the policy engine, then kube-proxy: the reverse of their
        start), then the kubelet (pods stay), then the runtime, which stops every container
        and undoes every pod's network on SIGTERM; returns errors."""
        errors = []
        others = [n for n in self.procs if n not in ("kubelet", "netpol-cri")]
        for name in [*reversed(others), "kubelet", "netpol-cri"]:
            proc = self.procs.pop(name, None)
            if proc is not None and stop(proc, grace=20.0) is None:
                errors.append(f"{name} on {self.node.name} (pid {proc.pid}) survived SIGKILL")
        return errors
