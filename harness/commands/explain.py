"""`python -m harness explain SCENARIO --from x/a --to y/b --port 80`: one decision, in words."""

from __future__ import annotations

import argparse

from harness.errors import UsageError

EPILOG = """examples:
  python -m harness explain scenarios/conformance/deny-all-ingress.yaml --from y/a --to x/b --port 80
  python -m harness explain SCENARIO --from prod/frontend --to svc:prod/backend --port 8080 --step 2
  python -m harness explain SCENARIO --from x/a --to ext:outside --port 80 --protocol TCP
  python -m harness explain SCENARIO --from x/a --dns kubernetes.default.svc.cluster.local

--to takes a pod (ns/name), a Service (svc:ns/name), an external host (ext:name) or a DNS name;
--port a number or a port name (serve-80-tcp)."""


def register(sub) -> None:
    p = sub.add_parser(
        "explain", help="why one connection is allowed or blocked, step by step",
        description="Explain the oracle's decision for one connection (or one DNS lookup) of a "
        "scenario: which policy and rule allows it, or which policies isolate the pods with no "
        "rule matching. Needs no cluster.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario file")
    p.add_argument("--from", dest="source", required=True, metavar="SRC",
                   help="source pod ns/name or ext:host")
    p.add_argument("--to", dest="target", metavar="DST",
                   help="destination: ns/name, svc:ns/name, ext:host or a DNS name")
    p.add_argument("--dns", metavar="NAME", help="explain a DNS lookup of NAME instead")
    p.add_argument("--port", help="port number or name (required with --to)")
    p.add_argument("--protocol", default="TCP", help="TCP (default), UDP or SCTP")
    p.add_argument("--step", type=int, default=None, metavar="N",
                   help="only step N, counted from 1 as `run` prints them (default: every step)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when run: building the CLI's parser imports every command module
    from harness.expected import oracle_at
    from harness.explain import explain
    from harness.model import Protocol
    from harness.scenario import load_scenario

    if bool(args.target) == bool(args.dns):
        raise UsageError("explain needs either --to DST --port PORT or --dns NAME")
    if args.target and not args.port:
        raise UsageError("--port is required with --to (a number or a port name)")
    try:
        protocol = Protocol.parse(args.protocol)
    except ValueError as exc:
        raise UsageError(f"--protocol: {exc}") from None
    port = int(args.port) if args.port and args.port.isdigit() else args.port
    scenario = load_scenario(args.scenario)
    indexes = list(range(len(scenario.steps)))
    if args.step is not None:
        if not 1 <= args.step <= len(scenario.steps):
            raise UsageError(f"--step {args.step}: {args.scenario} has steps "
                             f"1-{len(scenario.steps)}")
        indexes = [args.step - 1]
    for i in indexes:
        oracle = oracle_at(scenario, i)
        try:
            if args.dns:
                decision = oracle.decide_dns(args.source, args.dns)
                text = explain(decision, args.source, f"dns {args.dns}", 53, Protocol.UDP)
            else:
                decision = oracle.decide(args.source, args.target, port, protocol)
                text = explain(decision, args.source, args.target, port, protocol)
        except (KeyError, ValueError) as exc:
            msg = exc.args[0] if exc.args else str(exc)
            raise UsageError(f"{args.scenario}: {msg}") from None
        if len(indexes) > 1 or args.step is not None:
            print(f"step {i + 1} ({scenario.steps[i].title}):")
        print(text)
        if i != indexes[-1]:
            print()
    return 0
