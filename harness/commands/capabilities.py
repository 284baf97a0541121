"""`python -m harness capabilities`: what each backend/CNI declares it supports.

Why: a skipped scenario says which capability is missing; this table says it for everything at
once, before any cluster exists (whether a CNI really enforces is the canary's job, at run time).
"""

from __future__ import annotations

import argparse

from harness.backends import BACKENDS, capabilities, cnis
from harness.capabilities import KNOWN, Capabilities


def register(sub) -> None:
    p = sub.add_parser(
        "capabilities", help="table of what each backend/CNI supports",
        description="Print, per backend and CNI (local profiles; kind CNIs), each capability a "
        "scenario may require (yes/no), how denied packets are answered (drop/reject) and "
        "whether the CNI is declared to enforce NetworkPolicy. Declarations only: the "
        "enforcement canary decides at run time.",
        epilog="examples:\n  python -m harness capabilities\n  python -m harness capabilities "
               "--backend kind", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=BACKENDS,
                   help="only this backend (default: local and kind)")
    p.add_argument("--notes", action="store_true", help="print why each capability is missing")
    p.set_defaults(func=run)


def columns(backend: str | None) -> list[tuple[str, str, Capabilities]]:
    """(backend, cni, Capabilities) for every backend/CNI known here (harness.backends: the
    local backend's emulated profiles and real engines, kind's CNIs, which a kubeconfig
    cluster's CNI is taken to declare too)."""
    shown = [backend] if backend else ["local", "kind"]
    return [(b, name, capabilities(b, name)) for b in shown for name in cnis(b)]


def render(cols, notes: bool = False) -> str:
    header = ["capability"] + [f"{b}/{c}" for b, c, _ in cols]
    rows = [[name] + ["yes" if name in caps.supported else "no" for _, _, caps in cols]
            for name in KNOWN]
    rows.append(["deny response"] + [caps.deny_response for _, _, caps in cols])
    rows.append(["declared enforcing"] + ["yes" if caps.enforces else "NO" for _, _, caps in cols])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if notes:
        for b, c, caps in cols:
            for name, why in sorted(caps.notes.items()):
                lines.append(f"{b}/{c}: {name}: {why}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(render(columns(args.backend), args.notes))
    return 0
