"""pytest hooks of netpol-proof (pytest11 entry point): options, markers, collection, header,
canary banners, xdist hand-over, reports. Hooks only; the work is in items.py and the library.

Why hooks only: the library (runner, canary, reports) runs without pytest; this module maps
pytest's lifecycle onto it (as pytest-xdist's `plugin.py` and pytest-httpserver's
`pytest_plugin.py` do). Run-wide state lives on config.stash (a harness.session.Session per
process). Under pytest-xdist the controller makes the run id and hands it to each worker
through workerinput; each worker derives its own prefix (naming.worker_run_id) and sends its
results and canary findings back through workeroutput.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.items import SESSION_KEY, ScenarioFile, ScenarioItem, is_collectable
from harness.reports import terminal
from harness.results import ScenarioResult
from harness.session import Session
from harness.settings import OPTIONS, SOURCES, Settings, SettingsError, build


def pytest_addoption(parser: pytest.Parser) -> None:
    """Every setting of harness.settings.OPTIONS, as `python -m harness run` has them too."""
    group = parser.getgroup("netpol-proof", "netpol-proof: live NetworkPolicy enforcement")
    for option in OPTIONS:
        for names, kwargs in option.arguments(f"netpol_{option.key}", cli=False):
            group.addoption(*names, **kwargs)
        parser.addini(option.ini, option.help, default=None)
    parser.addini("netpol_scenario_dirs", "directories (relative to the rootdir) whose "
                  "`kind: Scenario` YAML files are collected", type="args", default=["scenarios"])


def _settings(config: pytest.Config):
    values = {key: config.getoption(f"netpol_{key}") for key in SOURCES}
    worker_input = getattr(config, "workerinput", None)
    if worker_input and worker_input.get("netpol_run_id"):
        values["run_id"] = worker_input["netpol_run_id"]
    ini = {ini: config.getini(ini) for _, (_, _, ini) in SOURCES.items()}
    try:
        settings = build(values, ini)
    except SettingsError as exc:
        raise pytest.UsageError(f"netpol-proof: {exc}") from None
    if worker_input:
        settings = settings.for_worker(worker_input.get("workerid"))
    return settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netpol: a netpol-proof scenario (live NetworkPolicy "
                                       "enforcement on a backend/CNI)")
    config.addinivalue_line("markers", "requires(*capabilities): capabilities the backend/CNI "
                                       "must declare; the test is skipped with the reason otherwise")
    worker_input = getattr(config, "workerinput", None)
    config.stash[SESSION_KEY] = make_session(
        config, _settings(config), worker_input.get("workerid") if worker_input else None)
    from harness import fixtures
    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "netpol-proof-fixtures")
    if not worker_input:
        config.pluginmanager.register(BannerHooks(config), "netpol-proof-banner")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistHooks(), "netpol-proof-xdist")
    from harness.lifecycle import install_sigterm_handler
    install_sigterm_handler()


def make_session(config: pytest.Config, settings: Settings, worker: str | None) -> Session:
    """This process's Session: progress lines go to the terminal (not captured) when there is
    one, and cluster bring-up runs under a file lock shared by all xdist workers."""

    def say(text: str) -> None:
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and worker is None:
            tr.write_line(text)

    def lock(cni: str):
        """So that no two workers create the same cluster (xdist's documented FileLock recipe)."""
        if settings.backend == "local":
            return contextlib.nullcontext()
        from filelock import FileLock  # a dependency of kube backends only
        base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]  # xdist's recipe
        root = Path(base).parent if worker else Path(base)
        return FileLock(str(root / f"netpol-proof-{cni}.lock"))

    workers = int((getattr(config, "workerinput", None) or {}).get("workercount", 1) or 1)
    return Session(settings, log=say, prefix="netpol-proof: ", worker=worker, lock=lock,
                   workers=workers)


class XdistHooks:
    """Registered only when pytest-xdist is loaded: hand the run id over, gather results."""

    @pytest.hookimpl
    def pytest_configure_node(self, node) -> None:
        node.workerinput["netpol_run_id"] = node.config.stash[SESSION_KEY].settings.run_id

    @pytest.hookimpl
    def pytest_testnodedown(self, node, error) -> None:
        session: Session = node.config.stash[SESSION_KEY]
        out = getattr(node, "workeroutput", None) or {}
        session.add_remote([ScenarioResult.from_dict(d)
                            for d in json.loads(out.get("netpol_results", "[]"))],
                           json.loads(out.get("netpol_canaries", "{}")))
        for cni, what in json.loads(out.get("netpol_dataplanes", "{}")).items():
            session.dataplanes.setdefault(cni, what)


def pytest_report_header(config: pytest.Config) -> list[str]:
    ns: Session = config.stash[SESSION_KEY]
    return [ns.describe(), f"netpol-proof: scenario dirs: {' '.join(config.getini('netpol_scenario_dirs'))}"]


def _runnable(items) -> list[ScenarioItem]:
    return [i for i in items if isinstance(i, ScenarioItem) and i.get_closest_marker("skip") is None]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Alone (no xdist): every scenario starts in the session's pool now, in collection order,
    `jobs` at once, each on a cluster of its own; each item then reports its scenario's result.
    Under xdist the workers do the same with what they were handed (pytest_runtest_protocol)."""
    ns: Session = session.config.stash[SESSION_KEY]
    if ns.worker is None and not session.config.option.collectonly:
        ns.prefetch([(i.scenario, i.cni) for i in _runnable(session.items)])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem) -> None:
    """In an xdist worker: start this item's scenario and those queued behind it (up to `jobs`)."""
    ns: Session = item.config.stash[SESSION_KEY]
    if ns.worker is None or ns.jobs == 1:
        return
    upcoming = [item] + _queued(item.session) + ([nextitem] if nextitem is not None else [])
    ns.prefetch([(i.scenario, i.cni) for i in _runnable(dict.fromkeys(upcoming))][:ns.jobs])


def _queued(session: pytest.Session) -> list:
    """The items this xdist worker has been handed and not yet run, in order (read from
    pytest-xdist's worker queue, without changing it); [] when that cannot be read."""
    for plugin in session.config.pluginmanager.get_plugins():
        torun = getattr(plugin, "torun", None) if type(plugin).__name__ == "WorkerInteractor" \
            else None
        if torun is None or not hasattr(torun, "lock"):
            continue
        try:
            with torun.lock() as queue:
                indices = [i for i in queue if isinstance(i, int)]
            return [session.items[i] for i in indices]
        except Exception:  # noqa: BLE001 - xdist internals changed: fall back to nextitem
            return []
    return []


def pytest_collect_file(file_path, parent):
    config = parent.config
    if is_collectable(file_path, config, config.getini("netpol_scenario_dirs")):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Say what the run means to run (Session.announce), then bring each CNI up and run its
    canary (Session.ready: beside the scenarios when they run at once, its line and banner
    then said by the CNI's first item, before its result), so that a banner about a
    non-enforcing cluster sits at the top of the run (not under xdist: workers do it lazily)."""
    ns: Session = session.config.stash[SESSION_KEY]
    if ns.worker or session.config.option.collectonly:
        return
    option = session.config.option
    if getattr(option, "numprocesses", None) or getattr(option, "dist", "no") != "no":
        return   # the controller sees no items: its results file cannot list what is unfinished
    # the first, partial, results file, before any bring-up (a job killed then leaves it)
    ns.announce([(i.scenario, i.cni) for i in _runnable(session.items)])
    wanted = []
    for item in session.items:
        if isinstance(item, ScenarioItem) and item.get_closest_marker("skip") is None \
                and item.cni not in wanted:
            wanted.append(item.cni)
    for cni in wanted:
        try:
            ns.ready(cni)
        except HarnessError as exc:
            ns.say(f"{cni} could not be brought up: {exc}")


class BannerHooks:
    """On the controller, print the banner as soon as any process reports a non-enforcing
    canary, or one that contradicts its CNI's declaration (under xdist the canary runs in
    workers; this is the top of the run as seen here); and say Ctrl-C or SIGTERM in the results
    file at once, before the teardown a CI runner's SIGKILL may cut short."""

    def __init__(self, config: pytest.Config):
        self.config = config

    @pytest.hookimpl
    def pytest_keyboard_interrupt(self, excinfo) -> None:
        from harness.lifecycle import stop_reason
        self.config.stash[SESSION_KEY].stop(stop_reason(excinfo.value))

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties or ())
        if props.get("canary_enforcing") == "false" and report.when == "call":
            self.config.stash[SESSION_KEY].banner(str(props.get("cni", "?")))
        if props.get("canary_contradiction") and report.when == "call":
            self.config.stash[SESSION_KEY].banner(str(props.get("cni", "?")),
                                                  str(props["canary_contradiction"]))


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    ns: Session = session.config.stash[SESSION_KEY]
    errors = ns.teardown()
    for e in errors:
        ns.say(f"teardown: {e}")
    if ns.worker is not None:
        wo = session.config.workeroutput  # type: ignore[attr-defined]  # set by xdist on workers
        wo["netpol_results"] = json.dumps([r.to_dict() for r in ns.results])
        wo["netpol_canaries"] = json.dumps(ns.canary_meta())
        wo["netpol_dataplanes"] = json.dumps(ns.dataplanes)
        return
    if ns.all_results():
        try:
            ns.write_reports({"pytest": pytest.__version__})
        except (OSError, HarnessError) as exc:
            ns.say(f"could not write reports: {exc}")


def pytest_unconfigure(config: pytest.Config) -> None:
    ns = config.stash.get(SESSION_KEY, None)
    if ns is not None:
        ns.teardown()  # a no-op after sessionfinish; a safety net after a crash in between


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    ns: Session = config.stash[SESSION_KEY]
    if ns.worker is not None or not ns.results:
        return
    terminalreporter.write_sep("=", "netpol-proof summary")
    terminalreporter.write_line(terminal.render_summary(ns.results))
    for line in terminal.render_dataplanes(ns.dataplanes):
        terminalreporter.write_line(line)
    for path in ns.written:
        terminalreporter.write_line(f"netpol-proof: wrote {path}")
    for banner in terminal.render_banners(ns.canary_meta()):
        terminalreporter.write_line(banner)
    if os.environ.get("NETPOL_DEBUG"):
        terminalreporter.write_line(repr(ns.settings))
