"""One run across CNIs, shared by the pytest plugin and `python -m harness run`.

A Session holds what every scenario of a run shares: the settings per CNI (a run id of its own
each), each backend built once and brought up once under a lock, the canary run once per CNI,
the decision to run or skip a scenario on a CNI (with the reason), the results, the teardown
with the keep-cluster rule, and the run's metadata and report files. When scenarios run at
once (`jobs` above 1), on which cluster and when is harness.scheduler's business: the session
hands it each (scenario, CNI) as work and builds the extra clusters it asks for.

Why one place: both front ends need exactly this orchestration, and two copies drift (the way
cilium's ConnectivityTest holds what the tests of one run share, and pytest-xdist keeps its
session state in a module of its own). Front ends pass in how to print (`log`, plus a `prefix`
for progress lines) and, under pytest-xdist, a lock shared by the workers; nothing here
imports pytest.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Callable, ContextManager, Hashable

from harness.backends import alone_apart, get_backend, scenarios_at_once
from harness.backends.base import Backend
from harness.canary import CanaryResult, run_canary
from harness.capabilities import Capabilities
from harness.errors import HarnessError
from harness.expected import expected_cells
from harness.lifecycle import Terminated, sigterm_deferred
from harness.model import Model
from harness.plan import estimated_seconds
from harness.reports.json_report import Checkpoints
from harness.reports.terminal import render_banner
from harness.reports.write import run_meta, write_reports
from harness.results import BANNER, Expectation, ScenarioOutcome, ScenarioResult
from harness.runner import run_scenario
from harness.scenario import Scenario, sharing
from harness.scheduler import (
    CNI_SUFFIX,
    Scheduler,
    bring_down,
    default_jobs,
    slot_run_id,
    worker_index,
)
from harness.settings import Settings, declared_capabilities

Log = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """Whether a scenario runs on a CNI: `skip` is the reason when it does not. `not_enforced`
    says its blocks are expected to fail as far as the declaration goes (the CNI is declared not
    to enforce and the scenario asserts at least one block); the canary, run later, may find
    enforcement, and then the scenario is judged as enforcing (verdicts.judged_enforcing)."""

    skip: str | None = None
    not_enforced: bool = False


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def has_deny(scenario: Scenario) -> bool:
    """Whether any step asserts a block (offline, stand-in addresses): something to enforce.
    A lookup the DNS must answer NXDOMAIN is no block: a CNI that enforces nothing passes it."""
    for i in range(len(scenario.steps)):
        if any(c.expectation == Expectation.DENY and not c.decision.nxdomain
               for c in expected_cells(scenario, i)):
            return True
    return False


class Session:
    """Run-wide state of one process (the CLI, or one pytest process: controller or worker)."""

    def __init__(self, settings: Settings, log: Log = print, prefix: str = "",
                 worker: str | None = None,
                 lock: Callable[[str], ContextManager] | None = None, workers: int = 1):
        self.settings = settings
        self.log, self.prefix = log, prefix
        #: which process of a parallel run this is (a pytest-xdist worker id), None when alone
        self.worker = worker
        self._lock = lock or (lambda cni: contextlib.nullcontext())
        self.started = _now()
        self.made: dict[str, Backend] = {}        # constructed
        self.backends: dict[str, Backend] = {}    # brought up (torn down at the end)
        self.broken: dict[str, str] = {}          # bring-up failed: every use says why, no retry
        self.canaries: dict[str, CanaryResult] = {}
        #: each CNI's canary run, started once (in the caller's thread, or beside the
        #: scenarios: start_canary); its finding said once, by `canary`
        self._canary_runs: dict[str, Future[CanaryResult]] = {}
        self._canaries_said: set[str] = set()
        #: what each CNI's cluster really is, as its backend says (`describe()`), for the reports
        self.dataplanes: dict[str, str] = {}
        self.remote_canaries: dict[str, dict] = {}  # canary findings other processes sent
        self.results: list[ScenarioResult] = []
        self.written: list[str] = []
        self._bannered: set[str] = set()
        #: scenarios run at once; above 1 each runs on an extra cluster of the scheduler (a local
        #: cluster of its own, or a realnodes tenant), the CNI's first backend keeping the canary
        #: and the Python fixtures; xdist's `workers` share the cores
        self.jobs = scenarios_at_once(settings.backend, settings.jobs) or settings.jobs or max(
            1, default_jobs(os.cpu_count(), settings.probe_timeout) // max(1, workers))
        self.scheduler: Scheduler[ScenarioResult] = Scheduler(self.jobs, self._new_cluster)
        self._mutex = threading.RLock()
        self._cni_locks: dict[str, threading.RLock] = {}
        self._run_ids: set[str] = set()
        #: the lane of each scenario that runs apart (_lane), and each lane's estimated seconds
        self._lanes: dict[tuple[str, str], str] = {}
        self._lane_load: dict[str, list[float]] = {}
        #: per CNI, the prefetched scenarios apart not ended yet (_apart_done)
        self._apart_left: dict[str, set[str]] = {}
        #: failures of clusters apart taken down during the run, reported by teardown
        self._retired_errors: list[str] = []
        #: the run's progress, in its results file as it goes (never a pytest-xdist worker's)
        self.progress = Checkpoints(settings.json_path if worker is None else None)

    def describe(self) -> str:
        """The settings' one-line description with the scenarios run at once."""
        return f"{self.settings.describe()} jobs={self.jobs}"

    def say(self, text: str) -> None:
        """A progress line (with the front end's prefix)."""
        self.log(f"{self.prefix}{text}")

    def banner(self, cni: str, text: str | None = None) -> None:
        """A banner about `cni`, each once per run: the false-security one (by default), or
        `text` (the canary contradicting the declaration, results.canary_contradiction)."""
        text = text or f"{cni}: {BANNER}"
        if text not in self._bannered:
            self._bannered.add(text)
            self.log(render_banner(text))

    # -- backends ------------------------------------------------------------------------------
    def settings_for(self, cni: str) -> Settings:
        """The settings for one CNI: a run id of its own for local profiles (prefixes never
        collide when both exist at once)."""
        i = list(self.settings.cnis).index(cni) if cni in self.settings.cnis else 0
        rid = self.settings.run_id
        if self.settings.backend in ("local", "realnodes"):   # clusters this run brings up
            rid = (rid + CNI_SUFFIX[i % len(CNI_SUFFIX)])[:8]
        return replace(self.settings, run_id=rid)

    def _made(self, cni: str) -> Backend:
        """The backend object of `cni` (constructed once, not brought up)."""
        if cni not in self.made:
            s = self.settings_for(cni)
            self.made[cni] = get_backend(s.backend, cni, **s.backend_options())
        return self.made[cni]

    def capabilities(self, cni: str) -> Capabilities:
        """What `cni` declares; for kube backends the backend object says (nothing is created)."""
        if self.settings.backend == "local":
            return declared_capabilities("local", cni)
        try:
            return self._made(cni).capabilities()
        except (ValueError, KeyError) as exc:
            raise HarnessError(f"--cni {cni}: {exc}") from None

    def backend(self, cni: str) -> Backend:
        """The backend of `cni`, up, with its canary run (lazily: only when a scenario needs it;
        one started beside the scenarios is waited for).

        A bring-up that failed is not retried: every later call raises the same error.
        """
        backend = self.up(cni)
        self.canary(cni)
        return backend

    def up(self, cni: str) -> Backend:
        """The backend of `cni`, up; its canary not run (backend, start_canary)."""
        return self._up(cni)

    def ready(self, cni: str) -> Backend:
        """What a front end calls before it starts a CNI's scenarios: the backend up, and its
        canary run (one at a time), or started beside the scenarios when they run at once
        (start_canary; `canary`, or `backend`, waits for its finding)."""
        backend = self.up(cni)
        if self.scheduler.parallel:
            self.start_canary(cni)
        else:
            self.canary(cni)
        return backend

    def _cni_lock(self, cni: str) -> threading.RLock:
        with self._mutex:
            return self._cni_locks.setdefault(cni, threading.RLock())

    def _up(self, cni: str) -> Backend:
        with self._cni_lock(cni):
            return self._up_locked(cni)

    def _up_locked(self, cni: str) -> Backend:
        if cni in self.broken:
            raise HarnessError(self.broken[cni])
        if cni not in self.backends:
            s = self.settings_for(cni)
            backend = self._made(cni)
            self.backends[cni] = backend   # registered first: teardown also runs after a failure
            self.say(f"bringing up {s.backend}/{cni} (run {s.run_id}) ...")
            try:
                with self._lock(cni):
                    backend.up()
            except HarnessError as exc:
                self.broken[cni] = f"{s.backend}/{cni} could not be brought up: {exc}"
                raise
            what = backend.describe()   # "" when the backend and CNI names say it all
            if what:
                self.dataplanes[cni] = what
                self.say(f"what runs on {cni}: {what}")
        return self.backends[cni]

    def canary(self, cni: str) -> CanaryResult | None:
        """The canary's finding on `cni`, run once on its up backend (None when disabled); one
        running beside the scenarios (start_canary) is waited for. Its line and banners are
        said here, once, in the caller's thread: a front end calls this before it prints the
        CNI's first scenario, so they come first, never inside another's story."""
        if not self.settings.canary:
            return None
        result = self._canary_run(cni, background=False).result()
        self._say_canary(cni, result)
        return result

    def _say_canary(self, cni: str, result: CanaryResult) -> None:
        with self._mutex:
            said = cni in self._canaries_said
            self._canaries_said.add(cni)
        if not said:
            self.say(f"canary on {cni}: {result.detail}")
            if result.enforcing is False:
                self.banner(cni)
            if result.contradiction:
                self.banner(cni, result.contradiction)

    def start_canary(self, cni: str) -> None:
        """Start the canary of `cni` in a thread of its own, beside the scenarios the pool
        starts next: it runs in a namespace of its own (the tenancy rule of harness.scenario.
        sharing: a namespaced scenario cannot change another's cells), and a scenario asks
        for its finding only to be judged (run_scenario's `finding`). Why: it is one
        observation window of a cluster otherwise idle before the first scenario's pods are
        deployed (docs/real-nodes.md §15). Nothing with the canary off or jobs at 1."""
        if self.settings.canary and self.scheduler.parallel:
            self._canary_run(cni, background=True)

    def _canary_run(self, cni: str, background: bool) -> Future[CanaryResult]:
        with self._mutex:
            known = self._canary_runs.get(cni)
            run = self._canary_runs[cni] = known or Future()
        if known is None:
            if background:
                threading.Thread(target=self._run_canary, args=(cni, run),
                                 name=f"netpol-canary-{cni}", daemon=True).start()
            else:
                self._run_canary(cni, run)
        return run

    def _run_canary(self, cni: str, run: Future[CanaryResult]) -> None:
        try:
            result = run_canary(self._up(cni), self.settings_for(cni))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the finding
            # (an interrupt at teardown too: Terminated, raised by its next probe)
            run.set_exception(exc)
            return
        self.canaries[cni] = result
        run.set_result(result)

    def _found(self, cni: str) -> bool | None:
        """The canary's finding for a scenario's judging, waiting for a canary that runs beside
        it; None when none was started, it could not tell, or the CNI could not come up."""
        with self._mutex:
            run = self._canary_runs.get(cni)
        if run is None:
            return None
        try:
            return run.result().enforcing
        except HarnessError:
            return None
        except KeyboardInterrupt:   # the canary was interrupted: the run is stopping
            raise Terminated("the run is stopping: the canary was interrupted") from None

    def enforcing(self, cni: str) -> bool | None:
        """What the canary found on `cni` (None when it did not run or could not tell)."""
        canary = self.canaries.get(cni)
        return canary.enforcing if canary else None

    # -- scenarios -----------------------------------------------------------------------------
    def plan(self, scenario: Scenario, cni: str) -> Plan:
        """Run or skip `scenario` on `cni`, decided from what the CNI declares (nothing is up)."""
        caps = self.capabilities(cni)
        ok, why = caps.match(scenario.needs)
        if not ok:
            return Plan(skip=why)
        return Plan(not_enforced=not caps.enforces and has_deny(scenario))

    def run(self, scenario: Scenario, cni: str, log: Log = print) -> ScenarioResult:
        """Run `scenario` on `cni` (bringing it up first), or record it skipped with the reason;
        the result is kept for the reports and returned.

        With jobs above 1 the scenario runs on a cluster of its own in the scheduler's pool (it
        may already be running: see `prefetch`); its story is printed through `log` when it is
        done, whole, never interleaved with another scenario's.
        """
        if self.scheduler.parallel:
            result, lines = self._start(scenario, cni).result()
            with self._mutex:
                canary = self._canary_runs.get(cni)
            # the canary that ran beside: said before the first story of its CNI (the story
            # was judged with its finding, so it is done unless it could not run)
            if canary is not None and canary.done() and canary.exception() is None:
                self._say_canary(cni, canary.result())
            for line in lines:
                log(line)
        else:
            result = self._finish(self._execute(scenario, cni, log, False))
        self.results.append(result)
        return result

    def announce(self, pairs: list[tuple[Scenario, str]]) -> None:
        """What this run means to run, (scenario, CNI) in order, until each has a result listed
        unfinished in the results file; writes the first (partial) file."""
        self.progress.planned = [(sc.name, str(sc.path), cni) for sc, cni in pairs]
        if pairs:
            self.checkpoint()

    def _finish(self, result: ScenarioResult) -> ScenarioResult:
        self.progress.finish(result)
        self.checkpoint()
        return result

    def stop(self, reason: str) -> None:
        """Ctrl-C or SIGTERM (lifecycle.stop_reason): said in the results file at once."""
        self.progress.stopped = reason
        self.checkpoint()

    def all_results(self) -> list[ScenarioResult]:
        """Those `run` returned, in its order, then those finished in the pool that it has not
        reached (the run was stopped while it waited for another)."""
        return self.results + self.progress.extra(self.results)

    def checkpoint(self) -> None:
        """Rewrite the results file as partial with every result so far (without --json: no)."""
        if self.progress.path is not None and (
                error := self.progress.checkpoint(self.all_results(), self._meta())):
            self.say(error)   # once; the run goes on, and its end tries the file again

    def prefetch(self, pairs: list[tuple[Scenario, str]]) -> None:
        """Start running these (scenario, CNI) pairs in the scheduler's pool, at most `jobs` at
        once, the longest first (plan.estimated_seconds; ties in the order given, skipped ones
        last); `run` then waits for each one's result, in its own order. Nothing happens with
        jobs = 1."""
        if self.scheduler.parallel:
            for sc, cni in sorted(pairs, key=lambda pair: -self._estimate(*pair)):
                self._lane(sc, cni)   # dealt the longest first
            with self._mutex:
                for sc, cni in pairs:
                    if self._apart(sc):
                        self._apart_left.setdefault(cni, set()).add(str(sc.path))
            wants: dict[Hashable, tuple[str, Model]] = {(str(sc.path), cni): (cni, sc.model)
                                                         for sc, cni in pairs}

            def fits(key: Hashable, cluster: Backend) -> bool:
                cni, model = wants[key]
                return cluster.profile == cni and cluster.keeps(model)

            self.scheduler.start_all([((str(sc.path), cni), self._estimate(sc, cni),
                                       self._work(sc, cni), self._lane(sc, cni))
                                      for sc, cni in pairs], fits)

    def _apart(self, scenario: Scenario) -> bool:
        """Whether `scenario` runs on a cluster apart from the others' (harness.backends.
        alone_apart): one that must run alone, in a pool, on such a backend."""
        return (self.scheduler.parallel and alone_apart(self.settings.backend) > 0
                and sharing.runs_alone(scenario) is not None)

    def _lane(self, scenario: Scenario, cni: str) -> str | None:
        """The scheduler lane of a scenario that runs apart (alone_apart's clusters of the CNI,
        each a lane: `alone-<cni>-<k>`), else None. Lanes are dealt by prefetch, the longest
        scenario to the lane with the least to do (estimated); one not prefetched: lane 1."""
        if not self._apart(scenario):
            return None
        key = (str(scenario.path), cni)
        with self._mutex:
            if key not in self._lanes:
                load = self._lane_load.setdefault(cni, [0.0] * alone_apart(self.settings.backend))
                k = min(range(len(load)), key=load.__getitem__)
                load[k] += self._estimate(scenario, cni)
                self._lanes[key] = f"alone-{cni}-{k + 1}"
            return self._lanes[key]

    def _estimate(self, scenario: Scenario, cni: str) -> float:
        if self.plan(scenario, cni).skip:
            return 0.0
        s = self.settings_for(cni)
        return estimated_seconds(scenario, s.probe_timeout, s.min_rounds, s.min_window)

    def _work(self, scenario: Scenario, cni: str) -> Callable[[Log], ScenarioResult]:
        def work(log: Log) -> ScenarioResult:
            try:
                return self._finish(self._execute(scenario, cni, log, True))
            finally:
                if self._apart(scenario):
                    self._apart_done(scenario, cni, log)
        return work

    def _apart_done(self, scenario: Scenario, cni: str, log: Log) -> None:
        """A scenario apart has ended: the CNI's clusters apart that no prefetched scenario
        apart still needs go down now (Scheduler.retire), not at the run's end."""
        with self._mutex:
            left = self._apart_left.setdefault(cni, set())
            left.discard(str(scenario.path))
            needed = len(left)
        errors = self.scheduler.retire(cni, needed, log)
        with self._mutex:   # items apart of two CNIs end at once; teardown swaps the list
            self._retired_errors += errors

    def _start(self, scenario: Scenario, cni: str) -> Future[tuple[ScenarioResult, list[str]]]:
        return self.scheduler.start((str(scenario.path), cni), self._work(scenario, cni),
                                    self._lane(scenario, cni))

    def _execute(self, scenario: Scenario, cni: str, log: Log, pooled: bool) -> ScenarioResult:
        s = self.settings_for(cni)
        plan = self.plan(scenario, cni)
        if plan.skip:
            log(f"scenario {scenario.name} [{cni}]: skipped: {plan.skip}")
            return ScenarioResult(scenario.name, str(scenario.path), s.backend, cni, s.run_id,
                                  scenario.description, outcome=ScenarioOutcome.SKIPPED.value,
                                  skip_reason=plan.skip, enforcing_cluster=self._found(cni),
                                  declared_enforcing=self.capabilities(cni).enforces)
        apart = self._apart(scenario)
        try:
            # in the pool: the canary may still run beside (start_canary), and a scenario apart
            # runs on a cluster of its own, which needs nothing of the CNI's first one
            primary: Backend | None
            if pooled:
                primary = None if apart else self.up(cni)
                self.start_canary(cni)   # started once, by the first item of the CNI
                backend = self.scheduler.acquire(cni, primary, log, apart,
                                                 lambda b: b.keeps(scenario.model))
            else:
                backend = primary = self.backend(cni)
        except HarnessError as exc:
            if not pooled:
                raise
            # in the pool: this scenario's error, reported with the others' results
            log(f"scenario {scenario.name} [{cni}]: {exc}")
            return ScenarioResult(scenario.name, str(scenario.path), s.backend, cni, s.run_id,
                                  scenario.description, outcome=ScenarioOutcome.ERROR.value,
                                  infra_error=f"{type(exc).__name__}: {exc}",
                                  enforcing_cluster=self._found(cni),
                                  declared_enforcing=self.capabilities(cni).enforces)
        try:
            with backend.sharing(sharing.runs_alone(scenario) is not None):
                return run_scenario(scenario, backend, replace(s, run_id=backend.run_id),
                                    log=log, enforcing=self.enforcing(cni),
                                    finding=(lambda: self._found(cni)) if pooled else None)
        finally:
            if pooled:
                self.scheduler.release(cni, backend, primary)

    def _new_cluster(self, cni: str, n: int, apart: bool = False) -> Backend:
        """The n-th extra cluster of `cni` (the scheduler brings it up): a run id of its own
        (scheduler.slot_run_id), taken by no other cluster of this process; a tenant of the
        CNI's cluster where the backend has tenants, unless `apart` (a cluster of its own for
        the scenarios that run alone)."""
        s = self.settings_for(cni)
        i = list(self.settings.cnis).index(cni) if cni in self.settings.cnis else 0
        rid = slot_run_id(self.settings.run_id, worker_index(self.worker), i, n)
        with self._mutex:
            if rid in self._run_ids:
                raise HarnessError(f"run id {rid} of cluster {n} of {cni} is already taken")
            self._run_ids.add(rid)
        tenant = self.backends[cni].tenant(rid) if cni in self.backends and not apart else None
        return tenant or get_backend(s.backend, cni, **replace(s, run_id=rid).backend_options())

    # -- the end -------------------------------------------------------------------------------
    def teardown(self, cnis: list[str] | None = None) -> list[str]:
        """Bring the backends of `cnis` (default: all) down, unless --keep-cluster keeps a kube
        cluster; keeps going past failures and returns them as `cni: error`."""
        with sigterm_deferred():
            return self._teardown(cnis)

    def _end_canaries(self, cnis: list[str]) -> None:
        """A canary still running beside the scenarios (Ctrl-C, SIGTERM, or a front end that
        never waited for it) ends before its cluster goes down: interrupted, it ends at its next
        probe and undeploys, as the pool's scenarios do (Scheduler.stop)."""
        with self._mutex:
            runs = [(cni, self._canary_runs[cni]) for cni in cnis if cni in self._canary_runs]
        for cni, run in runs:
            if not run.done() and cni in self.backends:
                self.backends[cni].interrupt()
            with contextlib.suppress(BaseException):
                run.exception()   # waits; what it raised was the scenarios' to see

    def _teardown(self, cnis: list[str] | None) -> list[str]:
        # clusters apart taken down during the run (Scheduler.retire) that failed to go
        with self._mutex:
            errors, self._retired_errors = self._retired_errors, []
        targets = list(set(self.backends) | set(self.scheduler.cnis())) if cnis is None else cnis
        # a canary still running first: a scenario of the pool waits for its finding to be
        # judged, so an interrupted scenario would wait for it to end by itself
        self._end_canaries(targets)
        if cnis is None:
            # scenarios still running (after Ctrl-C or SIGTERM) end at their next probe
            self.scheduler.stop()
        doomed: list[tuple[str, Backend]] = []
        for cni in targets:
            backends = [b for b in [self.backends.pop(cni, None)] if b is not None]
            backends += self.scheduler.clusters(cni)
            if self.settings.keep_cluster and self.settings.backend in ("kind", "kubeconfig"):
                continue
            doomed += [(cni, b) for b in backends]
        return errors + bring_down(doomed)

    def add_remote(self, results: list[ScenarioResult], canaries: dict[str, dict]) -> None:
        """Results and canary findings another process of this run sent (pytest-xdist)."""
        self.results.extend(results)
        for cni, meta in canaries.items():
            self.remote_canaries.setdefault(cni, meta)
        self.checkpoint()

    def canary_meta(self) -> dict[str, dict]:
        """Every CNI's canary finding in the form reports read (meta["canary"])."""
        meta = {cni: c.as_meta() for cni, c in self.canaries.items()}
        for cni, c in self.remote_canaries.items():
            meta.setdefault(cni, c)
        return meta

    def _meta(self) -> dict:
        meta = run_meta(self.settings, self.canary_meta(), self.started)
        meta["jobs"] = self.jobs
        meta["dataplanes"] = dict(self.dataplanes)
        # only the local backends say which probe binaries they run ("" from the others)
        tools = {cni: what for cni, b in list(self.backends.items()) if (what := b.probe_tools())}
        if tools:
            meta["probe_tools"] = tools
        return meta

    def write_reports(self, versions: dict[str, str] | None = None) -> list[str]:
        """Write the report files the settings ask for, at the run's end (complete unless it was
        stopped or something it meant to run has no result); returns (and keeps) what was
        written."""
        results = self.all_results()
        meta = {**self._meta(), **self.progress.progress(results, True)}
        meta["versions"].update(versions or {})
        self.written = write_reports(results, self.settings, meta)
        return self.written

