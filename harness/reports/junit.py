"""JUnit properties of one scenario result, for pytest's `item.user_properties`.

Why: pytest writes the JUnit XML itself; CI dashboards that read only JUnit then still see the
CNI, the backend, each step's time to enforce and the verdict counts of every test case.
"""

from __future__ import annotations

from harness.reports import matrix as mx
from harness.results import ScenarioResult, Verdict


def properties(result: ScenarioResult) -> list[tuple[str, str]]:
    """(name, value) pairs: cni, backend, run_id, outcome, convergence per step, verdict counts."""
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
    counts = result.verdict_counts()
    for v in Verdict:
        props.append((f"verdict_{mx.verdict_class(v.value).replace('-', '_')}",
                      str(counts.get(v.value, 0))))
    if result.infra_error:
        props.append(("infra_error", result.infra_error))
    if result.scenario_error:
        props.append(("scenario_error", result.scenario_error))
    return props
