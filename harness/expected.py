"""What a scenario's steps must produce, per the oracle, and where the file disagrees with it.

Why separate from the loader: loading checks the file against itself (names, shapes, the API
schema); this module checks it against the NetworkPolicy spec. `expected_cells` is also what the
runner probes: the explicit expectations of a step, or, where a step states none, the oracle's
full matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import Problem, ScenarioError
from harness.model import Addresses, Model, Protocol, plan_addresses
from harness.oracle import Decision, Oracle
from harness.policy import is_network_policy
from harness.results import Expectation
from harness.scenario.load import load_scenario
from harness.scenario.placeholders import render_manifest
from harness.scenario.types import Scenario

_SYMBOL = {"." : Expectation.ALLOW, "X": Expectation.DENY, "-": Expectation.UNDEFINED}


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
                addresses: Addresses | None = None) -> list[dict]:
    """The policy manifests in force at a step, rendered with `addresses` (stand-ins if None).

    Each step deletes, then applies; applying an object that exists (same kind and ns/name)
    replaces it, as `kubectl apply` does.
    """
    _check_index(scenario, step_index)
    addresses = addresses or plan_addresses(scenario.model)
    in_force: dict[tuple[str, str], dict] = {}
    for step in scenario.steps[:step_index + 1]:
        for key in step.delete:
            for ident in [i for i in in_force if i[1] == key]:
                del in_force[ident]
        for doc in step.apply:
            in_force[(str(doc.manifest.get("kind")), doc.key)] = doc.manifest
    return [render_manifest(m, addresses) for m in in_force.values()]


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
    step = scenario.steps[step_index]
    model = oracle.model
    cells: list[ExpectedCell] = []
    if not step.has_expectations:
        for port, proto in model_ports(model):
            for src, dst, decision in oracle.matrix(port, proto).items():
                cells.append(ExpectedCell(src, dst, port, proto, decision.expectation, decision))
        return cells
    for mx in step.expect:
        for src, dst, sym in mx.table.items():
            port = mx.port
            if isinstance(port, str):
                port = model.pod(dst).resolve_port(port, mx.protocol) or port
            decision = oracle.decide(src, dst, mx.port, mx.protocol)
            cells.append(ExpectedCell(src, dst, port, mx.protocol, _SYMBOL[sym], decision, None,
                                      True, mx.field, mx.row_line(src)))
    for pr in step.probes:
        if pr.dns_name:
            decision = oracle.decide_dns(pr.source, pr.dns_name)
        else:
            decision = oracle.decide(pr.source, pr.target, pr.port, pr.protocol)
        cells.append(ExpectedCell(pr.source, pr.target, _numeric_port(model, pr.target, pr.port,
                                                                      pr.protocol),
                                  pr.protocol, pr.expect, decision, pr.dns_name, True, pr.field,
                                  pr.line))
    return cells


def _numeric_port(model: Model, target: str, port: int | str, protocol: Protocol) -> int | str:
    """The number a named port means on a pod, Service or external host target (else as is)."""
    if isinstance(port, int):
        return port
    try:
        if target.startswith("svc:"):
            sp = next((p for p in model.service(target[4:]).ports
                       if p.name == port and p.protocol == protocol), None)
            return sp.port if sp else port
        if target.startswith("ext:"):
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
        for cell in expected_cells(scenario, step.index):
            if cell.expectation is Expectation.UNDEFINED:
                continue  # '-': not asserted
            computed = cell.decision.expectation
            where = f"{label}: {cell.label}"
            if computed is Expectation.UNDEFINED:
                if step.assume is None:
                    problems.append(Problem(path, cell.field, (
                        f"{where}: expected {cell.expectation.value}, but the spec leaves this "
                        f"undefined ({_reasons(cell.decision)}); write '-' or add "
                        f"assume: {{cni: NAME, why: ...}} to the step"), cell.line))
                continue
            if computed is not cell.expectation:
                problems.append(Problem(path, cell.field, (
                    f"{where}: expected {cell.expectation.value}, the oracle computes "
                    f"{computed.value}: {_reasons(cell.decision)}"), cell.line))
    return problems


def validate_file(path: str | Path) -> list[Problem]:
    """Every problem of one scenario file: malformed content, then disagreement with the oracle."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        return exc.problems
    return check_scenario(scenario)


def missing_requirements(scenario: Scenario) -> list[Problem]:
    """Capabilities the scenario's own content uses but `requires:` does not list.

    Why: a backend lacking a capability must skip the scenario, not run it and report the
    missing feature as "not enforced". Reported by `check` as notes (not errors) for now, so a
    library can adopt it file by file.
    """
    need: dict[str, str] = {}
    for st in scenario.steps:
        for doc in st.apply:
            if is_network_policy(doc.manifest):
                _policy_needs(doc.manifest, doc.key, need)
        for mx in st.expect:
            _proto_needs(mx.protocol, f"step {st.index + 1} table {mx.port}/{mx.protocol.value}",
                         need)
            if isinstance(mx.port, str):
                need.setdefault("named-ports", f"step {st.index + 1} table port {mx.port}")
        for pr in st.probes:
            if pr.dns_name:
                continue
            _proto_needs(pr.protocol, f"step {st.index + 1} probe {pr.source} -> {pr.target}", need)
            if pr.source.startswith("ext:") or pr.target.startswith("ext:"):
                need.setdefault("external-hosts", f"step {st.index + 1} probe {pr.source} -> "
                                                  f"{pr.target}")
    return [Problem(str(scenario.path), "requires", f"{cap} is used ({why}) but not required")
            for cap, why in sorted(need.items()) if cap not in scenario.requires]


def _proto_needs(protocol: Protocol, why: str, need: dict[str, str]) -> None:
    if protocol is Protocol.UDP:
        need.setdefault("udp", why)
    elif protocol is Protocol.SCTP:
        need.setdefault("sctp", why)


def _policy_needs(m: dict, key: str, need: dict[str, str]) -> None:
    spec = m.get("spec") or {}
    need.setdefault("networkpolicy", f"policy {key}")
    if "Egress" in (spec.get("policyTypes") or []) or spec.get("egress"):
        need.setdefault("egress", f"policy {key} has egress rules or policyTypes Egress")
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for rule in spec.get(direction) or []:
            if not isinstance(rule, dict):
                continue
            if any(isinstance(p, dict) and "ipBlock" in p for p in rule.get(peers) or []):
                need.setdefault("ipblock", f"policy {key} has an ipBlock peer")
            for port in rule.get("ports") or []:
                if not isinstance(port, dict):
                    continue
                if isinstance(port.get("port"), str):
                    need.setdefault("named-ports", f"policy {key} names port {port['port']}")
                if "endPort" in port:
                    need.setdefault("endport", f"policy {key} has an endPort range")
                if port.get("protocol") in ("UDP", "SCTP"):
                    _proto_needs(Protocol(port["protocol"]),
                                 f"policy {key} has a {port['protocol']} port", need)
