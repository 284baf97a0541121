"""The cells a step probes, and the server that backs each blocked cell (its positive control).

Why its own module: turning a step's expected cells into probes is planning, not sequencing.
Each Cell says what to run (a ProbeSpec), what the spec says, which server a block must be
proved against (cells reaching the same server share one control, whatever way they reach it:
directly, through a Service IP or a Service's DNS name) and, when no allowed source can prove
that server in a round, how to ask the server itself on loopback. The runner (runner.py) probes
the cells round after round and keeps what it saw in them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable, Sequence

from harness.errors import HarnessError
from harness.expected import (
    ExpectedCell,
    decisions_during,
    disagreements,
    expected_cells,
    model_at,
    oracle_at,
    oracle_before,
)
from harness.model import DNS_POD, SYSTEM_NAMESPACE, Addresses, Endpoint, Model, Protocol, Server
from harness.oracle import API_SERVER, Decision
from harness.probes import Outcome, ProbeOutcome, ProbeSpec
from harness.results import Attempt, CellResult, Expectation, Verdict
from harness.scenario import Scenario
from harness.verdicts import Judgement, old_state

#: outcomes of a probe by name that never got past name resolution (in time: a late reply may
#: be a late answer of the lookup, which proves no DNS server in time)
_NAME_NOT_RESOLVED = frozenset({Outcome.DNS_TIMEOUT, Outcome.DNS_FAILED, Outcome.LATE_REPLY,
                                Outcome.TOOL_ERROR})


@dataclass(frozen=True)
class Loopback:
    """A probe of `server` from inside its own pod on 127.0.0.1 (for DNS: a lookup of
    `dns_name` against 127.0.0.1): proves the server serves, whatever policy says."""

    server: Server
    dns_name: str | None = None
    #: the lookup proves only by resolving the name to an address (verdicts.name_resolves):
    #: a control that the name exists, not merely that the DNS server answers
    must_resolve: bool = False


@dataclass
class Cell:
    """One probed cell of a step: what to run, what the spec says, and what was seen."""

    spec: ProbeSpec
    expectation: Expectation
    reason: str
    #: cells probing the same server share a control key (the Server, when it is known)
    control_key: Hashable
    #: the loopback self-probe of that server, or None when impossible
    loopback: Loopback | None
    #: a DNS lookup the cluster DNS must answer NXDOMAIN (the oracle: no such name)
    nxdomain: bool = False
    #: a DNS lookup that must resolve: the addresses it may resolve to (None: not known)
    dns_answer: frozenset[str] | None = None
    #: the names a reply from the intended target may give (None: not known)
    servers: frozenset[str] | None = None
    #: for a probe by DNS name: the cluster DNS server's control key and loopback probe, which
    #: decide a round where the lookup itself timed out
    dns_key: Hashable | None = None
    dns_loopback: Loopback | None = None
    #: for a probe by DNS name or a lookup: the name it looks up, as the source's search path
    #: makes it (the Service's full name when known), which decides a round where the name
    #: could not be resolved (curl exit 6), and the DNS server's own lookup of it
    name_key: Hashable | None = None
    name_loopback: Loopback | None = None
    #: False when the target pod does not serve the port at all (nothing to baseline)
    served: bool = True
    #: what the state before the step's change earns against `expectation`
    #: (verdicts.old_state): empty when the expectation did not change at this step, so no
    #: change of verdict is forgiven (verdicts.over_rounds)
    old: frozenset[Verdict] = frozenset()
    attempts: list[Attempt] = field(default_factory=list)
    last: Judgement | None = None

    def looked_up_name(self, o: ProbeOutcome | None) -> bool:
        """True when this name-based probe got past name resolution in that round."""
        return (self.dns_key is not None and o is not None
                and o.outcome not in _NAME_NOT_RESOLVED)

    def resolved_name(self, o: ProbeOutcome | None) -> bool:
        """True when this probe resolved its name in that round: a lookup to an address, or
        a probe by name that got past name resolution."""
        if self.spec.is_dns:
            return o is not None and o.outcome == Outcome.DNS_RESOLVED
        return self.looked_up_name(o)

    def control_for(self, o: ProbeOutcome | None) -> tuple[Hashable, Loopback | None]:
        """(control key, loopback probe) that must back a blocked outcome of this round: the
        DNS server when the lookup timed out; the name itself when it could not be resolved
        (behind a rejecting CNI a rejected lookup and a name that does not exist end alike,
        so the name must be proven to resolve); else the server behind the target."""
        if self.dns_key is not None and o is not None:
            if o.outcome == Outcome.DNS_TIMEOUT:
                return self.dns_key, self.dns_loopback
            if o.outcome == Outcome.DNS_FAILED:
                return self.name_key, self.name_loopback
        return self.control_key, self.loopback

    def result(self) -> CellResult:
        j = self.last
        reason = self.reason
        if j is not None and j.verdict in (Verdict.PROBE_ERROR, Verdict.UNSTABLE):
            reason = f"{j.reason} (spec: {self.reason})"
        return CellResult(self.spec.source, self.spec.target, str(self.spec.port),
                          self.spec.protocol.value, self.expectation.value,
                          j.observed if j else "not probed",
                          (j.verdict if j else Verdict.PROBE_ERROR).value, reason,
                          list(self.attempts), self.spec.dns_name)


def _reason_text(decision: Decision) -> str:
    return "; ".join(r.text for r in decision.reasons) or "scenario expectation"


def _dns_pod(model: Model) -> str:
    for p in model.pods:
        if p.system and p.labels.get("k8s-app") == "kube-dns":
            return p.key
    return f"{SYSTEM_NAMESPACE}/{DNS_POD}"


def _serves(model: Model, server: Server | None, target: str) -> bool:
    """False only when the target is a pod of the model that does not serve the port."""
    if server is None:
        try:
            model.pod(target)
        except KeyError:
            return True
        return False
    if Endpoint.parse(server.endpoint).is_external:
        return True
    return model.pod(server.endpoint).serves(server.port, server.protocol)


def servers_of(model: Model, source: str, target: str, port: int | str, protocol: Protocol
               ) -> frozenset[str] | None:
    """Every name a reply of the intended target may give: the pod's, or those of each backend
    of the Service (by address or DNS name) that serves the port; None when not known."""
    ep = Endpoint.parse(target)
    if ep.is_external:
        return frozenset({target})
    if not ep.is_service:
        try:
            return model.pod(target).identities
        except KeyError:
            pass
    try:
        svc = model.service(ep.key) if ep.is_service else \
            model.find_service_by_dns(target, source.partition("/")[0] if "/" in source else None)
    except KeyError:
        svc = None
    if svc is None:
        return None  # an address or a foreign name: nobody known to answer for it
    names: set[str] = set()
    for sp in svc.ports:
        if sp.port == port and sp.protocol == protocol:
            for pod in model.service_backends(svc):
                if pod.resolve_port(sp.target_port, protocol):
                    names |= pod.identities
    return frozenset(names) or None


def _answer_of(addresses: Addresses | None, resolves_to: str | None) -> frozenset[str] | None:
    """The address a DNS name must resolve to: its Service's ClusterIP (None: not known)."""
    if addresses is None or resolves_to is None:
        return None
    ip = addresses.api_service_ip if resolves_to == API_SERVER else \
        addresses.service_ips.get(Endpoint.parse(resolves_to).key)
    return frozenset({ip}) if ip else None


def _is_name(model: Model, target: str) -> bool:
    """True for a target written as a DNS name (resolved inside the source pod)."""
    ep = Endpoint.parse(target)
    if ep.is_service or ep.is_external or target.replace(".", "").isdigit():
        return False
    try:
        model.pod(target)
    except KeyError:
        return True
    return False


def plan_cells(model: Model, expected: Iterable[ExpectedCell],
               addresses: Addresses | None = None,
               before: Sequence[Sequence[Decision]] | None = None) -> list[Cell]:
    """Cells to probe from the scenario's expected cells of one step (named ports resolved).

    `before`: per cell, the oracle's decision in each state the step's change passes through
    before its last (expected.decisions_during: the state before the step, then after each of
    its labels, deletes and applies), which says what a cell may show first when the change is
    programmed late; None: nothing (no change of verdict is forgiven)."""
    cells = []
    dns = _dns_pod(model)
    expected = list(expected)
    if before is not None and len(before) != len(expected):
        raise ValueError(f"{len(before)} decisions before the change for {len(expected)} cells")
    for n, e in enumerate(expected):
        old: frozenset[Verdict] = frozenset() if before is None else frozenset().union(
            *(old_state(b.expectation, e.expectation, b.nxdomain, e.decision.nxdomain)
              for b in before[n]))
        protocol, dns_name, port = e.protocol, e.dns_name, e.port
        servers = None
        if dns_name:
            spec = ProbeSpec(e.source, e.target, port, protocol, dns_name)
            key: Hashable = ("dns", dns, protocol.value)
            loop: Loopback | None = Loopback(Server(dns, 53, protocol), dns_name)
            served = True
        else:
            if isinstance(port, str) and not port.isdigit():
                try:
                    port = model.pod(e.target).resolve_port(port, protocol) or port
                except KeyError:
                    pass
            elif isinstance(port, str):
                port = int(port)
            spec = ProbeSpec(e.source, e.target, port, protocol)
            server = model.server_of(e.source, e.target, port, protocol)
            key = server if server else (e.target, port, protocol.value)
            served = _serves(model, server, e.target)
            loop = Loopback(server) if server and served else None
            servers = servers_of(model, e.source, e.target, port, protocol)
        by_name = not dns_name and _is_name(model, e.target)
        name_key, name_loop = (_name_control(model, e.source, dns_name or e.target, dns)
                               if dns_name or by_name else (None, None))
        cells.append(Cell(spec, e.expectation, _reason_text(e.decision), key, loop,
                          nxdomain=e.decision.nxdomain,
                          dns_key=("dns", dns, Protocol.UDP.value) if by_name else None,
                          dns_loopback=(Loopback(Server(dns, 53, Protocol.UDP), e.target)
                                        if by_name else None),
                          name_key=name_key, name_loopback=name_loop,
                          served=served, dns_answer=_answer_of(addresses, e.resolves_to),
                          servers=servers, old=old))
    return cells


def _name_control(model: Model, source: str, name: str, dns: str
                  ) -> tuple[Hashable, Loopback | None]:
    """(control key, DNS server's own lookup) proving that `name`, looked up from `source`,
    resolves. A Service's name is its full name whoever looks it up (one control for a short
    name from its namespace and the full name from anywhere), and the DNS server can be asked
    for it; another name is only the same name from the same namespace, and only a source
    that resolved it proves it (the DNS server's search path is not the source's)."""
    ns = source.partition("/")[0] if "/" in source else None
    svc = model.find_service_by_dns(name, ns)
    if svc is not None:
        return ("name", svc.dns_name), Loopback(Server(dns, 53, Protocol.UDP), svc.dns_name,
                                                must_resolve=True)
    return ("name", name.rstrip("."), ns), None


def plan_steps(scenario: Scenario, addresses: Addresses) -> list[list[Cell]] | str:
    """The cells of every step at the run's real addresses, or why the scenario cannot be run
    as written (a scenario error).

    Why re-checked here and not only by `check`: placeholders such as {{podIP y/b}} and
    {{podCIDR}} take the cluster's addresses only now, and a cell the oracle decides otherwise
    would be judged against the file's wrong symbol, blaming the CNI for the file. A policy
    that cannot be rendered or parsed with these addresses is the same kind of error.
    """
    steps_cells, problems = [], []
    for i, step in enumerate(scenario.steps):
        try:
            expected = expected_cells(scenario, i, addresses)
            before = decisions_during(scenario, i, addresses)
        except (HarnessError, ValueError, KeyError) as exc:
            title = step.title or f"step {i + 1}"
            return (f"step {i + 1} ({title}) cannot be evaluated with this run's addresses "
                    f"(pod CIDR {addresses.pod_cidr}): {type(exc).__name__}: {exc}")
        problems += disagreements(scenario, i, expected)
        steps_cells.append(plan_cells(model_at(scenario, i), expected, addresses, before))
    if problems:
        listed = "; ".join(p.message for p in problems[:5])
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        return (f"{len(problems)} expectation(s) of the file disagree with the oracle at this "
                f"run's addresses, so the file, not the CNI, is wrong ({listed}{more}); "
                f"`python -m harness check {scenario.path}` shows them")
    return steps_cells


def plan_watch(scenario: Scenario, step_index: int, addresses: Addresses
               ) -> tuple[list[Cell], list[Cell]]:
    """A fault step's watched cells twice: as the spec decides them before the step's change
    (the previous step's policies and labels; none before the first step) and from it on.

    Why the oracle and not the file: a watched cell states no expectation; what it must do
    changes at `change` (a policy applied while the engine is down), and the oracle says both.
    """
    step = scenario.steps[step_index]
    assert step.fault is not None, "plan_watch is for fault steps"
    before = oracle_before(scenario, step_index, addresses)
    after = oracle_at(scenario, step_index, addresses)
    out: tuple[list[Cell], list[Cell]] = ([], [])
    for oracle, cells in ((before, out[0]), (after, out[1])):
        expected = []
        for w in step.fault.watch:
            decision = oracle.decide(w.source, w.target, w.port, w.protocol)
            expected.append(ExpectedCell(w.source, w.target, w.port, w.protocol,
                                         decision.expectation, decision, explicit=True,
                                         field=w.field, line=w.line))
        cells.extend(plan_cells(oracle.model, expected, addresses))
    return out


def estimated_seconds(scenario: Scenario, probe_timeout: float, min_rounds: int,
                      min_window: float) -> float:
    """About how long a run of `scenario` takes on an idle cluster, to start the longest first.

    Why: scenarios run at once finish when the last one does; started in file order, a long one
    (a fault step's fixed observation, many steps) that starts late runs on alone at the end.
    Only the order of starting uses this, never a verdict: the baseline and each step observe
    for at least `min_rounds` rounds and `min_window` seconds (a round lasts about a probe
    timeout when anything is blocked), a fault step for its `before` and `after` and its waits.
    """
    step = max(min_rounds * probe_timeout, min_window)
    total = step   # the baseline
    for s in scenario.steps:
        total += step
        if s.fault is not None:
            f = s.fault
            total += f.before + f.after + sum(a.seconds for a in f.actions)
    return total

