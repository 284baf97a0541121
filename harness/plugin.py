"""pytest hooks of netpol-proof (pytest11 entry point): options, markers, collection, header,
canary banners, xdist hand-over, reports. Hooks only; the work is in items.py and the library.

Why hooks only: the library (runner, canary, reports) runs without pytest; this module maps
pytest's lifecycle onto it (examples-to-follow §10-12). Run-wide state lives on config.stash
(a NetpolSession per process). Under pytest-xdist the controller makes the run id and hands it
to each worker through workerinput; each worker derives its own prefix (naming.worker_run_id)
and sends its results and canary findings back through workeroutput.
"""

from __future__ import annotations

import datetime
import json
import os

import pytest

from harness.errors import HarnessError
from harness.items import NetpolSession, ScenarioFile, is_collectable
from harness.results import ScenarioResult
from harness.runner import run_meta, write_reports
from harness.settings import SOURCES, SettingsError, build

SESSION_KEY = pytest.StashKey[NetpolSession]()
STARTED_KEY = pytest.StashKey[str]()

_BOOL_OPTIONS = ("keep_cluster", "reuse_cluster", "allow_cluster_scoped")
_HELP = {
    "backend": "where to run: local (netns emulation, root), kind (clusters per CNI), kubeconfig "
               "(an existing cluster; needs --context and --allow-context)",
    "cnis": "CNI(s) to run every scenario on, comma-separated; each scenario runs once per CNI "
            "(test id name[cni]). local: enforcing, open (emulated), kube-router, calico, none "
            "(real engines). kind: kindnet, calico, cilium, flannel",
    "probe_timeout": "seconds one probe waits for an answer (default 1 local, 2 kube)",
    "converge_timeout": "seconds a step may take to reach a stable result (default 10 local, 60 kube)",
    "settle_seconds": "seconds a stable non-pass result must last before it is final "
                      "(default 0 local, the converge timeout on kube)",
    "keep_cluster": "leave kind clusters up at the end (for debugging or --reuse-cluster)",
    "reuse_cluster": "use kind clusters left by --keep-cluster instead of creating them",
    "json_path": "write the JSON results file (every probe, every attempt) to PATH",
    "html_path": "write the self-contained HTML report to PATH",
    "run_id": "the run id (4-8 of [a-z0-9]) naming everything created; default random",
    "concurrency": "probes in flight at once (default 16)",
    "context": "kubeconfig backend: the kubeconfig context to run in",
    "allow_context": "kubeconfig backend: repeat the context name to agree that it is modified",
    "allow_cluster_scoped": "kubeconfig backend: allow cluster-scoped policy objects",
    "canary": "run the enforcement canary before the first scenario per CNI (default true)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netpol-proof", "netpol-proof: live NetworkPolicy enforcement")
    for key, (opt, env, ini) in SOURCES.items():
        help_text = f"{_HELP[key]} [env {env}, ini {ini}]"
        if key in _BOOL_OPTIONS:
            group.addoption(opt, action="store_true", default=None, dest=f"netpol_{key}",
                            help=help_text)
        else:
            metavar = {"cnis": "NAME[,NAME...]", "json_path": "PATH", "html_path": "PATH",
                       "backend": "local|kind|kubeconfig"}.get(key)
            group.addoption(opt, dest=f"netpol_{key}", default=None, metavar=metavar,
                            help=help_text)
        parser.addini(ini, _HELP[key], default=None)
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
    settings = _settings(config)
    config.stash[SESSION_KEY] = NetpolSession(config, settings,
                                              worker_input.get("workerid") if worker_input else None)
    config.stash[STARTED_KEY] = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    from harness import fixtures
    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "netpol-proof-fixtures")
    if not worker_input:
        config.pluginmanager.register(BannerHooks(config), "netpol-proof-banner")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistHooks(), "netpol-proof-xdist")
    from harness.lifecycle import install_sigterm_handler
    install_sigterm_handler()


class XdistHooks:
    """Registered only when pytest-xdist is loaded: hand the run id over, gather results."""

    @pytest.hookimpl
    def pytest_configure_node(self, node) -> None:
        node.workerinput["netpol_run_id"] = node.config.stash[SESSION_KEY].settings.run_id

    @pytest.hookimpl
    def pytest_testnodedown(self, node, error) -> None:
        session: NetpolSession = node.config.stash[SESSION_KEY]
        out = getattr(node, "workeroutput", None) or {}
        for data in json.loads(out.get("netpol_results", "[]")):
            session.results.append(ScenarioResult.from_dict(data))
        for cni, meta in json.loads(out.get("netpol_canaries", "{}")).items():
            session.remote_canaries.setdefault(cni, meta)


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[SESSION_KEY].settings
    return [s.describe(), f"netpol-proof: scenario dirs: {' '.join(config.getini('netpol_scenario_dirs'))}"]


def pytest_collect_file(file_path, parent):
    config = parent.config
    if is_collectable(file_path, config, config.getini("netpol_scenario_dirs")):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Bring each CNI up and run its canary before the first scenario, so that a banner about a
    non-enforcing cluster sits at the top of the run (not under xdist: workers do it lazily)."""
    ns: NetpolSession = session.config.stash[SESSION_KEY]
    if ns.worker or session.config.option.collectonly:
        return
    if getattr(session.config.option, "numprocesses", None) or getattr(session.config.option, "dist", "no") != "no":
        return
    from harness.items import ScenarioItem
    wanted = []
    for item in session.items:
        if isinstance(item, ScenarioItem) and item.get_closest_marker("skip") is None \
                and item.cni not in wanted:
            wanted.append(item.cni)
    for cni in wanted:
        try:
            ns.backend(cni)
        except HarnessError as exc:
            ns.say(f"netpol-proof: {cni} could not be brought up: {exc}")


class BannerHooks:
    """On the controller, print the banner as soon as any process reports a non-enforcing
    canary (under xdist the canary runs in workers; this is the top of the run as seen here)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties or ())
        if props.get("canary_enforcing") == "false" and report.when == "call":
            self.config.stash[SESSION_KEY].banner(props.get("cni", "?"))


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    ns: NetpolSession = session.config.stash[SESSION_KEY]
    errors = ns.teardown()
    for e in errors:
        ns.say(f"netpol-proof teardown: {e}")
    if ns.worker is not None:
        wo = session.config.workeroutput
        wo["netpol_results"] = json.dumps([r.to_dict() for r in ns.results])
        wo["netpol_canaries"] = json.dumps(ns.canary_meta())
        return
    if ns.results:
        meta = run_meta(ns.settings, ns.canary_meta(), session.config.stash[STARTED_KEY])
        meta["versions"]["pytest"] = pytest.__version__
        try:
            ns.written = write_reports(ns.results, ns.settings, meta)
        except (OSError, HarnessError) as exc:
            ns.say(f"netpol-proof: could not write reports: {exc}")


def pytest_unconfigure(config: pytest.Config) -> None:
    ns = config.stash.get(SESSION_KEY, None)
    if ns is not None:
        ns.teardown()  # a no-op after sessionfinish; a safety net after a crash in between


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    ns: NetpolSession = config.stash[SESSION_KEY]
    if ns.worker is not None or not ns.results:
        return
    from harness.reports import terminal
    terminalreporter.write_sep("=", "netpol-proof summary")
    terminalreporter.write_line(terminal.render_summary(ns.results))
    for path in ns.written:
        terminalreporter.write_line(f"netpol-proof: wrote {path}")
    for cni, meta in ns.canary_meta().items():
        if meta.get("enforcing") is False:
            terminalreporter.write_line(terminal.render_banner(f"{cni}: {terminal.DEFAULT_BANNER}"))
    if os.environ.get("NETPOL_DEBUG"):
        terminalreporter.write_line(repr(ns.settings))
