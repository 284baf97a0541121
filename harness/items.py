"""Scenario files as pytest items: one ScenarioItem per scenario per CNI, id `name[cni]`.

Why a thin layer: the run itself is harness.session and harness.runner (usable without pytest);
this module only collects and maps a ScenarioResult onto pytest's outcomes: a skip with the
capability reason, a strict xfail for a CNI declared not to enforce (unless its canary found
enforcement: then its failures fail), and a failure whose report
is the expected and observed truth tables side by side (never a traceback for a policy
failure). The per-process harness.session.Session lives on config.stash[SESSION_KEY].
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from harness import scenario as scn
from harness.errors import HarnessError, ScenarioError
from harness.expected import check_scenario
from harness.reports import junit, terminal
from harness.results import ScenarioOutcome, ScenarioResult
from harness.session import Session


class ScenarioFailure(Exception):
    """A scenario's verdicts differ from the spec (or its infrastructure broke); carries the result."""

    def __init__(self, result: ScenarioResult):
        self.result = result
        super().__init__(f"{result.scenario}[{result.profile}]: {result.outcome}")


class NotEnforcedFailure(ScenarioFailure):
    """The only failures are NOT ENFORCED on a CNI declared not to enforce: the expected failure."""


#: the run's Session of this process (made by plugin.pytest_configure; read by collection,
#: items and fixtures)
SESSION_KEY = pytest.StashKey[Session]()


class ScenarioFile(pytest.File):
    """A YAML file with `kind: Scenario`: one item per CNI of the run."""

    def collect(self) -> Iterator[ScenarioItem]:
        session: Session = self.config.stash[SESSION_KEY]
        try:
            scenario = scn.load_scenario(self.path)
        except ScenarioError as exc:
            raise self.CollectError(f"invalid scenario file:\n{exc}") from None
        # Why at collection: a table that contradicts the spec would be judged as the CNI's
        # failure; the file is what is wrong, so it is not run at all (as `check` says)
        problems = check_scenario(scenario)
        if problems:
            raise self.CollectError("scenario disagrees with the oracle (python -m harness "
                                    "check):\n" + "\n".join(str(p) for p in problems))
        for cni in session.settings.cnis:
            item = ScenarioItem.from_parent(self, name=f"{scenario.name}[{cni}]",
                                            scenario=scenario, cni=cni)
            item.add_marker(pytest.mark.netpol)
            item.add_marker(pytest.mark.requires(*scenario.needs))
            if self.config.pluginmanager.hasplugin("xdist"):
                # with --dist loadgroup every item of one CNI runs in one worker: one cluster each
                item.add_marker(pytest.mark.xdist_group(f"netpol-{cni}"))
            try:
                plan = session.plan(scenario, cni)
            except HarnessError as exc:
                raise self.CollectError(str(exc)) from None
            if plan.skip:
                item.add_marker(pytest.mark.skip(reason=f"{cni}: {plan.skip}"))
            # Why no xfail marker here: whether the failures are expected is known only once
            # the canary has run (verdicts.judged_enforcing); runtest marks it then
            yield item


class ScenarioItem(pytest.Item):
    """One scenario on one CNI; runtest runs it through harness.runner."""

    def __init__(self, *, scenario, cni: str, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.cni = cni
        self.result: ScenarioResult | None = None

    def runtest(self) -> None:
        session: Session = self.config.stash[SESSION_KEY]
        self.user_properties += [("cni", self.cni), ("backend", session.settings.backend)]
        session.backend(self.cni)   # up, canary run: its finding goes into the properties first
        enforcing = session.enforcing(self.cni)
        if enforcing is not None:
            self.user_properties.append(("canary_enforcing", str(enforcing).lower()))
        result = session.run(self.scenario, self.cni, log=print)
        self.result = result
        self.user_properties += [p for p in junit.properties(result)
                                 if p[0] not in ("cni", "backend")]
        if result.outcome == ScenarioOutcome.SKIPPED:
            # a need found only at the run's real addresses (runner.run_scenario)
            pytest.skip(f"{self.cni}: {result.skip_reason}")
        if result.outcome == ScenarioOutcome.XFAILED:
            # a marker added during the call is read by pytest's xfail handling (strict, and
            # only for this exception): the run judged the failures expected
            self.add_marker(pytest.mark.xfail(
                strict=True, raises=NotEnforcedFailure,
                reason=f"{self.cni} is declared not to enforce NetworkPolicy and its canary found "
                       "no enforcement: its blocks are expected to be not enforced"))
            raise NotEnforcedFailure(result)
        if result.outcome in (ScenarioOutcome.FAILED, ScenarioOutcome.ERROR,
                              ScenarioOutcome.XPASSED, ScenarioOutcome.SCENARIO_ERROR):
            raise ScenarioFailure(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailure):
            color = self.config.get_terminal_writer().hasmarkup if self.config.option.color != "no" \
                else False
            text = terminal.render_failure(excinfo.value.result, color=color)
            if excinfo.value.result.outcome == ScenarioOutcome.XPASSED:
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
