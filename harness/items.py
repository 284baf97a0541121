"""Scenario files as pytest items: one ScenarioItem per scenario per CNI, id `name[cni]`.

Why a thin layer: the run itself is harness.runner (usable without pytest); this module only
maps a ScenarioResult onto pytest's outcomes: a skip with the capability reason, a strict xfail
for a CNI declared not to enforce, and a failure whose report is the expected and observed
truth tables side by side (never a traceback for a policy failure). The per-process session
state (backends per CNI, canary findings, results) lives on config.stash as a NetpolSession.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness import scenario as scn
from harness.backends import get_backend
from harness.canary import BANNER, CanaryResult, run_canary
from harness.errors import HarnessError, ScenarioError
from harness.expected import expected_cells
from harness.results import Expectation, ScenarioResult
from harness.runner import run_scenario
from harness.settings import Settings, declared_capabilities

_SUFFIX = "abcdefgh"


class ScenarioFailure(Exception):
    """A scenario's verdicts differ from the spec (or its infrastructure broke); carries the result."""

    def __init__(self, result: ScenarioResult):
        self.result = result
        super().__init__(f"{result.scenario}[{result.profile}]: {result.outcome}")


class NotEnforcedFailure(ScenarioFailure):
    """The only failures are NOT ENFORCED on a CNI declared not to enforce: the expected failure."""


class NetpolSession:
    """Run-wide state of one pytest process (controller or xdist worker), on config.stash."""

    def __init__(self, config, settings: Settings, worker: str | None):
        self.config = config
        self.settings = settings
        self.worker = worker
        self.backends: dict[str, Any] = {}   # brought up (torn down at the end)
        self.made: dict[str, Any] = {}       # constructed
        self.broken: dict[str, str] = {}     # bring-up failed: every item says why, no retry
        self.canaries: dict[str, CanaryResult] = {}
        self.results: list[ScenarioResult] = []
        self.bannered: set[str] = set()
        self.remote_canaries: dict[str, dict] = {}
        self.written: list[str] = []

    # -- progress ------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """A progress line on the terminal (not captured), when there is a terminal."""
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and self.worker is None:
            tr.write_line(text)

    def banner(self, cni: str, detail: str = "") -> None:
        if cni in self.bannered:
            return
        self.bannered.add(cni)
        from harness.reports.terminal import render_banner
        self.say(render_banner(f"{cni}: {BANNER}"))

    # -- backends ------------------------------------------------------------------------------
    def settings_for(self, cni: str) -> Settings:
        """This process's settings for one CNI: a run id of its own (prefixes never collide)."""
        i = list(self.settings.cnis).index(cni) if cni in self.settings.cnis else 0
        rid = self.settings.run_id
        if self.settings.backend == "local":
            rid = (rid + _SUFFIX[i % len(_SUFFIX)])[:8]
        return replace(self.settings, run_id=rid)

    def _made(self, cni: str):
        """The backend object of `cni` (constructed once, not brought up)."""
        if cni not in self.made:
            s = self.settings_for(cni)
            self.made[cni] = get_backend(s.backend, cni, **s.backend_options())
        return self.made[cni]

    def capabilities(self, cni: str):
        """What `cni` declares; for kube backends the backend object says (nothing is created)."""
        if self.settings.backend == "local":
            return declared_capabilities("local", cni)
        try:
            return self._made(cni).capabilities()
        except (ValueError, KeyError) as exc:
            raise HarnessError(f"--cni {cni}: {exc}") from None

    def backend(self, cni: str):
        """The backend of `cni`, up, with its canary run once (lazily: only when a test needs it)."""
        if cni in self.broken:
            raise HarnessError(self.broken[cni])
        if cni not in self.backends:
            s = self.settings_for(cni)
            backend = self._made(cni)
            self.backends[cni] = backend
            self.say(f"netpol-proof: bringing up {s.backend}/{cni} (run {s.run_id}) ...")
            try:
                with self._cluster_lock(cni):
                    backend.up()
            except HarnessError as exc:
                self.broken[cni] = f"{s.backend}/{cni} could not be brought up: {exc}"
                raise
        backend = self.backends[cni]
        if cni not in self.canaries and self.settings.canary:
            result = run_canary(backend, self.settings_for(cni))
            self.canaries[cni] = result
            word = {True: "enforces NetworkPolicy", False: "does NOT enforce NetworkPolicy",
                    None: "enforcement unknown"}[result.enforcing]
            self.say(f"netpol-proof: canary on {cni}: {word} ({result.detail})")
            if result.enforcing is False:
                self.banner(cni)
        return backend

    def _cluster_lock(self, cni: str):
        """A file lock shared by all xdist workers, so no two create the same cluster."""
        if self.settings.backend == "local":
            return contextlib.nullcontext()
        from filelock import FileLock
        base = self.config._tmp_path_factory.getbasetemp()  # noqa: SLF001 (pytest's documented recipe)
        root = Path(base).parent if self.worker else Path(base)
        return FileLock(str(root / f"netpol-proof-{cni}.lock"))

    def teardown(self) -> list[str]:
        """Bring every backend down (unless --keep-cluster); keeps going past failures."""
        errors = []
        for cni, backend in list(self.backends.items()):
            if self.settings.keep_cluster and self.settings.backend != "local":
                continue
            try:
                backend.down()
            except HarnessError as exc:
                errors.append(f"{cni}: {exc}")
        self.backends.clear()
        return errors

    def canary_meta(self) -> dict[str, dict]:
        meta = {cni: c.as_meta() for cni, c in self.canaries.items()}
        for cni, c in self.remote_canaries.items():
            meta.setdefault(cni, c)
        return meta


def has_deny(scenario) -> bool:
    """Whether any step asserts a block (offline, stand-in addresses): something to enforce."""
    for i in range(len(scenario.steps)):
        if any(c.expectation == Expectation.DENY for c in expected_cells(scenario, i)):
            return True
    return False


class ScenarioFile(pytest.File):
    """A YAML file with `kind: Scenario`: one item per CNI of the run."""

    def collect(self):
        from harness.plugin import SESSION_KEY
        session: NetpolSession = self.config.stash[SESSION_KEY]
        try:
            scenario = scn.load_scenario(self.path)
        except ScenarioError as exc:
            raise self.CollectError(f"invalid scenario file:\n{exc}") from None
        deny = None
        for cni in session.settings.cnis:
            item = ScenarioItem.from_parent(self, name=f"{scenario.name}[{cni}]",
                                            scenario=scenario, cni=cni)
            item.add_marker(pytest.mark.netpol)
            item.add_marker(pytest.mark.requires(*scenario.requires))
            if self.config.pluginmanager.hasplugin("xdist"):
                # with --dist loadgroup every item of one CNI runs in one worker: one cluster each
                item.add_marker(pytest.mark.xdist_group(f"netpol-{cni}"))
            try:
                caps = session.capabilities(cni)
            except HarnessError as exc:
                raise self.CollectError(str(exc)) from None
            ok, why = caps.match(scenario.requires)
            if not ok:
                item.add_marker(pytest.mark.skip(reason=f"{cni}: {why}"))
            elif not caps.enforces:
                deny = has_deny(scenario) if deny is None else deny
                if deny:
                    item.add_marker(pytest.mark.xfail(
                        strict=True, raises=NotEnforcedFailure,
                        reason=f"{cni} is declared not to enforce NetworkPolicy: its blocks are "
                               "expected to be not enforced (strict: enforcing is reported)"))
            yield item


class ScenarioItem(pytest.Item):
    """One scenario on one CNI; runtest runs it through harness.runner."""

    def __init__(self, *, scenario, cni: str, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.cni = cni
        self.result: ScenarioResult | None = None

    def runtest(self) -> None:
        from harness.plugin import SESSION_KEY
        session: NetpolSession = self.config.stash[SESSION_KEY]
        self.user_properties += [("cni", self.cni), ("backend", session.settings.backend)]
        backend = session.backend(self.cni)
        canary = session.canaries.get(self.cni)
        enforcing = canary.enforcing if canary else None
        if enforcing is not None:
            self.user_properties.append(("canary_enforcing", str(enforcing).lower()))
        result = run_scenario(self.scenario, backend, session.settings_for(self.cni),
                              log=print, enforcing=enforcing)
        self.result = result
        session.results.append(result)
        try:
            from harness.reports import junit
            self.user_properties += [p for p in junit.properties(result)
                                     if p[0] not in ("cni", "backend")]
        except ImportError:  # pragma: no cover - reports land separately
            pass
        if result.outcome == "xfailed":
            raise NotEnforcedFailure(result)
        if result.outcome in ("failed", "error", "xpassed"):
            raise ScenarioFailure(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailure):
            from harness.reports import terminal
            color = self.config.get_terminal_writer().hasmarkup if self.config.option.color != "no" \
                else False
            text = terminal.render_failure(excinfo.value.result, color=color)
            if excinfo.value.result.outcome == "xpassed":
                text = (f"[XPASS(strict)] {self.cni} is declared not to enforce NetworkPolicy, "
                        "but every block held: the declaration is wrong\n") + text
            return text
        if isinstance(excinfo.value, HarnessError):
            return f"netpol-proof could not run {self.name}: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"scenario: {self.name}"


def is_collectable(file_path: Path, config, scenario_dirs: list[str]) -> bool:
    """A `kind: Scenario` YAML under a scenario directory (ini netpol_scenario_dirs, relative
    to the rootdir), or a file passed explicitly on the command line.

    Why the restriction: `pytest tests/` must never collect test-data scenarios (broken on
    purpose, or meant for other tests) as if they were the scenario library.
    """
    if file_path.suffix not in (".yaml", ".yml"):
        return False
    resolved = file_path.resolve()
    explicit = False
    for arg in config.args:
        p = Path(str(arg).split("::")[0])
        if not p.is_absolute():
            p = Path(config.invocation_params.dir) / p
        if p.resolve() == resolved:
            explicit = True
            break
    if not explicit:
        roots = [(Path(config.rootpath) / d).resolve() for d in scenario_dirs]
        if not any(resolved.is_relative_to(r) for r in roots):
            return False
    try:
        return scn.is_scenario_file(file_path)
    except OSError:
        return False
