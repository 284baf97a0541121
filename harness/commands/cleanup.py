"""`python -m harness cleanup [--dry-run]`: remove what crashed runs left behind."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("cleanup", help="remove leftovers of crashed runs (only those)",
                       description="Remove network namespaces, /etc/netns dirs, state files (and "
                       "whatever other backends register) of runs whose process is dead. Objects "
                       "of live runs and anything not named by netpol-proof are never touched.")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when run: building the CLI's parser imports every command module
    from harness.cleanup import remove_leftovers

    found, errors = remove_leftovers(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for item in found:
        print(f"{verb} {item}")
    if not found:
        print("nothing to clean up")
    for err in errors:
        print(f"ERROR: {err}")
    return 1 if errors else 0
