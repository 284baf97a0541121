"""harness.backends.real.tooltrace: reading the log of the node processes' iptables calls and
finding the writes a whole-table restore undid. The data is a captured log (tests/data/tooltrace,
a kube-router bring-up on kube-router v2.10.0, kube-proxy v1.35.8, iptables 1.8.9 nf_tables):
kube-router saved node 2's filter table at .8629-.8658, kube-proxy created its chains and jumps
after it, kube-router restored the table from that save at .9248-.9372, and kube-proxy's next
jump, to KUBE-FORWARD, which it had created at .9185, failed (exit 2: the chain was gone)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from harness.backends.real import tooltrace
from harness.backends.real.tooltrace import Call, ToolTrace, lost_updates, writes_filter

DATA = os.path.join(os.path.dirname(__file__), "data", "tooltrace", "kube-router-restore-race.log")


def call(tool: str, *args: str, process: str = "kube-proxy", start: float = 0.0,
         end: float = 0.1, status: int = 0, node: str = "np-abc123-n1") -> Call:
    return Call(start, end, 1, f"{process}@{node}", status, tool, args)


@pytest.mark.parametrize("tool,args,writes", [
    ("iptables", ("-w", "5", "-N", "KUBE-FORWARD", "-t", "filter"), True),
    ("iptables", ("-w", "5", "-I", "INPUT", "-j", "KUBE-FIREWALL"), True),   # filter by default
    ("iptables", ("-w", "5", "-C", "INPUT", "-t", "filter", "-j", "X"), False),
    ("iptables", ("-t", "filter", "-S", "KUBE-ROUTER-INPUT", "1", "--wait"), False),
    ("iptables", ("-w", "5", "-N", "KUBE-SERVICES", "-t", "nat"), False),
    ("iptables-restore", ("-w", "5", "--noflush", "--counters"), True),       # tables on stdin
    ("iptables-restore", ("-T", "filter"), True),
    ("iptables-restore", ("-T", "nat"), False),
    ("iptables-save", ("-t", "filter"), False),
    ("ipset", ("restore", "-exist"), False),
])
def test_which_calls_write_a_filter_table(tool, args, writes):
    assert writes_filter(call(tool, *args)) is writes


def test_the_captured_race_shows_the_writes_the_restore_undid():
    calls = tooltrace.read(DATA)
    lost = lost_updates(calls)
    certain = [" ".join(x.write.args) for x in lost if x.certain]
    assert certain == [
        "-w 5 -N KUBE-NODEPORTS -t filter",
        "-w 5 -I INPUT -t filter -m comment --comment kubernetes health check service ports "
        "-j KUBE-NODEPORTS",
        "-w 5 -N KUBE-SERVICES -t filter",
        "-w 5 -I FORWARD -t filter -m conntrack --ctstate NEW -m comment --comment kubernetes "
        "service portals -j KUBE-SERVICES",
        "-w 5 -I OUTPUT -t filter -m conntrack --ctstate NEW -m comment --comment kubernetes "
        "service portals -j KUBE-SERVICES",
        "-w 5 -N KUBE-FORWARD -t filter"]
    # the jump that overlapped the save may or may not be in it; ip6tables writes (another
    # table) and kube-proxy's failed jump (it changed nothing) are not lost updates
    assert [" ".join(x.write.args)[:45] for x in lost if not x.certain] == \
        ["-w 5 -I FORWARD -t filter -m conntrack --ctst"]
    assert {x.save.tool for x in lost} == {"iptables-save"}
    assert {x.restore.args for x in lost} == {("-T", "filter")}
    failed = [c for c in calls if c.process == "kube-proxy" and c.status == 2]
    assert [c.args[-1] for c in failed] == ["KUBE-FORWARD"]


def test_a_restore_with_noflush_or_an_aborted_sync_undoes_nothing():
    save = call("iptables-save", "-t", "filter", process="kube-router", start=0, end=0.1)
    write = call("iptables", "-N", "X", "-t", "filter", start=0.2, end=0.3)
    full = call("iptables-restore", "-T", "filter", process="kube-router", start=0.4, end=0.5)
    noflush = call("iptables-restore", "--noflush", "-T", "filter", process="kube-router",
                   start=0.4, end=0.5)
    next_save = call("iptables-save", "-t", "filter", process="kube-router", start=0.35,
                     end=0.36)
    other_node = call("iptables", "-N", "X", "-t", "filter", start=0.2, end=0.3,
                      node="np-abc123-n2")
    assert [x.certain for x in lost_updates([save, write, full])] == [True]
    assert lost_updates([save, write, noflush]) == []
    assert lost_updates([save, other_node, full]) == []
    # the sync that saved at 0 aborted: the restore at 0.4 restores the save at 0.35
    assert lost_updates([save, write, next_save, full]) == []
    assert lost_updates([save, call("iptables", "-N", "X", "-t", "filter", start=0.2, end=0.3,
                                    status=1), full]) == []


def test_a_wrapper_logs_the_call_runs_the_tool_and_returns_its_status(tmp_path):
    log = str(tmp_path / "tools.log")
    trace = ToolTrace(log, before={("kube-proxy", "ipset"): "echo held >> \"$log.before\""})
    d = tooltrace.wrapper_dir(str(tmp_path / "bin"), "kube-proxy@np-abc123-n1", trace,
                              "kube-proxy", tools=("iptables", "ipset"))
    assert sorted(os.listdir(d)) == ["ipset", "iptables"]
    assert os.stat(os.path.join(d, "ipset")).st_mode & stat.S_IXUSR
    # as Felix runs them: a PATH of the wrappers only
    res = subprocess.run(["iptables", "--version"], capture_output=True, text=True,
                         env={"PATH": d})
    bad = subprocess.run(["ipset", "no-such-command"], capture_output=True, text=True,
                         env={"PATH": d})
    assert res.returncode == 0 and "iptables" in res.stdout
    assert bad.returncode != 0
    calls = tooltrace.read(log)
    assert [(c.tool, c.args, c.status, c.process, c.node) for c in calls] == [
        ("iptables", ("--version",), 0, "kube-proxy", "np-abc123-n1"),
        ("ipset", ("no-such-command",), bad.returncode, "kube-proxy", "np-abc123-n1")]
    assert all(c.start <= c.end for c in calls)
    assert tooltrace.unreadable(log) == []
    assert (tmp_path / "tools.log.before").read_text() == "held\n"


def test_a_line_without_times_is_unreadable_not_dropped(tmp_path):
    log = tmp_path / "tools.log"
    log.write_text("1.0 1.1 7 felix@np-abc123-n1 0 iptables-nft-save -t filter\n"
                   " 7 felix@np-abc123-n1 0 iptables-nft-restore --noflush\n")
    assert [c.tool for c in tooltrace.read(str(log))] == ["iptables-nft-save"]
    assert tooltrace.unreadable(str(log)) == [
        " 7 felix@np-abc123-n1 0 iptables-nft-restore --noflush"]


DELETE_DATA = os.path.join(os.path.dirname(__file__), "data", "tooltrace",
                           "kube-router-delete-by-number.log")


def test_the_captured_delete_by_number_after_an_insert_of_kube_proxy():
    """Captured: kube-router listed OUTPUT (-S), kube-proxy inserted its KUBE-FIREWALL jump at
    the top, kube-router inserted its own jump at 1 and deleted rule 4, the number its old jump
    had before kube-proxy's insert (that bring-up's node lacked OUTPUT -> KUBE-SERVICES after)."""
    calls = tooltrace.read(DELETE_DATA)
    found = tooltrace.stale_deletes(calls)
    assert [(x.listing.args, x.write.args[-2:], x.delete.args) for x in found] == [
        (("-t", "filter", "-S", "OUTPUT", "--wait"), ("-j", "KUBE-FIREWALL"),
         ("-t", "filter", "-D", "OUTPUT", "4", "--wait"))]
    assert lost_updates(calls) == []


def test_a_delete_by_number_is_stale_only_after_another_write_to_its_chain():
    listing = call("iptables", "-t", "filter", "-S", "OUTPUT", process="kube-router",
                   start=0, end=0.1)
    delete = call("iptables", "-t", "filter", "-D", "OUTPUT", "4", process="kube-router",
                  start=0.5, end=0.6)
    insert = call("iptables", "-w", "5", "-I", "OUTPUT", "-t", "filter", "-j", "X",
                  start=0.2, end=0.3)
    assert [x.write for x in tooltrace.stale_deletes([listing, insert, delete])] == [insert]
    assert tooltrace.stale_deletes([listing, delete]) == []
    other_chain = call("iptables", "-w", "5", "-I", "INPUT", "-t", "filter", "-j", "X",
                       start=0.2, end=0.3)
    nat = call("iptables", "-w", "5", "-I", "OUTPUT", "-t", "nat", "-j", "X", start=0.2, end=0.3)
    before = call("iptables", "-w", "5", "-I", "OUTPUT", "-t", "filter", "-j", "X",
                  start=-0.3, end=-0.2)
    by_spec = call("iptables", "-t", "filter", "-D", "OUTPUT", "-j", "Y", process="kube-router",
                   start=0.5, end=0.6)
    assert tooltrace.stale_deletes([listing, other_chain, nat, before, delete]) == []
    assert tooltrace.stale_deletes([listing, insert, by_spec]) == []
