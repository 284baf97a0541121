"""kind configs: the checked-in files are the rendering, and the rendering has the shape kind and
the notes require (one control plane + two workers, pinned node image, subnets, dnsSearch)."""

import copy

import pytest
import yaml

from harness.backends import cni
from harness.backends.kind import config as kind_config


@pytest.mark.parametrize("name", cni.CNIS)
def test_file_on_disk_equals_rendering(name):
    path = kind_config.CONFIG_DIR / f"{name}.yaml"
    assert path.read_text() == kind_config.render_text(name), (
        f"{path} is stale: python -m harness.backends.kind.config kind-config/")


@pytest.mark.parametrize("name", cni.CNIS)
def test_rendering_is_valid_and_pinned(name):
    cfg = yaml.safe_load((kind_config.CONFIG_DIR / f"{name}.yaml").read_text())
    assert kind_config.validate(cfg) == []
    assert cfg["name"] == f"netpol-proof-{name}"
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker"]
    for node in cfg["nodes"]:
        assert node["image"] == ("kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f"
                                 "798ce64c80f9e22f6ed45afd09323c0")
    net = cfg["networking"]
    assert (net["podSubnet"], net["serviceSubnet"], net["dnsSearch"]) == \
        ("10.244.0.0/16", "10.96.0.0/16", [])
    # kindnet is kind's default CNI: the only config that keeps it
    assert net.get("disableDefaultCNI", False) is (name != "kindnet")


def test_only_flannel_mounts_the_cni_plugins_cache():
    for name in cni.CNIS:
        mounts = [m for n in kind_config.render(name)["nodes"] for m in n.get("extraMounts", [])]
        if name == "flannel":
            assert len(mounts) == 3
            assert all(m == {"hostPath": kind_config.FILE_PLUGINS_DIR,
                             "containerPath": "/opt/cni/bin"} for m in mounts)
        else:
            assert mounts == []


def test_backend_rendering_uses_its_own_plugins_dir():
    cfg = kind_config.render("flannel", "/home/u/.cache/netpol-proof/cni-plugins/x")
    assert {m["hostPath"] for n in cfg["nodes"] for m in n["extraMounts"]} == \
        {"/home/u/.cache/netpol-proof/cni-plugins/x"}
    assert "&id" not in kind_config.render_text("flannel", "/p")   # no YAML anchors


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c.update(apiVersion="kind.x-k8s.io/v1alpha3"), "apiVersion"),
    (lambda c: c.update(name="Netpol_Proof"), "[a-z0-9.-]+"),
    (lambda c: c.update(name="kind"), "does not start with"),
    (lambda c: c.update(name="netpol-proof-" + "x" * 40), "at most 50"),
    (lambda c: c["networking"].update(dnsSearch=None), "dnsSearch"),
    (lambda c: c["networking"].update(podSubnet="192.168.0.0/16"), "podSubnet"),
    (lambda c: c["networking"].update(podSubnett="10.0.0.0/8"), "podSubnett: unknown field"),
    (lambda c: c["networking"].update(disableDefaultCNI="yes"), "true or false"),
    (lambda c: c["nodes"].pop(), "two workers"),
    (lambda c: c["nodes"][1].update(role="master"), "control-plane/worker"),
    (lambda c: c["nodes"][0].update(image="kindest/node:v1.35.8"), "@sha256"),
    (lambda c: c["nodes"][0].update(imagee="x"), "imagee: unknown field"),
    (lambda c: c["nodes"][0].update(extraMounts=[{"hostPath": "rel", "containerPath": "/x"}]),
     "absolute hostPath"),
])
def test_validate_names_each_problem(mutate, expected):
    cfg = copy.deepcopy(kind_config.render("calico"))
    mutate(cfg)
    problems = kind_config.validate(cfg, "calico.yaml")
    assert problems and any(expected in p for p in problems), problems
    assert all(p.startswith("calico.yaml") for p in problems)


def test_validate_rejects_non_mapping():
    assert kind_config.validate([1, 2]) == ["kind config: a kind config is a mapping"]
