"""`python -m harness run PATHS`: run scenarios on a backend without pytest.

Why a second front end: CI scripts and people debugging one scenario want the story of a run
and an exit status without pytest options. It is a loop over the same harness.session.Session
as the plugin (bring-up, canary, run or skip, teardown, reports) and never imports pytest.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("-k", dest="keyword", metavar="SUBSTRING",
                   help="only scenarios whose name contains SUBSTRING")
    add_settings(p)
    p.set_defaults(func=run)


def add_settings(p: argparse.ArgumentParser) -> None:
    """Every setting of harness.settings.OPTIONS, as the pytest plugin has them too (its
    spellings, plus `run`'s shorter ones: --json, --html, --run-id, -j/--jobs)."""
    from harness.settings import OPTIONS
    for option in OPTIONS:
        for names, kwargs in option.arguments(option.key, cli=True):
            p.add_argument(*names, **kwargs)


def _settings(args: argparse.Namespace):
    from harness.settings import OPTIONS, build
    given = vars(args)
    return build({o.key: given[o.key] for o in OPTIONS})


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


def _on_cni(session, cni: str, scenarios: list) -> bool:
    """Bring one CNI up (its canary with it), run every scenario, bring it down. False if broken."""
    from harness.errors import HarnessError

    ok = True
    try:
        # up, and the canary's line and banner said before the first story (with jobs above 1
        # `run` brought it up, and the canary runs beside the scenarios: waited for here)
        session.backend(cni)
        for sc in scenarios:
            session.run(sc, cni, log=print)
    except HarnessError as exc:
        print(f"ERROR: {cni}: {exc}", file=sys.stderr)
        ok = False
    # not in a `finally`: after Ctrl-C or SIGTERM the run's own teardown stops the scenarios
    # still running in the pool first, then brings every cluster down
    for err in session.teardown([cni]):
        print(f"teardown of {err}", file=sys.stderr)
    return ok


def _report(session) -> None:
    from harness.reports import terminal
    from harness.results import ScenarioOutcome
    color = sys.stdout.isatty()
    for r in session.results:
        if r.outcome not in (ScenarioOutcome.PASSED, ScenarioOutcome.SKIPPED):
            print()
            print(terminal.render_failure(r, color=color))
        elif any(s.fault is not None for s in r.steps):
            print()   # a fault step's timeline is a measurement: shown whatever the outcome
            print("\n".join(terminal.render_timelines(r)))
    print()
    print(terminal.render_summary(session.results))
    for line in terminal.render_dataplanes(session.dataplanes):
        print(line)
    for path in session.write_reports():
        print(f"wrote {path}")
    for banner in terminal.render_banners(session.canary_meta()):
        print(banner)


def run(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.lifecycle import install_sigterm_handler, stop_reason
    from harness.results import ScenarioOutcome
    from harness.session import Session

    settings = _settings(args)
    session = Session(settings, log=print)
    scenarios, broken = _load(args.paths, args.keyword)
    if not scenarios:
        print(f"no scenario selected under {' '.join(args.paths)}", file=sys.stderr)
        return 1
    install_sigterm_handler()
    print(session.describe())
    # the first, partial, results file (rewritten as each scenario ends)
    session.announce([(sc, cni) for cni in settings.cnis for sc in scenarios])
    try:
        # with jobs > 1 every (scenario, CNI) starts in the pool, in this order, once its CNI
        # is up, its canary beside them (here, one CNI after the other); _on_cni waits for the
        # canary's line and banner before it prints the CNI's first story; each story is
        # printed whole, in this order, when it is done
        if session.jobs > 1:
            for cni in settings.cnis:
                try:
                    session.ready(cni)
                except HarnessError:
                    continue   # said again, as this CNI's error, by _on_cni
                session.prefetch([(sc, cni) for sc in scenarios])
        for cni in settings.cnis:
            if not _on_cni(session, cni, scenarios):
                broken += 1
    except KeyboardInterrupt as exc:
        # said in the results file at once, before the teardown a SIGKILL may cut short
        session.stop(stop_reason(exc))
        raise
    finally:
        session.teardown()   # after Ctrl-C or SIGTERM between two CNIs; a no-op otherwise
    _report(session)
    ok = all(ScenarioOutcome(r.outcome).ok for r in session.results)
    return 0 if ok and not broken else 1
