"""The pytest plugin driven through pytester: options, collection rules, ids, markers, skips,
strict xfail on `open`, failure reports as truth tables, report files, and xdist with 2 workers.

Why pytester: the plugin is what users run; these tests run pytest itself, in a temp project,
against the real local backend (root), like xdist's acceptance tests do.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import needs_local

DATA = Path(__file__).parent.parent / "data" / "run"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A temp project with a scenarios/ library copied from tests/data/run."""
    scen = pytester.path / "scenarios"
    scen.mkdir()
    for name in ("deny-ingress-small.yaml", "needs-sctp.yaml", "allow-only-open.yaml"):
        (scen / name).write_text((DATA / name).read_text())
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider -p no:randomly\n")
    return pytester


def test_options_have_their_own_group_in_help(project):
    result = project.runpytest("--help")
    out = result.stdout.str()
    assert "netpol-proof: live NetworkPolicy enforcement" in out
    from harness.settings import OPTIONS

    for o in OPTIONS:   # every setting (tests/test_settings.py: as the CLI has them)
        assert o.flag in out and o.env in out, o.flag
    assert "--min-rounds=N" in out and "--no-canary" in out
    assert "netpol_scenario_dirs" in out


def test_collects_one_item_per_scenario_per_cni_with_cni_in_the_id(project):
    result = project.runpytest("--collect-only", "-q", "--cni", "enforcing,open")
    out = result.stdout.str()
    assert "scenarios/deny-ingress-small.yaml::deny-ingress-small[enforcing]" in out
    assert "scenarios/deny-ingress-small.yaml::deny-ingress-small[open]" in out
    assert "6 tests collected" in out


def test_header_names_backend_cnis_run_id_and_timeout(project):
    result = project.runpytest("--collect-only", "--cni", "open", "--netpol-run-id", "abcd12",
                               "--probe-timeout", "0.5")
    result.stdout.fnmatch_lines(["netpol-proof: backend=local cni=open run-id=abcd12 "
                                 "probe-timeout=0.5s*"])


def test_scenario_yaml_outside_the_scenario_dirs_is_not_collected_unless_named(project):
    data = project.path / "tests" / "data"
    data.mkdir(parents=True)
    (data / "fixture.yaml").write_text((DATA / "allow-only-open.yaml").read_text())
    (data / "not-a-scenario.yaml").write_text("kind: ConfigMap\n")
    result = project.runpytest("--collect-only", "-q", "tests")
    assert "allow-only" not in result.stdout.str()
    result = project.runpytest("--collect-only", "-q", "tests/data/fixture.yaml")
    assert "tests/data/fixture.yaml::allow-only[enforcing]" in result.stdout.str()
    result = project.runpytest("--collect-only", "-q", "tests/data/not-a-scenario.yaml")
    assert "no tests collected" in result.stdout.str() or result.ret == 5


def test_ini_settings_and_scenario_dirs(project):
    lib = project.path / "library"
    lib.mkdir()
    (lib / "a.yaml").write_text((DATA / "allow-only-open.yaml").read_text())
    project.makeini("[pytest]\naddopts = -p no:cacheprovider -p no:randomly\n"
                    "netpol_scenario_dirs = library\nnetpol_cni = open\n")
    result = project.runpytest("--collect-only", "-q")
    out = result.stdout.str()
    assert "library/a.yaml::allow-only[open]" in out
    assert "scenarios/" not in out


def test_markers_are_registered_and_strict_clean(project):
    project.makepyfile(test_marks="""
        import pytest

        @pytest.mark.netpol
        @pytest.mark.requires("udp", "egress")
        def test_marked():
            pass
    """)
    result = project.runpytest("--strict-markers", "test_marks.py")
    result.assert_outcomes(passed=1)
    result = project.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.netpol:*", "@pytest.mark.requires(*capabilities):*"])


def test_bad_option_is_a_plain_usage_error(project):
    result = project.runpytest("--probe-timeout", "fast", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--probe-timeout: 'fast' is not a number of seconds" in result.stderr.str()
    result = project.runpytest("--cni", "cilium", "--collect-only")
    assert "'cilium' is not a local profile" in result.stderr.str()


def test_invalid_scenario_is_a_collection_error_naming_the_file(project):
    (project.path / "scenarios" / "broken.yaml").write_text(
        "kind: Scenario\nname: broken\nsteps:\n  - titel: oops\n")
    result = project.runpytest("--collect-only", "-q", "scenarios/broken.yaml")
    out = result.stdout.str()
    assert "invalid scenario file" in out and "broken.yaml" in out
    assert "Traceback" not in out


def test_missing_capability_skips_with_the_reason(project):
    result = project.runpytest("-rs", "scenarios/needs-sctp.yaml", "--cni", "enforcing")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*enforcing: missing capability: sctp (SCTP is not available*"])


@needs_local
def test_enforcing_passes_open_xfails_strict_and_reports_are_written(project):
    result = project.runpytest(
        "scenarios/deny-ingress-small.yaml", "--cni", "enforcing,open", "-rxs",
        "--netpol-json", "out/r.json", "--netpol-html", "out/r.html", "--junitxml", "out/j.xml")
    result.assert_outcomes(passed=1, xfailed=1)
    out = result.stdout.str()
    assert "does not enforce them; every policy here is false security" in out
    assert out.count("every policy here is false security") >= 2  # banner top and bottom
    assert "deny-ingress-small  passed 37/0/0/0  xfailed 25/12/0/0" in out
    doc = json.loads((project.path / "out" / "r.json").read_text())
    assert doc["meta"]["canary"]["open"]["enforcing"] is False
    assert doc["meta"]["canary"]["enforcing"]["enforcing"] is True
    outcomes = {(s["scenario"], s["profile"]): s["outcome"] for s in doc["scenarios"]}
    assert outcomes == {("deny-ingress-small", "enforcing"): "passed",
                        ("deny-ingress-small", "open"): "xfailed"}
    assert "<html" in (project.path / "out" / "r.html").read_text()[:500].lower()
    props = {p.get("name"): p.get("value")
             for p in ET.parse(project.path / "out" / "j.xml").iter("property")}
    assert props["cni"] in ("enforcing", "open") and props["backend"] == "local"
    assert "step0_convergence_seconds" in props or "step1_convergence_seconds" in props


FAULTY_CONFTEST = """
import harness.backends.local as local
from tests.faulty_dataplanes import PoliciesInTheWrongNamespace

_real = local.LocalBackend


def pytest_configure(config):
    local.LocalBackend = PoliciesInTheWrongNamespace


def pytest_unconfigure(config):
    local.LocalBackend = _real
"""


@needs_local
def test_policy_failure_shows_tables_side_by_side_not_a_traceback(project):
    # a faulty dataplane (deny-all programmed in y instead of x), not a wrong scenario
    project.makeconftest(FAULTY_CONFTEST)
    result = project.runpytest("scenarios/deny-ingress-small.yaml", "--cni", "enforcing")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "FAILED deny-ingress-small [enforcing]" in out
    assert "OVER-BLOCKED  x/a -> y/a 80/TCP" in out and "NOT ENFORCED  y/a -> x/a 80/TCP" in out
    assert "expected" in out and "observed" in out
    assert "Traceback" not in out and "runner.py" not in out


def test_a_file_that_check_fails_is_a_collection_error_not_a_run(project):
    (project.path / "scenarios" / "flipped.yaml").write_text(
        (DATA / "deny-all-ingress-flipped.yaml").read_text())
    result = project.runpytest("--collect-only", "-q", "scenarios/flipped.yaml")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED      # collection errors stop the session
    assert "scenario disagrees with the oracle" in out
    assert "flipped.yaml:27: steps[0].expect[0].matrix: step 1 (deny all ingress in x): y/a -> " \
           "x/a on TCP 80: expected allow, the oracle computes deny" in out
    assert "Traceback" not in out


@needs_local
def test_without_xdist_scenarios_run_at_once_on_clusters_of_their_own(project):
    from harness import naming
    RUN = naming.new_run_id()   # noqa: N806 - its own, even when this test runs twice at once
    # a faulty dataplane, so that one item fails: its own tables must be reported by it
    project.makeconftest(FAULTY_CONFTEST)
    result = project.runpytest(
        "scenarios/deny-ingress-small.yaml", "scenarios/allow-only-open.yaml",
        "--cni", "enforcing,open", "--netpol-jobs", "3", "--netpol-run-id", RUN,
        "--netpol-json", "r.json")
    out = result.stdout.str()
    assert "jobs=3" in out
    result.assert_outcomes(passed=2, xfailed=1, failed=1)
    assert "FAILED deny-ingress-small [enforcing]" in out and "OVER-BLOCKED  x/a -> y/a" in out
    doc = json.loads((project.path / "r.json").read_text())
    # not the CNIs' first clusters (canary only): clusters of their own, named from the run id
    run_ids = [s["run_id"] for s in doc["scenarios"]]
    assert all(r.startswith(RUN[:5]) and r not in (RUN + "a", RUN + "b") for r in run_ids)
    # results in the order of the items, whatever order the scenarios finished in
    assert [(s["scenario"], s["profile"]) for s in doc["scenarios"]] == [
        (n, cni) for n in ("deny-ingress-small", "allow-only") for cni in ("enforcing", "open")]


@needs_local
def test_xdist_two_workers_share_one_run_id_base_with_their_own_prefixes(project):
    result = project.runpytest_subprocess(
        "-n", "2", "-p", "xdist", "scenarios/deny-ingress-small.yaml",
        "scenarios/allow-only-open.yaml", "--cni", "enforcing,open",
        "--netpol-run-id", "feed01", "--netpol-json", "r.json")
    out = result.stdout.str()
    assert "2 workers [4 items]" in out
    result.assert_outcomes(passed=3, xfailed=1)
    doc = json.loads((project.path / "r.json").read_text())
    assert doc["meta"]["run_id"] == "feed01"
    run_ids = {s["run_id"] for s in doc["scenarios"]}
    # every cluster of every worker and CNI is named from the run's id (its first five
    # characters for the clusters of --netpol-jobs) ...
    assert all(r.startswith("feed0") for r in run_ids)
    # ... and has a name of its own: one run id never served two profiles
    assert len({(s["run_id"], s["profile"]) for s in doc["scenarios"]}) == len(run_ids)


LYING_CONFTEST = """
import harness.backends.local as local
from tests.faulty_dataplanes import {cls}

_real = local.LocalBackend


def pytest_configure(config):
    local.LocalBackend = {cls}


def pytest_unconfigure(config):
    local.LocalBackend = _real
"""


@needs_local
@pytest.mark.parametrize("cls, outcomes", [
    # enforces every block: passes (before: a strict XPASS, reported as a failure)
    ("EnforcesThoughDeclaredOpen", {"passed": 1}),
    # filters TCP, lets UDP through: its fail-opens fail (before: xfailed, a green run)
    ("PartlyEnforcesThoughDeclaredOpen", {"failed": 1}),
])
def test_a_cluster_named_open_whose_canary_finds_enforcement_is_not_an_expected_failure(
        project, cls, outcomes):
    project.makeconftest(LYING_CONFTEST.format(cls=cls))
    result = project.runpytest("scenarios/deny-ingress-small.yaml", "--cni", "open", "-rxs",
                               "--junitxml", "j.xml")
    result.assert_outcomes(**outcomes)
    out = result.stdout.str()
    assert "open is declared not to enforce NetworkPolicy, but the enforcement canary found " \
           "that it enforces" in " ".join(out.replace("!!", " ").split())
    props = {p.get("name"): p.get("value")
             for p in ET.parse(project.path / "j.xml").iter("property")}
    assert props["declared_enforcing"] == "false" and props["canary_enforcing"] == "true"
    assert "canary_contradiction" in props
