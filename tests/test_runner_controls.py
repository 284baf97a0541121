"""Positive controls follow the server a probe actually reaches, on the real local backend.

Why: a call through a Service IP or a Service DNS name reaches the backing pod; a block of that
call is proven by that pod answering someone (or its own loopback), and a lookup that timed out
is proven by the DNS server answering. Keyed by the target as written, these blocks could only
ever be probe errors. And a port a pod does not serve is not part of the baseline unless a
scenario asserts it.
"""

from __future__ import annotations

from pathlib import Path

from harness.backends.local import LocalBackend
from harness.runner import run_scenario
from harness.scenario import load_scenario
from harness.settings import build
from tests.conftest import needs_local

pytestmark = needs_local
DATA = Path(__file__).parent / "data"


def run(path: Path, profile: str = "enforcing"):
    s = build({"cnis": profile}, env={})
    backend = LocalBackend(profile=profile, run_id=s.run_id, probe_timeout=s.probe_timeout)
    backend.up()
    try:
        return run_scenario(load_scenario(path), backend, s, log=lambda line: None,
                            enforcing=profile == "enforcing")
    finally:
        backend.down()


def test_blocked_calls_by_name_and_service_ip_are_proven_not_probe_errors():
    r = run(DATA / "run" / "name-deny.yaml")
    assert r.outcome == "passed", (r.infra_error, r.verdict_counts())
    by_name, by_ip = r.steps[0].cells
    assert by_name.target == "backend.prod.svc.cluster.local" and by_ip.target == "svc:prod/backend"
    for cell in (by_name, by_ip):
        assert cell.observed == "blocked" and cell.verdict == "pass"
        assert all(a.outcome == "timeout" and a.positive_control for a in cell.attempts)
    (no_dns,) = r.steps[1].cells
    # the lookup itself timed out: the DNS server's loopback answer is the control
    assert no_dns.verdict == "pass"
    assert all(a.outcome == "dns-timeout" and a.positive_control for a in no_dns.attempts)


def test_on_open_the_same_calls_connect_and_are_not_enforced():
    r = run(DATA / "run" / "name-deny.yaml", "open")
    assert r.outcome == "xfailed"
    assert {c.verdict for s in r.steps for c in s.cells} == {"not enforced"}


def test_ports_a_pod_does_not_serve_stay_out_of_the_baseline():
    # db serves 5432 only; the oracle's full matrix on port 80 includes db as a target
    r = run(DATA / "scenarios" / "valid-custom-model.yaml")
    assert r.outcome == "passed", (r.infra_error, r.verdict_counts())
    probed = {(c.target, c.port) for c in r.baseline.cells}
    assert ("prod/db", "80") not in probed and ("prod/backend", "80") in probed
