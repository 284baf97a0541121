"""nftables in the emulated node: Service translation (kube-proxy style DNAT) and atomic loads.

Why DNAT in the node namespace: every packet between pods is routed through the node, so a
probe to a ClusterIP is translated there before the forward hook, where the enforcing profile's
filter sees the backing pod's IP and port — a probe to a Service is subject to the policy of the
pod behind it, as on a real cluster. Tables are replaced whole in one `nft -f` transaction.
"""

from __future__ import annotations

import re
from typing import Iterable

from harness.errors import BackendError
from harness.model import Addresses, Model
from harness.shell import run


def table_name(run_id: str, what: str) -> str:
    """nft table names carry the run prefix too (np_<runid>_<what>; '-' is not allowed)."""
    return f"np_{run_id}_{what}"


def load(netns: str, text: str, doing: str) -> None:
    """Load an nft script inside `netns` in one transaction; BackendError carries nft's stderr
    and the numbered script lines it complains about."""
    res = run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=text, timeout=30, doing=doing)
    if res.returncode != 0:
        raise BackendError(doing, f"nft -f exit {res.returncode}: {res.stderr.strip()}",
                           script_context(text, res.stderr))


def script_context(text: str, stderr: str, around: int = 3) -> str:
    """The numbered lines of `text` near each line nft's stderr names (`-:12:3-8: Error`),
    or its first 20 lines when it names none."""
    lines = text.splitlines()
    named = sorted({int(m.group(1)) for m in re.finditer(r"^[^:\s]*:(\d+):", stderr, re.M)})
    keep = sorted({i for n in named for i in range(max(1, n - around), n + around + 1)
                   if i <= len(lines)}) or list(range(1, min(len(lines), 20) + 1))
    return "\n".join(f"{i:4} {lines[i - 1]}" for i in keep)


def replace_table(family: str, name: str, body: Iterable[str]) -> str:
    """A script that creates-or-replaces table `name` atomically."""
    lines = [f"table {family} {name}", f"delete table {family} {name}", f"table {family} {name} {{"]
    lines += ["  " + line for line in body]
    lines.append("}")
    return "\n".join(lines) + "\n"


def service_rules(model: Model, addresses: Addresses, gateway: str) -> list[str]:
    """The body of the Service table: one DNAT per (ClusterIP, port), random over backends."""
    pre, chains, hairpins = [], [], set()
    for s_i, svc in enumerate(model.services):
        cip = addresses.service_ips.get(svc.key)
        if not cip:
            continue
        for p_i, sp in enumerate(svc.ports):
            proto = sp.protocol.value.lower()
            if proto == "sctp":
                continue
            targets = []
            for pod in model.service_backends(svc):
                port = pod.resolve_port(sp.target_port, sp.protocol)
                ip = addresses.pod_ips.get(pod.key)
                if port and ip:
                    targets.append((ip, port))
                    hairpins.add(ip)
            if not targets:
                continue  # no endpoints: like kube-proxy, the ClusterIP does not answer
            match = f"ip daddr {cip} {proto} dport {sp.port}"
            if len(targets) == 1:
                ip, port = targets[0]
                pre.append(f"{match} dnat ip to {ip}:{port}")
                continue
            vmap = []
            for t_i, (ip, port) in enumerate(targets):
                chain = f"svc{s_i}_{p_i}_{t_i}"
                chains.append(f"chain {chain} {{ meta l4proto {proto} dnat ip to {ip}:{port}; }}")
                vmap.append(f"{t_i} : jump {chain}")
            pre.append(f"{match} numgen random mod {len(targets)} vmap {{ {', '.join(vmap)} }}")
    body = chains + ["chain prerouting {", "  type nat hook prerouting priority dstnat; policy accept;"]
    body += ["  " + r for r in pre] + ["}"]
    # A pod reaching itself through its Service: the reply would come from its own address, so
    # translate the source to the node gateway (kube-proxy's hairpin masquerade).
    body += ["chain postrouting {", "  type nat hook postrouting priority srcnat; policy accept;"]
    body += [f"  ct status dnat ip saddr {ip} ip daddr {ip} snat ip to {gateway}"
             for ip in sorted(hairpins)]
    body += ["}"]
    return body


def check_load_error(netns: str, family: str, name: str) -> bool:
    """True when table `name` exists in `netns`."""
    res = run(["ip", "netns", "exec", netns, "nft", "list", "table", family, name], timeout=10)
    return res.returncode == 0


__all__ = ["table_name", "load", "replace_table", "service_rules", "check_load_error",
           "BackendError"]
