"""Every verdict rule of harness/verdicts.py, on the outcomes the prober produces.

Why: verdicts.py is the one place expectation meets observation; a wrong rule here turns a dead
server into "blocked" (false security) or a closed port into "enforced".
"""

import pytest

from harness.probes import Outcome, ProbeOutcome
from harness.results import Expectation, ScenarioOutcome, Verdict
from harness.verdicts import (
    UNKNOWN_OLD_STATE,
    BlockedKind,
    Judgement,
    Window,
    blocked_kind,
    expectation_of,
    first_stable_round,
    judge,
    old_state,
    over_rounds,
    positive_controls,
    scenario_outcome,
    self_probe_proves,
    settled,
)

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
    # an answer after the timeout, within its grace: got through, late; never a block
    (D, Outcome.LATE_REPLY, True, "drop", Verdict.PROBE_ERROR),
    (D, Outcome.LATE_REPLY, True, "reject", Verdict.PROBE_ERROR),
    (A, Outcome.LATE_REPLY, True, "drop", Verdict.PROBE_ERROR),
    (D, Outcome.HTTP_DENIED, False, "drop", Verdict.PROBE_ERROR),    # no L7 proxy declared
    (A, Outcome.HTTP_DENIED, False, "drop", Verdict.PROBE_ERROR),
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
    k4 = ("y/a", 81, "UDP")
    controls = positive_controls([
        (k1, A, obs(Outcome.CONNECTED)), (k1, D, obs(Outcome.TIMEOUT)),
        (k2, D, obs(Outcome.CONNECTED)),                      # forbidden connection: no proof
        (k3, A, obs(Outcome.TIMEOUT)), (k3, A, None),
        (k4, A, obs(Outcome.LATE_REPLY))])                    # late: proves no server in time
    assert controls == {k1: True, k2: False, k3: False, k4: False}


def test_self_probe_proof():
    assert self_probe_proves(obs(Outcome.CONNECTED))
    assert not self_probe_proves(obs(Outcome.REFUSED))
    assert not self_probe_proves(obs(Outcome.TIMEOUT))
    assert not self_probe_proves(obs(Outcome.LATE_REPLY))
    assert not self_probe_proves(None)


@pytest.mark.parametrize("word, exp", [(".", A), ("X", D), ("-", U), ("allow", A),
                                       ("deny", D), ("resolves", A), ("fails", D), (A, A)])
def test_expectation_of(word, exp):
    assert expectation_of(word) == exp


def test_expectation_of_rejects_unknown_words():
    with pytest.raises(ValueError, match="unknown expectation"):
        expectation_of("maybe")


def test_settled():
    r1 = {"a": Verdict.PASS, "b": Verdict.NOT_ENFORCED}
    assert not settled(r1, None)
    assert settled(r1, dict(r1))
    assert not settled(r1, {"a": Verdict.PASS, "b": Verdict.PASS})


@pytest.mark.parametrize("final, enforcing, has_deny, outcome", [
    ([Verdict.PASS, Verdict.NOT_ASSERTED], True, True, "passed"),
    ([Verdict.PASS, Verdict.NOT_ENFORCED], True, True, "failed"),
    ([Verdict.PASS, Verdict.OVER_BLOCKED], True, True, "failed"),
    # a proven failure is never hidden behind an error elsewhere: failed, the error beside it
    ([Verdict.PASS, Verdict.PROBE_ERROR, Verdict.NOT_ENFORCED], True, True, "failed"),
    ([Verdict.PASS, Verdict.PROBE_ERROR, Verdict.OVER_BLOCKED], True, True, "failed"),
    ([Verdict.PASS, Verdict.PROBE_ERROR, Verdict.UNSTABLE], True, True, "failed"),
    ([Verdict.PASS, Verdict.PROBE_ERROR], True, True, "error"),
    # on a CNI declared not to enforce, not enforced is expected: with an error it proves
    # nothing new, and xfailed would hide the error; what is never expected still fails
    ([Verdict.NOT_ENFORCED, Verdict.PROBE_ERROR], False, True, "error"),
    ([Verdict.NOT_ENFORCED, Verdict.OVER_BLOCKED, Verdict.PROBE_ERROR], False, True, "failed"),
    ([Verdict.NOT_ENFORCED, Verdict.UNSTABLE, Verdict.PROBE_ERROR], False, True, "failed"),
    ([Verdict.PASS, Verdict.NOT_ENFORCED], False, True, "xfailed"),
    ([Verdict.PASS], False, True, "xpassed"),
    ([Verdict.PASS], False, False, "passed"),
    ([Verdict.NOT_ENFORCED, Verdict.OVER_BLOCKED], False, True, "failed"),
    ([Verdict.PROBE_ERROR], False, True, "error"),
])
def test_scenario_outcome(final, enforcing, has_deny, outcome):
    assert scenario_outcome(final, enforcing, has_deny) == outcome


def test_infra_error_wins_unless_a_failure_was_proven_before_it():
    assert scenario_outcome([Verdict.PASS], True, True, infra_error=True) == "error"
    assert scenario_outcome([], True, True, infra_error=True) == "error"
    # a step that proved a fail-open, then a later step broke: the fail-open stands
    assert scenario_outcome([Verdict.NOT_ENFORCED], True, True, infra_error=True) == "failed"
    assert scenario_outcome([Verdict.NOT_ENFORCED], False, True, infra_error=True) == "error"
    assert scenario_outcome([Verdict.NOT_ENFORCED], True, True, infra_error=True,
                            scenario_error=True) == "scenario error"


def dns(outcome: Outcome, answer: str | None = None) -> ProbeOutcome:
    return ProbeOutcome(outcome, answer, "", 0.01)


SVC = frozenset({"10.96.0.1"})


@pytest.mark.parametrize("expectation, nxdomain, observed, control, verdict", [
    # the name must resolve (allowed)
    (A, False, dns(Outcome.DNS_RESOLVED, "10.96.0.1"), None, Verdict.PASS),
    (A, False, dns(Outcome.DNS_RESOLVED, "10.96.0.99"), None, Verdict.PROBE_ERROR),  # wrong record
    (A, False, dns(Outcome.DNS_NXDOMAIN), True, Verdict.PROBE_ERROR),   # was PASS (delivered)
    (A, False, dns(Outcome.DNS_TIMEOUT), True, Verdict.OVER_BLOCKED),
    (A, False, dns(Outcome.DNS_TIMEOUT), False, Verdict.PROBE_ERROR),
    # the DNS server must answer NXDOMAIN (no such name; nothing blocked)
    (D, True, dns(Outcome.DNS_NXDOMAIN), None, Verdict.PASS),
    (D, True, dns(Outcome.DNS_TIMEOUT), True, Verdict.OVER_BLOCKED),    # was PASS (blocked)
    (D, True, dns(Outcome.DNS_TIMEOUT), False, Verdict.PROBE_ERROR),
    (D, True, dns(Outcome.DNS_RESOLVED, "10.96.0.7"), None, Verdict.PROBE_ERROR),
    # the lookup must get no answer (blocked by policy)
    (D, False, dns(Outcome.DNS_TIMEOUT), True, Verdict.PASS),
    (D, False, dns(Outcome.DNS_TIMEOUT), False, Verdict.PROBE_ERROR),
    (D, False, dns(Outcome.DNS_RESOLVED, "10.96.0.1"), None, Verdict.NOT_ENFORCED),
    (D, False, dns(Outcome.DNS_NXDOMAIN), None, Verdict.NOT_ENFORCED),  # the server answered
    # not asserted, whatever came back
    (U, False, dns(Outcome.DNS_NXDOMAIN), None, Verdict.NOT_ASSERTED),
])
def test_dns_has_three_outcomes_each_judged_on_its_own(expectation, nxdomain, observed, control,
                                                       verdict):
    j = judge(expectation, observed, control, nxdomain_expected=nxdomain,
              expected_addresses=SVC)
    assert j.verdict == verdict, j.reason


def test_dns_reasons_say_what_was_wrong():
    j = judge(A, dns(Outcome.DNS_RESOLVED, "10.96.0.99"), None, expected_addresses=SVC)
    assert "resolved to 10.96.0.99, not to 10.96.0.1" in j.reason
    j = judge(A, dns(Outcome.DNS_NXDOMAIN), True, expected_addresses=SVC)
    assert "NXDOMAIN for a name the model has" in j.reason
    j = judge(D, dns(Outcome.DNS_TIMEOUT), True, nxdomain_expected=True)
    assert "must answer NXDOMAIN" in j.reason and "over-blocked" in j.reason
    # an unknown expected address: any answer counts as resolved
    assert judge(A, dns(Outcome.DNS_RESOLVED, "10.1.2.3"), None).verdict == Verdict.PASS



def test_an_l7_deny_is_a_block_only_on_a_cni_that_declares_an_l7_proxy():
    for exp, verdict in ((D, Verdict.PASS), (A, Verdict.OVER_BLOCKED)):
        assert judge(exp, obs(Outcome.HTTP_DENIED), None, l7_proxy=True).verdict == verdict
    j = judge(D, obs(Outcome.HTTP_DENIED, "HTTP 403: Access denied"), True)
    assert j.verdict == Verdict.PROBE_ERROR and "declares no L7 proxy" in j.reason


def answered(by: str | None) -> ProbeOutcome:
    return ProbeOutcome(Outcome.CONNECTED, by, "HTTP 200", 0.01)


X_B = frozenset({"x/b", "x-b"})


@pytest.mark.parametrize("by, expectation, verdict", [
    ("x/b", A, Verdict.PASS), ("x-b", A, Verdict.PASS),            # key (local), hostname (kube)
    ("x/b", D, Verdict.NOT_ENFORCED),
    ("x/a", A, Verdict.PROBE_ERROR), ("x/a", D, Verdict.PROBE_ERROR),   # another pod answered
    ("upstream connect error or disconnect/reset before headers", A, Verdict.PROBE_ERROR),
    (None, A, Verdict.PROBE_ERROR),                                  # a reply naming no one
])
def test_connected_means_the_intended_server_answered(by, expectation, verdict):
    j = judge(expectation, answered(by), None, servers=X_B)
    assert j.verdict == verdict, j.reason
    if verdict == Verdict.PROBE_ERROR:
        assert "not by a server of the target (x-b, x/b)" in j.reason
        assert (repr(by) if by else "names no server") in j.reason
    # not known who serves (a bare address): any reply counts, as before
    assert judge(A, answered(by), None).verdict == Verdict.PASS


def test_a_reply_from_someone_else_is_no_positive_control():
    key = ("x/b", 80, "TCP")
    assert positive_controls([(key, A, answered("x/a"), X_B)]) == {key: False}
    assert positive_controls([(key, A, answered("x-b"), X_B)]) == {key: True}


@pytest.mark.parametrize("outcome,deny,dns_proxy,kind", [
    (Outcome.CONNECTED, "drop", False, BlockedKind.DELIVERED),
    (Outcome.DNS_NXDOMAIN, "drop", False, BlockedKind.DELIVERED),
    (Outcome.TIMEOUT, "drop", False, BlockedKind.BLOCKED),
    (Outcome.HTTP_DENIED, "drop", False, BlockedKind.NO_VERDICT),   # no L7 proxy declared
    (Outcome.REFUSED, "drop", False, BlockedKind.REFUSED),
    (Outcome.REFUSED, "reject", False, BlockedKind.BLOCKED),
    (Outcome.DNS_REFUSED, "drop", False, BlockedKind.NO_VERDICT),
    (Outcome.DNS_REFUSED, "drop", True, BlockedKind.BLOCKED),
    (Outcome.TOOL_ERROR, "reject", True, BlockedKind.NO_VERDICT),
])
def test_blocked_kind_names_how_an_outcome_reads(outcome, deny, dns_proxy, kind):
    assert blocked_kind(outcome, deny, dns_proxy) is kind


def test_scenario_outcomes_and_the_exit_status():
    assert isinstance(scenario_outcome([Verdict.PASS], True, True), ScenarioOutcome)
    assert {o for o in ScenarioOutcome if o.ok} == {ScenarioOutcome.PASSED,
                                                     ScenarioOutcome.XFAILED,
                                                     ScenarioOutcome.SKIPPED}
    assert f"{ScenarioOutcome.XFAILED}" == "xfailed" == ScenarioOutcome("xfailed")


def test_an_l7_deny_reads_as_blocked_l7_only_behind_a_declared_l7_proxy():
    assert blocked_kind(Outcome.HTTP_DENIED, l7_proxy=True) is BlockedKind.BLOCKED_L7


P, N, OB, E, NA = (Verdict.PASS, Verdict.NOT_ENFORCED, Verdict.OVER_BLOCKED, Verdict.PROBE_ERROR,
                   Verdict.NOT_ASSERTED)


def rounds_of(*verdicts: Verdict) -> list[Judgement]:
    return [Judgement(v, "x", v.value) for v in verdicts]


UN = Verdict.UNSTABLE
#: the old state of a cell whose expectation changed at this step, judged against the new one
STEADY, OPENED, CLOSED = frozenset(), frozenset({N}), frozenset({OB})


@pytest.mark.parametrize("history, old, verdict", [
    # a steady cell (its expectation did not change at this step): no change is forgiven
    ((P, P, P), STEADY, P),
    ((N, N, N), STEADY, N),
    ((OB, OB, OB), STEADY, OB),
    ((N, P, P), STEADY, UN),      # a transient fail-open after an unrelated change (issue 18)
    ((N, N, P, P), STEADY, UN),
    ((OB, P, P), STEADY, UN),     # a transient fail-closed
    ((P, N, N), STEADY, N),       # right at first, wrong later: a failure, as it ends
    ((P, E, P, P), STEADY, P),    # a probe error says nothing about policy: skipped
    ((E, N, P, P), STEADY, UN),   # ... so it neither hides a bad round
    ((P, P, E), STEADY, E),       # ... but a cell whose last round is one is a probe error
    ((E, E, E), STEADY, E),
    ((NA, NA, NA), STEADY, NA),
    # a cell denied from this step on (allow before): the old state connects, not enforced
    ((N, P, P), OPENED, P),       # a slow CNI: old, then new, held: converged
    ((N, N, P, P), OPENED, P),
    ((E, N, P, P), OPENED, P),
    ((P, P, P), OPENED, P),
    ((N, N, N), OPENED, N),       # never programmed
    ((P, N, N), OPENED, N),       # new, then old: never forgiven, judged as it ends
    ((P, P, N, N), OPENED, N),
    ((N, P, N, N), OPENED, UN),   # changed twice: flapping
    ((N, N, P), OPENED, UN),      # the last verdict never held for two rounds
    ((P, N, P, N), OPENED, UN),
    # a cell allowed from this step on (deny before): the old state blocks, over-blocked
    ((OB, P, P), CLOSED, P),
    ((OB, OB, OB), CLOSED, OB),
    ((P, OB, OB), CLOSED, OB),
    ((N, P, P), CLOSED, UN),      # into a pass, but not from the old state's verdict
    # the state before is not known (the Python API): one change from a bad verdict into a
    # held pass is forgiven
    ((N, P, P), UNKNOWN_OLD_STATE, P),
    ((OB, P, P), UNKNOWN_OLD_STATE, P),
    ((P, N, N), UNKNOWN_OLD_STATE, N),
    ((P, P, OB, OB), UNKNOWN_OLD_STATE, OB),
])
def test_a_cell_over_its_rounds(history, old, verdict):
    j = over_rounds(rounds_of(*history), old)
    assert j.verdict == verdict, j.reason


def test_a_steady_cell_is_steady_unless_told_otherwise():
    """The default is the strict rule: a caller that forgets to say the expectation changed
    gets UNSTABLE for a late CNI, never a pass for a transient regression."""
    assert over_rounds(rounds_of(N, P, P)).verdict == UN


def test_an_unstable_cell_says_its_history():
    j = over_rounds(rounds_of(P, P, N, N, P, P), OPENED)
    assert "changed 2 times" in j.reason and "flapping" in j.reason
    assert "r1-r2 pass, r3-r4 not enforced, r5-r6 pass" in j.reason
    assert "never held for two rounds" in over_rounds(rounds_of(N, N, P), OPENED).reason


def test_a_transient_regression_on_a_steady_cell_says_so():
    j = over_rounds(rounds_of(N, P, P))
    assert "did not change at this step" in j.reason
    assert "r1 not enforced, r2-r3 pass" in j.reason and "fail-open" in j.reason
    j = over_rounds(rounds_of(OB, P, P))
    assert "fail-closed" in j.reason
    j = over_rounds(rounds_of(N, P, P), CLOSED)
    assert "from not enforced" in j.reason and "(over-blocked)" in j.reason


@pytest.mark.parametrize("before, after, nx_before, nx_after, old", [
    (A, A, False, False, STEADY),
    (D, D, False, False, STEADY),
    (A, D, False, False, OPENED),      # isolated at this step: before, it connected
    (D, A, False, False, CLOSED),      # opened at this step: before, it was blocked
    (D, D, True, False, OPENED),       # a lookup answered NXDOMAIN before, blocked now
    (D, D, False, True, CLOSED),       # blocked before, must be answered NXDOMAIN now
    (D, D, True, True, STEADY),
    (A, D, False, True, STEADY),       # answered either way (a name, not a policy)
    (A, U, False, False, STEADY),      # not asserted now: nothing to allow
    (D, U, False, False, STEADY),
    (U, A, False, False, UNKNOWN_OLD_STATE),   # the spec said nothing before
    (U, D, False, False, UNKNOWN_OLD_STATE),
])
def test_the_old_state_of_a_cell_from_its_expectations(before, after, nx_before, nx_after, old):
    assert old_state(before, after, nx_before, nx_after) == old


def test_the_window_is_the_same_whatever_the_results():
    w = Window(3, 3.0)
    assert w.interval == 1.0
    assert not w.may_end(2, 5.0, True)         # too few rounds, however long
    assert not w.may_end(3, 2.9, True)         # the last round started inside the window
    assert not w.may_end(4, 3.5, False)        # the last two rounds disagree
    assert w.may_end(3, 3.0, True)
    # nothing about pass or fail goes in: the signature has no verdicts but "agreed"


def test_time_to_enforce_is_the_first_round_after_which_nothing_changed():
    a, b = {"c": N}, {"c": P}
    assert first_stable_round([a, a, b, b, b]) == 2
    assert first_stable_round([b, b, b]) == 0
    assert first_stable_round([a, b]) == 1


def test_an_unstable_cell_fails_the_scenario_and_is_never_an_expected_failure():
    assert scenario_outcome([P, Verdict.UNSTABLE], True, True) == "failed"
    assert scenario_outcome([N, Verdict.UNSTABLE], False, True) == "failed"   # not xfailed
    assert scenario_outcome([N, N], False, True) == "xfailed"


@pytest.mark.parametrize("declared, found, judged", [
    (True, True, True),
    (True, None, True),       # the canary could not tell (or did not run): the declaration
    (False, None, False),
    (False, False, False),
    (False, True, True),      # named open, the canary found enforcement: judged as enforcing
    (True, False, True),      # declared enforcing, found none: its fail-opens still fail
])
def test_the_canary_overrides_the_name_only_towards_judging_as_enforcing(declared, found, judged):
    from harness.verdicts import judged_enforcing
    assert judged_enforcing(declared, found) is judged
