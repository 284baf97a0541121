"""One scenario end to end: deploy -> baseline -> for each step: change, probe for the
observation window and until settled, judge -> result. The only sequencing code of a run.

Why it reads as a story: a failing run is debugged from its log, so every step says what it did
(labels, deletes, applies), how many rounds it probed and what it found. Expectations come from
harness.expected (the oracle applied to the scenario) and the cells to probe from harness.plan,
observations from harness.prober, verdicts from harness.verdicts; this module only orders them.
Polling never leans toward the expectation: every attempt of every cell is kept, every step is
observed for the same window whatever its results (verdicts.Window), then until two
consecutive rounds agree on every verdict (or the convergence deadline passes), and a cell's
verdict is its last round's, or UNSTABLE when it changed in a way no late programming explains:
on a cell whose expectation did not change at this step, or more than once (verdicts.over_rounds).
"""

from __future__ import annotations

import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Hashable

from harness import scenario as scn
from harness.backends.base import Backend
from harness.errors import HarnessError
from harness.faults.step import run_fault_step
from harness.faults.timeline import requirement_verdicts
from harness.model import Addresses
from harness.plan import Cell, plan_steps, plan_watch
from harness.prober import ROUND_PAUSE, loopback_probe, probe_round
from harness.probes import ProbeOutcome, ProbeSpec
from harness.results import (
    Attempt,
    Expectation,
    ScenarioOutcome,
    ScenarioResult,
    StepResult,
    Verdict,
    canary_contradiction,
)
from harness.scenario import Scenario
from harness.settings import Settings
from harness.verdicts import (
    BlockedKind,
    Judgement,
    Window,
    blocked_kind,
    first_stable_round,
    judge,
    judged_enforcing,
    name_resolves,
    over_rounds,
    positive_controls,
    scenario_outcome,
    self_probe_proves,
    settled,
)

Log = Callable[[str], None]
#: the baseline retries a cell at least this often before calling the network broken
BASELINE_MIN_ROUNDS = 3


def _short(o: ProbeOutcome | None, limit: int = 240) -> ProbeOutcome | None:
    """The outcome with a one-line detail: an exec error's detail holds the whole argv (the
    UDP client is a script), which would bury every report."""
    if o is None or ("\n" not in o.detail and len(o.detail) <= limit):
        return o
    first = o.detail.splitlines()[0] if o.detail else ""
    return replace(o, detail=(first[:limit] + " ...").strip())



class Run:
    """The state of one scenario run on one backend; `run_scenario` is its public face."""

    def __init__(self, scenario: Scenario | None, backend: Backend, settings: Settings, log: Log):
        self.scenario, self.backend, self.settings, self.log = scenario, backend, settings, log
        caps = backend.capabilities()
        self.deny_response = caps.deny_response
        self.dns_proxy = "fqdn" in caps.supported
        self.l7_proxy = "l7-http" in caps.supported
        self.declared_enforcing = caps.enforces
        self.addresses: Addresses | None = None
        self.policies_seen = 0
        self.applied_kinds: dict[str, str] = {}
        #: every step is observed this long, whatever its results
        self.window = Window(settings.min_rounds, settings.min_window)

    # -- one round -----------------------------------------------------------------------------
    def probe(self, cells: list[Cell], round_no: int, expectation_override: Expectation | None = None
              ) -> dict[Hashable, Verdict]:
        """Probe every cell once, add positive controls, judge, record attempts."""
        s = self.settings
        assert self.addresses is not None, "the scenario is deployed before it is probed"
        observed = probe_round(self.backend, [c.spec for c in cells], self.addresses,
                               s.probe_timeout, s.concurrency, self.backend.toolkit)

        def exp(c: Cell) -> Expectation:
            return expectation_override or c.expectation

        controls = self.controls(cells, observed, exp)
        verdicts: dict[Hashable, Verdict] = {}
        for i, c in enumerate(cells):
            o: ProbeOutcome | None = _short(observed.get(c.spec))
            control = controls.get(c.control_for(o)[0])
            j = judge(exp(c), o, control, self.deny_response, self.dns_proxy,
                      nxdomain_expected=c.nxdomain, expected_addresses=c.dns_answer,
                      servers=c.servers, l7_proxy=self.l7_proxy)
            c.last = j
            # A control matters only for a cell that did not get through; a delivered probe
            # proves its own server, so None ("not needed") is recorded for it.
            needed = o is not None and o.outcome.delivered is not True
            c.attempts.append(Attempt(round_no, o.outcome.value if o else "exec-failed",
                                      round(o.elapsed, 4) if o else 0.0,
                                      o.answered_by if o else None, o.detail if o else "",
                                      bool(control) if needed else None, j.verdict.value))
            verdicts[i] = j.verdict
        return verdicts

    def controls(self, cells: list[Cell], observed: dict, exp) -> dict[Hashable, bool]:
        """Positive controls of one round: an allowed source that connected, else (for blocked
        cells only) the server's own loopback answer, asked in the same round."""
        s = self.settings
        controls = positive_controls((c.control_for(observed.get(c.spec))[0], exp(c),
                                      observed.get(c.spec), c.servers) for c in cells)
        for c in cells:
            o = observed.get(c.spec)
            # a probe by name that got past resolution proves the DNS server answered
            if c.looked_up_name(o):
                controls[c.dns_key] = True
            # a source allowed to look a name up that resolved it proves the name resolves
            if c.name_key is not None and exp(c) == Expectation.ALLOW and c.resolved_name(o):
                controls[c.name_key] = True
        need = {}
        for c in cells:
            o = observed.get(c.spec)
            key, loopback = c.control_for(o)
            if o is None or controls.get(key) or not loopback:
                continue
            if blocked_kind(o.outcome, self.deny_response, self.dns_proxy,
                            self.l7_proxy) is BlockedKind.BLOCKED:
                need[key] = loopback
        if need:
            with ThreadPoolExecutor(max_workers=max(1, min(s.concurrency, len(need)))) as pool:
                futs = {k: pool.submit(loopback_probe, self.backend, lb.server.endpoint,
                                       lb.server.port, lb.server.protocol, s.probe_timeout,
                                       lb.dns_name)
                        for k, lb in need.items()}
                for k, f in futs.items():
                    controls[k] = name_resolves(f.result()) if need[k].must_resolve else \
                        self_probe_proves(f.result())
        return controls

    # -- baseline ------------------------------------------------------------------------------
    def baseline(self, steps_cells: list[list[Cell]]) -> StepResult:
        """Before any policy every probed cell must connect or resolve; else the network is broken."""
        seen: dict[ProbeSpec, Cell] = {}
        for cells in steps_cells:
            for c in cells:
                # a port the target does not serve has nothing to connect to, policy or not:
                # left out of the baseline unless the scenario asserts the cell (then the
                # refused baseline is the scenario's or the harness's error, reported as such)
                asserted = c.expectation != Expectation.UNDEFINED
                if c.spec.source != c.spec.target and (c.served or asserted) \
                        and c.spec not in seen:
                    # a name that does not exist must be answered NXDOMAIN, policy or not
                    seen[c.spec] = Cell(c.spec,
                                        Expectation.DENY if c.nxdomain else Expectation.ALLOW,
                                        "baseline: no policy exists, everything must connect "
                                        "(and every lookup be answered)",
                                        c.control_key, c.loopback, nxdomain=c.nxdomain,
                                        dns_answer=c.dns_answer, servers=c.servers,
                                        dns_key=c.dns_key, dns_loopback=c.dns_loopback,
                                        name_key=c.name_key, name_loopback=c.name_loopback)
        cells = list(seen.values())
        started = time.monotonic()
        rounds = 0
        ok = False
        pending = cells
        # Unlike a step, the baseline only asks "does the network work at all?": a cell that
        # connected once is healthy, so later rounds re-probe only the others (a slow exec on a
        # loaded machine is retried, not called a broken network), for at least
        # BASELINE_MIN_ROUNDS rounds and until the convergence deadline.
        while True:
            rounds += 1
            self.probe(pending, rounds)
            pending = [c for c in pending if c.last is None or c.last.verdict != Verdict.PASS]
            if not pending:
                ok = True
                break
            if rounds >= BASELINE_MIN_ROUNDS and \
                    time.monotonic() - started >= self.settings.converge_timeout:
                break
            time.sleep(ROUND_PAUSE)
        step = StepResult(0, "baseline: no policy, everything connects", ok,
                          round(time.monotonic() - started, 3) if ok else None, rounds,
                          [c.result() for c in cells])
        if not ok:
            bad = [c for c in cells if c.last and c.last.verdict != Verdict.PASS]
            listed = "; ".join(f"{c.spec.label}: {c.last.observed if c.last else ''}"
                               for c in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            step.infra_error = (f"baseline: {len(bad)} of {len(cells)} probes did not connect "
                                f"before any policy ({listed}{more}); the network or the harness "
                                "is broken, so no policy verdict is given")
        self.log(f"  baseline: {len(cells)} probes, {'all connected' if ok else 'FAILED'} "
                 f"({rounds} round{'s' * (rounds != 1)}, {time.monotonic() - started:.2f}s)")
        return step

    # -- steps ---------------------------------------------------------------------------------
    def change(self, step) -> None:
        """Labels, then deletes, then applies (the order docs/scenarios.md promises)."""
        ns_labels = getattr(step, "namespace_labels", None) or {}
        pod_labels = getattr(step, "pod_labels", None) or {}
        if ns_labels or pod_labels:
            self.backend.set_labels(ns_labels, pod_labels)
            self.log(f"    labels: {dict(ns_labels) or ''} {dict(pod_labels) or ''}".rstrip())
        for key in getattr(step, "delete", ()) or ():
            ns, _, name = str(key).partition("/")
            self.backend.delete_policy(ns, name, self.applied_kinds.pop(str(key), "NetworkPolicy"))
            self.log(f"    deleted {key}")
        for doc in getattr(step, "apply", ()) or ():
            assert self.addresses is not None, "the scenario is deployed before its steps"
            manifest = scn.render_manifest(doc.manifest, self.addresses)
            self.backend.apply_policy(manifest)
            meta = manifest.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") \
                else str(meta.get("name"))
            self.applied_kinds[key] = str(manifest.get("kind"))
            self.log(f"    applied {manifest.get('kind')} {key} ({getattr(doc, 'origin', '')})")
        self.policies_seen = max(self.policies_seen, self.backend.policy_count())

    def converge(self, index: int, title: str, cells: list[Cell], applied: float) -> StepResult:
        """Probe the step for its observation window, then until two consecutive rounds agree
        on every cell, or until the convergence deadline: the same rounds whatever the results
        (verdicts.Window). Each cell's verdict is then verdicts.over_rounds of its rounds: the
        last round's, or UNSTABLE when it changed where no late programming explains it (on a
        cell whose expectation this step did not change: `Cell.old` empty)."""
        s, window = self.settings, self.window
        rounds: list[dict[Hashable, Verdict]] = []
        starts: list[float] = []
        history: list[list[Judgement]] = [[] for _ in cells]
        ended = False
        while True:
            start = time.monotonic()
            verdicts = self.probe(cells, len(rounds) + 1)
            for h, c in zip(history, cells, strict=True):
                if c.last is not None:
                    h.append(c.last)
            agreed = bool(rounds) and settled(verdicts, rounds[-1])
            rounds.append(verdicts)
            starts.append(start)
            if window.may_end(len(rounds), start - applied, agreed):
                ended = True
                break
            now = time.monotonic()
            if len(rounds) >= window.min_rounds and now - applied >= s.converge_timeout:
                break
            # rounds at least window.interval apart: the window holds about min_rounds rounds
            # however fast one round is, and a fast round does not cost a burst of probes
            time.sleep(max(ROUND_PAUSE, start + window.interval - now))
        for h, c in zip(history, cells, strict=True):
            if h:
                c.last = over_rounds(h, c.old)
        unstable = sum(1 for c in cells if c.last is not None
                       and c.last.verdict is Verdict.UNSTABLE)
        converged = ended and not unstable
        seconds = round(starts[first_stable_round(rounds)] - applied, 3) if converged else None
        step = StepResult(index, title, converged, seconds, len(rounds),
                          [c.result() for c in cells])
        counts: dict[str, int] = {}
        for r in step.cells:
            counts[r.verdict] = counts.get(r.verdict, 0) + 1
        text = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        if converged:
            when = f"settled after {seconds:.2f}s"
        elif unstable:
            when = f"{unstable} cell(s) UNSTABLE (flapping)"
        else:
            when = f"did NOT settle within {s.converge_timeout:g}s"
        self.log(f"    {len(cells)} probes, {len(rounds)} rounds over "
                 f"{time.monotonic() - applied:.2f}s, {when}: {text}")
        return step


def converge_cells(backend: Backend, settings: Settings, addresses: Addresses,
                   cells: list[Cell], title: str, log: Log = lambda line: None) -> StepResult:
    """Observe cells on a topology that is already deployed, as a scenario step is observed
    (the observation window, positive controls, verdicts), from now; its StepResult.

    The entry point of the Python API's assert_matrix (harness.fixtures), which plans its own
    cells from a test's truth table instead of a scenario file.
    """
    run = Run(None, backend, settings, log)
    run.addresses = addresses
    return run.converge(1, title, cells, time.monotonic())


def run_scenario(scenario: Scenario, backend: Backend, settings: Settings, log: Log = print,
                 enforcing: bool | None = None,
                 finding: Callable[[], bool | None] | None = None) -> ScenarioResult:
    """Run one loaded scenario on an up backend and return its result; always undeploys.

    `enforcing` is the canary's finding for this cluster (None when not run): recorded, and
    the scenario is judged as it found where it contradicts the declaration
    (verdicts.judged_enforcing). `finding`, when given, is asked for it instead once the
    probes are done: the canary runs beside this scenario (Session.start_canary), and nothing
    before the judging depends on what it finds.
    """
    started = time.monotonic()
    result = ScenarioResult(scenario.name, str(scenario.path), backend.name, backend.profile,
                            settings.run_id, getattr(scenario, "description", "") or "")
    run = Run(scenario, backend, settings, log)
    result.declared_enforcing = run.declared_enforcing
    log(f"scenario {scenario.name} [{backend.profile}] on {backend.name} ({scenario.path})")

    def found() -> bool | None:
        """The canary's finding, recorded in the result, with the warning when it contradicts
        the declaration."""
        nonlocal enforcing
        if finding is not None:
            enforcing = finding()
        result.enforcing_cluster = enforcing
        result.canary_contradiction = canary_contradiction(
            backend.profile, run.declared_enforcing, enforcing)
        if result.canary_contradiction:
            log(f"  WARNING: {result.canary_contradiction}")
        return enforcing

    if finding is None:
        found()   # said first, as before any probe
    has_deny = False
    try:
        t = time.monotonic()
        run.addresses = backend.deploy(scenario.model)
        log(f"  deployed {len(scenario.model.user_pods)} pods in {time.monotonic() - t:.2f}s")
        # the needs again at the real addresses (an ipBlock may hold pod IPs here and not at
        # the stand-ins the skip before the run used): a backend lacking one skips, no verdict
        ok, why = backend.capabilities().match(scenario.needs_at(run.addresses))
        if not ok:
            result.skip_reason = f"{why} (at this run's addresses)"
            log(f"  skipped: {result.skip_reason}")
            return result
        planned = plan_steps(scenario, run.addresses)
        if isinstance(planned, str):
            result.scenario_error = planned
            log(f"  SCENARIO ERROR: {planned}")
            return result
        steps_cells = planned
        # an NXDOMAIN lookup is no block: a CNI that enforces nothing passes it too
        has_deny = any(c.expectation == Expectation.DENY and not c.nxdomain
                       for cells in steps_cells for c in cells)
        result.baseline = run.baseline(steps_cells)
        if result.baseline.infra_error:
            result.infra_error = result.baseline.infra_error
            return result
        for i, step in enumerate(scenario.steps):
            title = getattr(step, "title", "") or f"step {i + 1}"
            log(f"  step {i + 1}: {title}")
            if getattr(step, "fault", None) is not None:
                try:
                    assert run.addresses is not None, "deployed before the steps"
                    result.steps.append(run_fault_step(run, i + 1, step, title, steps_cells[i],
                                                    plan_watch(scenario, i, run.addresses)))
                except HarnessError as exc:
                    msg = f"step {i + 1} ({title}): {exc}"
                    result.steps.append(StepResult(i + 1, title, False, None, 0, [], msg))
                    result.infra_error = msg
                    return result
                continue
            try:
                run.change(step)
            except HarnessError as exc:
                msg = f"step {i + 1} ({title}): {exc}"
                result.steps.append(StepResult(i + 1, title, False, None, 0, [], msg))
                result.infra_error = msg
                return result
            result.steps.append(run.converge(i + 1, title, steps_cells[i], time.monotonic()))
    except HarnessError as exc:
        result.infra_error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - one scenario's bug must not abort the whole run
        # Why caught: the other scenarios still run and the reports are still written; the
        # traceback goes to the log, the scenario is an error (never a verdict on the CNI)
        log("".join(traceback.format_exception(exc)).rstrip())
        result.infra_error = (f"netpol-proof failed while running this scenario: "
                              f"{type(exc).__name__}: {exc}")
    finally:
        result.policies_accepted = run.policies_seen
        try:   # nothing, on a backend that stops nothing (Backend.restore_faults)
            for what in backend.restore_faults():
                log(f"  restored: {what}")
        except HarnessError as exc:
            log(f"  restoring after a fault step: {exc}")
            result.infra_error = result.infra_error or f"restoring a fault failed: {exc}"
        try:
            # a scenario that ended cleanly leaves its pods for the next of the same model
            # (Backend.park: policies deleted; that scenario's baseline checks every cell);
            # after an error nothing of its topology is trusted again
            if result.infra_error or result.scenario_error:
                backend.undeploy()
            else:
                backend.park()
        except HarnessError as exc:
            log(f"  teardown: {exc}")
            result.infra_error = result.infra_error or f"teardown failed: {exc}"
        final = [Verdict(c.verdict) for s in result.steps for c in s.cells]
        # a watched cell's requirement (`must:`) across a fault counts like a verdict; without
        # one the fault's timeline is a measurement (harness/faults/timeline.py)
        final += [v for s in result.steps if s.fault is not None
                  for v in requirement_verdicts(s.fault)]
        judged = judged_enforcing(run.declared_enforcing,
                                  found() if finding is not None else enforcing)
        result.outcome = scenario_outcome(final, judged, has_deny,
                                          infra_error=bool(result.infra_error),
                                          scenario_error=bool(result.scenario_error)).value
        if result.skip_reason and not result.infra_error:
            result.outcome = ScenarioOutcome.SKIPPED.value
        result.duration = round(time.monotonic() - started, 3)
        log(f"  result: {result.outcome} ({result.duration:.2f}s, "
            f"{result.policies_accepted} policies accepted by the API)")
    return result
