"""`python -m harness check PATH...`: validate scenario files and their expectations offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import Problem

EPILOG = """examples:
  python -m harness check scenarios/
  python -m harness check scenarios/conformance/deny-all-ingress.yaml tests/data/scenarios/

exit status: 0 when every file is valid and every hand-written expectation agrees with the
oracle; 1 otherwise (each problem is printed as FILE:LINE: FIELD: MESSAGE). Lines starting
with "note:" are advice (e.g. a capability the scenario uses but does not require) and do not
change the exit status."""


def register(sub) -> None:
    p = sub.add_parser(
        "check", help="validate scenario files and check their expectations against the oracle",
        description="Validate scenario files (or directories searched recursively for YAML with "
        "top-level kind: Scenario): the format, every policy against the Kubernetes API schema, "
        "and every hand-written truth table and probe against the NetworkPolicy oracle. Needs "
        "no cluster.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when run: building the CLI's parser imports every command module
    from harness.expected import validate_file
    from harness.scenario import find_scenarios, is_scenario_file

    files = find_scenarios(args.paths)
    # Why: a file named explicitly that is not a scenario is a mistake, not something to skip.
    stray = [Path(p) for p in args.paths if Path(p).is_file() and not is_scenario_file(Path(p))]
    for p in stray:
        print(Problem(str(p), "kind", "not a scenario file: no top-level `kind: Scenario`"))
    if not files and not stray:
        print(f"no scenario files (YAML with top-level kind: Scenario) in {' '.join(args.paths)}")
        return 1
    bad = total = 0
    notes: list[str] = []
    names: dict[str, Path] = {}
    for f in files:
        problems = validate_file(f)
        name = _name_of(f)
        # Why: the name is the test id; two files with one name make results ambiguous.
        if name and name in names:
            problems.append(Problem(str(f), "name", f"{name!r} is also the name of {names[name]}; "
                                                    f"scenario names must be unique"))
        elif name:
            names[name] = f
        if not problems:
            notes += _notes(f)
        if problems:
            bad += 1
            total += len(problems)
            print(f"FAIL {f}")
            for pr in problems:
                print(f"  {pr}")
        else:
            print(f"ok   {f}")
    for note in notes:
        print(f"note: {note}")
    print(f"{len(files)} scenario file(s) checked: {len(files) - bad} ok, {bad} with problems"
          f" ({total} problem(s))" + (f"; {len(stray)} file(s) are not scenarios" if stray else ""))
    return 0 if bad == 0 and not stray else 1


def _name_of(path: Path) -> str | None:
    import yaml  # loaded by then (harness.scenario); not at the CLI's start

    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _notes(path: Path) -> list[str]:
    """Advice that does not fail the check: capabilities used but not required."""
    # imported when run: building the CLI's parser imports every command module
    from harness.expected import missing_requirements
    from harness.scenario import load_scenario

    return [str(p) for p in missing_requirements(load_scenario(path))]
