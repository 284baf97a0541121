"""JUnit properties of one scenario result, for pytest's `item.user_properties`.

Why: pytest writes the JUnit XML itself; CI dashboards that read only JUnit then still see the
CNI, the backend, each step's time to enforce and the verdict counts of every test case.
"""

from __future__ import annotations

from harness.reports import matrix as mx
from harness.results import FaultTimeline, ScenarioResult, Verdict


def _fault(index: int, tl: FaultTimeline) -> list[tuple[str, str]]:
    """A fault step's windows, whatever the scenario requires (a fail-open a measurement did
    not forbid is still in the file): how many watched cells failed open and closed, the
    bounds of each kind's windows ("at least-at most" seconds; "at least-" when still so when
    the watch ended), and how many requirements were violated or not observed."""
    name = f"step{index}_fault"
    props = []
    for kind in ("open", "closed"):
        ws = [w for c in tl.cells for w in c.windows if w.kind == kind]
        props.append((f"{name}_failed_{kind}",
                      str(sum(1 for c in tl.cells if any(w.kind == kind for w in c.windows)))))
        if ws:
            his = [w.at_most for w in ws]
            hi = "" if None in his else f"{max(h for h in his if h is not None):.1f}"
            props.append((f"{name}_{kind}_seconds", f"{min(w.at_least for w in ws):.1f}-{hi}"))
    required = [c.requirement for c in tl.cells if c.requirement is not None]
    if required:
        props.append((f"{name}_requirements_violated", str(required.count("violated"))))
        props.append((f"{name}_requirements_not_observed", str(required.count("not observed"))))
    return props


def properties(result: ScenarioResult) -> list[tuple[str, str]]:
    """(name, value) pairs: cni, backend, run_id, outcome, convergence per step, a fault
    step's windows and requirements, verdict counts."""
    props = [("cni", mx.cni_of(result)), ("backend", result.backend), ("run_id", result.run_id),
             ("outcome", result.outcome), ("policies_accepted", str(result.policies_accepted))]
    if result.enforcing_cluster is not None:
        props.append(("enforcing_cluster", "true" if result.enforcing_cluster else "false"))
    if result.declared_enforcing is not None:
        props.append(("declared_enforcing", "true" if result.declared_enforcing else "false"))
    if result.canary_contradiction:
        props.append(("canary_contradiction", result.canary_contradiction))
    for step in result.steps:
        # An unconverged step has no time to enforce: say so instead of writing a number.
        value = (f"{step.converge_seconds:.3f}" if step.converged and step.converge_seconds is not None
                 else "not converged")
        props.append((f"step{step.index}_convergence_seconds", value))
        if step.fault is not None:
            props += _fault(step.index, step.fault)
    counts = result.verdict_counts()
    for v in Verdict:
        props.append((f"verdict_{mx.verdict_class(v.value).replace('-', '_')}",
                      str(counts.get(v.value, 0))))
    if result.infra_error:
        props.append(("infra_error", result.infra_error))
    if result.scenario_error:
        props.append(("scenario_error", result.scenario_error))
    return props
