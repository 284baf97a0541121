"""Run a command with a private, writable copy of some host directories (an overlay whose upper
layer is a tmpfs), in a mount namespace of its own.

Why: Felix writes state files under /var/lib/calico (e.g. `mtu`), and two Felix instances (one
per emulated node) must neither share them nor create anything on the host. Each instance runs
as `ip netns exec <node> unshare --mount --propagation private python -m
harness.backends.real.privatemounts --scratch DIR --overlay /var/lib -- calico-felix`: a
tmpfs on DIR (a directory of the run) holds the overlay's upper and work layers, so what the
command writes under /var/lib lives in that tmpfs and vanishes with the process; the host's
/var/lib and DIR itself stay as they were. The mounts go through harness.shell.run; the command
then replaces this process (os.execv), with `--path` as its PATH when given: Felix tries
`modprobe` (a kernel module for the whole host), and a PATH without it keeps Felix to the tools
it is given.
"""

from __future__ import annotations

import argparse
import os
import sys

from harness.shell import run


def prepare(scratch: str, overlays: list[str]) -> None:
    def mount(*args: str) -> None:
        run(["mount", *args], check=True, timeout=30, doing="preparing private mounts")

    mount("-t", "tmpfs", "tmpfs", scratch)
    for i, target in enumerate(overlays):
        upper, work = os.path.join(scratch, f"{i}-upper"), os.path.join(scratch, f"{i}-work")
        os.makedirs(upper)
        os.makedirs(work)
        mount("-t", "overlay", "overlay", "-o",
              f"lowerdir={target},upperdir={upper},workdir={work}", target)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="run a command over private overlays of host dirs")
    p.add_argument("--scratch", required=True, help="an empty directory for the tmpfs")
    p.add_argument("--overlay", action="append", default=[], help="a directory to overlay")
    p.add_argument("--path", help="PATH for the command (the tools it may run, nothing else)")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no command given after --")
    prepare(a.scratch, a.overlay)
    if a.path is not None:
        os.environ["PATH"] = a.path
    os.execv(command[0], command) if os.path.isabs(command[0]) else os.execvp(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
