"""One exec per source on real nodes (issue 20): the kubeconfig backend's code against real
kubelets over netpol-cri, with the real kube-router's policy controller. A round's probes of
one source run in one exec through the API, and its per-target results name the pods that
answered; a closed port and a target the engine blocks are no pass; a batch exec that is
killed, or cut by its timeout, gives probe errors for every probe in it, never a result.
"""

from __future__ import annotations

import time

import pytest

from harness.model import Model, Protocol
from harness.probe_clients import KUBE_BATCH_DRIVER
from harness.prober import probe_round
from harness.probes import Outcome, ProbeSpec
from harness.results import Expectation, Verdict
from harness.verdicts import judge
from tests.real_nodes.conftest import needs_real_nodes
from tests.real_nodes.kube_path import kube_path

pytestmark = needs_real_nodes("kube-scheduler", "kube-proxy", "kube-router")

MODEL = Model.default(namespaces=["x", "y"], pods=["a", "b"], ports=[80, 81],
                      protocols=[Protocol.TCP, Protocol.UDP])
DENY_YB = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "deny-to-b", "namespace": "y"},
           "spec": {"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Ingress"]}}
TIMEOUT = 2.0
SETTLE = 30.0

#: a job put first into every batch: it kills the driver, the highest of its ancestors whose
#: argv has the driver's $0 `np-batch` (the driver's subshells share its argv), as an OOM kill
#: or a runtime would, while the other jobs run
KILLER = ["bash", "-c", "sleep 0.5; p=$PPID d=\n"
          "while ((p > 1)); do\n"
          "  [[ $(tr '\\0' ' ' </proc/$p/cmdline) == *' np-batch '* ]] && d=$p\n"
          "  read -r _ _ _ p _ </proc/$p/stat\n"
          "done\n"
          "[[ -n $d ]] && kill -KILL \"$d\""]


@pytest.fixture(scope="module")
def cluster():
    with kube_path(MODEL) as got:
        yield got


class Counting:
    """The backend, with each exec's argv kept; optionally a fault made to order in the
    transport: a killer job added to every source batch, or a timeout too short."""

    def __init__(self, backend, kill: bool = False, timeout: float | None = None):
        self.backend, self.kill, self.timeout = backend, kill, timeout
        self.calls: list[tuple[str, list[str]]] = []
        self.toolkit = backend.toolkit

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def exec(self, endpoint, argv, timeout):
        argv = list(argv)
        if self.kill and argv[2:3] == [KUBE_BATCH_DRIVER]:
            argv = argv[:4] + ["jk", str(len(KILLER)), *KILLER] + argv[4:]
        self.calls.append((endpoint, argv))
        return self.backend.exec(endpoint, argv, self.timeout or timeout)


def specs_from(source: str, targets: list[str], ports=(80, 81, 82)) -> list[ProbeSpec]:
    return [ProbeSpec(source, t, port, proto) for t in targets for port in ports
            for proto in (Protocol.TCP, Protocol.UDP)]


def test_one_exec_per_source_and_every_answer_names_its_pod(cluster):
    _, b, addr = cluster
    others = [p.key for p in MODEL.user_pods if p.key != "x/a"]
    specs = specs_from("x/a", others)
    counting = Counting(b)
    got = probe_round(counting, specs, addr, TIMEOUT, toolkit="agnhost")
    batches = [c for c in counting.calls if c[1][2:3] == [KUBE_BATCH_DRIVER]]
    assert len(counting.calls) == 1 and len(batches) == 1, [c[1][:4] for c in counting.calls]
    for s in specs:
        o = got[s]
        if s.port == 82:     # nothing listens there: refused, a closed port, never a pass
            assert o.outcome == Outcome.REFUSED, (s.label, o)
            for expectation in (Expectation.ALLOW, Expectation.DENY):
                assert judge(expectation, o, True).verdict == Verdict.PROBE_ERROR
        else:
            pod = MODEL.pod(s.target)
            assert (o.outcome, o.answered_by) == (Outcome.CONNECTED, pod.hostname), (s.label, o)
            assert judge(Expectation.ALLOW, o, True, servers=pod.identities).verdict == Verdict.PASS
            # the same answer from another pod would prove nothing about this one
            other = MODEL.pod("x/b" if s.target != "x/b" else "y/a")
            assert judge(Expectation.ALLOW, o, True, servers=other.identities).verdict == \
                Verdict.PROBE_ERROR


def test_a_blocked_target_is_no_pass_beside_ones_that_answer(cluster):
    _, b, addr = cluster
    specs = specs_from("x/a", ["y/a", "y/b"], ports=(80, 81))
    b.apply_policy(DENY_YB)
    try:
        deadline, got = time.monotonic() + SETTLE, {}
        while time.monotonic() < deadline:
            got = probe_round(b, specs, addr, TIMEOUT, toolkit="agnhost")
            if all(got[s].outcome != Outcome.CONNECTED for s in specs if s.target == "y/b"):
                break
            time.sleep(0.5)
        for s in specs:
            o = got[s]
            if s.target == "y/b":   # kube-router rejects: refused (TCP RST, ICMP for UDP)
                assert o.outcome in (Outcome.REFUSED, Outcome.TIMEOUT), (s.label, o)
                assert judge(Expectation.ALLOW, o, True, "reject").verdict == \
                    Verdict.OVER_BLOCKED
            else:
                assert (o.outcome, o.answered_by) == (Outcome.CONNECTED, "y-a"), (s.label, o)
    finally:
        b.delete_policy("y", "deny-to-b")


@pytest.mark.parametrize("fault", ["driver killed", "exec timed out"])
def test_a_killed_or_cut_batch_exec_gives_probe_errors_not_results(cluster, fault):
    _, b, addr = cluster
    specs = specs_from("x/a", ["x/b", "y/a", "y/b"], ports=(80, 81))
    faulty = Counting(b, kill=fault == "driver killed",
                      timeout=0.3 if fault == "exec timed out" else None)
    got = probe_round(faulty, specs, addr, TIMEOUT, toolkit="agnhost")
    assert len(faulty.calls) == 1
    for s in specs:
        assert got[s].outcome == Outcome.TOOL_ERROR, (s.label, got[s])
        assert judge(Expectation.ALLOW, got[s], True).verdict == Verdict.PROBE_ERROR
        assert judge(Expectation.DENY, got[s], True).verdict == Verdict.PROBE_ERROR
    # the same probes through the healthy transport answer: the fault, not the pods, did it
    healthy = probe_round(b, specs, addr, TIMEOUT, toolkit="agnhost")
    assert all(o.outcome == Outcome.CONNECTED for o in healthy.values())


def test_the_pods_curl_is_the_http_only_build_when_it_is_built(cluster):
    """node.image_catalog binds the probes' curl build over the node's /usr/bin/curl in the
    agnhost image (inside the container's own mount namespace): the pods run it, the host's
    curl is left as it was."""
    from harness.backends.local import curl as probe_curl

    _, b, _ = cluster
    got = b.exec("x/a", ["curl", "--version"], 10)
    host = b.exec("x/a", ["ls", "-l", "/usr/bin/curl"], 10)
    assert got.returncode == 0 and host.returncode == 0, (got, host)
    protocols = next(line for line in got.stdout.splitlines() if line.startswith("Protocols:"))
    if probe_curl.built() is None:
        pytest.skip("the probes' curl is not built (python -m harness.backends.local.curlbuild)")
    assert protocols.split()[1:] == ["http"], protocols
    import subprocess
    system = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    assert "https" in system            # the machine's own curl, untouched
