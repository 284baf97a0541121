"""The scenario library (scenarios/): every file loads, agrees with the oracle, and is documented.

Why: the library is what CI matrices run and what the labs teach from; a file that does not load,
a hand-written table that contradicts the spec, or a duplicated name would silently drop or
corrupt a test. The live part runs the false-security canary on both local profiles.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.capabilities import KNOWN as KNOWN_CAPABILITIES
from harness.expected import check_scenario
from harness.scenario import find_scenarios, load_scenario
from harness.shell import run
from tests.conftest import needs_local

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "scenarios"
SEED_ARTICLE = Path("/work/shared/reference/seed-article.txt")
PATHS = sorted(find_scenarios([str(LIBRARY)]))


def _rel(path) -> str:
    return str(Path(path).resolve().relative_to(ROOT))


@pytest.fixture(scope="module")
def library():
    return {_rel(p): load_scenario(p) for p in PATHS}


def test_library_is_found():
    # find_scenarios must see every YAML with kind: Scenario; policy files are not scenarios
    assert PATHS, "no scenario found under scenarios/"
    policy_files = {str(p) for p in LIBRARY.rglob("policies/*.yaml")}
    assert not policy_files & {str(Path(p).resolve()) for p in PATHS}


@pytest.mark.parametrize("path", PATHS, ids=_rel)
def test_scenario_loads_and_agrees_with_the_oracle(path):
    scenario = load_scenario(path)
    assert check_scenario(scenario) == [], f"{_rel(path)} disagrees with the oracle"


def test_check_command_passes_on_the_whole_library():
    result = run([sys.executable, "-m", "harness", "check", str(LIBRARY)], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(PATHS)} scenario file(s) checked: {len(PATHS)} ok" in result.stdout


def test_names_are_unique(library):
    counts = Counter(s.name for s in library.values())
    assert [n for n, c in counts.items() if c > 1] == []


def test_every_scenario_says_what_it_shows_and_why(library):
    short = [p for p, s in library.items() if len((s.description or "").split()) < 15]
    assert short == [], "descriptions need what the scenario shows and why it matters"


def test_requires_are_known_capabilities(library):
    unknown = {p: set(s.requires) - set(KNOWN_CAPABILITIES) for p, s in library.items()}
    assert {p: u for p, u in unknown.items() if u} == {}


def test_conformance_has_at_least_40_cases_on_the_default_model(library):
    conformance = {p: s for p, s in library.items() if p.startswith("scenarios/conformance/")}
    assert len(conformance) >= 40
    for path, s in conformance.items():
        assert [n.name for n in s.model.namespaces if not n.system] == ["x", "y", "z"], path
        assert [p.key for p in s.model.pods if not p.system] == [f"{n}/{p}" for n in "xyz" for p in "abc"], path


def test_conformance_stays_narrow(library):
    """The local backend probes every cell each round: one or two (port, protocol) per case."""
    for path, s in library.items():
        if not path.startswith("scenarios/conformance/"):
            continue
        served = {(cp.port, cp.protocol) for pod in s.model.pods if not pod.system
                  for cp in pod.ports}
        assert len(served) <= 2, f"{path} probes {sorted(served)}; narrow model.ports/protocols"
        assert len(s.steps) <= 3, f"{path} has {len(s.steps)} steps"


def test_most_conformance_steps_have_hand_written_tables(library):
    steps = [st for p, s in library.items() if p.startswith("scenarios/conformance/")
             for st in s.steps]
    explicit = [st for st in steps if st.expect or st.probes]
    assert len(explicit) >= 0.9 * len(steps)


def test_topics_the_issue_lists_are_covered(library):
    text = "\n".join(Path(ROOT / p).read_text() for p in library)
    for needle in ["operator: In", "operator: NotIn", "operator: Exists",
                   "operator: DoesNotExist", "except:", "endPort:", "protocol: UDP",
                   "protocol: SCTP", "port: serve-81-tcp", "namespace_labels:", "pod_labels:",
                   "delete:", "{{podIP", "ext:"]:
        assert needle in text, f"no library scenario uses {needle!r}"
    requires_sctp = [p for p, s in library.items() if "SCTP" in Path(ROOT / p).read_text()
                     and "sctp" in s.requires]
    assert requires_sctp, "the SCTP case must require sctp so it skips where unsupported"


def _seed_policy_names() -> list[str]:
    names = re.findall(r"^name: ([a-z0-9-]+)$", SEED_ARTICLE.read_text(), re.M)
    return names


@pytest.mark.skipif(not SEED_ARTICLE.exists(), reason=f"{SEED_ARTICLE} is not on this machine")
def test_every_seed_article_policy_is_in_the_library_as_written():
    names = _seed_policy_names()
    assert names == ["deny-all-ingress", "deny-all-egress", "allow-frontend-to-backend",
                     "restrict-egress"]
    article = re.sub(r"\s+", " ", SEED_ARTICLE.read_text())
    for name in names:
        policy = (LIBRARY / "real-world" / "policies" / f"{name}.yaml").read_text()
        body = "\n".join(line for line in policy.splitlines() if not line.startswith("#"))
        # the article lost its indentation; word for word, the policy is the same text
        assert re.sub(r"\s+", " ", body).strip() in article, name
        users = [s for s in PATHS if f"policies/{name}.yaml" in Path(s).read_text()]
        assert users, f"no real-world scenario applies {name}"


def test_canary_is_one_deny_that_must_block(library):
    canary = library["scenarios/canary/false-security-canary.yaml"]
    denies = [p for st in canary.steps for p in st.probes if p.expect == "deny"]
    assert len(denies) == 1
    assert len([p for p in canary.model.pods if not p.system]) == 2


@needs_local
def test_canary_passes_on_enforcing_and_shows_false_security_on_open():
    result = run([sys.executable, "-m", "harness", "run", str(LIBRARY / "canary"),
                  "--backend", "local", "--cni", "enforcing,open"], timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    row = next(line for line in out.splitlines() if line.startswith("false-security-canary "))
    assert re.search(r"passed \d+/0/0/0\s+xfailed \d+/1/0/0", row), row
    assert "NOT ENFORCED  x/b -> x/a 80/TCP" in out
    assert "1 policies accepted by the API" in out
