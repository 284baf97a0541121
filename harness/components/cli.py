"""`python -m harness.components list | build [NAME...] | path NAME | missing` (moved from
harness/components/__init__.py)."""

from __future__ import annotations

import argparse
import sys

from harness.components.gobuild import build
from harness.components.lookup import available, find, locate, reported_version
from harness.components.pins import COMPONENTS, default_names
from harness.errors import OUTPUT_LIMIT, ExecError, HarnessError


def _cmd_list(args) -> int:
    for name, comp in COMPONENTS.items():
        found = locate(name)
        if found.path is None:
            print(f"{name:24} {comp.version:9} missing: {found.reason}")
            continue
        where = f"built {found.path}" if found.source == "cache" else f"{found.source} {found.path}"
        line = f"{name:24} {comp.version:9} {where}"
        if found.source != "cache":
            try:
                ok, said = reported_version(found.path, name)
            except ExecError as exc:
                ok, said = False, f"does not run: {exc.cause}"
            if not ok:
                line += f" (reports {said!r}, not {comp.version})"
        print(line)
    return 0


def _cmd_build(args) -> int:
    for name, path in build(args.names or None).items():
        print(f"{name}: {path}")
    return 0


def _cmd_path(args) -> int:
    print(find(args.name))
    return 0


def _cmd_missing(args) -> int:
    """Exit 0 when every named component (every default one when none is named) is available;
    else 1, printing why (one line each)."""
    why = [f"{name}: {reason}" for name in (args.names or default_names())
           for ok, reason in [available(name)] if not ok]
    print("; ".join(why))
    return 1 if why else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.components",
                                description="The pinned real Kubernetes components: list, build, "
                                "find. Builds are cached under $NETPOL_PROOF_CACHE (default "
                                "~/.cache/netpol-proof)/components.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="each component, its version and where it comes from") \
        .set_defaults(func=_cmd_list)
    b = sub.add_parser("build", help="build (or reuse) components; all but critest when none "
                       "is named")
    b.add_argument("names", nargs="*", metavar="NAME", help=", ".join(COMPONENTS))
    b.set_defaults(func=_cmd_build)
    pa = sub.add_parser("path", help="print the binary path of one component")
    pa.add_argument("name", metavar="NAME", help=", ".join(COMPONENTS))
    pa.set_defaults(func=_cmd_path)
    m = sub.add_parser("missing", help="exit 1 and say why when any component is missing")
    m.add_argument("names", nargs="*", metavar="NAME", help="default: all but critest")
    m.set_defaults(func=_cmd_missing)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        output = getattr(exc, "output", "") or ""
        if len(output) > OUTPUT_LIMIT:   # the message holds its end
            print(output, file=sys.stderr)
        return 1


