"""The Python API (harness.fixtures) judges by the same rules as a scenario file: the test's
own table is checked against the oracle before anything is probed (a wrong table is the test's
error, never a verdict on the CNI), and a single probe is observed for the same window as a
step (a CNI that programs late is not read at its first moment)."""

from __future__ import annotations

import pytest

from tests.conftest import needs_local

pytestmark = needs_local

HEAD = '''
DENY_ALL_X = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "deny-all", "namespace": "x"},
              "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


def pods(netpol_namespace, netpol_pods):
    netpol_namespace("x", {"ns": "x"})
    netpol_pods("x", {"a": {"pod": "a"}, "b": {"pod": "b"}})
'''

DELAYED_CONFTEST = """
import harness.backends.local as local
from tests.faulty_dataplanes import EnforcesAfterADelay

_real = local.LocalBackend


def pytest_configure(config):
    local.LocalBackend = EnforcesAfterADelay


def pytest_unconfigure(config):
    local.LocalBackend = _real
"""


@pytest.fixture
def api(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider -p no:randomly --strict-markers\n")
    return pytester


def test_a_table_the_oracle_disagrees_with_fails_before_any_probe(api):
    """On `open` (nothing enforced) a table that forgets the deny-all matched what was seen,
    and the test passed: a wrong expectation, confirmed by a wrong cluster."""
    api.makepyfile(test_wrong=HEAD + '''
def test_wrong_table(netpol_namespace, netpol_pods, netpol_apply_policy, netpol_assert_matrix):
    pods(netpol_namespace, netpol_pods)
    netpol_apply_policy(DENY_ALL_X)
    netpol_assert_matrix("""
        x/a  -  .
        x/b  .  -
    """)
''')
    result = api.runpytest("test_wrong.py", "--cni", "open")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the test's table disagrees with the oracle" in out
    assert "x/b -> x/a on TCP 80: expected allow, the oracle computes deny" in out
    assert "nothing was probed" in out and "NOT ENFORCED" not in out


def test_a_dash_on_a_cell_the_oracle_decides_needs_assume(api):
    api.makepyfile(test_dash=HEAD + '''
TABLE = """
    x/a  -  X
    x/b  -  -
"""


def test_dash(netpol_namespace, netpol_pods, netpol_apply_policy, netpol_assert_matrix):
    pods(netpol_namespace, netpol_pods)
    netpol_apply_policy(DENY_ALL_X)
    netpol_assert_matrix(TABLE)


def test_dash_assumed(netpol_namespace, netpol_pods, netpol_apply_policy, netpol_assert_matrix):
    pods(netpol_namespace, netpol_pods)
    netpol_apply_policy(DENY_ALL_X)
    netpol_assert_matrix(TABLE, assume="enforcing: x/b -> x/a left unasserted on purpose")
''')
    result = api.runpytest("test_dash.py", "--cni", "enforcing")
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    assert "x/b -> x/a on TCP 80: written '-' (not asserted), but the oracle decides deny" in out


def test_a_single_probe_is_observed_for_the_window_not_once(api):
    """A dataplane that programs each policy 1.5 s after the apply: read once at the apply
    the probe connected, and a right cluster was called open."""
    api.makeconftest(DELAYED_CONFTEST)
    api.makepyfile(test_late=HEAD + '''
import time


def test_late(netpol_namespace, netpol_pods, netpol_apply_policy, netpol_probe):
    pods(netpol_namespace, netpol_pods)
    netpol_apply_policy(DENY_ALL_X)
    started = time.monotonic()
    p = netpol_probe("x/b", "x/a", 80)
    assert p.blocked and not p.connected, p
    assert len(p.rounds) >= 3 and p.rounds[-1] == "timeout", p.rounds
    assert time.monotonic() - started >= 2.5     # the window (3 s from the apply)
''')
    result = api.runpytest("test_late.py", "--cni", "enforcing")
    result.assert_outcomes(passed=1)
