"""run_scenario on the real local backend: every verdict from real packets, and the probe
errors that must never become policy verdicts.

Why real: the runner's job is to turn packets into honest verdicts; only real namespaces, real
nftables drops and real dead servers show that a dead server is not "blocked".
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.backends.local import LocalBackend
from harness.backends.local import netns as nsx
from harness.runner import run_scenario
from harness.scenario import load_scenario
from harness.settings import build
from tests.conftest import needs_local
from tests.faulty_dataplanes import (
    DnsBlockedForEveryone,
    DnsLeftOpen,
    DnsWithWrongRecords,
    Flapping,
    FlapsEveryFewProbes,
    LateAndWrong,
    PoliciesInTheWrongNamespace,
    ReloadsFromScratch,
    SlowInsteadOfBlocked,
    SlowToEnforce,
)

pytestmark = needs_local
DATA = Path(__file__).parent / "data" / "run"
SCENARIOS = Path(__file__).parent.parent / "scenarios"


def verdicts_of(step) -> dict[tuple[str, str, str, str], str]:
    return {(c.source, c.target if not c.dns_name else f"dns:{c.dns_name}", c.port, c.protocol):
            c.verdict for c in step.cells}


@pytest.fixture
def run_on():
    backends = []

    def run(name: str, profile: str = "enforcing", cls=LocalBackend, canary: object = "profile",
            **settings):
        s = build({"cnis": profile, **settings}, env={})
        backend = cls(profile=profile, run_id=s.run_id, probe_timeout=s.probe_timeout)
        backend.up()
        backends.append(backend)
        lines: list[str] = []
        result = run_scenario(load_scenario(DATA / name), backend, s, log=lines.append,
                              enforcing=profile == "enforcing" if canary == "profile" else canary)
        result.log = lines  # type: ignore[attr-defined]
        # the topology is gone after the run, whatever happened
        assert backend.model is None
        assert not [n for n in nsx.list_netns() if n.startswith(backend.prefix + "p")]
        return result

    yield run
    for b in backends:
        b.down()


def test_enforcing_profile_passes_with_tcp_udp_and_dns(run_on):
    r = run_on("deny-ingress-small.yaml")
    assert r.outcome == "passed", r.infra_error or r.verdict_counts()
    assert r.baseline is not None and r.baseline.infra_error is None
    assert r.policies_accepted == 1
    step1, step2 = r.steps
    v = verdicts_of(step1)
    assert v[("y/a", "x/a", "80", "TCP")] == "pass"
    assert v[("y/a", "x/a", "81", "UDP")] == "pass"
    assert v[("y/a", "dns:kubernetes.default.svc.cluster.local", "53", "UDP")] == "pass"
    assert v[("x/a", "x/a", "80", "TCP")] == "not asserted"
    blocked = next(c for c in step1.cells if (c.source, c.target, c.protocol) == ("y/a", "x/a", "TCP"))
    assert blocked.expected == "deny" and blocked.observed == "blocked"
    # every attempt kept, and the block was counted only with a positive control
    assert len(blocked.attempts) == step1.rounds >= 2
    assert all(a.outcome == "timeout" and a.positive_control is True for a in blocked.attempts)
    assert step1.converged and step1.converge_seconds is not None
    assert set(verdicts_of(step2).values()) <= {"pass", "not asserted"}
    assert any("applied NetworkPolicy x/deny-all" in line for line in r.log)


def test_open_profile_is_an_expected_failure_with_the_proof(run_on):
    r = run_on("deny-ingress-small.yaml", "open")
    assert r.outcome == "xfailed"
    assert r.policies_accepted == 1          # the API accepted it ...
    counts = r.verdict_counts()
    assert counts["not enforced"] == 12      # ... and 6 TCP + 6 UDP cells into x still connect
    assert "over-blocked" not in counts and "probe error" not in counts
    assert r.enforcing_cluster is False


def test_nothing_to_enforce_on_open_is_a_plain_pass(run_on):
    assert run_on("allow-only-open.yaml", "open").outcome == "passed"


class DeclaredOpenButEnforcing(LocalBackend):
    """The enforcing dataplane whose capabilities claim it does not enforce (a wrong declaration)."""

    def capabilities(self):
        return replace(super().capabilities(), enforces=False)


def test_declared_non_enforcing_that_enforces_is_xpassed_when_the_canary_could_not_tell(run_on):
    r = run_on("deny-ingress-small.yaml", "enforcing", DeclaredOpenButEnforcing, canary=None)
    assert r.outcome == "xpassed" and r.canary_contradiction is None


def test_declared_non_enforcing_whose_canary_found_enforcement_is_judged_as_enforcing(run_on):
    r = run_on("deny-ingress-small.yaml", "enforcing", DeclaredOpenButEnforcing, canary=True)
    assert r.outcome == "passed" and r.declared_enforcing is False
    assert "declared not to enforce" in (r.canary_contradiction or "")
    assert f"  WARNING: {r.canary_contradiction}" in r.log  # type: ignore[attr-defined]


def test_a_faulty_dataplane_gives_over_blocked_and_not_enforced(run_on):
    # deny-all is programmed in y instead of x: x stays open, y is cut off
    r = run_on("deny-ingress-small.yaml", "enforcing", PoliciesInTheWrongNamespace)
    v = verdicts_of(r.steps[0])
    assert v[("y/a", "x/a", "80", "TCP")] == "not enforced"
    assert v[("x/a", "y/a", "80", "TCP")] == "over-blocked"
    assert v[("y/b", "y/a", "81", "UDP")] == "over-blocked"
    assert r.outcome == "failed"
    over = next(c for c in r.steps[0].cells if c.verdict == "over-blocked")
    # every source the spec allows into y is cut off, so the control was the loopback
    # self-probe inside the target
    assert all(a.positive_control is True for a in over.attempts)
    assert r.scenario_error is None


def test_a_table_that_contradicts_the_oracle_is_a_scenario_error_not_a_cni_verdict(run_on):
    """One flipped cell of the conformance deny-all-ingress (y/a -> x/a written as allowed):
    judged against the file's symbol it read OVER-BLOCKED with a "why" that says deny."""
    r = run_on("deny-all-ingress-flipped.yaml")
    assert r.outcome == "scenario error"
    assert r.steps == [] and r.baseline is None      # nothing judged on the CNI
    assert "y/a -> x/a on TCP 80: expected allow, the oracle computes deny" in r.scenario_error
    assert "1 expectation(s) of the file disagree" in r.scenario_error
    assert any("SCENARIO ERROR" in line for line in r.log)


def test_a_block_asserted_on_a_port_nothing_serves_is_a_scenario_error(run_on):
    # the oracle leaves it undefined: a refused connection there says nothing about policy
    r = run_on("unserved-port.yaml")
    assert r.outcome == "scenario error"
    assert "x/b serves nothing on TCP 8099" in r.scenario_error
    assert r.steps == [] and r.policies_accepted == 0


class ServerDeadAfterDeploy(LocalBackend):
    """The real local backend; x/b's server stops once the topology is up."""

    def deploy(self, model):
        addresses = super().deploy(model)
        self.stop_server("x/b")
        return addresses


def test_a_server_that_refuses_before_any_policy_is_an_infrastructure_error(run_on):
    r = run_on("deny-ingress-small.yaml", "enforcing", ServerDeadAfterDeploy, converge_timeout=2,
               min_window=1)
    assert r.outcome == "error"
    assert "baseline" in r.infra_error and "refused" in r.infra_error
    assert "-> x/b:80/TCP" in r.infra_error
    assert r.steps == []                     # no policy verdict at all
    assert r.policies_accepted == 0


class ServerDiesOnApply(LocalBackend):
    """The real local backend; x/a's server stops when the first policy is applied."""

    def apply_policy(self, manifest):
        self.stop_server("x/a")
        super().apply_policy(manifest)


def test_dead_server_behind_a_deny_policy_is_a_probe_error_not_a_pass(run_on):
    r = run_on("deny-ingress-small.yaml", "enforcing", ServerDiesOnApply, converge_timeout=3,
               min_window=1)
    step1 = r.steps[0]
    to_a = [c for c in step1.cells if c.target == "x/a" and c.source != "x/a"]
    assert to_a and all(c.verdict == "probe error" for c in to_a), [c.verdict for c in to_a]
    # the drop looked exactly like enforcement; only the failed loopback control tells them apart
    tcp = next(c for c in to_a if c.protocol == "TCP" and c.source == "y/a")
    assert tcp.attempts[-1].outcome == "timeout" and tcp.attempts[-1].positive_control is False
    assert "positive control" in tcp.reason
    to_b = [c for c in step1.cells if c.target == "x/b" and c.source != "x/b"]
    assert {c.verdict for c in to_b} == {"pass"}
    assert r.outcome == "error"


def test_blocked_dns_counts_only_with_the_dns_servers_loopback_answer(run_on):
    r = run_on("egress-dns.yaml")
    assert r.outcome == "passed", r.infra_error or r.verdict_counts()
    (cell,) = r.steps[0].cells
    assert cell.dns_name == "kubernetes.default.svc.cluster.local"
    assert cell.observed == "blocked" and cell.verdict == "pass"
    assert all(a.outcome == "dns-timeout" and a.positive_control is True for a in cell.attempts)
    assert r.baseline.cells[0].observed == "dns-resolved"
    # on the open profile the same lookup resolves: not enforced, the expected failure
    r = run_on("egress-dns.yaml", "open")
    assert r.outcome == "xfailed" and r.steps[0].cells[0].verdict == "not enforced"


def test_a_slow_cni_converges_and_every_early_attempt_is_kept(run_on):
    r = run_on("deny-ingress-small.yaml", "enforcing", SlowToEnforce)
    assert r.outcome == "passed", r.verdict_counts()
    step1 = r.steps[0]
    # one change per cell (connected, then blocked) is convergence, not flapping; the time to
    # enforce is the start of the first round after which nothing changed: a later round
    assert step1.converged and step1.converge_seconds > 0.5
    assert step1.rounds >= 3
    denied = [c for c in step1.cells if c.expected == "deny"]
    assert {c.verdict for c in denied} == {"pass"}
    # the rounds that still connected are on record, followed by the blocked rounds that
    # decided the verdict
    early = [c for c in denied if c.attempts[0].outcome == "connected"]
    assert early, [[a.outcome for a in c.attempts] for c in denied]
    for c in early:
        assert [a.verdict for a in c.attempts][0] == "not enforced"
        assert [a.outcome for a in c.attempts][-2:] == ["timeout", "timeout"]


def test_a_transient_fail_open_after_an_unrelated_change_is_caught(run_on):
    """A dataplane that loads an empty table on every apply and the full one 0.6 s later: at
    step 2 (a policy in y that changes no connection) x's isolated pods are open for a moment.
    The first round of the step saw them connect and the later ones blocked; one change per
    cell was forgiven everywhere, so this passed. x's cells are steady at step 2 (denied
    before and after): the transient is reported. Step 1's change is the same flush, but there
    x's cells were allowed before: the old state, then the new, is late programming."""
    r = run_on("unrelated-change.yaml", "enforcing", ReloadsFromScratch)
    step1, step2 = r.steps
    into_x = [c for c in step2.cells if c.target.startswith("x/") and c.expected == "deny"]
    history = {(c.source, c.target): [a.verdict for a in c.attempts] for c in into_x}
    # the flush was seen: round 1 of step 2 connected into x (else the machine was too slow
    # to probe within 0.6 s of the apply and this run shows nothing)
    assert any(h[0] == "not enforced" for h in history.values()), history
    assert r.outcome == "failed", (r.infra_error, r.verdict_counts(), history)
    for c in into_x:
        if c.attempts[0].verdict == "not enforced":
            assert c.verdict == "unstable", history
            assert "did not change at this step" in c.reason and "fail-open" in c.reason
    assert not step2.converged
    # step 1: the same flush on a change that isolates x, forgiven as late programming
    assert {c.verdict for c in step1.cells} <= {"pass", "not asserted"}, verdicts_of(step1)
    assert step1.converged


def test_every_step_is_observed_for_the_window_whatever_its_results(run_on):
    """An instant, correct dataplane: all-pass steps end after the window too (they ended after
    2 rounds, while a non-pass had to persist until the settle time)."""
    r = run_on("deny-ingress-small.yaml")
    assert r.outcome == "passed"
    for step in r.steps:
        assert step.rounds >= 3 and step.converged
        cell = next(c for c in step.cells if c.source != c.target)
        assert len(cell.attempts) == step.rounds
    assert any("rounds over 3." in line or "rounds over 4." in line for line in r.log), r.log


def test_a_flapping_dataplane_never_passes(run_on):
    """Blocks for 1.5 s, allows for 1.5 s, again and again (seconds, as the issue measured it).
    Polling that stopped at the first two agreeing all-pass rounds passed it. The window spans
    two periods here (6 s): under load a round takes about as long as one period (a blocked
    probe waits its timeout), and samples one period apart all land in the same phase, so a
    3 s window can miss this flap on a busy machine (docs/ARCHITECTURE.md: aliasing). Unstable
    cells, or not enforced ones where the window met one change only: never a pass. The
    deterministic flap below shows the UNSTABLE verdict with the default window."""
    r = run_on("deny-ingress-small.yaml", "enforcing", Flapping, min_window=6, min_rounds=5)
    assert r.outcome == "failed", (r.infra_error, r.verdict_counts())
    denied = [c for c in r.steps[0].cells if c.expected == "deny"]
    assert {c.verdict for c in denied} & {"unstable", "not enforced"}
    histories = [[a.verdict for a in c.attempts] for c in denied]
    assert any({"pass", "not enforced"} <= set(h) for h in histories), histories


def test_a_dataplane_that_flaps_every_round_is_unstable_with_its_history(run_on):
    r = run_on("deny-ingress-small.yaml", "enforcing", FlapsEveryFewProbes)
    assert r.outcome == "failed", (r.infra_error, r.verdict_counts())
    step1 = r.steps[0]
    unstable = [c for c in step1.cells if c.verdict == "unstable"]
    assert unstable, [(c.source, c.target, [a.verdict for a in c.attempts]) for c in step1.cells]
    assert not step1.converged and step1.converge_seconds is None
    for c in unstable:
        assert c.expected == "deny"      # the allowed cells connect in either phase
        assert {a.verdict for a in c.attempts} >= {"pass", "not enforced"}
        assert "no single verdict describes it" in c.reason and "r1" in c.reason
    assert r.verdict_counts().get("unstable") == len(unstable)


def test_a_dataplane_right_at_first_and_wrong_later_does_not_pass(run_on):
    """Right rules at the apply, wrong ones from the third round on (deny-all moved from x to
    y): the old rule passed it after two agreeing all-pass rounds; the window (three rounds at
    least, 3 s) sees the wrong rules. A change into a failure is never forgiven: the cell is
    judged as it ends, on a cell the step alters (y/a -> x/a) as on one it does not (x/a ->
    y/a), with the rounds that were right on record."""
    # a generous deadline: on a loaded machine three rounds can take 10 s, and a cell that
    # changed in the last round before the deadline never held (that is UNSTABLE, see below)
    r = run_on("deny-ingress-small.yaml", "enforcing", LateAndWrong, converge_timeout=40)
    assert r.outcome == "failed", (r.infra_error, r.verdict_counts())
    step1 = r.steps[0]
    v = verdicts_of(step1)
    assert v[("y/a", "x/a", "80", "TCP")] == "not enforced"
    assert v[("x/a", "y/a", "80", "TCP")] == "over-blocked"
    cell = next(c for c in step1.cells if (c.source, c.target, c.protocol) == ("y/a", "x/a", "TCP"))
    assert [a.verdict for a in cell.attempts][0] == "pass"    # right at first, on record


def test_three_dns_outcomes_pass_as_the_spec_says_and_nxdomain_is_no_block_on_open(run_on):
    r = run_on("dns-three-outcomes.yaml")
    assert r.outcome == "passed", (r.infra_error, r.verdict_counts())
    resolved, nxdomain = r.steps[1].cells
    assert resolved.observed == "dns-resolved" and resolved.attempts[-1].answered_by == "10.96.0.1"
    assert nxdomain.observed == "dns-nxdomain" and nxdomain.verdict == "pass"
    # nothing here is a block, so a CNI that enforces nothing passes it (it "xpassed" before)
    assert run_on("dns-three-outcomes.yaml", "open").outcome == "passed"


class ApiServerNameMissing(DnsWithWrongRecords):
    missing = ("kubernetes.default.svc.cluster.local",)


class ApiServerNameMoved(DnsWithWrongRecords):
    moved = {"kubernetes.default.svc.cluster.local": "10.96.0.99"}


@pytest.mark.parametrize("faulty, says", [
    (ApiServerNameMissing, "NXDOMAIN for a name the model has"),
    (ApiServerNameMoved, "resolved to 10.96.0.99, not to 10.96.0.1"),
])
def test_a_lookup_that_must_resolve_fails_on_nxdomain_or_a_wrong_address(run_on, faulty, says):
    """A broken cluster DNS: the name that must resolve is NXDOMAIN (counted as delivered, so
    passed, before) or resolves elsewhere. Caught before any policy: no verdict on the CNI."""
    r = run_on("dns-three-outcomes.yaml", "enforcing", faulty, converge_timeout=2, min_window=1)
    assert r.outcome == "error" and r.steps == []
    cell = next(c for c in r.baseline.cells if c.dns_name.startswith("kubernetes."))
    assert cell.verdict == "probe error" and says in cell.reason


def test_an_nxdomain_lookup_that_times_out_is_over_blocked_not_a_pass(run_on):
    """A dataplane that cuts the cluster DNS off: the lookup that must be answered NXDOMAIN
    timed out, which read as a pass (a DENY that was blocked) before."""
    r = run_on("dns-three-outcomes.yaml", "enforcing", DnsBlockedForEveryone)
    assert r.outcome == "failed", (r.infra_error, r.verdict_counts())
    resolved, nxdomain = r.steps[1].cells
    assert resolved.verdict == "over-blocked"
    assert nxdomain.verdict == "over-blocked" and "answers NXDOMAIN" in nxdomain.reason
    # proven: the DNS server answered its own loopback in the same rounds
    assert all(a.outcome == "dns-timeout" and a.positive_control for a in nxdomain.attempts[-2:])


def test_udp_replies_that_come_late_are_never_a_block(run_on):
    """A dataplane that enforces nothing and holds the UDP replies of what it should block for
    1.2 s: a client that stops listening at its 1 s timeout read every such reply as a drop,
    the loopback control proved the server, and udp-deny-all-ingress passed. Kept listening
    for the grace, the client sees the reply: a late reply, a probe error, never a block."""
    r = run_on(SCENARIOS / "conformance" / "udp-deny-all-ingress.yaml", "enforcing",
               SlowInsteadOfBlocked)
    assert r.outcome != "passed", r.verdict_counts()
    assert r.outcome == "error", (r.infra_error, r.verdict_counts())
    denied = [c for c in r.steps[0].cells if c.expected == "deny"]
    assert denied and {c.verdict for c in denied} == {"probe error"}, r.verdict_counts()
    late = [a for c in denied for a in c.attempts if a.outcome == "late-reply"]
    assert late and all(1.0 < a.elapsed < 2.0 for a in late), [a.elapsed for a in late]
    # the cells the policy allows are not on the slow path: they still pass
    assert {c.verdict for c in r.steps[0].cells if c.expected == "allow"} == {"pass"}


def test_dns_answers_that_come_late_are_never_a_block(run_on):
    """The same dataplane on a pod whose DNS egress is denied: nslookup gave up at its 1 s
    timeout, the DNS server's loopback answer proved the server, and the lookup passed as
    blocked. A second lookup that waits for the grace sees the late answer."""
    r = run_on("egress-dns.yaml", "enforcing", SlowInsteadOfBlocked)
    assert r.outcome == "error", (r.infra_error, r.verdict_counts())
    (cell,) = r.steps[0].cells
    assert cell.verdict == "probe error", cell.reason
    assert any(a.outcome == "late-reply" for a in cell.attempts), cell.attempts


def test_the_dns_blocked_assertion_of_the_real_engine_tests_can_fail(run_on):
    """tests/real/test_real_kube_router.py checks that a rejected lookup is blocked every round
    with assert_dns_blocked_every_round: it holds where DNS egress is blocked (the enforcing
    profile: the lookups time out) and fails on a dataplane that enforces everything but DNS
    (the call by name then connects). Its old assertions (name-deny: refused or timeout
    accepted, step 1's ingress deny blocking the call after its lookup) held on both."""
    from tests.real.conftest import assert_dns_blocked_every_round

    dns_pitfall = SCENARIOS / "real-world" / "dns-pitfall.yaml"
    assert_dns_blocked_every_round(run_on(dns_pitfall))
    r = run_on(dns_pitfall, "enforcing", DnsLeftOpen)
    with pytest.raises(AssertionError):
        assert_dns_blocked_every_round(r)
    by_name = next(c for c in r.steps[1].cells
                   if c.target == "backend.prod.svc.cluster.local" and not c.dns_name)
    assert by_name.verdict == "not enforced", by_name.attempts


class _RecordsTeardown(LocalBackend):
    """The local backend (which keeps nothing: Backend.park undeploys), recording which
    teardown the runner asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[str] = []

    def park(self) -> None:
        self.asked.append("park")
        super().park()

    def undeploy(self) -> None:
        self.asked.append("undeploy")
        super().undeploy()


class _BreaksOnLabelsRecords(_RecordsTeardown):
    def set_labels(self, namespace_labels, pod_labels) -> None:
        raise TypeError("set_labels got an unexpected mapping (a bug on purpose)")


@pytest.mark.parametrize("cls, path, outcome, asked", [
    (_RecordsTeardown, DATA / "deny-ingress-small.yaml", "passed", ["park", "undeploy"]),
    (_BreaksOnLabelsRecords, SCENARIOS / "conformance" / "updated-pod-label-admits.yaml",
     "error", ["undeploy"]),
])
def test_only_a_scenario_that_ended_cleanly_offers_its_pods_to_the_next(run_on, cls, path,
                                                                        outcome, asked):
    """runner.run_scenario asks Backend.park (keep the pods, as the kube backends do) after a
    clean end and undeploy after an error: pods a scenario failed on are never reused."""
    s = build({"cnis": "enforcing"}, env={})
    backend = cls(profile="enforcing", run_id=s.run_id, probe_timeout=s.probe_timeout)
    backend.up()
    try:
        r = run_scenario(load_scenario(path), backend, s, log=lambda line: None, enforcing=True)
        assert r.outcome == outcome, (r.infra_error, r.verdict_counts())
        assert backend.asked == asked
    finally:
        backend.down()
