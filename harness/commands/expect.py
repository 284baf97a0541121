"""`python -m harness expect SCENARIO`: every step's truth tables as the oracle computes them."""

from __future__ import annotations

import argparse
import json

from harness.errors import UsageError

EPILOG = """examples:
  python -m harness expect scenarios/conformance/deny-all-ingress.yaml
  python -m harness expect scenarios/conformance/deny-all-ingress.yaml --step 1 --format json

symbols: '.' must connect, 'X' must be blocked, '-' undefined by the spec (not asserted)."""


def register(sub) -> None:
    p = sub.add_parser(
        "expect", help="print the truth tables the oracle computes for each step",
        description="Print, for every step of a scenario, the truth table of every port and "
        "protocol the model's pods serve (rows: source pods, columns: destination pods, in model "
        "order), and the oracle's answer for each probe the step lists. Needs no cluster: "
        "runtime addresses ({{podIP x/a}}) take the model's stand-in values.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario file")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text tables (default) or JSON")
    p.add_argument("--step", type=int, default=None, metavar="N",
                   help="only step N, counted from 1 as `run` prints them (default: every step)")
    p.set_defaults(func=run)


def step_tables(scenario, index: int) -> dict:
    """One step's oracle output: tables per (port, protocol) and probe decisions (plain data)."""
    # imported when run: building the CLI's parser imports every command module
    from harness.expected import expected_cells, model_ports, oracle_at
    from harness.truthtable import symbol_of

    oracle = oracle_at(scenario, index)
    step = scenario.steps[index]
    tables = []
    for port, proto in model_ports(oracle.model):
        table = oracle.matrix(port, proto)
        tables.append({"port": port, "protocol": proto.value, "rows": list(table.rows),
                       "cols": list(table.cols), "table": table,
                       "matrix": [[symbol_of(table.get(r, c)) for c in table.cols]
                                  for r in table.rows]})
    probes = [{"from": c.source, "to": c.target, "port": c.port, "protocol": c.protocol.value,
               "dns": c.dns_name, "expected": c.expectation.value,
               "computed": c.decision.expectation.value,
               "reasons": [r.text for r in c.decision.reasons]}
              for c in expected_cells(scenario, index) if c.explicit and ".probes[" in c.field]
    return {"step": index + 1, "title": step.title, "tables": tables, "probes": probes}


def run(args: argparse.Namespace) -> int:
    # imported when run: building the CLI's parser imports every command module
    from harness.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    indexes: list[int] = list(range(len(scenario.steps)))
    if args.step is not None:
        if not 1 <= args.step <= len(scenario.steps):
            raise UsageError(f"--step {args.step}: {args.scenario} has steps "
                             f"1-{len(scenario.steps)}")
        indexes = [args.step - 1]
    steps = [step_tables(scenario, i) for i in indexes]
    if args.format == "json":
        for s in steps:
            for t in s["tables"]:
                del t["table"]
        print(json.dumps({"scenario": scenario.name, "path": str(scenario.path),
                          "description": scenario.description, "steps": steps}, indent=2))
        return 0
    print(f"{scenario.name}: {scenario.description}")
    for s in steps:
        print(f"\nstep {s['step']}: {s['title']}")
        for t in s["tables"]:
            print(f"\n  {t['protocol']} {t['port']}")
            print("\n".join("  " + line for line in t["table"].render().splitlines()))
        if s["probes"]:
            print("\n  probes")
            for p in s["probes"]:
                what = f"dns {p['dns']}" if p["dns"] else f"{p['to']} {p['protocol']} {p['port']}"
                mark = "" if p["expected"] in (p["computed"], "undefined") else \
                    f"   (scenario says {p['expected']})"
                print(f"  {p['from']} -> {what}: {p['computed']}{mark}")
    return 0
