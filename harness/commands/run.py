"""`python -m harness run PATHS`: run scenarios on a backend without pytest.

Why a second front end: CI scripts and people debugging one scenario want the story of a run
and an exit status without pytest options; it uses the same library calls as the plugin
(runner, canary, reports) and never imports pytest.
"""

from __future__ import annotations

import argparse
import datetime
import sys

EXAMPLES = """examples:
  python -m harness run scenarios/ --backend local --cni enforcing,open
  python -m harness run scenarios/conformance/deny-all-ingress.yaml --json out.json --html out.html
  python -m harness run scenarios/ -k egress --probe-timeout 0.5
exit status: 0 when every scenario passed (failures on a CNI declared not to enforce count as
expected), 1 otherwise (a failure, an unexpected pass on such a CNI, or a broken run)."""


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run scenarios on a backend (no pytest needed)",
        description="Run scenario files on a backend and CNI(s): deploy, baseline, apply each "
        "step's policies, probe until stable, judge every probe; print each scenario's story, "
        "the failures as expected/observed tables and a scenario x CNI summary.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")
    p.add_argument("--backend", help="local (default), kind or kubeconfig")
    p.add_argument("--cni", help="CNI(s), comma-separated; local: enforcing, open (emulated), "
                   "kube-router, calico, none (real engines)")
    p.add_argument("--json", metavar="PATH", help="write the JSON results file")
    p.add_argument("--html", metavar="PATH", help="write the HTML report")
    p.add_argument("--probe-timeout", metavar="SECONDS")
    p.add_argument("--converge-timeout", metavar="SECONDS")
    p.add_argument("-k", dest="keyword", metavar="SUBSTRING",
                   help="only scenarios whose name contains SUBSTRING")
    p.add_argument("--run-id", help="4-8 characters of [a-z0-9] naming what the run creates")
    p.add_argument("--keep-cluster", action="store_true", default=None)
    p.add_argument("--context", help="kubeconfig backend: the context to run in")
    p.add_argument("--allow-context", help="kubeconfig backend: repeat the context to agree")
    p.add_argument("--no-canary", action="store_true", help="skip the enforcement canary")
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace):
    from harness.settings import build
    return build({"backend": args.backend, "cnis": args.cni, "json_path": args.json,
                  "html_path": args.html, "probe_timeout": args.probe_timeout,
                  "converge_timeout": args.converge_timeout, "run_id": args.run_id,
                  "keep_cluster": args.keep_cluster, "context": args.context,
                  "allow_context": args.allow_context,
                  "canary": False if args.no_canary else None})


def _load(paths: list[str], keyword: str | None) -> tuple[list, int]:
    """(scenarios selected, number of files that could not be loaded)."""
    from harness.errors import ScenarioError
    from harness.scenario import find_scenarios, load_scenario
    scenarios, broken = [], 0
    for path in find_scenarios(paths):
        try:
            sc = load_scenario(path)
        except ScenarioError as exc:
            print(f"ERROR: invalid scenario file:\n{exc}", file=sys.stderr)
            broken += 1
            continue
        if not keyword or keyword in sc.name:
            scenarios.append(sc)
    return scenarios, broken


def _on_cni(settings, index: int, cni: str, scenarios: list, results: list,
            canaries: dict) -> bool:
    """Bring one CNI up, run its canary and every scenario, bring it down. False if broken."""
    from dataclasses import replace

    from harness.backends import get_backend
    from harness.canary import run_canary
    from harness.errors import HarnessError
    from harness.reports import terminal
    from harness.results import ScenarioResult
    from harness.runner import run_scenario

    s = settings
    if settings.backend == "local":  # one prefix per profile: both exist at once in a run
        s = replace(settings, run_id=(settings.run_id + "abcdefgh"[index % 8])[:8])
    backend = get_backend(s.backend, cni, **s.backend_options())
    try:
        print(f"bringing up {s.backend}/{cni} (run {s.run_id}) ...")
        backend.up()
        enforcing = None
        if s.canary:
            canary = run_canary(backend, s)
            canaries[cni] = canary.as_meta()
            enforcing = canary.enforcing
            print(f"canary on {cni}: {canary.detail}")
            if canary.enforcing is False:
                print(terminal.render_banner(f"{cni}: {terminal.DEFAULT_BANNER}"))
        caps = backend.capabilities()
        for sc in scenarios:
            ok, why = caps.match(sc.requires)
            if ok:
                results.append(run_scenario(sc, backend, s, log=print, enforcing=enforcing))
                continue
            print(f"scenario {sc.name} [{cni}]: skipped: {why}")
            results.append(ScenarioResult(sc.name, str(sc.path), s.backend, cni, s.run_id,
                                          sc.description, outcome="skipped", skip_reason=why,
                                          enforcing_cluster=enforcing))
        return True
    except HarnessError as exc:
        print(f"ERROR: {cni}: {exc}", file=sys.stderr)
        return False
    finally:
        if not (s.keep_cluster and s.backend != "local"):
            try:
                backend.down()
            except HarnessError as exc:
                print(f"teardown of {cni}: {exc}", file=sys.stderr)


def _report(settings, results: list, canaries: dict, started: str) -> None:
    from harness.reports import terminal
    from harness.runner import run_meta, write_reports
    color = sys.stdout.isatty()
    for r in results:
        if r.outcome not in ("passed", "skipped"):
            print()
            print(terminal.render_failure(r, color=color))
    print()
    print(terminal.render_summary(results))
    for path in write_reports(results, settings, run_meta(settings, canaries, started)):
        print(f"wrote {path}")
    for cni, meta in canaries.items():
        if meta.get("enforcing") is False:
            print(terminal.render_banner(f"{cni}: {terminal.DEFAULT_BANNER}"))


def run(args: argparse.Namespace) -> int:
    from harness.lifecycle import install_sigterm_handler

    settings = _settings(args)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    scenarios, broken = _load(args.paths, args.keyword)
    if not scenarios:
        print(f"no scenario selected under {' '.join(args.paths)}", file=sys.stderr)
        return 1
    install_sigterm_handler()
    print(settings.describe())
    results: list = []
    canaries: dict[str, dict] = {}
    for i, cni in enumerate(settings.cnis):
        if not _on_cni(settings, i, cni, scenarios, results, canaries):
            broken += 1
    _report(settings, results, canaries, started)
    ok = all(r.outcome in ("passed", "xfailed", "skipped") for r in results)
    return 0 if ok and not broken else 1
