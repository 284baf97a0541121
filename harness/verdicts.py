"""Expectation x observation (+ positive control) -> verdict. The only code that reads both.

Why alone and pure: the prober never sees the expectation and the oracle never sees a packet
(examples-to-follow §2). Everything that turns "what the spec says" and "what the tools saw"
into pass / not enforced / over-blocked / probe error is here, table-tested without a cluster.

Rules, per cell of one round:
- '-' / undefined            -> NOT_ASSERTED (the observation is still recorded).
- no status (exec failed), a tool error, a client that could not resolve its target name
                             -> PROBE_ERROR: says nothing about policy.
- delivered (connected, DNS answer, NXDOMAIN) -> PASS if allowed, NOT_ENFORCED if denied.
- an L7 proxy's 403          -> counts as blocked (the proxy answered, so the path is alive).
- timeout (dropped)          -> blocked only with a positive control for the same target, port
                               and protocol in the same round; otherwise PROBE_ERROR (a dead
                               server also times out).
- refused                    -> blocked only when the backend declares deny_response "reject"
                               and a positive control exists; otherwise PROBE_ERROR (a closed
                               port answers RST exactly like a reject, kind-cni-notes §5.4).
- a name the client could not resolve (curl exit 6) -> the same rule as refused: a rejected DNS
                               query fails at once like that, so it is blocked only behind a
                               rejecting CNI, with the DNS server proven to answer.
- DNS REFUSED                -> blocked only on a backend with a DNS proxy (fqdn), else error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping

from harness.probes import Outcome, ProbeOutcome
from harness.results import Expectation, Verdict

#: what the observed column says when no exit status came back
EXEC_FAILED = "exec-failed"
BLOCKED = "blocked"


@dataclass(frozen=True)
class Judgement:
    """The verdict on one cell in one round, with the observed word and why."""

    verdict: Verdict
    observed: str
    reason: str


def expectation_of(value) -> Expectation:
    """Expectation from an Expectation, a truth-table symbol or a word ('-', '.', 'X', 'allow')."""
    if isinstance(value, Expectation):
        return value
    text = str(getattr(value, "value", value)).strip().lower()
    table = {".": Expectation.ALLOW, "allow": Expectation.ALLOW, "resolves": Expectation.ALLOW,
             "x": Expectation.DENY, "deny": Expectation.DENY, "fails": Expectation.DENY,
             "-": Expectation.UNDEFINED, "undefined": Expectation.UNDEFINED}
    if text not in table:
        raise ValueError(f"unknown expectation {value!r}: expected allow, deny, undefined or '-'")
    return table[text]


def blocked_kind(outcome: Outcome, deny_response: str = "drop", dns_proxy: bool = False) -> str:
    """How an outcome reads before the positive control: 'delivered', 'blocked', 'refused'
    (blocked only on a rejecting CNI), or 'error'."""
    if outcome == Outcome.HTTP_DENIED:
        return "blocked-l7"
    if outcome.delivered is True:
        return "delivered"
    if outcome.delivered is False:
        return "blocked"
    if outcome == Outcome.REFUSED:
        return "blocked" if deny_response == "reject" else "refused"
    if outcome == Outcome.DNS_FAILED:
        # a client could not resolve its target's name: behind a rejecting CNI that is how a
        # rejected lookup ends (the resolver gets ICMP unreachable and gives up at once, with
        # the same message as for a name that does not exist), so it is blocked only there and
        # only with a control proving the DNS server answers; elsewhere it proves nothing
        return "blocked" if deny_response == "reject" else "error"
    if outcome == Outcome.DNS_REFUSED:
        return "blocked" if dns_proxy else "error"
    return "error"


def judge(expectation, observation: ProbeOutcome | None, positive_control: bool | None,
          deny_response: str = "drop", dns_proxy: bool = False) -> Judgement:
    """The verdict on one cell of one round.

    `observation` None means the exec transport failed (no exit status). `positive_control`
    says whether the same target/port/protocol answered in the same round (None: unknown).
    """
    exp = expectation_of(expectation)
    if observation is None:
        j = Judgement(Verdict.PROBE_ERROR, EXEC_FAILED, "the exec failed: no exit status came back")
        return _not_asserted(j) if exp == Expectation.UNDEFINED else j
    out = observation.outcome
    kind = blocked_kind(out, deny_response, dns_proxy)
    detail = f" ({observation.detail})" if observation.detail else ""
    if kind == "delivered":
        j = (Judgement(Verdict.PASS, out.value, f"{out.value} as the spec allows")
             if exp != Expectation.DENY else
             Judgement(Verdict.NOT_ENFORCED, out.value,
                       f"{out.value}{detail} although the spec requires it blocked: fail-open"))
    elif kind == "blocked-l7":
        j = (Judgement(Verdict.PASS, out.value, f"an L7 proxy denied it{detail}")
             if exp != Expectation.ALLOW else
             Judgement(Verdict.OVER_BLOCKED, out.value, f"an L7 proxy denied it{detail}"
                                                        " although the spec allows it"))
    elif kind == "blocked":
        if not positive_control:
            j = Judgement(Verdict.PROBE_ERROR, out.value,
                          f"{out.value}{detail} but nothing proved the target serves that port in "
                          "the same round (no positive control): a dead server looks the same")
        elif exp == Expectation.ALLOW:
            j = Judgement(Verdict.OVER_BLOCKED, BLOCKED,
                          f"{out.value}{detail} although the spec allows it and the target "
                          "answered another probe in the same round: fail-closed")
        else:
            j = Judgement(Verdict.PASS, BLOCKED, f"{out.value}; the target answered a positive "
                                                 "control in the same round")
    elif kind == "refused":
        j = Judgement(Verdict.PROBE_ERROR, out.value,
                      f"connection refused{detail}: the packet reached a closed port (this CNI "
                      "does not declare that it rejects denied packets), so it is not a policy "
                      "block; is the target serving?")
    else:
        j = Judgement(Verdict.PROBE_ERROR, out.value,
                      f"{out.value}{detail}: the probe says nothing about policy")
    return _not_asserted(j) if exp == Expectation.UNDEFINED else j


def _not_asserted(j: Judgement) -> Judgement:
    return Judgement(Verdict.NOT_ASSERTED, j.observed, "not asserted (the spec leaves it "
                                                       f"undefined); observed {j.observed}")


def positive_controls(cells: Iterable[tuple[Hashable, object, ProbeOutcome | None]]
                      ) -> dict[Hashable, bool]:
    """Per control key (target, port, protocol): did a source expected to reach it connect?

    `cells` are (key, expectation, observation) of one round. Only sources the spec allows
    count: a connection the spec forbids is itself a failure, not proof that the server lives.
    """
    found: dict[Hashable, bool] = {}
    for key, expectation, obs in cells:
        found.setdefault(key, False)
        if obs is not None and expectation_of(expectation) == Expectation.ALLOW \
                and obs.outcome.delivered is True and obs.outcome != Outcome.HTTP_DENIED:
            found[key] = True
    return found


def self_probe_proves(observation: ProbeOutcome | None) -> bool:
    """True when a loopback probe inside the target got an answer: the server serves.

    Why loopback: the upstream readiness probe does the same; no NetworkPolicy filters a pod's
    own 127.0.0.1, so an answer there proves the server, not the network.
    """
    return observation is not None and observation.outcome in (Outcome.CONNECTED,
                                                               Outcome.DNS_RESOLVED,
                                                               Outcome.DNS_NXDOMAIN)


def settled(verdicts: Mapping[Hashable, Verdict], previous: Mapping[Hashable, Verdict] | None
            ) -> bool:
    """Two consecutive rounds with the same verdict for every cell."""
    return previous is not None and dict(previous) == dict(verdicts)


def all_pass(verdicts: Mapping[Hashable, Verdict]) -> bool:
    return all(v in (Verdict.PASS, Verdict.NOT_ASSERTED) for v in verdicts.values())


def scenario_outcome(final: Iterable[Verdict], declared_enforcing: bool, has_deny: bool,
                     infra_error: bool = False) -> str:
    """passed | failed | xfailed | xpassed | error for a scenario's final verdicts.

    A CNI declared not to enforce: only NOT_ENFORCED failures -> xfailed (expected); everything
    passing while the scenario requires some block -> xpassed (strict: reported as a failure,
    the declaration is wrong). Probe errors make the run an error, never a policy verdict.
    """
    if infra_error:
        return "error"
    final = list(final)
    if Verdict.PROBE_ERROR in final:
        return "error"
    bad = {v for v in final if v not in (Verdict.PASS, Verdict.NOT_ASSERTED)}
    if declared_enforcing:
        return "failed" if bad else "passed"
    if not bad:
        return "xpassed" if has_deny else "passed"
    return "xfailed" if bad == {Verdict.NOT_ENFORCED} else "failed"
