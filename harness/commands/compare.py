"""`python -m harness compare A.json B.json`: every cell that flipped between two runs, and why."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="cells that flipped between two results files, and why",
        description="Compare two results files written with --json/--netpol-json (e.g. before and "
        "after a CNI migration). Prints every cell whose verdict or observed outcome differs, "
        "matched by (scenario, step, source, target, port, protocol) and grouped by scenario: "
        "before, after, and why (the oracle's reason for the cell, as `explain` gives it); the "
        "cells that did not change counted by verdict, and the scenarios present in only one "
        "file. Exit status 0 when the runs agree, 1 when anything differs, 2 when a file cannot "
        "be read or the two are not runs of the same scenarios in the same results format (as "
        "diff does).",
        epilog="examples:\n  python -m harness compare before-flannel.json after-canal.json\n"
        "  python -m harness compare before.json after.json --html reports-out/compare.html",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A.json", help="the first results file (before)")
    p.add_argument("b", metavar="B.json", help="the second results file (after)")
    p.add_argument("--html", metavar="PATH",
                   help="also write the comparison as a self-contained HTML page to PATH")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    # imported when run: building the CLI's parser imports every command module
    from harness.reports.compare import compare, render, write_html
    from harness.reports.json_report import ResultsFileError

    try:
        result = compare(args.a, args.b)
    except ResultsFileError as exc:
        # 2, not 1: "could not compare" must not read as "the runs differ" in a CI script.
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(render(result))
    if args.html:
        write_html(result, args.html)
        print(f"wrote {args.html}")
    return 0 if result.identical else 1
