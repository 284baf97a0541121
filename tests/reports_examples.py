"""Realistic example results: the seed article's policies on an enforcing and an open cluster.

Why: the docs screenshot (docs/report-screenshot.png) and the browser test need a report that
looks like a real run (long pod names, DNS and external probes, attempts with timings) without a
cluster. `python -m tests.reports_examples OUT.html` writes that report. These are example
data for rendering, never used to decide a verdict.
"""

from __future__ import annotations

import sys

from harness.results import Attempt, CellResult, ScenarioResult, StepResult

RUN_ID = "7f3a9c"
PODS = ["prod/frontend", "prod/backend", "prod/db", "dev/tools"]
META = {
    "backend": "local", "cnis": ["enforcing", "open"], "run_id": RUN_ID,
    "canary": {"enforcing": {"enforcing": True, "detail": "deny-all probe timed out (1.0s)"},
               "open": {"enforcing": False,
                        "detail": "deny-all probe connected: answered by np-7f3a9c-canary/b"}},
    "versions": {"netpol-proof": "0.1.0", "python": "3.11", "kernel": "6.1", "nft": "1.0.6"},
    "started": "2026-11-25T06:00:00Z",
}


def _cell(src: str, dst: str, expected: str, enforcing: bool, reason: str, port: str = "80",
          protocol: str = "TCP", dns_name: str | None = None) -> CellResult:
    """One probe as an enforcing or an open cluster would have answered it."""
    if expected == "undefined":
        return CellResult(src, dst, port, protocol, expected, "connected", "not asserted", reason,
                          [Attempt(1, "connected", 0.004, dst)], dns_name)
    answered = dst if not dst.startswith("ext:") else dst[4:]
    if dns_name:
        answered = "kube-system/coredns"
    ok = Attempt(1, "dns-resolved" if dns_name else "connected", 0.006, answered, "HTTP 200"
                 if not dns_name else "10.96.0.1", True)
    dropped = [Attempt(r, "dns-timeout" if dns_name else "timeout", 1.0, None,
                       "curl: (28) Connection timed out" if not dns_name
                       else ";; connection timed out; no servers could be reached", True)
               for r in (1, 2)]
    if expected == "allow":
        return CellResult(src, dst, port, protocol, expected, "connected", "pass", reason,
                          [ok, Attempt(2, ok.outcome, 0.005, answered, ok.detail, True)], dns_name)
    if enforcing:
        return CellResult(src, dst, port, protocol, expected, "blocked", "pass", reason, dropped,
                          dns_name)
    attempts = [Attempt(r, ok.outcome, 0.004 + r / 1000, answered, ok.detail, True)
                for r in range(1, 5)]
    return CellResult(src, dst, port, protocol, expected, "connected", "not enforced", reason,
                      attempts, dns_name)


def _step(index: int, title: str, cells: list[CellResult], enforcing: bool, secs: float) -> StepResult:
    bad = any(c.verdict not in ("pass", "not asserted") for c in cells)
    return StepResult(index, title, not bad, secs if not bad else None, 2 if not bad else 8, cells)


def _baseline(targets: list[str]) -> StepResult:
    cells = [_cell(s, t, "undefined" if s == t else "allow", True, "no policy selects any pod")
             for s in PODS for t in targets]
    return StepResult(0, "baseline: no policy, everything connects", True, 0.0, 1, cells)


def _deny_all(enforcing: bool) -> list[CellResult]:
    out = []
    for s in PODS:
        for t in PODS:
            if s == t:
                out.append(_cell(s, t, "undefined", enforcing,
                                 "a pod talking to itself: the spec leaves it undefined"))
            elif t.startswith("prod/"):
                out.append(_cell(s, t, "deny", enforcing,
                                 f"{t} is isolated for ingress by prod/deny-all-ingress; "
                                 f"no ingress rule of any policy selecting {t} allows {s}"))
            else:
                out.append(_cell(s, t, "allow", enforcing,
                                 f"no policy selects {t} for ingress: not isolated"))
    return out


def _frontend_to_backend(enforcing: bool) -> list[CellResult]:
    out = []
    for cell in _deny_all(enforcing):
        if cell.source == "prod/frontend" and cell.target == "prod/backend":
            cell = _cell(cell.source, cell.target, "allow", enforcing,
                         "prod/allow-frontend-to-backend selects prod/backend and its ingress "
                         "rule allows pods labelled app=frontend on 80/TCP")
        out.append(cell)
    return out


def _restrict_egress(enforcing: bool) -> list[CellResult]:
    why_pod = ("prod/backend is isolated for egress by prod/restrict-egress; {t} "
               "(10.244.0.0/16) is outside ipBlock 10.0.0.0/16")
    out = []
    for t in PODS:
        if t == "prod/backend":
            out.append(_cell("prod/backend", t, "undefined", enforcing,
                             "a pod talking to itself: the spec leaves it undefined"))
        else:
            out.append(_cell("prod/backend", t, "deny", enforcing, why_pod.format(t=t)))
    out.append(_cell("prod/backend", "ext:inside", "allow", enforcing,
                     "10.0.0.10 is inside ipBlock 10.0.0.0/16 of prod/restrict-egress"))
    out.append(_cell("prod/backend", "ext:outside", "deny", enforcing,
                     "192.0.2.10 is outside ipBlock 10.0.0.0/16; egress isolated"))
    out.append(_cell("prod/backend", "kube-system/coredns", "deny", enforcing,
                     "DNS pitfall: coredns (10.244.0.10) is outside 10.0.0.0/16, so egress to "
                     "53/UDP is denied and names stop resolving", port="53", protocol="UDP",
                     dns_name="kubernetes.default.svc.cluster.local"))
    return out


def results() -> list[ScenarioResult]:
    """Three seed-article scenarios, each on the `enforcing` and the `open` profile."""
    out = []
    specs = [
        ("deny-all-ingress", "scenarios/real-world/deny-all-ingress.yaml",
         "Deny all ingress in prod: the article's default-deny baseline.",
         [("deny all ingress in prod", _deny_all)], 1),
        ("allow-frontend-to-backend", "scenarios/real-world/allow-frontend-to-backend.yaml",
         "Default deny, then allow only frontend to reach backend on 80/TCP.",
         [("deny all ingress in prod", _deny_all),
          ("allow frontend to backend on 80/TCP", _frontend_to_backend)], 2),
        ("restrict-egress", "scenarios/real-world/restrict-egress.yaml",
         "Backend may only send to 10.0.0.0/16, which also cuts it off from DNS.",
         [("restrict backend egress to 10.0.0.0/16", _restrict_egress)], 1),
    ]
    for profile in ("enforcing", "open"):
        enforcing = profile == "enforcing"
        for name, path, desc, steps, policies in specs:
            built = [_step(i + 1, title, fn(enforcing), enforcing, 0.42 + 0.31 * i)
                     for i, (title, fn) in enumerate(steps)]
            failed = any(not s.converged for s in built)
            out.append(ScenarioResult(
                scenario=name, path=path, backend="local", profile=profile, run_id=RUN_ID,
                description=desc, outcome=("xfailed" if failed else "passed"),
                enforcing_cluster=enforcing, policies_accepted=policies,
                duration=3.2 if enforcing else 11.8, baseline=_baseline(PODS), steps=built))
    return out


def main(argv: list[str]) -> int:
    """Write the example HTML report to argv[0] (default ./report-example.html)."""
    from harness.reports import html_report
    path = argv[0] if argv else "report-example.html"
    html_report.write(results(), path, META)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
