"""Expectation x observation (+ positive control) -> verdict. The only code that reads both.

Why alone and pure: the prober never sees the expectation and the oracle never sees a packet
(upstream netpol `probe.go` only fills the observed table, `reachability.go` compares).
Everything that turns "what the spec says" and "what the tools saw" into pass / not enforced /
over-blocked / probe error is here, table-tested without a cluster.

Rules, per cell of one round:
- '-' / undefined            -> NOT_ASSERTED (the observation is still recorded).
- no status (exec failed), a tool error, a client that could not resolve its target name
                             -> PROBE_ERROR: says nothing about policy.
- delivered (connected)       -> PASS if allowed, NOT_ENFORCED if denied, but only when the
                               reply names a server of the intended target (`servers`: the
                               pod, the Service's backends); a reply from anyone else (a proxy's
                               503, another pod) is a PROBE_ERROR naming who answered.
- a DNS lookup has three outcomes, each judged on its own against what the oracle says the
  cluster DNS must do (`nxdomain_expected`, `expected_addresses`):
    resolves (allowed)  resolved to an expected address -> PASS; to another address, or
                        NXDOMAIN -> PROBE_ERROR (the cluster DNS, not policy, is wrong);
                        blocked -> OVER_BLOCKED (with a control)
    NXDOMAIN            NXDOMAIN -> PASS; resolved -> PROBE_ERROR (a name the model lacks);
                        blocked -> OVER_BLOCKED (with a control): the lookup may reach the DNS
    no answer (denied)  blocked -> PASS (with a control); resolved or NXDOMAIN -> NOT_ENFORCED
                        (the DNS server answered: the lookup was not blocked)
- an L7 proxy's 403          -> counts as blocked (the proxy answered, so the path is alive)
                               on a CNI that declares an L7 proxy (l7-http); elsewhere a 403
                               "access denied" is someone else's answer: PROBE_ERROR.
- timeout (dropped)          -> blocked only with a positive control for the same target, port
                               and protocol in the same round; otherwise PROBE_ERROR (a dead
                               server also times out).
- refused                    -> blocked only when the backend declares deny_response "reject"
                               and a positive control exists; otherwise PROBE_ERROR (a closed
                               port answers RST exactly like a reject, docs/sources.md §5.4).
- a name the client could not resolve (curl exit 6) -> the same rule as refused: a rejected DNS
                               query fails at once like that, so it is blocked only behind a
                               rejecting CNI; and it looks exactly like a name that does not
                               exist, so its control is the name itself: the same name resolved
                               in that round, by a source allowed to look it up or by the DNS
                               server on its loopback (an address: name_resolves, not NXDOMAIN).
- DNS REFUSED                -> blocked only on a backend with a DNS proxy (fqdn), else error.
- a late reply (an answer after the probe timeout, within its grace: probes.late_grace)
                             -> PROBE_ERROR: the packets got through, so it is never a block;
                               late, so it is no delivery in time either.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Hashable, Iterable, Mapping, Sequence

from harness.probes import Outcome, ProbeOutcome
from harness.results import (
    Expectation,
    ScenarioOutcome,
    Verdict,
)
from harness.truthtable import EXPECTATION_OF_SYMBOL

#: what the observed column says when no exit status came back
EXEC_FAILED = "exec-failed"
BLOCKED = "blocked"


@dataclass(frozen=True)
class Judgement:
    """The verdict on one cell in one round, with the observed word and why."""

    verdict: Verdict
    observed: str
    reason: str


def expectation_of(value: object) -> Expectation:
    """Expectation from an Expectation, a truth-table symbol or a word ('-', '.', 'X', 'allow')."""
    if isinstance(value, Expectation):
        return value
    text = str(getattr(value, "value", value)).strip().lower()
    table = {**{s.lower(): e for s, e in EXPECTATION_OF_SYMBOL.items()},
             **{e.value: e for e in Expectation},
             "resolves": Expectation.ALLOW, "fails": Expectation.DENY}
    if text not in table:
        raise ValueError(f"unknown expectation {value!r}: expected allow, deny, undefined or '-'")
    return table[text]


class BlockedKind(StrEnum):
    """How an outcome reads before the positive control is asked."""

    DELIVERED = "delivered"      # connected, or a DNS answer (NXDOMAIN included)
    BLOCKED = "blocked"          # dropped (or rejected on a CNI that declares it rejects)
    BLOCKED_L7 = "blocked-l7"    # an L7 proxy answered 403: the path is alive, the request denied
    REFUSED = "refused"          # a closed port or a reject: blocked only on a rejecting CNI
    NO_VERDICT = "error"         # the probe says nothing about policy


def blocked_kind(outcome: Outcome, deny_response: str = "drop", dns_proxy: bool = False,
                 l7_proxy: bool = False) -> BlockedKind:
    """How an outcome reads before the positive control: DELIVERED, BLOCKED, BLOCKED_L7 (an L7
    proxy's deny, only on a CNI that declares one), REFUSED (blocked only on a rejecting CNI),
    or NO_VERDICT."""
    if outcome == Outcome.HTTP_DENIED:
        return BlockedKind.BLOCKED_L7 if l7_proxy else BlockedKind.NO_VERDICT
    if outcome.delivered is True:
        return BlockedKind.DELIVERED
    if outcome.delivered is False:
        return BlockedKind.BLOCKED
    if outcome == Outcome.REFUSED:
        return BlockedKind.BLOCKED if deny_response == "reject" else BlockedKind.REFUSED
    if outcome == Outcome.DNS_FAILED:
        # a client could not resolve its target's name: behind a rejecting CNI that is how a
        # rejected lookup ends (the resolver gets ICMP unreachable and gives up at once, with
        # the same message as for a name that does not exist), so it is blocked only there and
        # only with a control proving the name resolves (the runner's name control: the same
        # name resolved in the round, name_resolves); elsewhere it proves nothing
        return BlockedKind.BLOCKED if deny_response == "reject" else BlockedKind.NO_VERDICT
    if outcome == Outcome.DNS_REFUSED:
        return BlockedKind.BLOCKED if dns_proxy else BlockedKind.NO_VERDICT
    return BlockedKind.NO_VERDICT


def judge(expectation: object, observation: ProbeOutcome | None, positive_control: bool | None,
          deny_response: str = "drop", dns_proxy: bool = False, *,
          nxdomain_expected: bool = False,
          expected_addresses: frozenset[str] | None = None,
          servers: frozenset[str] | None = None, l7_proxy: bool = False) -> Judgement:
    """The verdict on one cell of one round.

    `observation` None means the exec transport failed (no exit status). `positive_control`
    says whether the same target/port/protocol answered in the same round (None: unknown).
    For a DNS lookup, `nxdomain_expected` says the oracle expects the DNS server to answer that
    the name does not exist (the expectation is then DENY, but nothing must be blocked), and
    `expected_addresses` are the addresses a lookup that must resolve may answer (None: not
    known, any answer counts). `servers` are the names a reply of the intended target may give
    (None: not known, e.g. a bare address, and any reply counts). `l7_proxy` says the CNI
    declares an L7 proxy (l7-http), whose HTTP 403 "access denied" is its deny.
    """
    exp = expectation_of(expectation)
    if observation is None:
        j = Judgement(Verdict.PROBE_ERROR, EXEC_FAILED, "the exec failed: no exit status came back")
        return _not_asserted(j) if exp == Expectation.UNDEFINED else j
    out = observation.outcome
    kind = blocked_kind(out, deny_response, dns_proxy, l7_proxy)
    detail = f" ({observation.detail})" if observation.detail else ""
    nxdomain = nxdomain_expected and exp == Expectation.DENY
    if out in (Outcome.DNS_RESOLVED, Outcome.DNS_NXDOMAIN):
        j = _dns_answer(exp, observation, nxdomain, expected_addresses)
    elif kind is BlockedKind.BLOCKED and nxdomain:
        j = (Judgement(Verdict.OVER_BLOCKED, BLOCKED,
                       f"{out.value}{detail} although the spec lets the lookup reach the cluster "
                       "DNS, which must answer NXDOMAIN, and the DNS server answered in the same "
                       "round: DNS is over-blocked")
             if positive_control else
             Judgement(Verdict.PROBE_ERROR, out.value,
                       f"{out.value}{detail} where the DNS server must answer NXDOMAIN, and "
                       "nothing proved the DNS server answers in the same round"))
    elif kind is BlockedKind.DELIVERED and not answered_by_target(observation, servers):
        j = Judgement(Verdict.PROBE_ERROR, out.value,
                      f"answered by {_who(observation)}{detail}, not by a server of the target "
                      f"({', '.join(sorted(servers or ()))}): a reply from someone else (a proxy, "
                      "another pod) proves neither delivery nor a block")
    elif kind is BlockedKind.DELIVERED:
        j = (Judgement(Verdict.PASS, out.value, f"{out.value} as the spec allows")
             if exp != Expectation.DENY else
             Judgement(Verdict.NOT_ENFORCED, out.value,
                       f"{out.value}{detail} although the spec requires it blocked: fail-open"))
    elif kind is BlockedKind.BLOCKED_L7:
        j = (Judgement(Verdict.PASS, out.value, f"an L7 proxy denied it{detail}")
             if exp != Expectation.ALLOW else
             Judgement(Verdict.OVER_BLOCKED, out.value, f"an L7 proxy denied it{detail}"
                                                        " although the spec allows it"))
    elif kind is BlockedKind.BLOCKED:
        if not positive_control and out == Outcome.DNS_FAILED:
            j = Judgement(Verdict.PROBE_ERROR, out.value,
                          f"the client could not resolve the name{detail}, and nothing proved "
                          "in the same round that the name resolves (no source allowed to look "
                          "it up resolved it, nor did the DNS server itself): a name that "
                          "stopped resolving looks the same")
        elif not positive_control:
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
    elif out == Outcome.HTTP_DENIED:
        j = Judgement(Verdict.PROBE_ERROR, out.value,
                      f"HTTP 403 'access denied'{detail} from something that is not the target, "
                      "on a CNI that declares no L7 proxy: says nothing about policy")
    elif out == Outcome.LATE_REPLY:
        j = Judgement(Verdict.PROBE_ERROR, out.value,
                      f"an answer came only after the probe timeout{detail}: the packets got "
                      "through, late, so it is no block; nor is it a delivery in time")
    elif kind is BlockedKind.REFUSED:
        j = Judgement(Verdict.PROBE_ERROR, out.value,
                      f"connection refused{detail}: the packet reached a closed port (this CNI "
                      "does not declare that it rejects denied packets), so it is not a policy "
                      "block; is the target serving?")
    else:
        j = Judgement(Verdict.PROBE_ERROR, out.value,
                      f"{out.value}{detail}: the probe says nothing about policy")
    return _not_asserted(j) if exp == Expectation.UNDEFINED else j


def answered_by_target(observation: ProbeOutcome | None, servers: frozenset[str] | None) -> bool:
    """True when a connected probe's reply names one of `servers` (or `servers` is unknown).

    Why: "connected" means the intended server answered. The probe servers reply with their
    name (the local backend's with the pod key, agnhost serve-hostname with the hostname), so
    an HTTP response from a proxy or a reply from the wrong pod is told apart from delivery.
    """
    if servers is None or observation is None or observation.outcome != Outcome.CONNECTED:
        return True
    who = (observation.answered_by or "").strip().splitlines()
    return bool(who) and who[0].strip() in servers


def _who(o: ProbeOutcome) -> str:
    who = (o.answered_by or "").strip().splitlines()
    return repr(who[0].strip()[:120]) if who else "a reply that names no server"


def _dns_answer(exp: Expectation, o: ProbeOutcome, nxdomain: bool,
                expected: frozenset[str] | None) -> Judgement:
    """An answer from the DNS server (an address or NXDOMAIN) against the three expectations."""
    got = o.outcome.value
    if exp == Expectation.DENY and not nxdomain:
        what = f"resolved to {o.answered_by}" if o.outcome == Outcome.DNS_RESOLVED else \
            "answered NXDOMAIN"
        return Judgement(Verdict.NOT_ENFORCED, got,
                         f"the DNS server {what}, so the lookup was not blocked although the "
                         "spec requires it blocked: fail-open")
    if nxdomain:
        if o.outcome == Outcome.DNS_NXDOMAIN:
            return Judgement(Verdict.PASS, got, "the DNS server answered that the name does not "
                                                "exist, as the spec says")
        return Judgement(Verdict.PROBE_ERROR, got,
                         f"resolved to {o.answered_by} although the model has no such name (the "
                         "oracle expects NXDOMAIN): the cluster DNS knows a name the scenario "
                         "does not, which says nothing about policy")
    if o.outcome == Outcome.DNS_NXDOMAIN:
        return Judgement(Verdict.PROBE_ERROR, got,
                         "the DNS server answered NXDOMAIN for a name the model has: the cluster "
                         "DNS (or the name's mapping) is broken, which says nothing about policy")
    answers = {a.strip() for a in (o.answered_by or "").split(",") if a.strip()}
    if expected is not None and not answers & expected:
        return Judgement(Verdict.PROBE_ERROR, got,
                         f"resolved to {', '.join(sorted(answers)) or 'nothing'}, not to "
                         f"{', '.join(sorted(expected))}: an answer from the wrong record (or "
                         "the wrong server) says nothing about policy")
    return Judgement(Verdict.PASS, got, f"resolved to {o.answered_by} as the spec allows")


def _not_asserted(j: Judgement) -> Judgement:
    return Judgement(Verdict.NOT_ASSERTED, j.observed, "not asserted (the spec leaves it "
                                                       f"undefined); observed {j.observed}")


def positive_controls(cells: Iterable[tuple[Any, ...]]) -> dict[Hashable, bool]:
    """Per control key (target, port, protocol): did a source expected to reach it connect?

    `cells` are (key, expectation, observation) or (key, expectation, observation, servers) of
    one round. Only sources the spec allows count: a connection the spec forbids is itself a
    failure, not proof that the server lives; nor does a reply from anyone but the target.
    """
    found: dict[Hashable, bool] = {}
    for key, expectation, obs, *rest in cells:
        servers = rest[0] if rest else None
        found.setdefault(key, False)
        if obs is not None and expectation_of(expectation) == Expectation.ALLOW \
                and obs.outcome.delivered is True and obs.outcome != Outcome.HTTP_DENIED \
                and answered_by_target(obs, servers):
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


def name_resolves(observation: ProbeOutcome | None) -> bool:
    """True when the DNS server's own lookup of a name answered it with an address: the name
    resolves. Why stricter than self_probe_proves: NXDOMAIN proves the DNS server answers, not
    that the name exists, and a client that "could not resolve" a name behind a rejecting CNI
    is blocked only if the name exists (else it is a name that stopped resolving)."""
    return observation is not None and observation.outcome == Outcome.DNS_RESOLVED


def settled(verdicts: Mapping[Hashable, Verdict], previous: Mapping[Hashable, Verdict] | None
            ) -> bool:
    """Two consecutive rounds with the same verdict for every cell."""
    return previous is not None and dict(previous) == dict(verdicts)


def judged_enforcing(declared: bool, found: bool | None) -> bool:
    """Whether a scenario on a CNI is judged as on an enforcing one (its failures fail) or may
    fail as expected (xfailed): from what the CNI is declared to do and what the enforcement
    canary found (None: could not tell, or not run).

    The canary overrides the name when it found enforcement: a cluster named `flannel` that
    blocks the canary's deny-all is judged as enforcing, so a partly enforcing one fails and a
    wholly enforcing one passes. It never turns a failure into an expected one: a CNI declared
    to enforce whose canary found no enforcement keeps every fail-open a failure (the finding
    is said loudly beside it, results.canary_contradiction).
    """
    return declared or found is True


# -- the observation window: one rule for every step, whatever the results ----------------------
@dataclass(frozen=True)
class Window:
    """How long every step is observed, whether its results match the spec or not.

    A step is probed for at least `min_rounds` rounds, and until a round has started at least
    `min_seconds` after the step's change; then until two consecutive rounds agree on every
    cell (or the convergence deadline). Round starts are at least `interval` apart, so the
    window holds about `min_rounds` rounds however fast a round is. docs/ARCHITECTURE.md, "The
    observation window", states the rule and what it cannot see.
    """

    min_rounds: int = 3
    min_seconds: float = 3.0

    @property
    def interval(self) -> float:
        return self.min_seconds / self.min_rounds if self.min_rounds > 0 else 0.0

    def may_end(self, rounds: int, last_start: float, agreed: bool) -> bool:
        """After `rounds` rounds, the last of which started `last_start` seconds after the
        change: may the step end? Only when the window is over and the last two rounds agreed."""
        return rounds >= self.min_rounds and last_start >= self.min_seconds and agreed


#: the state before a step's change is not known (the Python API asserts a table after
#: whatever the test did): a change from a bad verdict into the held one may be late
#: programming of either kind, a change out of a pass never is
UNKNOWN_OLD_STATE: frozenset[Verdict] = frozenset({Verdict.NOT_ENFORCED, Verdict.OVER_BLOCKED})


def old_state(before: Expectation, after: Expectation, nxdomain_before: bool = False,
              nxdomain_after: bool = False) -> frozenset[Verdict]:
    """The verdict a cell's state before a step's change earns against the step's expectation:
    what a CNI that programs the change late shows first. Empty for a steady cell (nothing the
    step changed may show at all).

    `before`/`after`: what the spec requires before the step's change and from it on;
    `nxdomain_*`: a DNS lookup the cluster DNS must answer NXDOMAIN (DENY, but delivered).
    Connected (or answered) before and blocked now reads NOT_ENFORCED; blocked before and
    connected now OVER_BLOCKED. A spec that said nothing before: UNKNOWN_OLD_STATE.
    """
    if after is Expectation.UNDEFINED:
        return frozenset()       # not asserted now: every round is NOT_ASSERTED anyway
    if before is Expectation.UNDEFINED:
        return UNKNOWN_OLD_STATE

    def delivered(e: Expectation, nxdomain: bool) -> bool:
        return e is Expectation.ALLOW or nxdomain

    was, now = delivered(before, nxdomain_before), delivered(after, nxdomain_after)
    if was == now:
        return frozenset()
    return frozenset({Verdict.NOT_ENFORCED if was else Verdict.OVER_BLOCKED})


def over_rounds(history: Sequence[Judgement], old: frozenset[Verdict] = frozenset()
                ) -> Judgement:
    """A cell's verdict for the step, from its judgement in every round of the step.

    `old`: the verdict the state before the step's change earns against the step's expectation
    (`old_state`); empty for a steady cell, whose expectation did not change at this step.

    The last round's when every round gave the same verdict. One change is allowed, held for
    at least two rounds after it: into a pass only where the expectation changed at this step,
    and only old -> new (a CNI that programs a policy late shows the old state first, a verdict
    in `old`, then the new one); into a failure (not enforced, over-blocked) anywhere, judged as
    it ends (a dataplane right at first and wrong later fails as it is now). Anything else is
    UNSTABLE, with the history, never a pass: a steady cell that failed and then passed (a CNI
    that flushes and reprograms on every update opens isolated pods for a moment after an
    unrelated change: a transient fail-open), a pass reached from anything but the old state,
    a change more than once (flapping), or a last verdict that never held for two rounds.
    Rounds with a probe error are skipped here: they say nothing about policy (a cell whose
    last round is a probe error is a probe error).
    """
    if not history:
        raise ValueError("a cell needs at least one round")
    last = history[-1]
    seen = [j.verdict for j in history if j.verdict is not Verdict.PROBE_ERROR]
    changes = sum(1 for a, b in zip(seen, seen[1:], strict=False) if a != b)
    if changes == 0:
        return last
    if changes > 1:
        why = f"changed {changes} times: flapping"
    elif seen[-1] != seen[-2]:
        why = "changed in its last round, so it never held for two rounds"
    elif seen[-1] in _KIND:
        return last      # into a failure: judged as it ends, never forgiven
    elif not old:
        bad = sorted({v for v in seen if v in _KIND}, key=list(Verdict).index)
        kinds = " and ".join(f"{_KIND[v]} ({v.value})" for v in bad)
        why = (f"changed although its expectation did not change at this step: a transient "
               f"{kinds} that no late programming explains")
    elif seen[0] not in old:
        why = (f"changed from {seen[0].value}, which is not the state before this step's change "
               f"({', '.join(sorted(v.value for v in old))}): only a change from the old state "
               "to the new is late programming")
    else:
        return last
    return Judgement(Verdict.UNSTABLE, Verdict.UNSTABLE.value,
                     f"the verdict {why}, while the step was observed "
                     f"({rounds_text([j.verdict for j in history])}); no single verdict "
                     "describes it")


#: what a bad verdict is, in the words of a transient
_KIND = {Verdict.NOT_ENFORCED: "fail-open", Verdict.OVER_BLOCKED: "fail-closed"}


def rounds_text(verdicts: Sequence[Verdict]) -> str:
    """`r1-r2 pass, r3 not enforced, r4 pass`: a verdict history with runs folded."""
    runs: list[tuple[int, int, Verdict]] = []
    for i, v in enumerate(verdicts, 1):
        if runs and runs[-1][2] == v:
            runs[-1] = (runs[-1][0], i, v)
        else:
            runs.append((i, i, v))
    return ", ".join((f"r{a}" if a == b else f"r{a}-r{b}") + f" {v.value}" for a, b, v in runs)


def first_stable_round(rounds: Sequence[Mapping[Hashable, Verdict]]) -> int:
    """The index of the first round after which no verdict changed (the CNI's time to enforce
    is when that round started)."""
    i = len(rounds) - 1
    while i > 0 and dict(rounds[i - 1]) == dict(rounds[i]):
        i -= 1
    return i


def scenario_outcome(final: Iterable[Verdict], declared_enforcing: bool, has_deny: bool,
                     infra_error: bool = False, scenario_error: bool = False
                     ) -> ScenarioOutcome:
    """passed | failed | xfailed | xpassed | error | scenario error for a scenario's verdicts.

    A scenario that is wrong on this run (it disagrees with the oracle at the real addresses)
    is a scenario error, never a verdict on the CNI. A proven failure is never hidden behind an
    error elsewhere: a cell not enforced, over-blocked or unstable on a CNI declared to enforce
    (over-blocked or unstable on one declared not to: never expected) fails the scenario even
    when other probes gave no verdict or the infrastructure broke later (the reports count the
    probe errors and print the infrastructure error beside it). Otherwise a probe error or an
    infrastructure error makes it an error, never a policy verdict: on a CNI declared not to
    enforce, not enforced cells are what it declares, and xfailed would hide the error.
    Without errors, on a CNI declared not to enforce: only NOT_ENFORCED failures -> xfailed
    (expected); everything passing while the scenario requires some block -> xpassed (strict:
    reported as a failure, the declaration is wrong).
    """
    if scenario_error:
        return ScenarioOutcome.SCENARIO_ERROR
    final = list(final)
    # UNSTABLE is never expected: on a CNI declared not to enforce it fails too (not xfailed)
    bad = {v for v in final if v not in (Verdict.PASS, Verdict.NOT_ASSERTED,
                                          Verdict.PROBE_ERROR)}
    proven = bad if declared_enforcing else bad - {Verdict.NOT_ENFORCED}
    if proven:
        return ScenarioOutcome.FAILED
    if infra_error or Verdict.PROBE_ERROR in final:
        return ScenarioOutcome.ERROR
    if not bad:
        return ScenarioOutcome.XPASSED if has_deny and not declared_enforcing \
            else ScenarioOutcome.PASSED
    return ScenarioOutcome.XFAILED

