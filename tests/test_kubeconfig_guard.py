"""The existing-cluster safety guard, on kubeconfig files written here: which contexts are
refused, how to allow one, and the private minified kubeconfig (no API server is contacted)."""

import os
import stat

import pytest
import yaml

from harness.backends import cni as cnis
from harness.backends import kubeconfig as kcfg
from harness.backends.kube import manifests as km
from harness.backends.kubeconfig import KubeconfigBackend
from harness.errors import UsageError
from harness.model import Model


def write_config(path, contexts, current="kind-dev"):
    """contexts: name -> server. One cluster and user per context; relative cert paths."""
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": current,
           "clusters": [{"name": f"c-{n}", "cluster": {"server": s,
                                                       "certificate-authority": f"certs/{n}-ca.crt"}}
                        for n, s in contexts.items()],
           "users": [{"name": f"u-{n}", "user": {"client-key": f"certs/{n}.key", "token": "t"}}
                     for n in contexts],
           "contexts": [{"name": n, "context": {"cluster": f"c-{n}", "user": f"u-{n}",
                                                "namespace": "default"}} for n in contexts]}
    path.write_text(yaml.safe_dump(doc))
    return path


CONTEXTS = {"kind-dev": "https://127.0.0.1:40123", "prod-eks": "https://ABC.gr7.eks.amazonaws.com",
            "kind-prod": "https://10.1.2.3:6443", "gke_proj_zone_c": "https://34.1.2.3"}


@pytest.mark.parametrize("context, allow, ok", [
    ("kind-dev", None, True),                   # a kind- context on loopback
    ("prod-eks", None, False),                  # not kind-: refused ...
    ("prod-eks", "prod-eks", True),             # ... unless named again
    ("prod-eks", "other", False),               # allowing another context does not count
    ("kind-prod", None, False),                 # a kind- name on a remote server proves nothing
    ("kind-prod", "kind-prod", True),
    ("gke_proj_zone_c", "GKE_PROJ_ZONE_C", False),   # exact name only
])
def test_guard(tmp_path, context, allow, ok):
    cfg = kcfg.minify([write_config(tmp_path / "config", CONTEXTS)], context)
    server = kcfg.server_of(cfg)
    if ok:
        kcfg.check_context(context, allow, server)
    else:
        with pytest.raises(UsageError) as err:
            kcfg.check_context(context, allow, server)
        assert f"--allow-context {context}" in str(err.value)
        assert "refusing to modify this cluster" in str(err.value)


def test_no_context_is_refused():
    with pytest.raises(UsageError, match="needs the name of the context"):
        kcfg.check_context(None, None, "https://127.0.0.1:1")


def test_minify_keeps_only_the_chosen_context_with_absolute_paths(tmp_path):
    path = write_config(tmp_path / "config", CONTEXTS)
    cfg = kcfg.minify([path], "prod-eks")
    assert cfg["current-context"] == "prod-eks"
    assert [c["name"] for c in cfg["contexts"]] == ["prod-eks"]
    assert [c["name"] for c in cfg["clusters"]] == ["c-prod-eks"]
    assert [u["name"] for u in cfg["users"]] == ["u-prod-eks"]
    assert cfg["clusters"][0]["cluster"]["certificate-authority"] == \
        str(tmp_path / "certs" / "prod-eks-ca.crt")
    assert cfg["users"][0]["user"]["client-key"] == str(tmp_path / "certs" / "prod-eks.key")


def test_minify_searches_every_kubeconfig_file(tmp_path):
    a = write_config(tmp_path / "a", {"kind-dev": CONTEXTS["kind-dev"]})
    b = write_config(tmp_path / "b", {"prod-eks": CONTEXTS["prod-eks"]})
    assert kcfg.minify([tmp_path / "missing", a, b], "prod-eks")["current-context"] == "prod-eks"


def test_unknown_context_names_the_files_and_the_known_contexts(tmp_path):
    path = write_config(tmp_path / "config", CONTEXTS)
    with pytest.raises(UsageError) as err:
        kcfg.minify([path], "kind-typo")
    assert str(path) in str(err.value) and "kind-dev" in str(err.value)


def test_context_whose_user_is_missing_is_refused(tmp_path):
    path = write_config(tmp_path / "config", CONTEXTS)
    doc = yaml.safe_load(path.read_text())
    doc["users"] = [u for u in doc["users"] if u["name"] != "u-kind-dev"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UsageError, match="its user 'u-kind-dev' is not defined"):
        kcfg.minify([path], "kind-dev")


def test_kubeconfig_files_order(tmp_path):
    assert kcfg.kubeconfig_files("/x/y", {"KUBECONFIG": "/a"}) == [kcfg.Path("/x/y")]
    assert kcfg.kubeconfig_files(None, {"KUBECONFIG": f"/a{os.pathsep}/b"}) == \
        [kcfg.Path("/a"), kcfg.Path("/b")]
    assert kcfg.kubeconfig_files(None, {})[0].name == "config"


def test_up_refuses_before_writing_anything(tmp_path):
    path = write_config(tmp_path / "config", CONTEXTS)
    b = KubeconfigBackend("calico", "abc123", context="prod-eks", kubeconfig=str(path),
                          status=lambda s: None)
    with pytest.raises(UsageError):
        b.up()
    assert b.private_dir is None and b.topology is None


def test_up_pins_the_context_in_a_private_file_and_down_removes_it(tmp_path):
    path = write_config(tmp_path / "config", CONTEXTS, current="prod-eks")
    (tmp_path / "certs").mkdir()
    for name in ("kind-dev-ca.crt", "kind-dev.key"):
        (tmp_path / "certs" / name).write_text("not used before a call\n")
    b = KubeconfigBackend("calico", "abc123", context="kind-dev", kubeconfig=str(path),
                          status=lambda s: None)
    b.up()      # builds the client; nothing is contacted until a call
    try:
        private = os.path.join(b.private_dir, "kubeconfig")
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
        doc = yaml.safe_load(open(private))
        assert doc["current-context"] == "kind-dev" and len(doc["contexts"]) == 1
        assert b.topology.api.server == "https://127.0.0.1:40123"
        assert b.topology.image == cnis.AGNHOST_IMAGE     # the pinned default, by digest
        # the user's file is untouched: its current context still points elsewhere
        assert yaml.safe_load(path.read_text())["current-context"] == "prod-eks"
    finally:
        b.topology = None     # no cluster to undeploy from
        b.down()
    assert not os.path.exists(private)


def test_client_that_cannot_load_the_context_is_a_usage_error_and_leaves_no_file(tmp_path):
    path = write_config(tmp_path / "config", CONTEXTS)     # its certificate files do not exist
    b = KubeconfigBackend("calico", "abc123", context="kind-dev", kubeconfig=str(path),
                          status=lambda s: None)
    with pytest.raises(UsageError, match="--context kind-dev: the kubernetes client cannot use "
                                         "it: File does not exist"):
        b.up()
    assert b.private_dir is None


def test_cluster_scoped_policies_are_not_a_capability_unless_allowed():
    assert "cluster-scoped-policy" not in KubeconfigBackend("calico").capabilities().supported
    caps = KubeconfigBackend("calico", allow_cluster_scoped=True).capabilities()
    assert "cluster-scoped-policy" in caps.supported and "calico-policy" in caps.supported
    unknown = KubeconfigBackend("weave").capabilities()
    assert "networkpolicy" in unknown.supported and "external-hosts" not in unknown.supported
    assert "canary" in unknown.notes["enforces"]


def test_an_unknown_cni_is_not_assumed_to_match_pod_ips_by_ipblock():
    caps = KubeconfigBackend("some-cni", "abc123", context="kind-dev").capabilities()
    assert "ipblock" in caps.supported and "ipblock-pod-ip" not in caps.supported
    assert "not assumed" in caps.match(["ipblock-pod-ip"])[1]
    assert "ipblock-pod-ip" in KubeconfigBackend("calico", "abc123",
                                                 context="kind-dev").capabilities().supported


def test_the_probe_pods_run_the_agnhost_image_setting(tmp_path):
    """An air-gapped cluster pulls agnhost from a mirror: --agnhost-image reaches the pods."""
    path = write_config(tmp_path / "config", CONTEXTS, current="prod-eks")
    (tmp_path / "certs").mkdir()
    for name in ("kind-dev-ca.crt", "kind-dev.key"):
        (tmp_path / "certs" / name).write_text("not used before a call\n")
    mirror = "mirror.example:5000/e2e/agnhost:2.66.1"
    b = KubeconfigBackend("calico", "abc123", context="kind-dev", kubeconfig=str(path),
                          status=lambda s: None, image=mirror)
    b.up()
    try:
        assert b.topology.image == mirror
        model = Model.default(namespaces=["x"], pods=["a"])
        objs = km.topology(model, km.NameMap("abc123", ["x"]), b.topology.image)
        pod = next(o for o in objs if o["kind"] == "Pod")
        assert {c["image"] for c in pod["spec"]["containers"]} == {mirror}
    finally:
        b.topology = None
        b.down()
