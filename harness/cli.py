"""`python -m harness` / `netpol-proof`: a thin command line over the library.

Each subcommand lives in harness/commands/<name>.py with `register(subparsers)` and a `run(args)`
returning the exit code; this module only discovers them, parses and dispatches. No logic here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import harness.commands as commands_pkg
from harness.errors import HarnessError

# The order commands are listed in `--help`; commands not listed here come after, by name.
ORDER = ["run", "check", "expect", "explain", "compare", "cleanup", "capabilities"]

EPILOG = """examples:
  python -m harness run scenarios/ --backend local --cni enforcing,open
  python -m harness check scenarios/
  python -m harness expect scenarios/conformance/deny-all-ingress.yaml
  python -m harness explain scenarios/real-world/seed-allow-frontend-to-backend.yaml \\
      --from prod/frontend --to prod/backend --port 80
  python -m harness compare before.json after.json
  python -m harness cleanup
"""


def _modules() -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(commands_pkg.__path__) if not m.name.startswith("_")]
    return [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netpol-proof",
        description="Prove what a cluster actually enforces of Kubernetes NetworkPolicy.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _modules():
        importlib.import_module(f"harness.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        output = getattr(exc, "output", "")
        if output:
            print(output, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
