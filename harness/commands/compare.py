"""`python -m harness compare A.json B.json`: every probe whose outcome differs between two runs."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="probes whose outcome differs between two results files",
        description="Compare two results files written with --netpol-json (e.g. before and after a "
        "CNI migration). Prints every probe whose verdict or observed outcome differs, matched by "
        "(scenario, step, source, target, port, protocol) and grouped by scenario, and the "
        "scenarios present in only one file. Exit status 0 when the runs agree, 1 when "
        "anything differs, 2 when a file cannot be read (as diff does).",
        epilog="example:\n  python -m harness compare before-calico.json after-cilium.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A.json", help="the first results file (before)")
    p.add_argument("b", metavar="B.json", help="the second results file (after)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    # imported when run: building the CLI's parser imports every command module
    from harness.reports.compare import compare, render
    from harness.reports.json_report import ResultsFileError

    try:
        result = compare(args.a, args.b)
    except ResultsFileError as exc:
        # 2, not 1: "could not compare" must not read as "the runs differ" in a CI script.
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(render(result))
    return 0 if result.identical else 1
