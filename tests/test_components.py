"""The pinned real components: the registry agrees with the wrapper go.mod files, lookup follows
TEST_ASSET_<NAME>, then $KUBEBUILDER_ASSETS (etcd, kube-apiserver), then the cache; the cache
key follows go.mod, go.sum and the recipe; without Go the reason says so; a broken wrapper
module fails with Go's own error and leaves no cache entry; and every binary in the cache runs
and reports its pinned version (skipped, with the reason, when it is not built)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from harness import components as comp
from harness.components import ComponentBuildError, ComponentMissing, pins
from harness.errors import HarnessError
from harness.shell import run


def _gomod(family: str) -> str:
    return (comp.MODULES_DIR / family / "go.mod").read_text()


def _exe(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No inherited TEST_ASSET_*/KUBEBUILDER_ASSETS; the cache in a fresh directory."""
    for var in list(os.environ):
        if var.startswith("TEST_ASSET_") or var == "KUBEBUILDER_ASSETS":
            monkeypatch.delenv(var)
    monkeypatch.setenv("NETPOL_PROOF_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _fill_entry(family: str) -> Path:
    """Make the cache entry of `family` look built: every binary and the marker."""
    entry = comp.entry_dir(family)
    for c in comp.members(family):
        _exe(entry / "bin" / c.name)
    (entry / comp.MARKER).write_text("{}\n")
    return entry


# --- the registry against the committed wrapper modules -----------------------------------------


def test_every_family_has_a_wrapper_module_pinning_its_version():
    for fam in comp.FAMILIES.values():
        text = _gomod(fam.name)
        if fam.own:     # the project's own code: its module is itself
            assert re.search(rf"^module\s+{re.escape(fam.module)}\s*$", text, re.M)
            assert list((comp.MODULES_DIR / fam.name).glob("*.go"))
            continue
        want = fam.require or fam.version
        assert re.search(rf"^\s*(?:require\s+)?{re.escape(fam.module)}\s+{re.escape(want)}\b",
                         text, re.M), \
            f"components/{fam.name}/go.mod does not require {fam.module} {want}"
        assert (comp.MODULES_DIR / fam.name / "go.sum").is_file()
        assert not list((comp.MODULES_DIR / fam.name).glob("*.go")), \
            "no wrapper needs a main.go: every pinned main package lives in its module"


def _tools(gomod: str) -> set[str]:
    """The `tool` directives of a go.mod, single-line and block form."""
    tools = set(re.findall(r"^tool\s+([^\s(]\S*)\s*$", gomod, re.M))
    for block in re.findall(r"^tool\s*\((.*?)^\)", gomod, re.M | re.S):
        tools.update(ln.split("//")[0].strip() for ln in block.splitlines() if ln.strip())
    return tools - {""}


def test_every_component_is_a_tool_of_its_family_module():
    for c in comp.COMPONENTS.values():
        if comp.FAMILIES[c.family].own:
            assert c.package == comp.FAMILIES[c.family].module
            continue
        assert c.package in _tools(_gomod(c.family)), \
            f"{c.package} is not a `tool` of components/{c.family}/go.mod"


def test_kubernetes_wrapper_replaces_every_staging_module_and_keeps_upstream_godebug():
    text = _gomod("kubernetes")
    replaced = dict(re.findall(r"^\s*(k8s\.io/\S+) => k8s\.io/\S+ (v\S+)\s*$", text, re.M))
    assert replaced and set(replaced.values()) == {"v0.35.8"}
    assert "godebug default=go1.25" in text
    # The list is derived from k8s.io/kubernetes' own go.mod when the module cache has it.
    gomodcache = Path(os.environ.get("GOMODCACHE") or Path.home() / "go" / "pkg" / "mod")
    upstream = gomodcache / "cache/download/k8s.io/kubernetes/@v/v1.35.8.mod"
    if not upstream.is_file():
        pytest.skip(f"{upstream} is not downloaded; the replace list cannot be re-derived here")
    derived = comp.staging_replaces(upstream.read_text(), "v0.35.8")
    assert sorted(f"{m} => {m} {v}" for m, v in replaced.items()) == derived


def test_staging_replaces_takes_exactly_the_placeholder_requires():
    gomod = ("module k8s.io/kubernetes\n\nrequire (\n\tk8s.io/api v0.0.0\n"
             "\tk8s.io/klog/v2 v2.130.1\n\tk8s.io/kms v0.0.0 // indirect\n)\n"
             "require k8s.io/streaming v0.0.0\n")
    assert comp.staging_replaces(gomod, "v0.36.3") == [
        "k8s.io/api => k8s.io/api v0.36.3", "k8s.io/kms => k8s.io/kms v0.36.3",
        "k8s.io/streaming => k8s.io/streaming v0.36.3"]


def test_component_missing_is_a_harness_error():
    assert issubclass(ComponentMissing, HarnessError)
    with pytest.raises(ComponentMissing, match="unknown component 'cloud-controller-manager'"):
        comp.find("cloud-controller-manager")


# --- lookup order -------------------------------------------------------------------------------


def test_env_var_names_follow_envtest():
    assert comp.env_var("kube-apiserver") == "TEST_ASSET_KUBE_APISERVER"
    assert comp.env_var("calico-felix") == "TEST_ASSET_CALICO_FELIX"
    assert comp.env_var("etcd") == "TEST_ASSET_ETCD"


def test_test_asset_beats_kubebuilder_assets_and_the_cache(clean_env, monkeypatch):
    _fill_entry("etcd")
    assets = clean_env / "assets"
    _exe(assets / "etcd")
    mine = _exe(clean_env / "mine" / "etcd")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    monkeypatch.setenv("TEST_ASSET_ETCD", str(mine))
    assert comp.find("etcd") == mine
    assert comp.locate("etcd").source == "TEST_ASSET_ETCD"
    monkeypatch.delenv("TEST_ASSET_ETCD")
    assert comp.find("etcd") == assets / "etcd"
    assert comp.locate("etcd").source == "KUBEBUILDER_ASSETS"
    monkeypatch.delenv("KUBEBUILDER_ASSETS")
    assert comp.find("etcd") == comp.entry_dir("etcd") / "bin" / "etcd"
    assert comp.locate("etcd").source == "cache"


def test_kubebuilder_assets_serve_only_etcd_and_kube_apiserver(clean_env, monkeypatch):
    assets = clean_env / "assets"
    for name in ("etcd", "kube-apiserver", "kube-router"):
        _exe(assets / name)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    assert comp.find("kube-apiserver") == assets / "kube-apiserver"
    found = comp.locate("kube-router")
    assert found.path is None and found.source == "missing"


def test_kubebuilder_assets_without_the_binary_fall_through_to_the_cache(clean_env, monkeypatch):
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(clean_env / "empty"))
    entry = _fill_entry("kubernetes")
    assert comp.find("kube-apiserver") == entry / "bin" / "kube-apiserver"


def test_a_test_asset_that_is_not_there_is_an_error_not_a_fallback(clean_env, monkeypatch):
    _fill_entry("etcd")
    monkeypatch.setenv("TEST_ASSET_ETCD", str(clean_env / "nope"))
    with pytest.raises(ComponentMissing, match=r"TEST_ASSET_ETCD=.*nope is not an executable"):
        comp.find("etcd")


def test_an_entry_without_its_marker_is_not_used(clean_env):
    entry = _fill_entry("kube-router")
    (entry / comp.MARKER).unlink()
    ok, why = comp.available("kube-router")
    assert not ok
    assert "not built" in why and str(entry) in why


def test_an_entry_missing_one_binary_of_its_family_is_not_used(clean_env):
    entry = _fill_entry("kubernetes")
    (entry / "bin" / "kube-proxy").unlink()
    with pytest.raises(ComponentMissing, match="kube-apiserver v1.35.8 is not available"):
        comp.find("kube-apiserver")


def test_without_go_the_reason_says_so_and_build_refuses(clean_env, monkeypatch):
    monkeypatch.setenv("PATH", str(clean_env / "no-go-here"))
    ok, why = comp.available("etcd")
    assert not ok
    assert "no Go toolchain" in why and "go.dev/dl" in why
    with pytest.raises(ComponentMissing, match="cannot build etcd v3.6.16: no Go toolchain"):
        comp.build(["etcd"], status=lambda _msg: None)
    assert not comp.entry_dir("etcd").exists()


def test_with_go_the_reason_says_how_to_build(clean_env):
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain on PATH")
    ok, why = comp.available("coredns")
    assert not ok
    assert "python -m harness.components build coredns" in why
    assert "scripts/setup.sh --with-components" in why


# --- cache key ----------------------------------------------------------------------------------


def _copy_modules(tmp_path: Path) -> Path:
    dst = tmp_path / "modules"
    shutil.copytree(comp.MODULES_DIR, dst)
    return dst


def test_cache_key_follows_go_mod_go_sum_and_recipe(tmp_path, monkeypatch):
    mods = _copy_modules(tmp_path)
    key = comp.cache_key("etcd", mods)
    assert re.fullmatch(r"[0-9a-f]{12}", key)
    assert comp.cache_key("etcd", mods) == key
    assert comp.cache_key("etcd", mods) != comp.cache_key("kubernetes", mods)
    with open(mods / "etcd" / "go.sum", "a") as fh:
        fh.write("example.com/x v1.0.0 h1:AAAA=\n")
    changed_sum = comp.cache_key("etcd", mods)
    assert changed_sum != key
    with open(mods / "etcd" / "go.mod", "a") as fh:
        fh.write("\n// touched\n")
    assert comp.cache_key("etcd", mods) not in (key, changed_sum)
    fam = comp.FAMILIES["etcd"]
    monkeypatch.setitem(comp.FAMILIES, "etcd", comp.Family(fam.name, fam.module, fam.version,
                                                           ldflags=("-s",)))
    assert comp.cache_key("etcd", _copy_modules(tmp_path / "again")) != key


def test_cache_key_of_the_projects_own_code_follows_its_sources(tmp_path):
    """netpol-cri is code of this repository: an edit of a .go file is a new build."""
    mods = _copy_modules(tmp_path)
    key = comp.cache_key("netpol-cri", mods)
    with open(mods / "netpol-cri" / "main.go", "a") as fh:
        fh.write("\n// touched\n")
    assert comp.cache_key("netpol-cri", mods) != key


def test_entry_dir_names_family_version_and_key(clean_env):
    entry = comp.entry_dir("kubernetes")
    assert entry.parent == clean_env / "cache" / "components"
    assert re.fullmatch(r"kubernetes-v1\.35\.8-[0-9a-f]{12}", entry.name)


def test_default_cache_is_under_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("NETPOL_PROOF_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert comp.cache_root() == tmp_path / ".cache" / "netpol-proof" / "components"


# --- building -----------------------------------------------------------------------------------


def test_a_broken_wrapper_module_fails_with_gos_error_and_leaves_nothing(clean_env, monkeypatch):
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain on PATH")
    mods = clean_env / "modules"
    (mods / "etcd").mkdir(parents=True)
    (mods / "etcd" / "go.mod").write_text("module netpol-proof/broken\n\ngo 1.26.0\n")
    (mods / "etcd" / "go.sum").write_text("")
    monkeypatch.setattr(pins, "MODULES_DIR", mods)
    with pytest.raises(ComponentBuildError) as info:
        comp.build(["etcd"], status=lambda _msg: None)
    assert "go build exited" in str(info.value)
    assert "go.etcd.io/etcd/server/v3" in info.value.output       # Go's own complaint
    root = comp.cache_root()
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []


def test_build_argv_names_a_lone_binary_and_uses_a_directory_for_several(tmp_path):
    one = comp.build_argv("etcd", tmp_path)
    assert one[one.index("-o") + 1] == str(tmp_path / "etcd")     # Go would call it `server`
    many = comp.build_argv("kubernetes", tmp_path)
    assert many[many.index("-o") + 1] == str(tmp_path) + os.sep
    assert "-trimpath" in many and "k8s.io/component-base/version.gitVersion=v1.35.8" in \
        many[many.index("-ldflags") + 1]
    assert many[3] == "build" and "k8s.io/kubernetes/cmd/kubelet" in many


def test_build_argv_of_a_test_binary_is_go_test_c(tmp_path):
    """critest's main package has only a _test.go file: `go build` would find nothing to build."""
    argv = comp.build_argv("critest", tmp_path)
    assert argv[3:5] == ["test", "-c"] and argv[argv.index("-o") + 1] == str(tmp_path / "critest")
    assert argv[-1] == "sigs.k8s.io/cri-tools/cmd/critest"
    assert "sigs.k8s.io/cri-tools/pkg/version.Version=v1.34.0" in argv[argv.index("-ldflags") + 1]


def test_list_names_every_component_and_where_it_comes_from(clean_env, monkeypatch, capsys):
    entry = _fill_entry("etcd")
    assert comp.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in comp.COMPONENTS:
        assert re.search(rf"^{re.escape(name)}\s", out, re.M)
    assert f"built {entry / 'bin' / 'etcd'}" in out
    assert re.search(r"^kube-router\s+v2\.10\.0\s+missing: ", out, re.M)


def test_path_of_a_missing_component_exits_1_with_the_reason(clean_env, capsys):
    assert comp.main(["path", "coredns"]) == 1
    assert "coredns v1.15.0 is not available" in capsys.readouterr().err


# --- the real binaries --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(comp.COMPONENTS))
def test_built_binary_reports_its_pinned_version(name):
    found = comp.locate(name)
    if found.path is None:
        pytest.skip(f"{name} is not available: {found.reason}")
    ok, said = comp.reported_version(found.path, name)
    assert ok, f"{found.path} ({found.source}) says {said!r}, not {comp.get(name).version}"
    if found.source == "cache":
        marker = json.loads((found.path.parents[1] / comp.MARKER).read_text())
        assert marker["version"] == comp.get(name).version
        if shutil.which("go"):     # the binary's own build record, as Go wrote it
            info = run(["go", "version", "-m", str(found.path)], timeout=60, check=True).stdout
            cgo = comp.recipe(comp.FAMILIES[comp.get(name).family])["CGO_ENABLED"]
            assert re.search(rf"^\s*build\s+CGO_ENABLED={cgo}$", info, re.M)
            assert re.search(r"^\s*build\s+-trimpath=true$", info, re.M)


def test_missing_says_why_for_each_absent_component_and_passes_when_all_are_there(clean_env,
                                                                                   capsys):
    """`python -m harness.components missing` is how the test command decides to run or skip
    the real-engine tier: exit 1 with every reason, exit 0 (and nothing) when all are built."""
    assert comp.main(["missing"]) == 1
    out = capsys.readouterr().out
    assert all(f"{name}: " in out for name in comp.default_names()) and "not built" in out
    # critest validates a runtime; the test command never runs it, so it is not a default
    assert "critest" not in comp.default_names() and "critest: " not in out
    for family in {comp.get(n).family for n in comp.default_names()}:
        _fill_entry(family)
    assert comp.main(["missing"]) == 0
    assert capsys.readouterr().out.strip() == ""
    assert comp.main(["missing", "critest"]) == 1
    assert "critest: critest v1.34.0 is not available" in capsys.readouterr().out
    _fill_entry("critest")
    assert comp.main(["missing", "critest"]) == 0


def test_a_cgo_family_without_a_c_compiler_says_so_and_build_refuses(clean_env, monkeypatch):
    """flanneld is built with cgo (docs/components.md, Flannel): Go alone is not enough."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain on PATH")
    only_go = clean_env / "only-go"
    only_go.mkdir()
    (only_go / "go").symlink_to(go)
    monkeypatch.setenv("PATH", str(only_go))
    ok, why = comp.go_toolchain("flannel")
    assert not ok and "C compiler" in why and "cgo" in why and "gcc" in why, why
    assert comp.go_toolchain("etcd")[0]            # a cgo-free family does not need one
    with pytest.raises(ComponentMissing, match="cannot build flannel v0.28.10: .*C compiler"):
        comp.build(["flanneld"], status=lambda _msg: None)
    assert not comp.entry_dir("flannel").exists()
