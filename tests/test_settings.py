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
