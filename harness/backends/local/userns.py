"""Run a command as root of a private user namespace, where the local backend needs no sudo.

Why: on a laptop or CI runner without root, the kernel usually still allows unprivileged user
namespaces; inside one, "root" may create network namespaces, veths and nft tables that belong
to that user namespace only. Usage:
    python -m harness.backends.local.userns -- python -m pytest tests/live
The command runs with private user, mount, network and PID namespaces:
- /run is a fresh tmpfs (so /run/netns and the run state live there), which also holds an
  overlay upper layer for /etc (so /etc/netns/<pod> can be written); /tmp and $HOME are shared;
- everything the run creates dies with the PID namespace when the command exits, even after a
  crash: the kernel kills every process left in it and drops the namespaces with the mounts.
The two process replacements (os.execvp) are not subprocesses: this process becomes `unshare`,
then the command; the few `mount` calls in between go through harness.shell.run.
"""

from __future__ import annotations

import os
import shutil
import sys

from harness.shell import run

USAGE = "usage: python -m harness.backends.local.userns [--always] -- COMMAND [ARG...]"
INSIDE = "--inside"


def unshare_argv(command: list[str]) -> list[str]:
    """The argv that re-runs this module inside new user/mount/net/pid namespaces."""
    return ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork",
            "--mount-proc", "--propagation", "private", "--kill-child=SIGTERM",
            sys.executable, "-m", "harness.backends.local.userns", INSIDE, "--", *command]


def prepare_mounts() -> None:
    """Inside the namespaces: writable /etc (overlay on a tmpfs) and a private /run."""
    def mount(*args: str) -> None:
        run(["mount", *args], check=True, doing="preparing the user namespace")

    resolv_is_link = os.path.islink("/etc/resolv.conf")
    mount("-t", "tmpfs", "tmpfs", "/run")
    # Files we need to write are placed in the upper layer *before* mounting: an unprivileged
    # user's namespace root may not write into directories owned by the real root, but the
    # overlay takes a directory's owner from its upper copy, which is ours.
    os.makedirs("/run/.np-etc/upper/netns")
    os.makedirs("/run/.np-etc/work")
    if resolv_is_link:
        # often a symlink into /run; `ip netns exec` bind-mounts each pod's resolv.conf onto
        # it, so it must be a real file now that /run is replaced
        open("/run/.np-etc/upper/resolv.conf", "w").close()
    mount("-t", "overlay", "overlay", "-o",
          "lowerdir=/etc,upperdir=/run/.np-etc/upper,workdir=/run/.np-etc/work", "/etc")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    inside = args[:1] == [INSIDE]
    always = args[:1] == ["--always"]
    if inside or always:
        args = args[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(USAGE, file=sys.stderr)
        return 2
    if inside:
        prepare_mounts()
        os.execvp(args[0], args)
    if os.geteuid() == 0 and not always:
        os.execvp(args[0], args)   # already root: nothing to do
    if shutil.which("unshare") is None:
        print("netpol-proof: `unshare` is missing; install util-linux", file=sys.stderr)
        return 1
    os.execvp("unshare", unshare_argv(args))
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
