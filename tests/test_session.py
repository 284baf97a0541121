"""harness.session.Session, the orchestration both front ends share, on what needs no root:
run ids per CNI, run-or-skip decisions, skipped results, teardown and report metadata.

The parts that bring a backend up (bring-up under the lock, canary once) run for real in
tests/test_runner_cli.py and tests/plugin/, through both front ends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.scenario import load_scenario
from harness.session import Plan, Session, has_deny
from harness.settings import build
from harness.shell import run

DATA = Path(__file__).parent / "data" / "run"


def _session(**values) -> tuple[Session, list[str]]:
    lines: list[str] = []
    settings = build({"backend": "local", "cnis": "enforcing,open", "run_id": "abcd12", **values},
                     env={})
    return Session(settings, log=lines.append, prefix="np: "), lines


def test_each_local_profile_gets_a_run_id_of_its_own():
    session, _ = _session()
    assert session.settings_for("enforcing").run_id == "abcd12a"
    assert session.settings_for("open").run_id == "abcd12b"
    assert session.settings.run_id == "abcd12"


def test_plan_skips_with_the_capability_reason_and_marks_expected_failures():
    session, _ = _session()
    sctp = load_scenario(DATA / "needs-sctp.yaml")
    deny = load_scenario(DATA / "deny-ingress-small.yaml")
    skip = session.plan(sctp, "enforcing").skip
    assert skip is not None and skip.startswith("missing capability: sctp (SCTP is not available")
    assert session.plan(deny, "enforcing") == Plan()
    # open is declared not to enforce, and the scenario asserts blocks: an expected failure
    assert has_deny(deny)
    assert session.plan(deny, "open") == Plan(not_enforced=True)


def test_a_skipped_scenario_is_recorded_without_bringing_anything_up():
    session, lines = _session()
    printed: list[str] = []
    result = session.run(load_scenario(DATA / "needs-sctp.yaml"), "open", log=printed.append)
    why = result.skip_reason
    assert result.outcome == "skipped" and why.startswith("missing capability: sctp (")
    assert (result.profile, result.run_id) == ("open", "abcd12b")
    assert session.results == [result]
    assert session.backends == {} and session.made == {}   # nothing was built
    assert printed == [f"scenario needs-sctp [open]: skipped: {why}"]
    assert lines == []
    assert session.teardown() == []


def test_remote_findings_join_the_reports(tmp_path):
    session, _ = _session(json_path=str(tmp_path / "r.json"))
    session.add_remote([], {"open": {"enforcing": False, "detail": "still connected"}})
    assert session.canary_meta() == {"open": {"enforcing": False, "detail": "still connected"}}
    session.banner("open")
    session.banner("open")
    assert session.write_reports({"pytest": "x"}) == [str(tmp_path / "r.json")]
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["meta"]["canary"]["open"]["enforcing"] is False
    assert doc["meta"]["versions"]["pytest"] == "x"
    assert doc["meta"]["run_id"] == "abcd12"


def test_banner_is_printed_once_per_cni():
    session, lines = _session()
    session.banner("open")
    session.banner("open")
    assert len(lines) == 1 and "open: this cluster accepts NetworkPolicy objects" in \
        " ".join(lines[0].replace("!", " ").split())


def test_the_session_never_imports_pytest():
    code = ("import sys, harness.session; assert 'pytest' not in sys.modules, 'pytest imported'; "
            "print('ok')")
    out = run([sys.executable, "-c", code], timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_clusters_of_jobs_get_names_of_their_own_within_eight_characters():
    from harness.naming import valid_run_id
    from harness.scheduler import slot_run_id
    ids = {slot_run_id("abcd12", w, c, k) for w in range(12) for c in range(2) for k in range(1, 36)}
    assert len(ids) == 12 * 2 * 35 and all(valid_run_id(i) and i.startswith("abcd1") for i in ids)
    # never one of the first clusters' names (run id + CNI letter)
    assert not ids & {"abcd12a", "abcd12b"}


def test_default_jobs_follow_the_cores_and_the_measured_cost_per_probe():
    from harness.scheduler import default_jobs
    assert default_jobs(2, 1.0) < default_jobs(8, 1.0)
    assert default_jobs(2, 1.0) <= default_jobs(2, 3.0)   # longer waits: more scenarios at once
    assert default_jobs(1, 0.1) >= 1 and default_jobs(512, 5.0) <= 64
    session, _ = _session(jobs="3")
    assert session.jobs == 3 and session.describe().endswith(" jobs=3")
    # a kube cluster: -j scenarios as tenants of the one cluster, else the measured default
    from harness.backends.kube.tenants import SCENARIOS_AT_ONCE
    for backend in ("kind", "realnodes"):
        kube = build({"backend": backend, "cnis": "calico", "jobs": "4"}, env={})
        assert Session(kube).jobs == 4
        kube = build({"backend": backend, "cnis": "calico"}, env={})
        assert Session(kube).jobs == SCENARIOS_AT_ONCE


def test_a_lookup_answered_nxdomain_is_nothing_to_enforce():
    """A scenario whose only 'fails' is a name that does not exist passes on a CNI that enforces
    nothing: not a strict xfail that then 'xpasses'."""
    from pathlib import Path

    from harness.scenario import load_scenario
    from harness.session import has_deny

    data = Path(__file__).parent / "data" / "run"
    assert has_deny(load_scenario(data / "dns-three-outcomes.yaml")) is False
    assert has_deny(load_scenario(data / "egress-dns.yaml")) is True   # a blocked lookup


def test_xdist_workers_share_the_default_jobs():
    settings = build({"backend": "local", "cnis": "enforcing"}, env={})
    alone = Session(settings).jobs
    assert Session(settings, workers=2).jobs == max(1, alone // 2)
    assert Session(build({"jobs": "5"}, env={}), workers=4).jobs == 5   # asked for: as asked


def test_prefetch_starts_the_longest_first_and_the_skipped_last(monkeypatch):
    """Scenarios run at once end when the last does: a fault step's fixed observation started
    last would run on alone. Order of starting only; each story is still reported in order."""
    from harness.plan import estimated_seconds
    session, _ = _session(jobs=4)
    repo = Path(__file__).resolve().parents[1]
    fault = load_scenario(repo / "scenarios" / "faults" / "engine-stop.yaml")
    short = load_scenario(DATA / "deny-ingress-small.yaml")
    sctp = load_scenario(DATA / "needs-sctp.yaml")
    s = session.settings
    assert estimated_seconds(fault, 1.0, 3, 3.0) > estimated_seconds(short, 1.0, 3, 3.0) > 0
    # each step observes for at least min_rounds x the timeout and min_window
    assert estimated_seconds(short, 2.0, 3, 3.0) == (1 + len(short.steps)) * 6.0
    started: list[tuple[str, str]] = []
    names = {str(sc.path): sc.name for sc in (fault, short, sctp)}
    # the order start_all queues them in (longest first: its own test is in test_scheduler.py)
    monkeypatch.setattr(session.scheduler, "start_all", lambda items, fits=None: started.extend(
        (names[key[0]], key[1]) for key, _, _, _ in sorted(items, key=lambda i: -i[1])))
    session.prefetch([(sctp, "enforcing"), (short, "enforcing"), (fault, "enforcing"),
                      (short, "open")])
    assert s.jobs == 4
    assert started == [(fault.name, "enforcing"), (short.name, "enforcing"),
                       (short.name, "open"), (sctp.name, "enforcing")]


# -- realnodes: tenants of one cluster ----------------------------------------------------------
SCENARIOS = Path(__file__).parents[1] / "scenarios"


def test_who_runs_alone_on_a_shared_cluster():
    """The rule (harness.scenario.sharing.runs_alone) over the library: fault steps and cluster-scoped
    objects run alone; a scenario whose objects are all namespaced runs beside others."""
    from harness.scenario.sharing import runs_alone

    rows = {  # file: the start of the reason, or None
        "faults/engine-stop.yaml": "step 2 has a fault step",
        "faults/apiserver-down.yaml": "step 2 has a fault step",
        "real-world/seed-allow-frontend-to-backend.yaml": None,
        "conformance/updated-namespace-label-admits.yaml": None,
        "real-world/dns-pitfall.yaml": None,
        "cni-specific/calico-deny-order.yaml": None,   # Calico's namespaced NetworkPolicy
    }
    for name, want in rows.items():
        got = runs_alone(load_scenario(SCENARIOS / name))
        assert (got if want is None else (got or "")[:len(want)]) == want, (name, got)


def test_a_cluster_scoped_policy_or_a_label_on_the_system_namespace_runs_alone():
    from dataclasses import replace as dc_replace

    from harness.scenario.sharing import runs_alone

    sc = load_scenario(SCENARIOS / "cni-specific" / "calico-deny-order.yaml")
    assert runs_alone(sc) is None
    step = sc.steps[-1]
    doc = step.apply[0]
    gnp = dc_replace(doc, manifest={**doc.manifest, "kind": "GlobalNetworkPolicy",
                                    "metadata": {"name": "g"}})
    glob = dc_replace(sc, steps=(*sc.steps[:-1], dc_replace(step, apply=(gnp,))))
    assert runs_alone(glob) == f"step {step.index + 1} applies the cluster-scoped " \
                               f"GlobalNetworkPolicy g"
    dns = load_scenario(SCENARIOS / "real-world" / "dns-pitfall.yaml")
    assert runs_alone(dns) is None
    labelled = dc_replace(dns, steps=(dc_replace(dns.steps[0],
                                                 namespace_labels={"kube-system": {"a": "b"}}),
                                      *dns.steps[1:]))
    assert runs_alone(labelled) == "step 1 labels the system namespace kube-system"


def test_realnodes_runs_tenants_at_once_with_run_ids_of_its_own_per_cni():
    from harness.backends.real.realnodes.cnis import SCENARIOS_AT_ONCE

    settings = build({"backend": "realnodes", "cnis": "kube-router,none", "run_id": "abcd12"},
                     env={})
    session = Session(settings, log=lambda line: None)
    assert session.jobs == SCENARIOS_AT_ONCE
    assert session.settings_for("kube-router").run_id == "abcd12a"
    assert session.settings_for("none").run_id == "abcd12b"
    assert Session(build({"backend": "realnodes", "cnis": "none", "jobs": "2"}, env={})).jobs == 2
    # the extra clusters are tenants of the CNI's cluster, nothing is brought up for them
    host = session._made("none")
    session.backends["none"] = host
    tenant = session._new_cluster("none", 1)
    from harness.backends.kube.tenants import KubeTenant
    assert isinstance(tenant, KubeTenant) and tenant.host is host
    assert tenant.run_id != host.run_id and tenant.topology is None   # nothing up yet
    # a scenario that must run alone runs apart: in a lane of its own per CNI, on a cluster
    # of its own (a host, not a tenant), so it never holds the tenants off
    repo = Path(__file__).resolve().parents[1]
    fault = load_scenario(repo / "scenarios" / "faults" / "engine-stop.yaml")
    plain = load_scenario(repo / "scenarios" / "real-world" / "seed-deny-all-ingress.yaml")
    assert session._lane(fault, "none") == "alone-none-1" and session._lane(plain, "none") is None
    # dealt over the CNI's clusters apart: the next one to the lane with the least to do
    # (estimated; both are skipped on `none`, so both go to kube-router's)
    kill = load_scenario(repo / "scenarios" / "faults" / "engine-kill.yaml")
    assert [session._lane(sc, "kube-router") for sc in (fault, kill, fault)] == \
        ["alone-kube-router-1", "alone-kube-router-2", "alone-kube-router-1"]
    apart = session._new_cluster("none", 2, apart=True)
    assert not isinstance(apart, KubeTenant) and apart.run_id not in (host.run_id, tenant.run_id)
    # elsewhere (one scenario at a time, or the local backend's clusters of their own) nothing
    # runs apart
    assert Session(build({"backend": "realnodes", "cnis": "none", "jobs": "1"}, env={}))._lane(
        fault, "none") is None
    assert Session(build({"backend": "local", "cnis": "enforcing", "jobs": "4"}, env={}))._lane(
        fault, "enforcing") is None
