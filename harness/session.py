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
from dataclasses import dataclass, replace
from typing import Callable, ContextManager

from harness.backends import get_backend
from harness.backends.base import Backend
from harness.canary import CanaryResult, run_canary
from harness.capabilities import Capabilities
from harness.errors import HarnessError
from harness.expected import expected_cells
from harness.reports.terminal import render_banner
from harness.reports.write import run_meta, write_reports
from harness.results import BANNER, Expectation, ScenarioOutcome, ScenarioResult
from harness.runner import run_scenario
from harness.scenario import Scenario
from harness.settings import Settings, declared_capabilities

Log = Callable[[str], None]
#: one letter per CNI appended to a local run id: both local profiles exist at once in one run
_SUFFIX = "abcdefgh"


@dataclass(frozen=True)
class Plan:
    """Whether a scenario runs on a CNI: `skip` is the reason when it does not. `not_enforced`
    says its blocks are expected to fail (the CNI is declared not to enforce and the scenario
    asserts at least one block): pytest marks that a strict xfail."""

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
                 lock: Callable[[str], ContextManager] | None = None):
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
        self.remote_canaries: dict[str, dict] = {}  # canary findings other processes sent
        self.results: list[ScenarioResult] = []
        self.written: list[str] = []
        self._bannered: set[str] = set()

    def say(self, text: str) -> None:
        """A progress line (with the front end's prefix)."""
        self.log(f"{self.prefix}{text}")

    def banner(self, cni: str) -> None:
        """The false-security banner for `cni`, once per run."""
        if cni not in self._bannered:
            self._bannered.add(cni)
            self.log(render_banner(f"{cni}: {BANNER}"))

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

    def _up(self, cni: str) -> Backend:
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
        return self.backends[cni]

    def canary(self, cni: str) -> CanaryResult | None:
        """The canary's finding on `cni`, run once on its up backend (None when disabled)."""
        if not self.settings.canary:
            return None
        if cni not in self.canaries:
            result = run_canary(self._up(cni), self.settings_for(cni))
            self.canaries[cni] = result
            self.say(f"canary on {cni}: {result.detail}")
            if result.enforcing is False:
                self.banner(cni)
        return self.canaries[cni]

    def enforcing(self, cni: str) -> bool | None:
        """What the canary found on `cni` (None when it did not run or could not tell)."""
        canary = self.canaries.get(cni)
        return canary.enforcing if canary else None

    # -- scenarios -----------------------------------------------------------------------------
    def plan(self, scenario: Scenario, cni: str) -> Plan:
        """Run or skip `scenario` on `cni`, decided from what the CNI declares (nothing is up)."""
        caps = self.capabilities(cni)
        ok, why = caps.match(scenario.requires)
        if not ok:
            return Plan(skip=why)
        return Plan(not_enforced=not caps.enforces and has_deny(scenario))

    def run(self, scenario: Scenario, cni: str, log: Log = print) -> ScenarioResult:
        """Run `scenario` on `cni` (bringing it up first), or record it skipped with the reason;
        the result is kept for the reports and returned."""
        s = self.settings_for(cni)
        plan = self.plan(scenario, cni)
        if plan.skip:
            log(f"scenario {scenario.name} [{cni}]: skipped: {plan.skip}")
            result = ScenarioResult(scenario.name, str(scenario.path), s.backend, cni, s.run_id,
                                    scenario.description, outcome=ScenarioOutcome.SKIPPED.value,
                                    skip_reason=plan.skip, enforcing_cluster=self.enforcing(cni))
        else:
            backend = self.backend(cni)
            result = run_scenario(scenario, backend, s, log=log, enforcing=self.enforcing(cni))
        self.results.append(result)
        return result

    # -- the end -------------------------------------------------------------------------------
    def teardown(self, cnis: list[str] | None = None) -> list[str]:
        """Bring the backends of `cnis` (default: all) down, unless --keep-cluster keeps a kube
        cluster; keeps going past failures and returns them as `cni: error`."""
        errors = []
        for cni in list(self.backends) if cnis is None else cnis:
            backend = self.backends.pop(cni, None)
            if backend is None or (self.settings.keep_cluster and self.settings.backend != "local"):
                continue
            try:
                backend.down()
            except HarnessError as exc:
                errors.append(f"{cni}: {exc}")
        return errors

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
        meta["versions"].update(versions or {})
        self.written = write_reports(self.results, self.settings, meta)
        return self.written
