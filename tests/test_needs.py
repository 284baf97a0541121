"""What a scenario needs is derived from its content, not only from `requires:`; and `check`
rejects a '-' on a cell the oracle decides unless the step says `assume:`.

Why: a scenario that forgets `requires: [ipblock-pod-ip]` would run on a CNI that applies
ipBlock to traffic from outside the cluster only (Cilium) and report a documented limitation as
the CNI's failure; a '-' on a decided cell hides a fail-open there.
"""

from __future__ import annotations

from pathlib import Path

from harness.cli import main
from harness.scenario import find_scenarios, load_scenario
from harness.session import Session
from harness.settings import build, declared_capabilities
from tests.conftest import needs_local

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "tests" / "data" / "run"
DATA = ROOT / "tests" / "data" / "scenarios"


def test_an_ipblock_over_pod_ips_is_needed_though_requires_forgets_it():
    s = load_scenario(RUN / "ipblock-pod-ip-forgotten.yaml")
    assert s.requires == ("networkpolicy",)
    assert {"ipblock", "ipblock-pod-ip"} <= set(s.needs)
    ok, why = declared_capabilities("kind", "cilium").match(s.needs)
    assert not ok and "ipblock-pod-ip (Cilium applies ipBlock only" in why
    # the skip a run makes (both front ends ask Session.plan), before any cluster exists
    plan = Session(build({"backend": "kind", "cnis": "cilium"}, env={})).plan(s, "cilium")
    assert plan.skip and "missing capability: ipblock-pod-ip" in plan.skip
    assert Session(build({"backend": "local", "cnis": "enforcing"}, env={})).plan(
        s, "enforcing").skip is None


def test_a_policy_that_only_names_a_protocol_does_not_need_it():
    """Upstream: a policy allowing only SCTP must still isolate its pod on a CNI without SCTP;
    the scenario probes TCP alone, so it runs there (sctp is no need, only advice)."""
    s = load_scenario(ROOT / "scenarios" / "conformance" / "sctp-policy-isolates-tcp.yaml")
    assert "sctp" not in s.needs
    assert declared_capabilities("local", "enforcing").match(s.needs) == (True, "")
    udp = load_scenario(RUN / "deny-ingress-small.yaml")   # a UDP table: traffic, so a need
    assert "udp" in udp.needs


def test_the_library_needs_nothing_it_does_not_require():
    """Every capability the library's content uses is in its `requires:` (or derived from a
    fault step): deriving needs skips no library scenario that ran before."""
    for path in find_scenarios([str(ROOT / "scenarios")]):
        s = load_scenario(path)
        fault = {n for st in s.steps if st.fault is not None for n in st.fault.needs}
        assert set(s.needs) <= set(s.requires) | fault, path


def test_check_rejects_a_dash_on_a_cell_the_oracle_decides(tmp_path, capsys):
    bad = DATA / "invalid-dash-on-decided-cell.yaml"
    assert main(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert (f"{bad}:21: steps[0].expect[0].matrix: step 1 (step 1): x/b -> x/a on TCP 80: "
            f"written '-' (not asserted), but the oracle decides deny") in out
    assert "write 'X' or add assume:" in out
    assert main(["check", str(DATA / "valid-dash-with-assume.yaml")]) == 0


def test_the_library_passes_check():
    assert main(["check", str(ROOT / "scenarios")]) == 0


@needs_local
def test_a_backend_without_ipblock_pod_ip_skips_the_scenario_instead_of_failing_the_cni():
    from harness.runner import run_scenario
    from tests.faulty_dataplanes import IpBlockOutsideTheClusterOnly

    settings = build({"cnis": "enforcing"}, env={})
    backend = IpBlockOutsideTheClusterOnly(profile="enforcing", run_id=settings.run_id,
                                           probe_timeout=settings.probe_timeout)
    backend.up()
    try:
        r = run_scenario(load_scenario(RUN / "ipblock-pod-ip-forgotten.yaml"), backend,
                         settings, log=lambda line: None, enforcing=True)
    finally:
        backend.down()
    assert r.outcome == "skipped", (r.outcome, r.verdict_counts())
    assert r.skip_reason and "missing capability: ipblock-pod-ip" in r.skip_reason
    assert r.steps == []             # no verdict on the CNI at all
