"""Settings: precedence (option > env > ini > default), per-backend defaults, plain errors."""

import dataclasses

import pytest

from harness.settings import Settings, SettingsError, build


def test_local_defaults():
    s = build({}, {}, env={})
    assert (s.backend, s.cnis, s.probe_timeout, s.converge_timeout) == \
        ("local", ("enforcing",), 1.0, 10.0)
    assert (s.min_rounds, s.min_window) == (3, 3.0)      # the observation window
    assert len(s.run_id) == 6
    assert "min-rounds=3 min-window=3s" in s.describe()


def test_kube_defaults_are_slower_with_a_longer_observation_window():
    s = build({"backend": "kind", "cnis": "calico,cilium"}, env={})
    assert s.cnis == ("calico", "cilium")
    assert (s.probe_timeout, s.converge_timeout, s.min_rounds, s.min_window) == \
        (2.0, 60.0, 3, 10.0)


def test_the_observation_window_is_set_and_checked():
    s = build({"min_rounds": "5", "min_window": "0"}, env={})
    assert (s.min_rounds, s.min_window) == (5, 0.0)
    assert build({}, {"netpol_min_window": "4.5"}, env={}).min_window == 4.5
    with pytest.raises(SettingsError, match="--min-rounds: 1 must be between 2 and 100 rounds"):
        build({"min_rounds": "1"}, env={})
    with pytest.raises(SettingsError, match="--min-window: 12s must be shorter than the converge"):
        build({"min_window": "12"}, env={})


def test_precedence_option_env_ini():
    ini = {"netpol_cni": "open", "netpol_probe_timeout": "3", "netpol_converge_timeout": "7"}
    env = {"NETPOL_PROBE_TIMEOUT": "2.5"}
    s = build({"converge_timeout": 4}, ini, env)
    assert s.cnis == ("open",)          # ini
    assert s.probe_timeout == 2.5       # env beats ini
    assert s.converge_timeout == 4.0    # option beats all


@pytest.mark.parametrize("values, message", [
    ({"backend": "docker"}, "unknown backend 'docker'"),
    ({"cnis": "cilium"}, "'cilium' is not a local profile"),
    ({"probe_timeout": "fast"}, "--probe-timeout: 'fast' is not a number"),
    ({"probe_timeout": "-1"}, "must be more than 0"),
    ({"run_id": "NOPE!"}, "--netpol-run-id"),
    ({"concurrency": "0"}, "between 1 and 256"),
    ({"backend": "kind"}, "needs a CNI name"),
    ({"backend": "kubeconfig", "cnis": "calico", "context": "prod"}, "--allow-context prod"),
    ({"keep_cluster": "perhaps"}, "not a boolean"),
])
def test_bad_values_are_plain_errors(values, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        build(values, env={})


def test_kubeconfig_needs_matching_allow_context():
    s = build({"backend": "kubeconfig", "cnis": "calico", "context": "lab", "allow_context": "lab"},
              env={})
    assert s.backend_options()["context"] == "lab"


def test_worker_run_ids_differ_and_settings_are_frozen():
    s = build({"run_id": "abc123"}, env={})
    w0, w1 = s.for_worker("gw0"), s.for_worker("gw1")
    assert len({s.run_id, w0.run_id, w1.run_id}) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.backend = "kind"  # type: ignore[misc]
    assert "run-id=abc123" in s.describe()
    assert isinstance(s, Settings)


def test_real_engines_are_local_cnis_that_wait_like_a_cluster():
    from harness.settings import declared_capabilities
    s = build({"cnis": "kube-router,none"}, env={})
    assert s.cnis == ("kube-router", "none") and s.backend == "local"
    # policies are programmed asynchronously: a longer deadline to settle, the same window
    assert s.converge_timeout == 30.0 and s.min_window == 3.0
    emulated = build({"cnis": "enforcing"}, env={})
    assert emulated.converge_timeout == 10.0 and emulated.min_window == 3.0
    caps = declared_capabilities("local", "kube-router")
    assert caps.deny_response == "reject" and caps.enforces
    assert not declared_capabilities("local", "none").enforces


def test_jobs_is_a_whole_number_of_scenarios_within_bounds():
    assert build({"jobs": "4"}, env={}).jobs == 4
    assert build({}, env={"NETPOL_JOBS": "2"}).jobs == 2
    assert build({}, env={}).jobs is None          # chosen by the session from the cores
    with pytest.raises(SettingsError, match="--netpol-jobs: 'many' is not a whole number of scenarios"):
        build({"jobs": "many"}, env={})
    with pytest.raises(SettingsError, match="--netpol-jobs: 0 must be between 1 and 64 scenarios at once"):
        build({"jobs": "0"}, env={})


def test_the_agnhost_image_is_a_setting_for_the_kube_backends():
    """Air-gapped clusters pull the probe image from a mirror: the reference is a setting, the
    pinned upstream tag and digest by default, handed to the kind and kubeconfig backends."""
    from harness.backends.cni import AGNHOST_IMAGE
    kind = build({"backend": "kind", "cni": None, "cnis": "calico"}, env={})
    assert kind.agnhost_image == AGNHOST_IMAGE
    assert kind.backend_options()["image"] == AGNHOST_IMAGE
    mirror = "mirror.example:5000/e2e/agnhost:2.66.1"
    assert build({"backend": "kind", "cnis": "calico", "agnhost_image": mirror},
                 env={}).backend_options()["image"] == mirror
    cfg = build({"backend": "kubeconfig", "cnis": "calico", "context": "c", "allow_context": "c"},
                env={"NETPOL_AGNHOST_IMAGE": mirror})
    assert cfg.agnhost_image == mirror and cfg.backend_options()["image"] == mirror
    assert build({"backend": "kind", "cnis": "calico"}, ini={"netpol_agnhost_image": mirror},
                 env={}).agnhost_image == mirror
    assert "image" not in build({}, env={}).backend_options()


@pytest.mark.parametrize("values,message", [
    ({"backend": "kind", "cnis": "calico", "agnhost_image": "agn host:1"},
     "--agnhost-image: 'agn host:1' is not an image reference"),
    ({"backend": "kind", "cnis": "calico", "agnhost_image": "Mirror/Agnhost:1"},
     "--agnhost-image: 'Mirror/Agnhost:1' is not an image reference"),
    ({"backend": "kind", "cnis": "calico", "agnhost_image": "agnhost@sha256:12"},
     "is not an image reference"),
    ({"agnhost_image": "mirror/agnhost:1"},
     "--agnhost-image: only the kind and kubeconfig backends run agnhost pods"),
])
def test_a_bad_agnhost_image_is_a_plain_error(values, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        build(values, env={})


# -- the two front ends declare the same options, from harness.settings.OPTIONS -----------------
class Declared:
    """Stands in for pytest's parser and option group, and argparse's parser: records what a
    front end declares (names, keyword arguments) and its ini keys."""

    def __init__(self):
        self.options: list[tuple[tuple[str, ...], dict]] = []
        self.inis: dict[str, str] = {}

    def getgroup(self, name, description=""):
        return self

    def addoption(self, *names, **kwargs):
        self.options.append((names, kwargs))

    add_argument = addoption

    def addini(self, name, help, **kwargs):
        self.inis[name] = help

    def by_setting(self, prefix: str = "") -> dict[str, list[tuple[tuple[str, ...], dict]]]:
        out: dict[str, list] = {}
        for names, kw in self.options:
            out.setdefault(kw["dest"].removeprefix(prefix), []).append((names, kw))
        return out


def _without_sources(help_text: str) -> str:
    return help_text.rsplit(" [env ", 1)[0]


def test_every_setting_is_one_row_of_the_options_table():
    from harness.settings import OPTIONS, SOURCES
    assert [o.key for o in OPTIONS] == [f.name for f in dataclasses.fields(Settings)]
    for attr in ("flag", "env", "ini"):
        spellings = [getattr(o, attr) for o in OPTIONS]
        assert len(set(spellings)) == len(spellings), attr
    assert SOURCES == {o.key: (o.flag, o.env, o.ini) for o in OPTIONS}


def test_the_plugin_and_the_cli_offer_every_setting_alike():
    """Same names (the CLI adds only its shorter spellings), same defaults (none: `build`
    resolves), same help (each then names the sources it reads: the CLI reads no ini)."""
    from harness import plugin
    from harness.commands import run
    from harness.settings import OPTIONS

    pytest_side, cli_side = Declared(), Declared()
    plugin.pytest_addoption(pytest_side)
    run.add_settings(cli_side)
    by_pytest, by_cli = pytest_side.by_setting("netpol_"), cli_side.by_setting()
    assert set(by_pytest) == set(by_cli) == {f.name for f in dataclasses.fields(Settings)}
    for o in OPTIONS:
        mine, theirs = by_pytest[o.key], by_cli[o.key]
        assert len(mine) == len(theirs), o.key
        for (p_names, p_kw), (c_names, c_kw) in zip(mine, theirs, strict=True):
            assert c_names[-len(p_names):] == p_names, o.key     # the plugin's spellings, last
            assert set(c_names) - set(p_names) <= set(o.cli), o.key
            assert p_kw["default"] is None and c_kw["default"] is None, o.key
            assert _without_sources(p_kw["help"]) == _without_sources(c_kw["help"]), o.key
            assert {k: v for k, v in p_kw.items() if k not in ("dest", "help")} == \
                {k: v for k, v in c_kw.items() if k not in ("dest", "help")}, o.key
        assert _without_sources(mine[0][1]["help"]) == o.help
        assert mine[0][1]["help"].endswith(f"[env {o.env}, ini {o.ini}]")
        assert theirs[0][1]["help"].endswith(f"[env {o.env}]")
        assert pytest_side.inis[o.ini] == o.help


def test_the_cli_reaches_every_setting_by_the_plugins_spelling_and_its_own():
    """Each option given on `run`'s real command line arrives in Settings as `build` makes it
    from the same values (the kubeconfig backend: the one that takes every option)."""
    from harness.cli import build_parser
    from harness.commands.run import _settings
    from harness.settings import OPTIONS

    values = {"backend": "kubeconfig", "cnis": "calico", "probe_timeout": "0.5",
              "converge_timeout": "20", "min_rounds": "4", "min_window": "5",
              "json_path": "/tmp/r.json", "html_path": "/tmp/r.html", "run_id": "abcd12",
              "concurrency": "8", "jobs": "2", "context": "kind-x", "allow_context": "kind-x",
              "canary": "false", "allow_faults_on_context": "kind-x",
              "engine_pods": "kube-system/k8s-app=calico-node",
              "agnhost_image": "mirror.example:5000/e2e/agnhost:2.66.1"}
    switches = [o for o in OPTIONS if o.switch]
    assert {o.key for o in OPTIONS} == set(values) | {o.key for o in switches}
    expected = build({**values, **{o.key: True for o in switches}}, env={})
    for spelling in ("flag", "cli"):
        argv = ["run", "x.yaml"]
        for o in OPTIONS:
            name = o.cli[-1] if spelling == "cli" and o.cli else o.flag
            argv += [name] if o.switch else [name, values[o.key]]
        got = _settings(build_parser().parse_args(argv))
        assert got == expected, spelling
        assert got.min_rounds == 4 and got.min_window == 5.0 and got.concurrency == 8
    no_canary = build_parser().parse_args(["run", "x.yaml", "--no-canary"])
    assert _settings(no_canary).canary is False
    assert _settings(build_parser().parse_args(["run", "x.yaml"])).canary is True


def test_each_backend_s_cnis_and_declarations_come_from_one_table():
    """harness.backends answers "which CNIs, declaring what" from each family's one table: the
    emulated profiles, the real engines, kind's CNIs (also a kubeconfig cluster's)."""
    from harness.backends import BACKENDS, capabilities, cni, cnis, emulated
    from harness.backends.local import profiles
    from harness.backends.real import engines
    from harness.backends.real.realnodes import cnis as realnodes
    from harness.settings import declared_capabilities

    assert cnis("local") == tuple(profiles.SPECS) + tuple(engines.SPECS)
    assert cnis("realnodes") == tuple(realnodes.SPECS)
    assert cnis("kind") == cnis("kubeconfig") == tuple(cni.SPECS) == cni.CNIS
    for backend in BACKENDS:
        for name in cnis(backend):
            table = (profiles.SPECS.get(name) or engines.SPECS[name].caps) \
                if backend == "local" else realnodes.SPECS[name].caps \
                if backend == "realnodes" else cni.SPECS[name].caps
            assert capabilities(backend, name) is table is declared_capabilities(backend, name)
            assert emulated(backend, name) == (backend == "local" and name in profiles.SPECS)
            assert build({"backend": backend, "cnis": name, "context": "c",
                          "allow_context": "c"}).cnis == (name,)
    with pytest.raises(ValueError, match="expected one of enforcing, open, kube-router"):
        capabilities("local", "cilium")
    with pytest.raises(SettingsError, match="--cni: 'kube-router' is not a CNI the kind backend"):
        declared_capabilities("kind", "kube-router")
