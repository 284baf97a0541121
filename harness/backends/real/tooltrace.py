"""Which process wrote a node's netfilter tables, when: wrappers for the tools the node
processes exec (iptables, iptables-save, iptables-restore, their -nft/-legacy forms, ip6tables,
ipset, nft), each logging one line per call to a shared log.

Why: kube-proxy and the engine of a node write the same tables of the same network namespace
with separate processes (docs/real-engines.md "Who writes a node's tables"), and only the order
of their calls explains what the tables hold afterwards. kube-proxy and kube-router find their
tools on PATH, Felix on the PATH privatemounts gives it: a directory of these wrappers put first
on that PATH sees every call, with no change to the binaries.

A line of the log: `<start> <end> <pid> <label> <exit status> <tool> <args...>` (start and end
as seconds since the epoch, the pid of the wrapper, which is the tool's parent; the label is
`<process>@<node namespace>`). `before` holds a shell snippet to run before a tool, by
(process, tool), with $label, $log and $tool set: a test uses it to hold one process's calls
until another's have happened and so force an interleaving that load only makes likely
(tests/real/test_real_bringup.py). The log line is written once the tool has exited.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field

#: the tools a node process may exec to read or write netfilter state
TOOLS = tuple(f"{fam}{kind}" for fam in ("iptables", "ip6tables")
              for kind in ("", "-save", "-restore", "-nft", "-nft-save", "-nft-restore",
                           "-legacy", "-legacy-save", "-legacy-restore")) + ("ipset", "nft")


#: PATH of a wrapper's own commands
WRAPPER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ToolTrace:
    """Trace the node processes' tool calls into `log` (one file for the whole run)."""

    log: str
    #: (process name, tool) -> shell commands run before the tool runs
    before: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One logged call."""

    start: float
    end: float
    pid: int
    label: str
    status: int
    tool: str
    args: tuple[str, ...]

    @property
    def process(self) -> str:
        """The process name of the label (`kube-proxy` of `kube-proxy@np-1a2b3c-n1`)."""
        return self.label.partition("@")[0]

    @property
    def node(self) -> str:
        return self.label.partition("@")[2]


def wrapper_dir(path: str, label: str, trace: ToolTrace, process: str,
                tools: tuple[str, ...] = TOOLS) -> str:
    """A directory of wrappers for `tools` (those this machine has), logging as `label`."""
    os.makedirs(path, exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        if real is None:
            continue
        before = trace.before.get((process, tool), "")
        # the wrapper's own commands (date, and what `before` runs) from the usual places:
        # Felix's PATH holds its tools only; the tool itself runs with the caller's PATH
        script = (f"#!/bin/sh\n"
                  f"# {tool} for {label}, traced (harness.backends.real.tooltrace)\n"
                  f"label={shlex.quote(label)} log={shlex.quote(trace.log)} "
                  f"tool={shlex.quote(tool)}\n"
                  f"caller_path=$PATH\n"
                  f"PATH={WRAPPER_PATH}\n"
                  f"{before}\n"
                  f"t0=$(date +%s.%N)\n"
                  f"PATH=$caller_path {shlex.quote(real)} \"$@\"\n"
                  f"rc=$?\n"
                  f"printf '%s %s %s %s %s %s\\n' \"$t0\" \"$(date +%s.%N)\" \"$$\" \"$label\" "
                  f"\"$rc\" \"$tool $*\" >> \"$log\"\n"
                  f"exit $rc\n")
        target = os.path.join(path, tool)
        with open(target, "w") as fh:
            fh.write(script)
        os.chmod(target, 0o755)
    return path


def _parse(line: str) -> Call | None:
    parts = line.split(" ")
    if len(parts) < 6:
        return None
    start, end, pid, label, status, tool, *args = parts
    try:
        return Call(float(start), float(end), int(pid), label, int(status), tool,
                    tuple(a for a in args if a))
    except ValueError:
        return None


def _lines(log: str) -> list[str]:
    try:
        with open(log) as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []


def read(log: str) -> list[Call]:
    """The calls logged so far, in order of start (lines that do not parse: `unreadable`)."""
    return sorted((c for line in _lines(log) if (c := _parse(line)) is not None),
                  key=lambda c: c.start)


def unreadable(log: str) -> list[str]:
    """Lines of the log that are not a call (a wrapper that could not time its tool)."""
    return [line for line in _lines(log) if _parse(line) is None]


def family(tool: str) -> str:
    """`ip6` for the ip6tables tools, `ip` for the iptables ones (their tables are apart)."""
    return "ip6" if tool.startswith("ip6tables") else "ip"


def writes_filter(call: Call) -> bool:
    """Whether `call` may change a filter table (what a whole-table restore would undo)."""
    if call.tool.endswith("-save") or call.tool in ("ipset", "nft"):
        return False
    if call.tool.endswith("-restore"):
        return "-T" not in call.args or "filter" in call.args or "--table=filter" in call.args
    table = call.args[call.args.index("-t") + 1] if "-t" in call.args[:-1] else "filter"
    reads = {"-C", "-S", "-L", "--check", "--list", "--list-rules", "--version"}
    return table == "filter" and not reads & set(call.args)


@dataclass(frozen=True)
class LostUpdate:
    """A filter-table write of one process inside another's save -> whole-table restore."""

    save: Call
    write: Call
    restore: Call

    @property
    def certain(self) -> bool:
        """The write ran wholly between the save and the restore: the save cannot hold it and
        the restore replaced it. Otherwise it overlapped one of them and may have survived."""
        return self.save.end <= self.write.start and self.write.end <= self.restore.start


def lost_updates(calls: list[Call], restorer: str = "kube-router") -> list[LostUpdate]:
    """Filter-table writes of other processes of a node that ran inside a save -> restore of
    the whole filter table by `restorer` on the same node (a restore without --noflush
    replaces the table with what the save read, plus the restorer's own edits)."""
    out = []
    for node in sorted({c.node for c in calls}):
        mine = [c for c in calls if c.node == node]
        saves = [c for c in mine if c.process == restorer and c.tool.endswith("-save")
                 and c.status == 0 and ("-t" not in c.args or "filter" in c.args)]
        for save in saves:
            # the restorer's next save or restore of that family: a sync that aborted after
            # its save has none
            restore = next((c for c in mine if c.process == restorer and c.start > save.end
                            and family(c.tool) == family(save.tool)
                            and c.tool.endswith(("-save", "-restore"))), None)
            if restore is None or not restore.tool.endswith("-restore") or \
                    "--noflush" in restore.args or restore.status != 0:
                continue
            out += [LostUpdate(save, c, restore) for c in mine
                    if c.process != restorer and writes_filter(c) and c.status == 0
                    and family(c.tool) == family(restore.tool)
                    and c.end > save.start and c.start < restore.end]
    return out


@dataclass(frozen=True)
class StaleDelete:
    """A rule deleted by its number in a chain that another process wrote to after the
    deleting process listed it: the number may name another rule by then."""

    listing: Call
    write: Call
    delete: Call


def _chain_of(call: Call, flags: tuple[str, ...]) -> str | None:
    for i, a in enumerate(call.args[:-1]):
        if a in flags:
            return call.args[i + 1]
    return None


def _table_of(call: Call) -> str:
    return call.args[call.args.index("-t") + 1] if "-t" in call.args[:-1] else "filter"


def stale_deletes(calls: list[Call], deleter: str = "kube-router") -> list[StaleDelete]:
    """Every `-D <chain> <number>` of `deleter` whose number came from its last listing of
    that chain (`-S <chain>`) while another process of the node inserted or appended to the
    chain between the listing and the delete (kube-router moves a rule to its position by
    inserting it again and deleting the old one by number)."""
    out = []
    for node in sorted({c.node for c in calls}):
        mine = [c for c in calls if c.node == node and family(c.tool) == "ip"
                and c.tool.endswith(("iptables", "iptables-nft", "iptables-legacy"))]
        for d in mine:
            chain = _chain_of(d, ("-D", "--delete"))
            if d.process != deleter or chain is None or d.status != 0:
                continue
            number = d.args[d.args.index(chain) + 1:][:1]
            if not (number and number[0].isdigit()):
                continue   # deleted by its spec, not its number
            listing = next((c for c in reversed(mine) if c.process == deleter
                            and c.end <= d.start and _chain_of(c, ("-S", "--list-rules")) == chain
                            and _table_of(c) == _table_of(d)), None)
            if listing is None:
                continue
            out += [StaleDelete(listing, c, d) for c in mine
                    if c.process != deleter and c.status == 0
                    and _chain_of(c, ("-I", "--insert", "-A", "--append")) == chain
                    and _table_of(c) == _table_of(d)
                    and c.end > listing.start and c.start < d.end]
    return out
