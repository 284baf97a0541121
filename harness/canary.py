"""Does this cluster enforce NetworkPolicy at all? Decided by probes, never by the CNI's name.

Why: a CNI that accepts NetworkPolicy objects and ignores them is the most dangerous result a
run can find (every policy is false security), and names lie both ways: kindnet enforces since
kind v0.24, Flannel can run with a policy controller. So before the first scenario on a cluster
the harness deploys its own two pods, proves b reaches a, applies a deny-all ingress policy and
probes until b stops reaching a (enforcing) or the deadline passes (not enforcing). A block
counts only while a's server still answers on its own loopback (the positive control).

Also home of `loopback_probe`, the positive control the runner uses when no source may reach a
target: the upstream readiness probe, a request to the server on 127.0.0.1 inside its own pod.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from harness.errors import HarnessError
from harness.model import ContainerPort, Model, Namespace, Pod, Protocol
from harness.probes import Outcome, ProbeOutcome, ProbeSpec, argv_for, classify
from harness.prober import EXEC_MARGIN, probe_one, real_name
from harness.verdicts import blocked_kind, self_probe_proves

NAMESPACE = "np-canary"
POLICY_NAME = "netpol-proof-canary-deny-all"
BANNER = ("this cluster accepts NetworkPolicy objects but does not enforce them; "
          "every policy here is false security.")


@dataclass(frozen=True)
class CanaryResult:
    """enforcing: True (deny-all blocked), False (traffic still flowed), None (could not tell)."""

    enforcing: bool | None
    detail: str
    seconds: float = 0.0
    rounds: int = 0

    def as_meta(self) -> dict:
        """The form reports read from meta["canary"][cni]."""
        return {"enforcing": self.enforcing, "detail": self.detail,
                "seconds": round(self.seconds, 3), "rounds": self.rounds}


def toolkit_of(backend) -> str:
    return getattr(backend, "toolkit", "debian")


def loopback_probe(backend, endpoint: str, port: int, protocol: Protocol, timeout: float,
                   dns_name: str | None = None) -> ProbeOutcome:
    """Probe a server from inside its own pod on 127.0.0.1: proves it serves, whatever policy says.

    For DNS the query goes to 127.0.0.1 as the server (nslookup NAME 127.0.0.1).
    """
    if dns_name:
        spec = ProbeSpec(endpoint, "127.0.0.1", 53, Protocol.UDP, real_name(backend, dns_name))
        argv = argv_for(spec, spec.dns_name, timeout, toolkit_of(backend)) + ["127.0.0.1"]
        started = time.monotonic()
        try:
            res = backend.exec(endpoint, argv, timeout=timeout * 2 + EXEC_MARGIN)
        except HarnessError as exc:
            return ProbeOutcome(Outcome.TOOL_ERROR, None, f"{type(exc).__name__}: {exc}",
                                time.monotonic() - started)
        return classify(spec, res)
    spec = ProbeSpec(endpoint, "127.0.0.1", port, protocol)
    return probe_one(backend, spec, _NoAddresses(), timeout, toolkit_of(backend))


class _NoAddresses:
    """Stand-in Addresses for loopback probes: prober.destination finds nothing and uses
    the target (127.0.0.1) as is."""

    pod_ips: dict = {}
    service_ips: dict = {}
    external_ips: dict = {}


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


def run_canary(backend, settings, log: Callable[[str], None] = lambda s: None) -> CanaryResult:
    """Deploy the canary, prove the baseline connects, deny all ingress, probe until blocked.

    The backend must be up; the canary topology is removed before returning.
    """
    started = time.monotonic()
    try:
        addresses = backend.deploy(canary_model())
        broken = _baseline(backend, settings, addresses)
        if broken:
            return CanaryResult(None, broken, time.monotonic() - started)
        backend.apply_policy(deny_all_policy())
        enforcing, detail, rounds = _await_block(backend, settings, addresses)
        log(f"canary on {backend.profile}: {detail}")
        return CanaryResult(enforcing, detail, time.monotonic() - started, rounds)
    except HarnessError as exc:
        return CanaryResult(None, f"canary could not run: {exc}", time.monotonic() - started)
    finally:
        try:
            backend.undeploy()
        except HarnessError as exc:
            log(f"canary teardown: {exc}")


_SPEC = ProbeSpec(f"{NAMESPACE}/b", f"{NAMESPACE}/a", 80, Protocol.TCP)


def _baseline(backend, settings, addresses) -> str | None:
    """Before any policy b must reach a, or nothing after means anything. None when it does."""
    deadline = time.monotonic() + settings.converge_timeout
    while True:
        base = probe_one(backend, _SPEC, addresses, settings.probe_timeout, toolkit_of(backend))
        if base.outcome == Outcome.CONNECTED:
            return None
        if time.monotonic() >= deadline:
            return (f"baseline {_SPEC.label} did not connect before any policy "
                    f"({base.outcome.value}: {base.detail}); the network or harness is broken")
        time.sleep(0.2)


def _await_block(backend, settings, addresses) -> tuple[bool | None, str, int]:
    """Probe b -> a after the deny-all until it is blocked (with a loopback control) -> True;
    still connecting for two rounds after the settle time -> False; the deadline -> None."""
    applied = time.monotonic()
    deny = backend.capabilities().deny_response
    timeout = settings.probe_timeout
    rounds, streak_open, last = 0, 0, ""
    while True:
        rounds += 1
        obs = probe_one(backend, _SPEC, addresses, timeout, toolkit_of(backend))
        kind = blocked_kind(obs.outcome, deny)
        streak_open = streak_open + 1 if kind == "delivered" else 0
        if kind == "delivered":
            last = f"deny-all probe {_SPEC.label} still connected (answered by " \
                   f"{obs.answered_by or '?'})"
        elif kind == "blocked":
            control = loopback_probe(backend, f"{NAMESPACE}/a", 80, Protocol.TCP, timeout)
            if self_probe_proves(control):
                secs = time.monotonic() - applied
                return True, (f"deny-all probe {_SPEC.label} {obs.outcome.value} after "
                              f"{secs:.2f}s while the server answered on loopback"), rounds
            last = (f"deny-all probe {obs.outcome.value} but the server did not answer on "
                    f"loopback ({control.outcome.value}: {control.detail})")
        else:
            last = f"deny-all probe {obs.outcome.value}: {obs.detail}"
        elapsed = time.monotonic() - applied
        if streak_open >= 2 and elapsed >= settings.settle_seconds:
            return False, f"{last}; {BANNER}", rounds
        if elapsed >= settings.converge_timeout:
            return None, f"could not tell within {settings.converge_timeout:g}s: {last}", rounds
        time.sleep(0.2 if settings.settle_seconds == 0 else 1.0)
