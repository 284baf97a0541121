"""The prober without a cluster: concurrency, transport failures, toolkits, batching plan.

FakeKubeExec stands in for the one thing that cannot run here — a Kubernetes exec stream — and
replays real tool output captured in tests/data/probe-outputs (see capture.py). The prober on
the real local backend is exercised by tests/live/.
"""

from __future__ import annotations

import json
import os
import threading

from harness.backends.base import Backend
from harness.errors import ExecError
from harness.model import Addresses, Protocol
from harness.probe_clients import KUBE_BATCH_DRIVER
from harness.prober import _plan, probe_round
from harness.probes import Outcome, ProbeSpec
from harness.shell import ExecResult

DATA = os.path.join(os.path.dirname(__file__), "data", "probe-outputs")
ADDR = Addresses({"x/a": "10.244.1.10", "x/b": "10.244.1.11", "x/c": "10.244.1.12"},
                 {"x/web": "10.96.1.10"}, {"outside": "192.0.2.10"})


def captured(name: str) -> ExecResult:
    with open(os.path.join(DATA, f"{name}.json")) as fh:
        d = json.load(fh)
    return ExecResult(tuple(d["argv"]), d["returncode"], d["stdout"], d["stderr"], d["elapsed"])


class ExecOnly(Backend):
    """A fake backend of which the prober uses `exec` alone (and the base's neutral DNS
    helpers): every other member says it is not part of a probe round."""

    def _unused(self, *args, **kwargs):
        raise AssertionError("the prober calls exec and the DNS helpers only")

    capabilities = up = down = deploy = undeploy = set_labels = _unused
    apply_policy = delete_policy = policy_count = _unused


class FakeKubeExec(ExecOnly):
    """A Kubernetes exec transport: replays captured output per target IP, fails for `broken`
    sources like a dropped websocket, and can hold every exec at a barrier."""

    toolkit = "debian"

    def __init__(self, replies: dict[str, str], broken: set[str] = frozenset(),
                 barrier: threading.Barrier | None = None):
        self.replies, self.broken, self.barrier = replies, broken, barrier
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.lock = threading.Lock()

    def exec(self, endpoint, argv, timeout):
        with self.lock:
            self.calls.append((endpoint, tuple(argv)))
        if self.barrier:
            self.barrier.wait(timeout=10)
        if endpoint in self.broken:
            raise ExecError(list(argv), "exec stream closed without a status", target=endpoint)
        for needle, name in self.replies.items():
            if any(needle in a for a in argv):
                r = captured(name)
                return ExecResult(tuple(argv), r.returncode, r.stdout, r.stderr, r.elapsed, endpoint)
        raise AssertionError(f"no reply recorded for {argv}")


def tcp(src, dst, port=80):
    return ProbeSpec(src, dst, port, Protocol.TCP)


def test_exec_failure_is_a_tool_error_with_its_cause_never_a_policy_outcome():
    backend = FakeKubeExec({"10.244.1.11": "curl-timeout", "10.244.1.12": "curl-connected"},
                           broken={"x/c"})
    specs = [tcp("x/a", "x/b"), tcp("x/a", "x/c"), tcp("x/c", "x/b")]
    got = probe_round(backend, specs, ADDR, 1.0, batch=False)
    assert [o.outcome for o in got.values()] == [Outcome.TIMEOUT, Outcome.CONNECTED, Outcome.TOOL_ERROR]
    assert "exec stream closed without a status" in got[specs[2]].detail
    assert got[specs[2]].outcome.delivered is None


def test_probes_run_concurrently():
    specs = [tcp(s, d) for s in ("x/a", "x/b", "x/c") for d in ("x/a", "x/b", "x/c")]
    # every exec waits until all nine are in flight: a sequential prober breaks the barrier
    backend = FakeKubeExec({"10.244.1.1": "curl-timeout"}, barrier=threading.Barrier(9))
    got = probe_round(backend, specs, ADDR, 1.0, batch=False)
    assert list(got) == specs and all(o.outcome == Outcome.TIMEOUT for o in got.values())


def test_unknown_target_is_a_tool_error():
    backend = FakeKubeExec({})
    got = probe_round(backend, [tcp("x/a", "svc:x/missing")], ADDR, 1.0)
    assert list(got.values())[0].outcome == Outcome.TOOL_ERROR


def jobs_of(argv) -> list[tuple[str, ...]]:
    """The jobs of a source batch's argv (probes.source_batch_argv), in order."""
    words, jobs = list(argv[4:]), []
    while words:
        n = int(words[1])
        jobs.append(tuple(words[2:2 + n]))
        words = words[2 + n:]
    return jobs


def esc(text: str) -> str:
    """A field as the driver (KUBE_BATCH_DRIVER) escapes it."""
    if not text:
        return "\\0"
    return (text.replace("\\", "\\\\").replace(" ", "\\s").replace("\n", "\\n")
            .replace("\t", "\\t").replace("\r", "\\r"))


def driver_output(results: list[ExecResult | None], end: bool = True) -> str:
    """The driver's lines for these job results (None: no line for the job)."""
    out = "".join(f"__np_job j{i} {r.returncode} {r.elapsed:.6f} {esc(r.stdout)} "
                  f"{esc(r.stderr.rstrip(chr(10)))}\n" for i, r in enumerate(results) if r)
    return out + (f"__np_batch_end {len(results)}\n" if end else "")


class FakeSourceExec(FakeKubeExec):
    """FakeKubeExec that also answers a source batch: each job replayed as its own exec."""

    def exec(self, endpoint, argv, timeout):
        if len(argv) > 3 and argv[2] == KUBE_BATCH_DRIVER:
            with self.lock:
                self.calls.append((endpoint, tuple(argv)))
            replies = [super(FakeSourceExec, self).exec(endpoint, job, timeout)
                       for job in jobs_of(argv)]
            with self.lock:
                self.calls = [c for c in self.calls if c[1] not in jobs_of(argv)]
            return ExecResult(tuple(argv), 0, driver_output(replies), "", 1.5, endpoint)
        return super().exec(endpoint, argv, timeout)


def test_agnhost_toolkit_runs_every_probe_of_a_source_in_one_exec():
    """Issue 20: one exec per source and round on the kube path; each job inside it is the
    argv its own exec would have had (a UDP batch, a TCP batch, a lookup), read alike."""
    backend = FakeSourceExec({"np-udp": "kube-udp-timeout", "np-tcp": "curl-refused",
                              "nslookup": "nslookup-resolved", "curl": "curl-connected"})
    dns = ProbeSpec("x/a", "kube-dns", 53, Protocol.UDP, dns_name="kubernetes.default")
    specs = [ProbeSpec("x/a", "x/b", 81, Protocol.UDP), ProbeSpec("x/a", "x/c", 81, Protocol.UDP),
             tcp("x/a", "x/b"), tcp("x/a", "x/c"), dns, tcp("x/b", "x/c")]
    got = probe_round(backend, specs, ADDR, 1.0, toolkit="agnhost")
    by_source = {c[0]: c[1] for c in backend.calls}
    assert len(backend.calls) == 2 and set(by_source) == {"x/a", "x/b"}
    jobs = jobs_of(by_source["x/a"])
    assert sorted(j[3] for j in jobs if j[0] == "bash") == ["np-tcp", "np-udp"]
    assert [j for j in jobs if j[0] == "nslookup"] == [("nslookup", "-timeout=1", "-retry=0",
                                                       "kubernetes.default")]
    # x/b has one probe: a task of its own, as before (a lone TCP probe is a plain curl)
    assert by_source["x/b"][0] == "curl"
    assert got[dns].outcome == Outcome.DNS_RESOLVED
    # the replayed captures have no line for these targets: tool errors, never invented
    assert all(got[s].outcome == Outcome.TOOL_ERROR and "gave no result" in got[s].detail
               for s in specs[:4])


def test_per_source_off_keeps_one_exec_per_kind():
    backend = FakeKubeExec({"np-udp": "kube-udp-timeout", "np-tcp": "curl-refused"})
    specs = [ProbeSpec("x/a", "x/b", 81, Protocol.UDP), ProbeSpec("x/a", "x/c", 81, Protocol.UDP),
             tcp("x/a", "x/b"), tcp("x/a", "x/c")]
    probe_round(backend, specs, ADDR, 1.0, toolkit="agnhost", per_source=False)
    assert sorted(c[1][3] for c in backend.calls) == ["np-tcp", "np-udp"]


def test_batch_plan_groups_tcp_and_udp_by_source_and_keeps_the_rest_single():
    udp = lambda s, d, port=81: ProbeSpec(s, d, port, Protocol.UDP)   # noqa: E731
    specs = [tcp("x/a", "x/b"), tcp("x/a", "x/c"), tcp("x/a", "svc:x/web"),
             udp("x/a", "x/b"), udp("x/a", "ext:outside", 80), udp("x/b", "x/c"),
             udp("x/a", "web.x.svc.cluster.local"),     # a name: the UDP client resolves serially
             ProbeSpec("x/a", "web", 53, Protocol.UDP, dns_name="web"),
             tcp("x/b", "x/c")]
    tasks = _plan(specs, ADDR, "debian", batch=True)
    batches = [[s for s, _ in t[1]] for t in tasks if t[0] == "batch"]
    singles = [t[1] for t in tasks if t[0] == "one"]
    # a lone TCP probe is one plain curl; a lone UDP probe is the UDP client with one target
    assert batches == [specs[:3], specs[3:5], [specs[5]]]
    assert set(singles) == set(specs[6:])
    assert _plan(specs, ADDR, "debian", batch=False) == [("one", s) for s in specs]


def test_a_udp_batch_is_one_process_and_each_probe_gets_its_own_line():
    from harness.probes import UDP_CLIENT, UDP_MARK
    specs = [ProbeSpec("x/a", t, 81, Protocol.UDP) for t in ("x/b", "x/c", "svc:x/web")]

    class Replies:
        toolkit = "debian"
        calls: list = []

        def exec(self, endpoint, argv, timeout):
            self.calls.append(argv)
            assert UDP_CLIENT in argv and argv[argv.index(UDP_CLIENT) + 1] == "1"
            out = (f"{UDP_MARK}10.244.1.12:81 timeout 1.0013 no reply within 1.0s\n"
                   f"{UDP_MARK}10.244.1.11:81 ok 0.0021 {b'x/b'.hex()}\n")
            return ExecResult(tuple(argv), 0, out, "", 1.01, endpoint)

    backend = Replies()
    got = probe_round(backend, specs, ADDR, 1.0)
    assert len(backend.calls) == 1
    assert backend.calls[0][-3:] == ["10.244.1.11:81", "10.244.1.12:81", "10.96.1.10:81"]
    assert (got[specs[0]].outcome, got[specs[0]].answered_by) == (Outcome.CONNECTED, "x/b")
    assert got[specs[0]].elapsed == 0.0021
    assert got[specs[1]].outcome == Outcome.TIMEOUT
    # no line for the Service probe: a tool error, never a result invented for it
    assert got[specs[2]].outcome == Outcome.TOOL_ERROR


def test_duplicate_specs_are_probed_once_and_order_is_kept():
    backend = FakeKubeExec({"10.244.1.11": "curl-connected"})
    specs = [tcp("x/a", "x/b"), tcp("x/a", "x/b")]
    got = probe_round(backend, specs, ADDR, 1.0, batch=False)
    assert len(backend.calls) == 1 and list(got) == [specs[0]]


def test_empty_round():
    assert probe_round(FakeKubeExec({}), [], ADDR, 1.0) == {}


class Looks(ExecOnly):
    """A backend that replays one captured output per tool invocation, in order of arrival per
    (endpoint, first word of the argv): the first lookup of a name, then its second look."""

    def __init__(self, toolkit: str, replies: dict[str, list]):
        self.toolkit, self.replies = toolkit, {k: list(v) for k, v in replies.items()}
        self.calls: list[tuple[str, ...]] = []
        self.lock = threading.Lock()

    def exec(self, endpoint, argv, timeout):
        with self.lock:
            self.calls.append(tuple(argv))
            key = next(k for k in self.replies if k in " ".join(argv))
            reply = self.replies[key].pop(0)
        r = captured(reply) if isinstance(reply, str) else ExecResult((), *reply, 1.3)
        return ExecResult(tuple(argv), r.returncode, r.stdout, r.stderr, r.elapsed, endpoint)


def test_a_timed_out_lookup_gets_a_second_look_and_an_answer_there_is_a_late_reply():
    dns = ProbeSpec("x/a", "kube-dns", 53, Protocol.UDP, dns_name="kubernetes.default")
    backend = Looks("debian", {"nslookup": ["nslookup-timeout", "nslookup-second-look-late"]})
    (got,) = probe_round(backend, [dns], ADDR, 1.0).values()
    assert got.outcome == Outcome.LATE_REPLY and "timed out" in got.detail, got.detail
    assert [c[:2] for c in backend.calls] == [("nslookup", "-timeout=1"), ("nslookup", "-timeout=2")]
    # a second look that gets nothing either leaves the timeout as it was
    backend = Looks("debian", {"nslookup": ["nslookup-timeout", "nslookup-second-look-timeout"]})
    (got,) = probe_round(backend, [dns], ADDR, 1.0).values()
    assert got.outcome == Outcome.DNS_TIMEOUT and "no answer either" in got.detail


def test_an_answer_in_time_needs_no_second_look():
    dns = ProbeSpec("x/a", "kube-dns", 53, Protocol.UDP, dns_name="kubernetes.default")
    backend = Looks("debian", {"nslookup": ["nslookup-resolved"]})
    (got,) = probe_round(backend, [dns], ADDR, 1.0).values()
    assert got.outcome == Outcome.DNS_RESOLVED and len(backend.calls) == 1


def test_probes_by_name_whose_resolver_timed_out_share_one_second_look_of_the_name():
    """A batched curl by name: both transfers' resolver timed out; one nslookup of the name."""
    specs = [tcp("x/a", "web.x.svc.cluster.local"), tcp("x/a", "web.x.svc.cluster.local", 81)]
    line = ("__np_probe exit=28 code=000 time=1.001 pod= url=http://web.x.svc.cluster.local:{}/ "
            "err=Resolving timed out after 1001 milliseconds\n")
    backend = Looks("debian", {"--parallel": [(28, line.format(80) + line.format(81), "")],
                               "nslookup": ["nslookup-second-look-late"]})
    got = probe_round(backend, specs, ADDR, 1.0)
    assert [o.outcome for o in got.values()] == [Outcome.LATE_REPLY, Outcome.LATE_REPLY]
    looks = [c for c in backend.calls if c[0] == "nslookup"]
    assert looks == [("nslookup", "-timeout=2", "-retry=0", "web.x.svc.cluster.local")]


def test_agnhost_udp_listens_through_the_grace_itself_with_no_second_look():
    """The kube path's UDP client (bash, probes.KUBE_UDP_CLIENT) waits timeout + grace itself,
    as the debian one does: its late line is a late reply, and nothing is sent again."""
    udp = ProbeSpec("x/a", "x/b", 81, Protocol.UDP)
    backend = Looks("agnhost", {"np-udp": [(0, "__np_udp 10.244.1.11:81 late 1.500000 782d62\n",
                                            "")]})
    (got,) = probe_round(backend, [udp], ADDR, 1.0, toolkit="agnhost").values()
    assert (got.outcome, got.answered_by) == (Outcome.LATE_REPLY, "x-b")
    assert len(backend.calls) == 1 and backend.calls[0][4:6] == ("1000000", "1000000")

def test_a_kind_batches_only_as_its_batch_rule_says():
    """harness.probes.KINDS says which kinds share a process, to what, and on which toolkit."""
    addresses = Addresses({"x/a": "10.0.0.1", "x/b": "10.0.0.2", "x/c": "10.0.0.3"}, {}, {})
    specs = [ProbeSpec("x/a", t, 80, p) for p in Protocol for t in ("x/b", "x/c")]
    specs += [ProbeSpec("x/a", "web.y", 80, p) for p in (Protocol.TCP, Protocol.UDP)]

    def batches(toolkit: str) -> dict:
        return {items[0][0].protocol: [s.target for s, _ in items]
                for kind, items in _plan(specs, addresses, toolkit, True) if kind == "batch"}

    # debian: TCP batches names too; UDP addresses only; SCTP never
    assert batches("debian") == {Protocol.TCP: ["x/b", "x/c", "web.y"],
                                 Protocol.UDP: ["x/b", "x/c"]}
    tasks = _plan(specs, addresses, "debian", True)
    assert {s.target for kind, s in tasks if kind == "one"} == {"x/b", "x/c", "web.y"}
    # agnhost: TCP too (its batch keeps each body, which names the pod), UDP to addresses only
    assert batches("agnhost") == {Protocol.TCP: ["x/b", "x/c", "web.y"],
                                  Protocol.UDP: ["x/b", "x/c"]}
    # a TCP group of one runs as a plain curl; a UDP group of one is still the UDP client
    single = _plan([ProbeSpec("x/a", "x/b", 80, Protocol.TCP),
                    ProbeSpec("x/a", "x/b", 80, Protocol.UDP)], addresses, "debian", True)
    assert [k for k, _ in single] == ["one", "batch"]
