"""What a scenario's steps must produce, per the oracle, and where the file disagrees with it.

Why separate from the loader: loading checks the file against itself (names, shapes, the API
schema); this module checks it against the NetworkPolicy spec. `expected_cells` is also what the
runner probes: the explicit expectations of a step, or, where a step states none, the oracle's
full matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import Problem, ScenarioError
from harness.model import Addresses, Endpoint, Model, Protocol, plan_addresses
from harness.oracle import Decision, Oracle
from harness.policy import is_network_policy
from harness.results import Expectation
from harness.scenario.load import load_scenario
from harness.scenario.needs import advice, derived_needs
from harness.scenario.placeholders import render_manifest
from harness.scenario.types import Scenario
from harness.truthtable import EXPECTATION_OF_SYMBOL, SYMBOL_OF_EXPECTATION


@dataclass(frozen=True)
class ExpectedCell:
    """One connection a step asserts (explicit) or the oracle computed (explicit=False).

    `port` is numeric when the destination resolves it; a DNS probe has `dns_name` set and
    target/port/protocol of the DNS Service query (svc:kube-system/kube-dns, 53, UDP).
    `field`/`line` say where in the file an explicit expectation was written.
    """

    source: str
    target: str
    port: int | str
    protocol: Protocol
    expectation: Expectation
    decision: Decision
    dns_name: str | None = None
    explicit: bool = False
    field: str = ""
    line: int | None = None
    #: for a DNS probe: what the name resolves to (`svc:ns/name`, oracle.API_SERVER) or None
    resolves_to: str | None = None

    @property
    def label(self) -> str:
        if self.dns_name:
            return f"{self.source} -> dns {self.dns_name}"
        return f"{self.source} -> {self.target} on {self.protocol.value} {self.port}"


def model_at(scenario: Scenario, step_index: int) -> Model:
    """The model with the label changes of steps 0..step_index applied, in order."""
    _check_index(scenario, step_index)
    model = scenario.model
    for step in scenario.steps[:step_index + 1]:
        if step.namespace_labels or step.pod_labels:
            model = model.with_labels(step.namespace_labels, step.pod_labels)
    return model


def policies_at(scenario: Scenario, step_index: int,
                addresses: Addresses | None = None) -> list[dict[str, Any]]:
    """The policy manifests in force at a step, rendered with `addresses` (stand-ins if None).

    Each step deletes, then applies; applying an object that exists (same kind and ns/name)
    replaces it, as `kubectl apply` does.
    """
    _check_index(scenario, step_index)
    addresses = addresses or plan_addresses(scenario.model)
    in_force = _in_force(scenario, step_index + 1)
    return [render_manifest(m, addresses) for m in in_force.values()]


def _in_force(scenario: Scenario, steps: int) -> dict[tuple[str, str], dict[str, Any]]:
    """The policy manifests (as written) after the first `steps` steps, by (kind, ns/name)."""
    in_force: dict[tuple[str, str], dict[str, Any]] = {}
    for step in scenario.steps[:steps]:
        for key in step.delete:
            _delete(in_force, key)
        for doc in step.apply:
            in_force[(str(doc.manifest.get("kind")), doc.key)] = doc.manifest
    return in_force


def _delete(in_force: dict[tuple[str, str], dict[str, Any]], key: str) -> None:
    for ident in [i for i in in_force if i[1] == key]:
        del in_force[ident]


def _check_index(scenario: Scenario, step_index: int) -> None:
    if not 0 <= step_index < len(scenario.steps):
        raise IndexError(f"{scenario.path}: step {step_index} does not exist (the scenario has "
                         f"steps 0-{len(scenario.steps) - 1})")


def oracle_at(scenario: Scenario, step_index: int,
              addresses: Addresses | None = None) -> Oracle:
    """The oracle for one step: its model (labels) and the policies in force."""
    model = model_at(scenario, step_index)
    addresses = addresses or plan_addresses(scenario.model)
    return Oracle(model, policies_at(scenario, step_index, addresses), addresses)


def model_ports(model: Model) -> list[tuple[int, Protocol]]:
    """Every (port, protocol) some user pod serves, in a stable order (port, then TCP/UDP/SCTP)."""
    order = list(Protocol)
    found = {(cp.port, cp.protocol) for p in model.user_pods for cp in p.ports}
    return sorted(found, key=lambda pp: (pp[0], order.index(pp[1])))


def expected_cells(scenario: Scenario, step_index: int,
                   addresses: Addresses | None = None) -> list[ExpectedCell]:
    """The expectations of one step, each with the oracle's decision.

    Explicit matrix cells (including '-', as UNDEFINED) and probes when the step states any;
    otherwise the oracle's full matrix for every (port, protocol) the model's pods serve.
    """
    oracle = oracle_at(scenario, step_index, addresses)
    return _cells_of(scenario, step_index, oracle, oracle)


def oracle_before(scenario: Scenario, step_index: int,
                  addresses: Addresses | None = None) -> Oracle:
    """The oracle before a step's change: the previous step's labels and policies (the model
    as written and no policy before the first step)."""
    if step_index > 0:
        return oracle_at(scenario, step_index - 1, addresses)
    _check_index(scenario, step_index)
    return Oracle(scenario.model, [], addresses or plan_addresses(scenario.model))


def decisions_before(scenario: Scenario, step_index: int,
                     addresses: Addresses | None = None) -> list[Decision]:
    """The oracle's decision on each cell of `expected_cells(scenario, step_index)`, in the
    same order, before the step's change (`oracle_before`).

    Why: a step forgives one change of a cell's verdict only where its expectation changed at
    this step (a CNI programs the change late: the old state, then the new;
    verdicts.over_rounds); on every other cell any change is a regression to report.
    """
    now = oracle_at(scenario, step_index, addresses)
    return [c.decision for c in _cells_of(scenario, step_index, now,
                                          oracle_before(scenario, step_index, addresses))]


def oracles_during(scenario: Scenario, step_index: int,
                   addresses: Addresses | None = None) -> list[Oracle]:
    """Every state a step's change passes through before its last, in the order the runner
    makes the change (harness.runner.Run.change: labels, then each delete, then each apply):
    the state before the step, then after its labels, after each delete and after each apply
    but the last. A step with no change has the one state before it.

    Why: the harness applies a step's objects one at a time, so a cluster may show any of
    these states for a moment (a deny-all applied before the allow that comes with it), and a
    cell whose verdict then changes into the step's is late programming of the step's own
    change, not a transient regression (verdicts.over_rounds). The labels count as one change
    here, though a backend sets them object by object.
    """
    addresses = addresses or plan_addresses(scenario.model)
    states = [oracle_before(scenario, step_index, addresses)]
    step = scenario.steps[step_index]
    model = model_at(scenario, step_index)
    in_force = _in_force(scenario, step_index)

    def state() -> Oracle:
        return Oracle(model, [render_manifest(m, addresses) for m in in_force.values()],
                      addresses)

    if step.namespace_labels or step.pod_labels:
        states.append(state())
    for key in step.delete:
        _delete(in_force, key)
        states.append(state())
    for doc in step.apply:
        in_force[(str(doc.manifest.get("kind")), doc.key)] = doc.manifest
        states.append(state())
    return states[:-1] if len(states) > 1 else states


def decisions_during(scenario: Scenario, step_index: int,
                     addresses: Addresses | None = None) -> list[list[Decision]]:
    """For each cell of `expected_cells(scenario, step_index)`, in the same order, the
    oracle's decision in every state of `oracles_during` (the first: `decisions_before`)."""
    now = oracle_at(scenario, step_index, addresses)
    per_state = [[c.decision for c in _cells_of(scenario, step_index, now, o)]
                 for o in oracles_during(scenario, step_index, addresses)]
    return [list(ds) for ds in zip(*per_state, strict=True)]


def _cells_of(scenario: Scenario, step_index: int, oracle: Oracle,
              decider: Oracle) -> list[ExpectedCell]:
    """The cells of a step as `oracle` (the step's) lists them, each decided by `decider`."""
    step = scenario.steps[step_index]
    model = oracle.model
    cells: list[ExpectedCell] = []
    if not step.has_expectations:
        for port, proto in model_ports(model):
            for src, dst, decision in oracle.matrix(port, proto).items():
                if decider is not oracle:
                    decision = decider.decide(src, dst, port, proto)
                cells.append(ExpectedCell(src, dst, port, proto, decision.expectation, decision))
        return cells
    for mx in step.expect:
        for src, dst, sym in mx.table.items():
            cell_port = mx.port
            if isinstance(cell_port, str):
                cell_port = model.pod(dst).resolve_port(cell_port, mx.protocol) or cell_port
            decision = decider.decide(src, dst, mx.port, mx.protocol)
            cells.append(ExpectedCell(src, dst, cell_port, mx.protocol, EXPECTATION_OF_SYMBOL[sym],
                                      decision, None, True, mx.field, mx.row_line(src)))
    for pr in step.probes:
        resolves_to = None
        if pr.dns_name:
            decision = decider.decide_dns(pr.source, pr.dns_name)
            resolves_to = oracle.resolves_to(pr.source, pr.dns_name)
        else:
            decision = decider.decide(pr.source, pr.target, pr.port, pr.protocol)
        cells.append(ExpectedCell(pr.source, pr.target, _numeric_port(model, pr.target, pr.port,
                                                                      pr.protocol),
                                  pr.protocol, pr.expect, decision, pr.dns_name, True, pr.field,
                                  pr.line, resolves_to))
    return cells


def _numeric_port(model: Model, target: str, port: int | str, protocol: Protocol) -> int | str:
    """The number a named port means on a pod, Service or external host target (else as is)."""
    if isinstance(port, int):
        return port
    ep = Endpoint.parse(target)
    try:
        if ep.is_service:
            sp = next((p for p in model.service(ep.key).ports
                       if p.name == port and p.protocol == protocol), None)
            return sp.port if sp else port
        if ep.is_external:
            cp = next((c for c in model.external(target).ports
                       if c.name == port and c.protocol == protocol), None)
            return cp.port if cp else port
        return model.pod(target).resolve_port(port, protocol) or port
    except KeyError:
        return port  # a DNS name: the Service it names is resolved at probe time


def _reasons(decision: Decision) -> str:
    return "; ".join(r.text for r in decision.reasons)


def check_scenario(scenario: Scenario) -> list[Problem]:
    """Every explicit expectation the oracle disagrees with, as a Problem naming file, step,
    port/protocol, cell, expected vs computed and the deciding rule."""
    problems: list[Problem] = []
    path = str(scenario.path)
    for step in scenario.steps:
        label = f"step {step.index + 1} ({step.title})"
        unmodelled = [m for m in policies_at(scenario, step.index) if not is_network_policy(m)]
        if unmodelled and not step.has_expectations:
            kinds = ", ".join(sorted({f"{m.get('kind')} {(m.get('metadata') or {}).get('name')}"
                                      for m in unmodelled}))
            problems.append(Problem(path, f"steps[{step.index}]", (
                f"{label}: policies the oracle does not model are in force ({kinds}); the step "
                f"must state its expectations explicitly (expect: or probes:) and say which CNI "
                f"it describes (assume:)"), step.line))
        cells = expected_cells(scenario, step.index)
        problems += disagreements(scenario, step.index, cells)
        problems += unasserted_decided(scenario, step.index, cells)
    return problems


def unasserted_decided(scenario: Scenario, step_index: int,
                       cells: list[ExpectedCell]) -> list[Problem]:
    """The hand-written '-' cells of one step that the oracle decides, unless the step says
    `assume:` (it describes one CNI, which may leave such a cell unasserted on purpose).

    Why: '-' is for what the spec leaves undefined (a pod to itself, unmodelled policies); on a
    cell the spec decides it hides that cell's verdict, and a fail-open there would pass unseen.
    """
    step = scenario.steps[step_index]
    label = f"step {step.index + 1} ({step.title})"
    return [Problem(str(scenario.path), cell.field, f"{label}: {text}", cell.line)
            for cell in cells if (text := unasserted(cell, step.assume is not None))]


def disagreements(scenario: Scenario, step_index: int,
                  cells: list[ExpectedCell]) -> list[Problem]:
    """The cells of one step whose written expectation the oracle does not compute.

    `cells` are `expected_cells` of that step, with stand-in addresses (`check`) or the run's
    real ones (the runner re-checks after deploy: an ipBlock over real addresses can decide
    differently, and a wrong file must never be judged as the CNI's failure).
    """
    step = scenario.steps[step_index]
    label = f"step {step.index + 1} ({step.title})"
    return [Problem(str(scenario.path), cell.field, f"{label}: {text}", cell.line)
            for cell in cells if (text := disagreement(cell, step.assume is not None))]


#: how a scenario file says which CNI its expectations describe
ASSUME_HINT = "add assume: {cni: NAME, why: ...} to the step"


def disagreement(cell: ExpectedCell, assumed: bool, hint: str = ASSUME_HINT) -> str | None:
    """What is wrong with one hand-written expectation the oracle does not compute, or None.

    A cell the spec leaves undefined may be asserted only where the expectations describe one
    CNI (`assumed`: a step's `assume:`, the Python API's `assume=`); a decided cell must agree.
    Used by `check`, the runner (again at the real addresses) and the Python API's tables.
    """
    if cell.expectation is Expectation.UNDEFINED or not cell.explicit:
        return None  # '-': not asserted (unasserted() says when that is wrong)
    computed = cell.decision.expectation
    if computed is Expectation.UNDEFINED:
        if assumed:
            return None
        return (f"{cell.label}: expected {cell.expectation.value}, but the spec leaves this "
                f"undefined ({_reasons(cell.decision)}); write '-' or {hint}")
    if computed is not cell.expectation:
        return (f"{cell.label}: expected {cell.expectation.value}, the oracle computes "
                f"{computed.value}: {_reasons(cell.decision)}")
    return None


def unasserted(cell: ExpectedCell, assumed: bool, hint: str = ASSUME_HINT) -> str | None:
    """A hand-written '-' on a cell the oracle decides (None when fine, or `assumed`)."""
    computed = cell.decision.expectation
    if assumed or not cell.explicit or cell.expectation is not Expectation.UNDEFINED \
            or computed is Expectation.UNDEFINED:
        return None
    return (f"{cell.label}: written '-' (not asserted), but the oracle decides "
            f"{computed.value} ({_reasons(cell.decision)}); write "
            f"'{SYMBOL_OF_EXPECTATION[computed]}' or {hint}")


def validate_file(path: str | Path) -> list[Problem]:
    """Every problem of one scenario file: malformed content, then disagreement with the oracle."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        return exc.problems
    return check_scenario(scenario)


def missing_requirements(scenario: Scenario) -> list[Problem]:
    """Capabilities the scenario's content uses but `requires:` does not list (`check`'s notes).

    The needs among them are derived anyway (harness.scenario.needs; `Scenario.needs`), so a
    backend lacking one skips the scenario; the note says so. A protocol a policy only names is
    advice: it is no need (a CNI without it must still enforce the policy's other effects).
    """
    requires = set(scenario.requires)
    need = derived_needs(scenario.model, scenario.steps)
    out = [Problem(str(scenario.path), "requires", f"{cap} is used ({why}) but not required; "
                                                   f"derived: a backend without it skips "
                                                   f"this scenario")
           for cap, why in sorted(need.items()) if cap not in requires]
    out += [Problem(str(scenario.path), "requires", f"{cap} is used ({why}) but not required; "
                                                    f"not a need: no probe sends {cap.upper()}")
            for cap, why in sorted(advice(scenario.model, scenario.steps).items())
            if cap not in requires]
    return out
