"""One frozen Settings for a run, resolved once from options, ini, environment and defaults.

Why one object: the plugin, the CLI, the runner and the canary all read the same values, so a
run is described (and reproduced) by one thing; each bad value is rejected here with a plain
message naming the option, not deep in a backend. Precedence: explicit option / CLI argument,
then environment (NETPOL_*), then ini (`[tool.pytest.ini_options]` netpol_*), then defaults.
No pytest import: the plugin passes plain values in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from harness import naming
from harness.backends import BACKENDS, cnis, emulated
from harness.backends import capabilities as backend_capabilities
from harness.backends.cni import AGNHOST_IMAGE
from harness.capabilities import Capabilities
from harness.errors import UsageError

#: the kube backends' default observation window (seconds): real CNIs program a policy some
#: seconds after the API accepted it (docs/kind.md: "Policy programming after apply")
KUBE_MIN_WINDOW = 10.0
_CNI_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")

@dataclass(frozen=True)
class Option:
    """One setting as the front ends offer it: the pytest plugin (harness.plugin) and `python -m
    harness run` (harness.commands.run) both declare every row of OPTIONS through `arguments`,
    so the two cannot drift (tests/test_settings.py compares what each declares)."""

    #: the Settings field
    key: str
    #: the option of both front ends (and the name bad values are reported under)
    flag: str
    env: str
    ini: str
    help: str
    metavar: str | None = None
    #: a switch: given means true (no value)
    switch: bool = False
    #: shorter spellings `run` also takes (pytest's namespace needs the `netpol-` ones)
    cli: tuple[str, ...] = ()
    #: a switch both front ends take that sets the setting false (`--no-canary`)
    off: str | None = None

    def arguments(self, dest: str, cli: bool) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        """(names, keyword arguments) for argparse's `add_argument`, which pytest's `addoption`
        takes alike: the plugin's (cli=False) or `run`'s (cli=True: its shorter spellings too,
        and no ini in the help, which `run` does not read). Every default is None: `build`
        resolves what was not given (environment, ini, then the defaults)."""
        sources = f"env {self.env}" if cli else f"env {self.env}, ini {self.ini}"
        kw: dict[str, Any] = {"dest": dest, "default": None, "help": f"{self.help} [{sources}]"}
        if self.switch:
            kw["action"] = "store_true"
        else:
            kw["metavar"] = self.metavar
        out = [((*self.cli, self.flag) if cli else (self.flag,), kw)]
        if self.off:
            out.append(((self.off,), {"dest": dest, "default": None, "action": "store_const",
                                      "const": "false", "help": f"the same as {self.flag} false"}))
        return out


def _row(key: str, flag: str, help: str, metavar: str | None = None, **kw: Any) -> Option:
    name = key.upper()
    return Option(key, flag, f"NETPOL_{name}", f"netpol_{key}", help, metavar, **kw)


#: every setting, once: its option, environment variable, ini key and help
OPTIONS: tuple[Option, ...] = (
    Option("backend", "--backend", "NETPOL_BACKEND", "netpol_backend",
           "where to run: local (netns emulation, root), kind (clusters per CNI), kubeconfig "
           "(an existing cluster; needs --context and --allow-context), realnodes (real kubelets, "
           "root)", "local|kind|kubeconfig|realnodes"),
    Option("cnis", "--cni", "NETPOL_CNI", "netpol_cni",
           "CNI(s) to run every scenario on, comma-separated; each scenario runs once per CNI "
           "(test id name[cni]). local: enforcing, open (emulated), kube-router, calico, none "
           "(real engines; realnodes: these, flannel, k3s). kind: kindnet, calico, cilium, "
           "flannel", "NAME,..."),
    _row("probe_timeout", "--probe-timeout",
         "seconds one probe waits for an answer (default 1 local, 2 kube)", "SECONDS"),
    _row("converge_timeout", "--converge-timeout",
         "seconds a step may take to reach a stable result (default 10 local, 30 real "
         "engines, 60 kube)", "SECONDS"),
    _row("min_rounds", "--min-rounds",
         "every step is probed at least this many rounds, whatever the results (default 3)",
         "N"),
    _row("min_window", "--min-window",
         "every step is probed until a round started at least this many seconds after the "
         "step's change, whatever the results (default 3 local, 10 kube)", "SECONDS"),
    _row("keep_cluster", "--keep-cluster",
         "leave kind clusters up at the end (for debugging or --reuse-cluster)", switch=True),
    _row("reuse_cluster", "--reuse-cluster",
         "use kind clusters left by --keep-cluster instead of creating them", switch=True),
    Option("json_path", "--netpol-json", "NETPOL_JSON", "netpol_json",
           "write the JSON results file (every probe, every attempt) to PATH", "PATH",
           cli=("--json",)),
    Option("html_path", "--netpol-html", "NETPOL_HTML", "netpol_html",
           "write the self-contained HTML report to PATH", "PATH", cli=("--html",)),
    _row("run_id", "--netpol-run-id",
         "the run id (4-8 of [a-z0-9]) naming everything created; default random", "ID",
         cli=("--run-id",)),
    _row("concurrency", "--netpol-concurrency",
         "probes in flight at once per scenario (default 16)", "N"),
    _row("jobs", "--netpol-jobs",
         "scenarios at once, each on a local cluster of its own (default: from the CPU count "
         "and the measured CPU per probe, shared by pytest-xdist's workers); kind, kubeconfig "
         "and realnodes: tenants of the one cluster (default 8)", "N",
         cli=("-j", "--jobs")),
    _row("context", "--context", "kubeconfig backend: the kubeconfig context to run in",
         "NAME"),
    _row("allow_context", "--allow-context",
         "kubeconfig backend: repeat the context name to agree that it is modified", "NAME"),
    _row("allow_cluster_scoped", "--allow-cluster-scoped",
         "kubeconfig backend: allow cluster-scoped policy objects", switch=True),
    _row("canary", "--netpol-canary",
         "run the enforcement canary before the first scenario per CNI (default true)",
         "true|false", off="--no-canary"),
    _row("allow_faults_on_context", "--allow-faults-on-context",
         "kubeconfig backend: name the context again to allow fault steps there (engine "
         "restarts only: the CNI agent's pods are deleted and its DaemonSet replaces them)",
         "NAME"),
    _row("engine_pods", "--engine-pods",
         "kubeconfig backend: NAMESPACE/SELECTOR of the CNI agent's pods that fault steps "
         "delete (default per CNI, e.g. kube-system/k8s-app=cilium)", "NAMESPACE/SELECTOR"),
    _row("agnhost_image", "--agnhost-image",
         "kind and kubeconfig backends: the agnhost image of the probe pods, e.g. a mirror's "
         "for an air-gapped cluster (default: the pinned upstream "
         "registry.k8s.io/e2e-test-images/agnhost tag and digest)", "IMAGE"),
)

#: (setting, option spelling for messages, environment variable, ini key)
SOURCES = {o.key: (o.flag, o.env, o.ini) for o in OPTIONS}
#: an image reference: [registry[:port]/]path[:tag][@sha256:<64 hex>], lowercase path
_IMAGE_RE = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._/-]+[a-z0-9]+)*"
                       r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")


#: the most scenarios a run may have in flight (each holds a cluster of its own)
MAX_JOBS = 64


class SettingsError(UsageError):
    """A setting has a value that cannot be used; the message names the option and the fix."""


@dataclass(frozen=True)
class Settings:
    """Everything that decides how a run behaves (see the module docstring for sources)."""

    backend: str = "local"
    cnis: tuple[str, ...] = ("enforcing",)
    probe_timeout: float = 1.0
    converge_timeout: float = 10.0
    #: the observation window of every step, whatever the results (docs/ARCHITECTURE.md, "The
    #: observation window"): at least this many probe rounds ...
    min_rounds: int = 3
    #: ... and rounds until one has started at least this many seconds after the step's change.
    #: Longer on kube backends: the API cannot say when a CNI has programmed a policy, and a
    #: CNI still programming after the window is seen as it was then.
    min_window: float = 3.0
    keep_cluster: bool = False
    reuse_cluster: bool = False
    json_path: str | None = None
    html_path: str | None = None
    run_id: str = field(default_factory=naming.new_run_id)
    #: probes in flight at once (a live API server must not receive thousands of execs at once)
    concurrency: int = 16
    #: scenarios run at once, each on a cluster of its own (local backend only); None: chosen
    #: from the CPU count (harness.scheduler.default_jobs)
    jobs: int | None = None
    context: str | None = None
    allow_context: str | None = None
    allow_cluster_scoped: bool = False
    #: run the enforcement canary before the first scenario on each CNI
    canary: bool = True
    #: kubeconfig backend: the context named again to allow fault steps there (restarts of the
    #: CNI agent by deleting its pods); must equal `context`
    allow_faults_on_context: str | None = None
    #: kubeconfig backend: NAMESPACE/SELECTOR of the CNI agent's pods (default: per CNI)
    engine_pods: str | None = None
    #: kind and kubeconfig backends: the agnhost image of every probe pod (servers and client);
    #: the pinned upstream tag and digest by default, a mirror's for an air-gapped cluster
    agnhost_image: str = AGNHOST_IMAGE

    @property
    def is_kube(self) -> bool:
        return self.backend != "local"

    def for_worker(self, worker: str | None) -> Settings:
        """The settings of one pytest-xdist worker: its own run id derived from the controller's."""
        return replace(self, run_id=naming.worker_run_id(self.run_id, worker))

    def backend_options(self) -> dict[str, Any]:
        """The keyword arguments harness.backends.get_backend takes for this backend."""
        opts: dict[str, Any] = {"run_id": self.run_id, "probe_timeout": self.probe_timeout}
        if self.backend in ("kind", "kubeconfig"):
            opts.update(keep_cluster=self.keep_cluster, reuse_cluster=self.reuse_cluster,
                        image=self.agnhost_image)
            if self.backend == "kubeconfig":
                opts.update(context=self.context, allow_context=self.allow_context,
                            allow_cluster_scoped=self.allow_cluster_scoped,
                            allow_faults_on_context=self.allow_faults_on_context,
                            engine_pods=self.engine_pods)
        return opts

    def describe(self) -> str:
        """One line that makes a run reproducible (the pytest report header prints it)."""
        return (f"netpol-proof: backend={self.backend} cni={','.join(self.cnis)} "
                f"run-id={self.run_id} probe-timeout={self.probe_timeout:g}s "
                f"converge-timeout={self.converge_timeout:g}s min-rounds={self.min_rounds} "
                f"min-window={self.min_window:g}s")


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}: {value!r} is not a boolean; use true or false")


def _seconds(name: str, value: Any) -> float:
    try:
        n = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: {value!r} is not a number of seconds, e.g. 1.5") from None
    if not n > 0 or n > 3600:
        raise SettingsError(f"{name}: {value!r} must be more than 0 and at most 3600 seconds")
    return n


def _whole(name: str, value: Any, unit: str, low: int, high: int, why: str = "") -> int:
    """A whole number of `unit` from `low` to `high`, or a SettingsError naming the option."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: {value!r} is not a whole number of {unit}") from None
    if not low <= n <= high:
        raise SettingsError(f"{name}: {n} must be between {low} and {high} {unit}{why}")
    return n

def _cnis(name: str, value: Any, backend: str) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = tuple(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))
    if not names:
        raise SettingsError(f"{name}: empty; name at least one CNI, e.g. --cni enforcing")
    for cni in names:
        if backend == "realnodes" and cni not in cnis(backend):
            raise SettingsError(f"{name}: {cni!r} is not a CNI the realnodes backend runs")
        if backend == "local" and cni not in cnis("local"):
            # lazy: the backends' tables load only for this message (harness.backends)
            from harness.backends.local.profiles import PROFILES
            from harness.backends.real.engines import ENGINES
            raise SettingsError(f"{name}: {cni!r} is not a local profile; the local backend runs "
                                f"the emulated {' or '.join(PROFILES)} or the real engines "
                                f"{', '.join(ENGINES)} (e.g. --cni enforcing,open)")
        if not _CNI_RE.match(cni):
            raise SettingsError(f"{name}: {cni!r} is not a CNI name ([a-z0-9-], e.g. calico)")
    return names


def build(values: Mapping[str, Any] | None = None, ini: Mapping[str, Any] | None = None,
          env: Mapping[str, str] | None = None) -> Settings:
    """Resolve Settings from explicit values (options/CLI; None = not given), env and ini.

    Why this order: what a person typed wins over what the environment says, which wins over
    the project's pyproject defaults.
    """
    values = {k: v for k, v in (values or {}).items() if v is not None and v != ""}
    ini = {k: v for k, v in (ini or {}).items() if v is not None and v != "" and v != []}
    env = os.environ if env is None else env
    raw: dict[str, tuple[str, Any]] = {}
    for key, (opt, env_name, ini_key) in SOURCES.items():
        if key in values:
            raw[key] = (opt, values[key])
        elif env.get(env_name):
            raw[key] = (env_name, env[env_name])
        elif ini_key in ini:
            raw[key] = (f"ini {ini_key}", ini[ini_key])
    out: dict[str, Any] = {}
    backend = str(raw.get("backend", ("", "local"))[1]).strip()
    if backend not in BACKENDS:
        raise SettingsError(f"{raw['backend'][0]}: unknown backend {backend!r}; "
                            f"choose one of {', '.join(BACKENDS)}")
    out["backend"] = backend
    kube = backend != "local"
    if "cnis" in raw:
        out["cnis"] = _cnis(raw["cnis"][0], raw["cnis"][1], backend)
    elif kube:
        raise SettingsError(f"--cni: the {backend} backend needs a CNI name (e.g. --cni calico)")
    # real engines on the local backend program policies asynchronously, like any cluster
    real = kube or any(not emulated(backend, c) for c in out.get("cnis", ()))
    out["probe_timeout"] = _seconds(*raw["probe_timeout"]) if "probe_timeout" in raw \
        else (2.0 if kube else 1.0)
    out["converge_timeout"] = _seconds(*raw["converge_timeout"]) if "converge_timeout" in raw \
        else (60.0 if kube else 30.0 if real else 10.0)
    if "min_window" in raw:
        name, v = raw["min_window"]
        out["min_window"] = 0.0 if str(v).strip() in ("0", "0.0") else _seconds(name, v)
    else:
        out["min_window"] = KUBE_MIN_WINDOW if kube else 3.0
    if "min_rounds" in raw:
        out["min_rounds"] = _whole(*raw["min_rounds"], "rounds", 2, 100,
                                   " (two rounds must agree before a step ends)")
    if out["min_window"] >= out["converge_timeout"]:
        name = raw.get("min_window", ("--min-window",))[0]
        raise SettingsError(f"{name}: {out['min_window']:g}s must be shorter than the converge "
                            f"timeout ({out['converge_timeout']:g}s), or no step can settle "
                            f"after its window")
    for key in ("keep_cluster", "reuse_cluster", "allow_cluster_scoped", "canary"):
        if key in raw:
            out[key] = _bool(*raw[key])
    for key in ("json_path", "html_path", "context", "allow_context",
                "allow_faults_on_context", "engine_pods"):
        if key in raw:
            out[key] = str(raw[key][1])
    if "run_id" in raw:
        name, rid = raw["run_id"]
        if not naming.valid_run_id(str(rid)):
            raise SettingsError(f"{name}: {rid!r} is not a run id: 4-8 characters of [a-z0-9]")
        out["run_id"] = str(rid)
    if "concurrency" in raw:
        out["concurrency"] = _whole(*raw["concurrency"], "probes", 1, 256, " in flight")
    if "jobs" in raw:
        out["jobs"] = _whole(*raw["jobs"], "scenarios", 1, MAX_JOBS, " at once")
    if "agnhost_image" in raw:
        name, image = raw["agnhost_image"]
        image = str(image).strip()
        if backend not in ("kind", "kubeconfig"):
            raise SettingsError(f"{name}: only the kind and kubeconfig backends run agnhost pods; "
                                f"the {backend} backend takes no image (its own tools or catalog)")
        if not _IMAGE_RE.match(image):
            raise SettingsError(f"{name}: {image!r} is not an image reference; write "
                                f"[registry/]path[:tag][@sha256:<64 hex>], e.g. "
                                f"mirror.example:5000/e2e-test-images/agnhost:2.66.1")
        out["agnhost_image"] = image
    if backend == "kubeconfig":
        ctx, allow = out.get("context"), out.get("allow_context")
        if not ctx:
            raise SettingsError("--context: the kubeconfig backend needs the context to run in")
        if allow != ctx:
            raise SettingsError(f"--allow-context: the kubeconfig backend modifies context "
                                f"{ctx!r}; repeat its name with --allow-context {ctx} to agree")
        faults = out.get("allow_faults_on_context")
        if faults is not None and faults != ctx:
            raise SettingsError(f"{raw['allow_faults_on_context'][0]}: names context "
                                f"{faults!r}, but this run uses context {ctx!r}; fault steps "
                                f"restart the CNI agent of the context the run uses, so name "
                                f"that one (--allow-faults-on-context {ctx}) or leave it out")
        if "engine_pods" in raw:
            # lazy: a backend's modules load only when its settings are used
            from harness.backends.kube.agent import parse_agent_pods
            try:
                parse_agent_pods(out["engine_pods"])
            except ValueError as exc:
                raise SettingsError(f"{raw['engine_pods'][0]}: {exc}") from None
    else:
        for key in ("allow_faults_on_context", "engine_pods"):
            if key in raw:
                raise SettingsError(f"{raw[key][0]}: only the kubeconfig backend takes it (an "
                                    f"existing cluster); the {backend} backend runs fault steps "
                                    f"on what it created itself")
    return Settings(**out)


def declared_capabilities(backend: str, cni: str) -> Capabilities:
    """What `cni` on `backend` declares, without bringing anything up (for skips and listings).

    Why here: collection must know what to skip before any cluster exists; the facts live with
    each backend family, found through harness.backends.capabilities.
    """
    try:
        return backend_capabilities(backend, cni)
    except ValueError as exc:
        raise SettingsError(f"--cni: {exc}") from None
