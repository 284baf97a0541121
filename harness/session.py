"""One run across CNIs, shared by the pytest plugin and `python -m harness run`.

A Session holds what every scenario of a run shares: the settings per CNI (a run id of its own
each), each backend built once and brought up once under a lock, the canary run once per CNI,
the decision to run or skip a scenario on a CNI (with the reason), the results, the teardown
with the keep-cluster rule, and the run's metadata and report files.

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
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, ContextManager

from harness.backends import get_backend
from harness.backends.base import Backend
from harness.canary import CanaryResult, run_canary
from harness.capabilities import Capabilities
from harness.errors import HarnessError
from harness.expected import expected_cells
from harness.lifecycle import sigterm_deferred
from harness.plan import estimated_seconds
from harness.reports.terminal import render_banner
from harness.reports.write import run_meta, write_reports
from harness.results import BANNER, Expectation, ScenarioOutcome, ScenarioResult
from harness.runner import run_scenario
from harness.scenario import Scenario
from harness.settings import Settings, declared_capabilities

Log = Callable[[str], None]
#: one letter per CNI appended to a local run id: both local profiles exist at once in one run
_SUFFIX = "abcdefgh"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

#: CPU seconds one probe costs on the local backend, everything included (bring-up, servers,
#: the harness itself): the library's CPU divided by its probes, measured by
#: bench/bench_library.py on this project's 2-core machine
PROBE_CPU_SECONDS = 0.0014
#: probes per second one local scenario runs at a 1 s probe timeout (rounds wait for blocked
#: probes, so this scales with 1 / timeout): the library's probes divided by the sum of its
#: scenarios' durations, same benchmark
PROBES_PER_SECOND = 67.0
#: the share of the cores the scenarios may keep busy: the rest is for bring-ups, teardowns and
#: the servers' answers, so that a saturated machine never delays a reply past the probe
#: timeout (an UNSTABLE cell). At 0.75 (16 at once on 2 cores) 2 of 20 soak runs had one
#: lookup answered after its 1 s timeout while other work shared the machine
BUSY = 0.6


def default_jobs(cpus: int | None, probe_timeout: float) -> int:
    """Scenarios to run at once on the local backend: as many as keep the cores busy.

    One scenario keeps PROBES_PER_SECOND x PROBE_CPU_SECONDS of a core busy (scaled by the probe
    timeout); most of its time is spent waiting for blocked probes' timeouts. More than BUSY of
    the cores can serve would only make every probe slower, never the run shorter.
    """
    from harness.settings import MAX_JOBS
    cores_per_scenario = PROBES_PER_SECOND * PROBE_CPU_SECONDS / max(probe_timeout, 0.1)
    return max(1, min(MAX_JOBS, round((cpus or 1) * BUSY / cores_per_scenario)))


def slot_run_id(run_id: str, worker: int, cni_index: int, slot: int) -> str:
    """The run id of the extra local cluster number `slot` (1..35) of a CNI: the first five
    characters of the run's id and three that encode (pytest-xdist worker, CNI, slot), so that
    every cluster of a run, in every worker, has a name of its own within 8 characters."""
    n = (worker * len(_SUFFIX) + cni_index) * 36 + slot
    if not 1 <= slot < 36 or n >= 36 ** 3:
        raise HarnessError(f"no run id for cluster {slot} of worker {worker}: too many clusters")
    return run_id[:5] + _B36[n // 1296] + _B36[n // 36 % 36] + _B36[n % 36]


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
        #: what each CNI's cluster really is, as its backend says (`describe()`), for the reports
        self.dataplanes: dict[str, str] = {}
        self.remote_canaries: dict[str, dict] = {}  # canary findings other processes sent
        self.results: list[ScenarioResult] = []
        self.written: list[str] = []
        self._bannered: set[str] = set()
        #: scenarios run at once; above 1 each runs on a local cluster of its own (a slot),
        #: while the CNI's first backend keeps the canary and the Python fixtures
        # kube backends: one cluster, whose namespaces all scenarios of a run share
        # under pytest-xdist the cores are shared by `workers` processes
        self.jobs = 1 if settings.backend != "local" else settings.jobs or max(
            1, default_jobs(os.cpu_count(), settings.probe_timeout) // max(1, workers))
        self._mutex = threading.RLock()
        self._cni_locks: dict[str, threading.RLock] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[tuple[str, str], Future] = {}
        self._free: dict[str, list[Backend]] = {}     # idle slot backends per CNI
        self.slots: dict[str, list[Backend]] = {}     # every slot backend per CNI (for teardown)
        self._run_ids: set[str] = set()
        self._limits: dict[str, threading.BoundedSemaphore] = {}
        self._stopping = False

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
        if self.settings.backend == "local":
            rid = (rid + _SUFFIX[i % len(_SUFFIX)])[:8]
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
        """The backend of `cni`, up, with its canary run (lazily: only when a scenario needs it).

        A bring-up that failed is not retried: every later call raises the same error.
        """
        backend = self._up(cni)
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
        """The canary's finding on `cni`, run once on its up backend (None when disabled)."""
        if not self.settings.canary:
            return None
        with self._cni_lock(cni):
            return self._canary_locked(cni)

    def _canary_locked(self, cni: str) -> CanaryResult | None:
        if cni not in self.canaries:
            result = run_canary(self._up(cni), self.settings_for(cni))
            self.canaries[cni] = result
            self.say(f"canary on {cni}: {result.detail}")
            if result.enforcing is False:
                self.banner(cni)
            if result.contradiction:
                self.banner(cni, result.contradiction)
        return self.canaries[cni]

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

        With jobs above 1 the scenario runs on a cluster of its own in the session's pool (it
        may already be running: see `prefetch`); its story is printed through `log` when it is
        done, whole, never interleaved with another scenario's.
        """
        if self.jobs > 1:
            result, lines = self._submit(scenario, cni).result()
            for line in lines:
                log(line)
        else:
            result = self._execute(scenario, cni, log, False)
        self.results.append(result)
        return result

    def prefetch(self, pairs: list[tuple[Scenario, str]]) -> None:
        """Start running these (scenario, CNI) pairs in the pool, at most `jobs` at once, the
        longest first (plan.estimated_seconds; ties in the order given, skipped ones last);
        `run` then waits for each one's result, in its own order. Nothing happens with
        jobs = 1."""
        if self.jobs > 1:
            for scenario, cni in sorted(pairs, key=lambda p: -self._estimate(*p)):
                self._submit(scenario, cni)

    def _estimate(self, scenario: Scenario, cni: str) -> float:
        if self.plan(scenario, cni).skip:
            return 0.0
        s = self.settings_for(cni)
        return estimated_seconds(scenario, s.probe_timeout, s.min_rounds, s.min_window)

    def _submit(self, scenario: Scenario, cni: str) -> Future:
        key = (str(scenario.path), cni)
        with self._mutex:
            if self._stopping:
                raise HarnessError("the run is stopping")
            if key not in self._futures:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.jobs,
                                                    thread_name_prefix="netpol-scenario")

                def task() -> tuple[ScenarioResult, list[str]]:
                    lines: list[str] = []
                    return self._execute(scenario, cni, lines.append, True), lines

                self._futures[key] = self._pool.submit(task)
            return self._futures[key]

    def _execute(self, scenario: Scenario, cni: str, log: Log, pooled: bool) -> ScenarioResult:
        s = self.settings_for(cni)
        plan = self.plan(scenario, cni)
        if plan.skip:
            log(f"scenario {scenario.name} [{cni}]: skipped: {plan.skip}")
            return ScenarioResult(scenario.name, str(scenario.path), s.backend, cni, s.run_id,
                                  scenario.description, outcome=ScenarioOutcome.SKIPPED.value,
                                  skip_reason=plan.skip, enforcing_cluster=self.enforcing(cni),
                                  declared_enforcing=self.capabilities(cni).enforces)
        try:
            backend = self._acquire(cni, log) if pooled else self.backend(cni)
        except HarnessError as exc:
            if not pooled:
                raise
            # in the pool: this scenario's error, reported with the others' results
            log(f"scenario {scenario.name} [{cni}]: {exc}")
            return ScenarioResult(scenario.name, str(scenario.path), s.backend, cni, s.run_id,
                                  scenario.description, outcome=ScenarioOutcome.ERROR.value,
                                  infra_error=f"{type(exc).__name__}: {exc}",
                                  enforcing_cluster=self.enforcing(cni),
                                  declared_enforcing=self.capabilities(cni).enforces)
        try:
            slot_settings = replace(s, run_id=backend.run_id)
            return run_scenario(scenario, backend, slot_settings, log=log,
                                enforcing=self.enforcing(cni))
        finally:
            if pooled:
                self._release(cni, backend)

    def _acquire(self, cni: str, log: Log) -> Backend:
        """An idle cluster of `cni` for one scenario: a free slot, or a new one brought up (the
        CNI's first backend, with its canary, is brought up before any)."""
        primary = self.backend(cni)
        with self._mutex:
            limit = self._limits.get(cni)
            if limit is None:
                # a backend that cannot have clusters side by side runs one scenario at a time
                n = min(self.jobs, primary.max_parallel)
                limit = self._limits[cni] = threading.BoundedSemaphore(n)
        limit.acquire()
        try:
            return self._slot(cni, primary, log)
        except BaseException:
            limit.release()
            raise

    def _release(self, cni: str, backend: Backend) -> None:
        if backend is not self.backends.get(cni):
            with self._mutex:
                self._free.setdefault(cni, []).append(backend)
        self._limits[cni].release()

    def _slot(self, cni: str, primary: Backend, log: Log) -> Backend:
        with self._mutex:
            if self._stopping:
                raise HarnessError("the run is stopping")
            if primary.max_parallel == 1:
                return primary
            free = self._free.setdefault(cni, [])
            if free:
                return free.pop()
            slot = len(self.slots.setdefault(cni, [])) + 1
            s = self.settings_for(cni)
            i = list(self.settings.cnis).index(cni) if cni in self.settings.cnis else 0
            rid = slot_run_id(self.settings.run_id, _worker_index(self.worker), i, slot)
            if rid in self._run_ids:
                raise HarnessError(f"run id {rid} of cluster {slot} of {cni} is already taken")
            self._run_ids.add(rid)
            backend = get_backend(s.backend, cni, **replace(s, run_id=rid).backend_options())
            self.slots[cni].append(backend)   # registered first: teardown runs after a failure
        # in the story of the scenario that needed it: printed with it, never in between
        log(f"bringing up {s.backend}/{cni} cluster {slot + 1} (run {rid}) ...")
        backend.up()
        return backend

    # -- the end -------------------------------------------------------------------------------
    def teardown(self, cnis: list[str] | None = None) -> list[str]:
        """Bring the backends of `cnis` (default: all) down, unless --keep-cluster keeps a kube
        cluster; keeps going past failures and returns them as `cni: error`."""
        with sigterm_deferred():
            return self._teardown(cnis)

    def _teardown(self, cnis: list[str] | None) -> list[str]:
        errors = []
        if cnis is None:
            errors += self._stop_pool()
        for cni in list(set(self.backends) | set(self.slots)) if cnis is None else cnis:
            backends = [b for b in [self.backends.pop(cni, None)] if b is not None]
            with self._mutex:
                backends += self.slots.pop(cni, [])
                self._free.pop(cni, None)
            if self.settings.keep_cluster and self.settings.backend != "local":
                continue
            for backend in backends:
                try:
                    backend.down()
                except HarnessError as exc:
                    errors.append(f"{cni}: {exc}")
        return errors

    def _stop_pool(self) -> list[str]:
        """End the pool: nothing new starts; scenarios still running (after Ctrl-C or SIGTERM)
        are interrupted at their next probe and undeploy; their clusters go down after."""
        with self._mutex:
            pool, self._pool = self._pool, None
            self._stopping = True
            running = [f for f in self._futures.values() if not f.done()]
        if pool is None:
            return []
        for f in running:
            f.cancel()
        if any(not f.done() for f in running):
            for backend in [b for bs in list(self.slots.values()) for b in bs]:
                backend.interrupt()   # its scenario ends at its next probe, tearing it down
        pool.shutdown(wait=True, cancel_futures=True)
        return []

    def add_remote(self, results: list[ScenarioResult], canaries: dict[str, dict]) -> None:
        """Results and canary findings another process of this run sent (pytest-xdist)."""
        self.results.extend(results)
        for cni, meta in canaries.items():
            self.remote_canaries.setdefault(cni, meta)

    def canary_meta(self) -> dict[str, dict]:
        """Every CNI's canary finding in the form reports read (meta["canary"])."""
        meta = {cni: c.as_meta() for cni, c in self.canaries.items()}
        for cni, c in self.remote_canaries.items():
            meta.setdefault(cni, c)
        return meta

    def write_reports(self, versions: dict[str, str] | None = None) -> list[str]:
        """Write the report files the settings ask for; returns (and keeps) what was written."""
        meta = run_meta(self.settings, self.canary_meta(), self.started)
        meta["jobs"] = self.jobs
        meta["dataplanes"] = dict(self.dataplanes)
        # only the local backends say which probe binaries they run ("" from the others)
        tools = {cni: what for cni, b in self.backends.items() if (what := b.probe_tools())}
        if tools:
            meta["probe_tools"] = tools
        meta["versions"].update(versions or {})
        self.written = write_reports(self.results, self.settings, meta)
        return self.written


def _worker_index(worker: str | None) -> int:
    """0 for a process alone, N for pytest-xdist worker gwN."""
    digits = re.sub(r"\D", "", worker or "")
    return int(digits) if digits else 0
