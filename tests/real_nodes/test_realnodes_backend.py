"""The `realnodes` backend live (root, the real components): the kube path (harness.backends.kube,
unchanged) on real kubelets with CoreDNS as a pod, through the session both front ends use.

- kube-router: the canary finds enforcement, a library scenario with a DNS cell passes through
  the runner;
- none: the canary decides there is no enforcement (nothing is assumed from the CNI's name);
- tenants: a scenario run alone on the cluster and the same scenario run as a tenant beside two
  others give the same verdict in every cell, and the tenants' namespaces are gone after.
"""

from __future__ import annotations

from pathlib import Path

from harness.results import ScenarioResult
from harness.runner import run_scenario
from harness.scenario import load_scenario
from harness.session import Session
from harness.settings import build
from tests.real_nodes.conftest import needs_real_nodes

pytestmark = needs_real_nodes("kube-scheduler", "kube-proxy", "kube-router", "coredns")

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def _session(cni: str, jobs: int = 1) -> Session:
    return Session(build({"backend": "realnodes", "cnis": cni, "jobs": str(jobs)}, env={}),
                   log=lambda line: None)


def _verdicts(result: ScenarioResult) -> dict[tuple, str]:
    steps = ([result.baseline] if result.baseline else []) + list(result.steps)
    return {(i, c.source, c.target, str(c.port), str(c.protocol)): c.verdict
            for i, step in enumerate(steps) for c in step.cells}


def test_none_is_found_not_to_enforce_by_the_canary():
    session = _session("none")
    try:
        session.backend("none")
        canary = session.canary("none")
        assert canary is not None and canary.enforcing is False, canary
        assert "no policy engine" in session.dataplanes["none"]
    finally:
        assert session.teardown() == []


def test_kube_router_enforces_and_a_scenario_is_the_same_alone_and_beside_others():
    sc = load_scenario(SCENARIOS / "real-world" / "dns-pitfall.yaml")
    others = [load_scenario(SCENARIOS / "conformance" / name)
              for name in ("deny-all-ingress.yaml", "namespace-selector-ingress.yaml")]
    session = _session("kube-router", jobs=3)
    try:
        host = session.backend("kube-router")
        canary = session.canary("kube-router")
        assert canary is not None and canary.enforcing is True, canary
        assert "real kubelet v1.35.8" in session.dataplanes["kube-router"]
        # alone: on the cluster's own backend, nothing else running
        alone = run_scenario(sc, host, session.settings_for("kube-router"), log=lambda m: None,
                             enforcing=True)
        assert alone.outcome == "passed", alone
        # beside two others: each a tenant of the same cluster, all three at once
        session.prefetch([(sc, "kube-router")] + [(o, "kube-router") for o in others])
        beside = session.run(sc, "kube-router", log=lambda m: None)
        rest = [session.run(o, "kube-router", log=lambda m: None) for o in others]
        assert beside.run_id != alone.run_id and beside.outcome == "passed", beside
        assert all(r.outcome == "passed" for r in rest), [(r.scenario, r.outcome) for r in rest]
        assert _verdicts(beside) == _verdicts(alone)
        assert len(_verdicts(alone)) > 10
        tenants = session.scheduler.clusters("kube-router")
        assert tenants and all(t.host is host for t in tenants)  # type: ignore[attr-defined]
        assert {t.run_id for t in tenants} >= {beside.run_id}
        for t in tenants:
            t.down()
        from harness import naming

        assert host.topology is not None
        for t in tenants:
            left = host.topology.api.core.list_namespace(
                label_selector=f"{naming.RUN_LABEL}={t.run_id}").items
            assert [n.metadata.name for n in left] == [], f"tenant {t.run_id} left namespaces"
    finally:
        assert session.teardown() == []
