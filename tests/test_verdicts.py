"""Every verdict rule of harness/verdicts.py, on the outcomes the prober produces.

Why: verdicts.py is the one place expectation meets observation; a wrong rule here turns a dead
server into "blocked" (false security) or a closed port into "enforced".
"""

import pytest

from harness.probes import Outcome, ProbeOutcome
from harness.results import Expectation, Verdict
from harness.verdicts import (all_pass, expectation_of, judge, positive_controls,
                              scenario_outcome, self_probe_proves, settled)

A, D, U = Expectation.ALLOW, Expectation.DENY, Expectation.UNDEFINED


def obs(outcome: Outcome, detail: str = "") -> ProbeOutcome:
    return ProbeOutcome(outcome, None, detail, 0.01)


@pytest.mark.parametrize("expectation, outcome, control, deny_response, verdict", [
    (A, Outcome.CONNECTED, True, "drop", Verdict.PASS),
    (A, Outcome.CONNECTED, False, "drop", Verdict.PASS),            # connecting needs no control
    (D, Outcome.CONNECTED, True, "drop", Verdict.NOT_ENFORCED),
    (D, Outcome.DNS_RESOLVED, False, "drop", Verdict.NOT_ENFORCED),
    (D, Outcome.DNS_NXDOMAIN, False, "drop", Verdict.NOT_ENFORCED),  # the DNS server answered
    (D, Outcome.TIMEOUT, True, "drop", Verdict.PASS),
    (D, Outcome.TIMEOUT, False, "drop", Verdict.PROBE_ERROR),        # no positive control
    (D, Outcome.TIMEOUT, None, "drop", Verdict.PROBE_ERROR),
    (A, Outcome.TIMEOUT, True, "drop", Verdict.OVER_BLOCKED),
    (A, Outcome.TIMEOUT, False, "drop", Verdict.PROBE_ERROR),
    (D, Outcome.DNS_TIMEOUT, True, "drop", Verdict.PASS),
    (A, Outcome.DNS_TIMEOUT, True, "drop", Verdict.OVER_BLOCKED),
    (D, Outcome.REFUSED, True, "drop", Verdict.PROBE_ERROR),         # closed port, not policy
    (A, Outcome.REFUSED, True, "drop", Verdict.PROBE_ERROR),
    (D, Outcome.REFUSED, True, "reject", Verdict.PASS),              # a rejecting CNI
    (D, Outcome.REFUSED, False, "reject", Verdict.PROBE_ERROR),
    (A, Outcome.REFUSED, True, "reject", Verdict.OVER_BLOCKED),
    (D, Outcome.TOOL_ERROR, True, "drop", Verdict.PROBE_ERROR),
    (A, Outcome.TOOL_ERROR, True, "drop", Verdict.PROBE_ERROR),
    (D, Outcome.DNS_FAILED, True, "drop", Verdict.PROBE_ERROR),
    (D, Outcome.DNS_FAILED, True, "reject", Verdict.PASS),           # a rejected DNS query
    (D, Outcome.DNS_FAILED, False, "reject", Verdict.PROBE_ERROR),
    (A, Outcome.DNS_FAILED, True, "reject", Verdict.OVER_BLOCKED),
    (D, Outcome.DNS_REFUSED, True, "drop", Verdict.PROBE_ERROR),
    (D, Outcome.HTTP_DENIED, False, "drop", Verdict.PASS),
    (A, Outcome.HTTP_DENIED, False, "drop", Verdict.OVER_BLOCKED),
    (U, Outcome.CONNECTED, False, "drop", Verdict.NOT_ASSERTED),
    (U, Outcome.TIMEOUT, False, "drop", Verdict.NOT_ASSERTED),
    ("-", Outcome.TOOL_ERROR, False, "drop", Verdict.NOT_ASSERTED),
])
def test_judge(expectation, outcome, control, deny_response, verdict):
    j = judge(expectation, obs(outcome, "exit 28: timed out"), control, deny_response)
    assert j.verdict == verdict, j.reason
    assert j.reason


def test_lost_exit_status_is_a_probe_error_whatever_the_expectation():
    for exp in (A, D):
        j = judge(exp, None, True)
        assert j.verdict == Verdict.PROBE_ERROR
        assert j.observed == "exec-failed"


def test_dns_refused_counts_as_blocked_only_behind_a_dns_proxy():
    assert judge(D, obs(Outcome.DNS_REFUSED), True, dns_proxy=True).verdict == Verdict.PASS
    assert judge(D, obs(Outcome.DNS_REFUSED), True, dns_proxy=False).verdict == Verdict.PROBE_ERROR


def test_blocked_cell_reads_blocked_and_refused_reason_names_closed_port():
    assert judge(D, obs(Outcome.TIMEOUT), True).observed == "blocked"
    assert "closed port" in judge(D, obs(Outcome.REFUSED), True).reason


def test_positive_control_counts_only_expected_allow_sources_that_connected():
    k1, k2, k3 = ("x/a", 80, "TCP"), ("x/b", 80, "TCP"), ("x/c", 80, "TCP")
    controls = positive_controls([
        (k1, A, obs(Outcome.CONNECTED)), (k1, D, obs(Outcome.TIMEOUT)),
        (k2, D, obs(Outcome.CONNECTED)),                      # forbidden connection: no proof
        (k3, A, obs(Outcome.TIMEOUT)), (k3, A, None)])
    assert controls == {k1: True, k2: False, k3: False}


def test_self_probe_proof():
    assert self_probe_proves(obs(Outcome.CONNECTED))
    assert not self_probe_proves(obs(Outcome.REFUSED))
    assert not self_probe_proves(obs(Outcome.TIMEOUT))
    assert not self_probe_proves(None)


@pytest.mark.parametrize("word, exp", [(".", A), ("X", D), ("-", U), ("allow", A),
                                       ("deny", D), ("resolves", A), ("fails", D), (A, A)])
def test_expectation_of(word, exp):
    assert expectation_of(word) == exp


def test_expectation_of_rejects_unknown_words():
    with pytest.raises(ValueError, match="unknown expectation"):
        expectation_of("maybe")


def test_settled_and_all_pass():
    r1 = {"a": Verdict.PASS, "b": Verdict.NOT_ENFORCED}
    assert not settled(r1, None)
    assert settled(r1, dict(r1))
    assert not settled(r1, {"a": Verdict.PASS, "b": Verdict.PASS})
    assert all_pass({"a": Verdict.PASS, "b": Verdict.NOT_ASSERTED})
    assert not all_pass(r1)


@pytest.mark.parametrize("final, enforcing, has_deny, outcome", [
    ([Verdict.PASS, Verdict.NOT_ASSERTED], True, True, "passed"),
    ([Verdict.PASS, Verdict.NOT_ENFORCED], True, True, "failed"),
    ([Verdict.PASS, Verdict.OVER_BLOCKED], True, True, "failed"),
    ([Verdict.PASS, Verdict.PROBE_ERROR, Verdict.NOT_ENFORCED], True, True, "error"),
    ([Verdict.PASS, Verdict.NOT_ENFORCED], False, True, "xfailed"),
    ([Verdict.PASS], False, True, "xpassed"),
    ([Verdict.PASS], False, False, "passed"),
    ([Verdict.NOT_ENFORCED, Verdict.OVER_BLOCKED], False, True, "failed"),
    ([Verdict.PROBE_ERROR], False, True, "error"),
])
def test_scenario_outcome(final, enforcing, has_deny, outcome):
    assert scenario_outcome(final, enforcing, has_deny) == outcome


def test_infra_error_wins():
    assert scenario_outcome([Verdict.PASS], True, True, infra_error=True) == "error"
