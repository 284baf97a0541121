"""The real-engine bring-up: what kube-proxy writes into a node's tables survives the engine,
and the readiness checks read those tables right. Issue 18 item 11: kube-proxy on a node logged
"Chain 'KUBE-EXTERNAL-SERVICES' does not exist" and the readiness check then read "chain
`KUBE-SERVICES' in table `nat' is incompatible, use 'nft' tool" until it gave up.

What happened (docs/real-engines.md "Who writes a node's tables"): kube-router's policy sync
saves the whole filter table, edits its copy and restores the whole table from it; kube-proxy's
first sync creates its chains and jumps in the same table with one iptables call each. A chain
kube-proxy created between kube-router's save and its restore is gone after the restore, and
kube-proxy's next call that jumps to it fails, which ends its sync before it writes the nat
table. iptables-nft 1.8.9 then says "incompatible" for the nat chain that does not exist.

`test_kube_proxy_rules_survive_kube_routers_first_restore` forces that interleaving instead of
waiting for load to make it: kube-proxy's iptables calls on a node are held until kube-router on
the same node has saved its filter table (or 15 s have passed), and kube-router's restores are
held 3 s, so kube-proxy's first sync falls between the two whenever both run at once."""

from __future__ import annotations

import shutil
import time

from harness import naming
from harness.backends.local import netns as nsx
from harness.backends.real import engines, tooltrace
from harness.backends.real.backend import RealBackend
from harness.shell import run
from tests.conftest import live, local_backend_unavailable
from tests.real.conftest import needs_engine


@live(local_backend_unavailable() or (None if shutil.which("iptables-save") else
                                     "needs iptables (a network namespace with a nat table)"))
def test_an_absent_chain_reads_as_absent():
    """The readiness check's words for a chain that is not there: absent, not iptables-nft
    1.8.9's "incompatible", which reads as a damaged table."""
    netns = f"{naming.local_prefix(naming.new_run_id())}n1"
    nsx.add_netns([netns])
    try:
        ok, why = engines._chain_exists(netns, "nat", "KUBE-SERVICES")
        assert not ok
        assert "absent" in why and "KUBE-SERVICES" in why and "incompatible" not in why, why
        run(["ip", "netns", "exec", netns, "iptables", "-t", "nat", "-N", "KUBE-SERVICES"],
            timeout=30, check=True)
        ok, why = engines._chain_exists(netns, "nat", "KUBE-SERVICES")
        assert ok, why
    finally:
        nsx.delete_netns(netns)


@live(local_backend_unavailable() or (None if shutil.which("iptables-restore") else
                                     "needs iptables (a network namespace with a nat table)"))
def test_the_kube_dns_service_is_forwarded_once_kube_proxy_wrote_its_endpoints():
    """engines.kube_proxy_forwards reads kube-proxy's rules as kube-proxy v1.35.8 writes them:
    while the Service has no endpoints a REJECT in the filter table, then a jump per port from
    the nat table's KUBE-SERVICES."""
    netns = f"{naming.local_prefix(naming.new_run_id())}n1"
    ip = "10.96.0.10"

    def restore(text: str) -> None:
        run(["ip", "netns", "exec", netns, "iptables-restore", "--noflush"], input=text,
            timeout=30, check=True)

    def forwards() -> tuple[bool, str]:
        return engines.kube_proxy_forwards(netns, ip, ("udp", "tcp"))

    nsx.add_netns([netns])
    try:
        restore("*filter\n:KUBE-SERVICES - [0:0]\n"
                f"-A KUBE-SERVICES -d {ip}/32 -p udp -m comment --comment \"kube-system/kube-dns:"
                "dns has no endpoints\" -m udp --dport 53 -j REJECT --reject-with "
                "icmp-port-unreachable\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n")
        ok, why = forwards()
        assert not ok and "rejects" in why, why
        restore("*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n"
                ":KUBE-SVC-UDP - [0:0]\n"
                f"-A KUBE-SERVICES -d {ip}/32 -p udp -m udp --dport 53 -j KUBE-SVC-UDP\nCOMMIT\n")
        ok, why = forwards()
        assert not ok and "no nat rule for tcp" in why, why
        restore("*nat\n:KUBE-SVC-TCP - [0:0]\n"
                f"-A KUBE-SERVICES -d {ip}/32 -p tcp -m tcp --dport 53 -j KUBE-SVC-TCP\nCOMMIT\n")
        ok, why = forwards()
        assert ok, why
    finally:
        nsx.delete_netns(netns)


#: hold a kube-proxy iptables call until kube-router on the same node has logged a save of its
#: filter table, or for at most 15 s after kube-proxy's first held call on that node
HOLD_UNTIL_KUBE_ROUTER_SAVED = (
    'node=${label#*@}; first="$log.$node.held"\n'
    '[ -f "$first" ] || date +%s > "$first"\n'
    'until grep -q " kube-router@$node 0 iptables-save -t filter" "$log" 2>/dev/null'
    ' || [ "$(date +%s)" -ge "$(( $(cat "$first") + 15 ))" ]; do sleep 0.05; done')


@needs_engine("kube-router")
def test_kube_proxy_rules_survive_kube_routers_first_restore(tmp_path):
    log = str(tmp_path / "tools.log")
    trace = tooltrace.ToolTrace(log, before={
        ("kube-proxy", "iptables"): HOLD_UNTIL_KUBE_ROUTER_SAVED,
        ("kube-proxy", "iptables-restore"): HOLD_UNTIL_KUBE_ROUTER_SAVED,
        ("kube-router", "iptables-restore"): "sleep 3"})
    b = RealBackend("kube-router", probe_timeout=1.0, status=lambda m: None, tool_trace=trace)
    try:
        b.up()
        # kube-router's first restore of the filter table on each node, after a save
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            calls = tooltrace.read(log)
            restored = {c.node for c in calls if c.process == "kube-router"
                        and c.tool == "iptables-restore" and "-T" in c.args}
            if restored >= {n.netns for n in b.nodes}:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"kube-router restored no filter table within 60 s: {log}")
        missing = {n.netns: engines.missing_jumps(n.netns) for n in b.nodes}
    finally:
        b.down()
    calls = tooltrace.read(log)
    failed = [f"{c.label}: {c.tool} {' '.join(c.args)} (exit {c.status})" for c in calls
              if c.process == "kube-proxy" and c.status >= 2]
    lost = [f"{x.write.label}: {' '.join(x.write.args)}" for x in tooltrace.lost_updates(calls)]
    lost += [f"{x.write.label}: {' '.join(x.write.args)} before {' '.join(x.delete.args)}"
             for x in tooltrace.stale_deletes(calls)]
    assert missing == {n.netns: [] for n in b.nodes}, missing
    assert failed == [], failed
    assert lost == [], lost
