"""Network namespaces, veths and addresses of the emulated cluster, through `ip` in batches.

Why batches: bring-up is dominated by process starts; one `ip -n NS -batch -` per namespace
replaces a dozen `ip` calls. Veth pairs are created inside our node namespace with the peer
moved straight into the pod namespace, so no interface ever appears in the root namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
from typing import Iterable, Sequence

from harness.errors import BackendError
from harness.model import CLUSTER_DOMAIN, DNS_SERVICE_IP
from harness.shell import run

NETNS_DIR = "/run/netns"
ETC_NETNS = "/etc/netns"


def ip_batch(lines: Sequence[str], netns: str | None = None, doing: str = "") -> None:
    """Run `ip [-n netns] -batch -` over `lines`; BackendError with the output on failure."""
    if not lines:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    res = run(argv, input="\n".join(lines) + "\n", timeout=30, doing=doing)
    if res.returncode != 0:
        raise BackendError(doing or f"configuring network namespace {netns}",
                           f"`{' '.join(argv)}` exit {res.returncode}",
                           (res.stdout + res.stderr).strip())


def links(netns: str) -> list[str]:
    """Names of the interfaces in `netns` (`ip -o link show`, peer suffixes `@...` dropped)."""
    res = run(["ip", "-n", netns, "-o", "link", "show"], timeout=10,
              doing=f"listing the interfaces of {netns}")
    if res.returncode != 0:
        raise BackendError(f"listing the interfaces of network namespace {netns}",
                           f"`ip link show` exit {res.returncode}", res.stderr.strip())
    names = []
    for line in res.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def add_netns(names: Iterable[str]) -> None:
    ip_batch([f"netns add {n}" for n in names], doing="creating network namespaces")


def list_netns() -> list[str]:
    """Names of all named network namespaces (from /run/netns, as `ip netns list` reads them)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_pids(names: Iterable[str]) -> dict[str, list[int]]:
    """The processes inside each named namespace, as `ip netns pids` finds them (a process is
    in a namespace when its /proc/<pid>/ns/net is that file's namespace), in one scan of /proc."""
    wanted = {}
    for name in names:
        try:
            st = os.stat(os.path.join(NETNS_DIR, name))
        except OSError:
            continue
        wanted[(st.st_dev, st.st_ino)] = name
    found: dict[str, list[int]] = {n: [] for n in wanted.values()}
    if not wanted:
        return found
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        owner = wanted.get((st.st_dev, st.st_ino))
        if owner is not None:
            found[owner].append(int(pid))
    return found


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def delete_netns(name: str) -> str | None:
    """Kill what still runs in `name`, delete it and its /etc/netns dir; an error text or None."""
    return "; ".join(delete_netns_all([name])) or None


def delete_netns_all(names: Iterable[str]) -> list[str]:
    """Kill what still runs in each namespace, delete them (one `ip -batch`) and their
    /etc/netns dirs; the error texts."""
    names = list(names)
    errors = []
    present = [n for n in names if n in set(list_netns())]
    for pids in netns_pids(present).values():
        kill_pids(pids)
    if present:
        res = run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in present),
                  timeout=30)
        if res.returncode != 0:
            errors.append(f"ip netns del {' '.join(present)}: {res.stderr.strip()}")
    for name in names:
        etc = os.path.join(ETC_NETNS, name)
        if os.path.isdir(etc):
            try:
                shutil.rmtree(etc)
            except OSError as exc:
                errors.append(f"removing {etc}: {exc}")
    return errors


def remove_endpoints(node: str, veths: Iterable[str], namespaces: Iterable[str]) -> list[str]:
    """Delete the node-side veths of endpoints, then the endpoints' namespaces; error texts.

    Why this order: deleting a network namespace destroys its interfaces asynchronously (the
    kernel's namespace cleanup runs later), so a veth `vp<N>` could still exist in the node
    when the next scenario of the run created `vp<N>` again ("RTNETLINK answers: File
    exists"). `ip link del` of one end is synchronous and removes both, so the names are free
    when this returns (tests/live/test_local_reuse.py).
    """
    errors = []
    wanted = set(veths)
    if wanted and node in list_netns():
        try:
            present = [n for n in links(node) if n in wanted]
            ip_batch([f"link del {n}" for n in present], node,
                     doing=f"deleting the endpoints' veths in {node}")
        except BackendError as exc:
            errors.append(str(exc))
    errors += delete_netns_all(namespaces)
    return errors


def sysctl(netns: str, settings: dict[str, str]) -> None:
    argv = ["ip", "netns", "exec", netns, "sysctl", "-qw"] + [f"{k}={v}" for k, v in settings.items()]
    res = run(argv, timeout=10, doing=f"setting sysctls in {netns}")
    if res.returncode != 0:
        raise BackendError(f"setting sysctls in network namespace {netns}",
                           res.stderr.strip() or f"exit {res.returncode}")


def write_resolv_conf(netns: str, namespace: str, timeout: int = 1) -> str:
    """/etc/netns/<netns>/resolv.conf as kubelet writes it for a pod in `namespace`.

    Why: `ip netns exec` bind-mounts it over /etc/resolv.conf, so curl and nslookup in the pod
    resolve short names through the search path exactly as on Kubernetes.
    """
    d = os.path.join(ETC_NETNS, netns)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "resolv.conf")
    with open(path, "w") as fh:
        fh.write(f"nameserver {DNS_SERVICE_IP}\n"
                 f"search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
                 f"options ndots:5 timeout:{timeout} attempts:1\n")
    return path


def endpoint_lines(veth: str, peer_netns: str, ip: str, gateway: str) -> tuple[list[str], list[str]]:
    """(node-side lines, endpoint-side lines) wiring one pod or external host, Calico style:
    the endpoint has ip/32 on eth0 and a default route via the node gateway (on-link); the node
    has a /32 route to it over the veth and answers ARP for the gateway by proxy ARP."""
    node = [f"link add {veth} type veth peer name eth0 netns {peer_netns}",
            f"link set {veth} up",
            f"route add {ip}/32 dev {veth}"]
    pod = ["link set lo up", "link set eth0 up", f"addr add {ip}/32 dev eth0",
           f"route add {gateway}/32 dev eth0 scope link",
           f"route add default via {gateway} dev eth0"]
    return node, pod
