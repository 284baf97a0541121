"""Does this cluster enforce NetworkPolicy at all? Decided by probes, never by the CNI's name.

Why: a CNI that accepts NetworkPolicy objects and ignores them is the most dangerous result a
run can find (every policy is false security), and names lie both ways: kindnet enforces since
kind v0.24, Flannel can run with a policy controller. So before the first scenario on a cluster
the harness runs a built-in scenario of its own: two pods, a baseline where b reaches a, a
deny-all ingress policy, and the probe b -> a that must be blocked. It runs through the runner
like any scenario (the same baseline, observation window, positive controls and verdict rules:
a block counts only while a's server answers on its own loopback), and the finding is read from
that one cell's verdict: pass -> enforcing, not enforced -> not enforcing, anything else (a probe
error, an unstable cell, a broken baseline) -> cannot tell. A finding that contradicts what the
CNI is declared to do is said loudly (`contradiction`) and the scenarios are judged as it found
(verdicts.judged_enforcing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.backends.base import Backend
from harness.model import ContainerPort, Model, Namespace, Pod, Protocol
from harness.results import BANNER, Expectation, ScenarioResult, Verdict, canary_contradiction
from harness.runner import run_scenario
from harness.scenario import PolicyDoc, ProbeExpectation, Scenario, Step
from harness.settings import Settings

NAMESPACE = "np-canary"
POLICY_NAME = "netpol-proof-canary-deny-all"


@dataclass(frozen=True)
class CanaryResult:
    """enforcing: True (deny-all blocked), False (traffic still flowed), None (could not tell)."""

    enforcing: bool | None
    detail: str
    seconds: float = 0.0
    rounds: int = 0
    #: what the CNI is declared to do (Capabilities.enforces)
    declared: bool | None = None
    #: the finding contradicts the declaration (results.canary_contradiction), else None
    contradiction: str | None = None

    def as_meta(self) -> dict:
        """The form reports read from meta["canary"][cni]."""
        return {"enforcing": self.enforcing, "detail": self.detail,
                "seconds": round(self.seconds, 3), "rounds": self.rounds,
                "declared_enforcing": self.declared, "contradiction": self.contradiction}


def canary_model() -> Model:
    """Two pods in a harness-owned namespace, serving 80/TCP."""
    ports = (ContainerPort.serve(80, Protocol.TCP),)
    ns = Namespace(NAMESPACE, {"netpol-proof/canary": "true"})
    return Model.build([ns], [Pod(NAMESPACE, "a", {"pod": "a"}, ports),
                              Pod(NAMESPACE, "b", {"pod": "b"}, ports)])


def deny_all_policy() -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": POLICY_NAME, "namespace": NAMESPACE},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


def canary_scenario() -> Scenario:
    """The built-in canary: deny all ingress in the canary namespace; b -> a must be blocked."""
    probe = ProbeExpectation(f"{NAMESPACE}/b", f"{NAMESPACE}/a", 80, Protocol.TCP,
                             Expectation.DENY, "probes[0]", 0)
    step = Step(0, "deny all ingress in the canary namespace", {}, {},
                (PolicyDoc(deny_all_policy(), "harness/canary.py (built in)"),), (), (),
                (probe,), None)
    return Scenario(Path("<built-in canary>"), "enforcement-canary",
                    "the enforcement canary: a deny-all ingress policy must stop b reaching a",
                    ("networkpolicy",), canary_model(), (step,))


def run_canary(backend: Backend, settings: Settings,
               log: Callable[[str], None] = lambda s: None) -> CanaryResult:
    """Run the built-in canary scenario on an up backend and read what it found.

    The canary topology is removed before returning (run_scenario always undeploys).
    """
    result = run_scenario(canary_scenario(), backend, settings, log=lambda line: None,
                          enforcing=None)
    enforcing, detail = _finding(result)
    rounds = result.steps[0].rounds if result.steps else 0
    log(f"canary on {backend.profile}: {detail}")
    declared = backend.capabilities().enforces
    return CanaryResult(enforcing, detail, result.duration, rounds, declared,
                        canary_contradiction(backend.profile, declared, enforcing))


def _finding(result: ScenarioResult) -> tuple[bool | None, str]:
    """(enforcing, why) from the canary scenario's result."""
    if result.scenario_error or result.infra_error:
        return None, f"canary could not run: {result.scenario_error or result.infra_error}"
    cell = result.steps[0].cells[0] if result.steps and result.steps[0].cells else None
    if cell is None:
        return None, "canary could not run: no probe was judged"
    step = result.steps[0]
    last = cell.attempts[-1] if cell.attempts else None
    label = f"{cell.source} -> {cell.target}:{cell.port}/{cell.protocol}"
    rounds = f"{len(cell.attempts)} rounds over the observation window"
    if cell.verdict == Verdict.PASS.value:
        return True, (f"deny-all probe {label} {last.outcome if last else 'blocked'} from "
                      f"{step.converge_seconds or 0:.2f}s after the apply to the end ({rounds}), "
                      f"while the server answered on loopback")
    if cell.verdict == Verdict.NOT_ENFORCED.value:
        return False, (f"deny-all probe {label} still connected (answered by "
                       f"{last.answered_by if last and last.answered_by else '?'}; {rounds}); "
                       f"{BANNER}")
    return None, f"could not tell: deny-all probe {label} is {cell.verdict}: {cell.reason}"
