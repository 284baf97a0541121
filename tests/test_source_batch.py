"""One exec per source on the kube path (issue 20): the driver's lines (probes.split_source_batch)
and the agnhost TCP batch's lines (probes.split_batch with `body=`), as tables; then the real
driver, run by this machine's bash on harmless local commands, giving back each job's result
exactly as that job's own run gives it, and a killed driver giving none.

Why: a batch that misreads its lines would hand one target's answer to another, or turn a cut
exec into results; every probe of a source now rides on one exec, so its parsing is tested on
every shape a line can take. The live side (real kubelets, real agnhost pods) is
tests/real_nodes/test_source_batch_live.py; captures of it are in tests/data/probe-outputs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from harness.errors import ExecResult
from harness.model import Protocol
from harness.probe_clients import KUBE_BATCH_DRIVER, KUBE_TCP_BATCH
from harness.probes import (
    Outcome,
    ProbeSpec,
    batch_argv_for,
    classify,
    source_batch_argv,
    split_batch,
    split_source_batch,
)

JOBS = [["curl", "a"], ["nslookup", "b"], ["bash", "-c", "x"]]
END = "__np_batch_end 3\n"


def result(stdout: str, rc: int = 0) -> ExecResult:
    return ExecResult(tuple(source_batch_argv(JOBS)), rc, stdout, "", 2.0, "x/a")


def summary(got: ExecResult | None) -> tuple | None:
    return None if got is None else (got.argv, got.returncode, got.stdout, got.stderr,
                                     got.elapsed)


@pytest.mark.parametrize("stdout, expected", [
    # whole lines, any order: each job's own argv, status, output, duration
    ("__np_job j1 1 0.5 a\\sb\\nc \\0\n__np_job j0 0 0.25 \\0 e\\\\f\n__np_job j2 7 1.0 x\\ty\\r \\0\n"
     + END,
     [(("curl", "a"), 0, "", "e\\f", 0.25), (("nslookup", "b"), 1, "a b\nc", "", 0.5),
      (("bash", "-c", "x"), 7, "x\ty\r", "", 1.0)]),
    # a job without a line: None for it alone
    ("__np_job j0 0 0.25 ok \\0\n__np_job j2 0 1.0 ok \\0\n" + END,
     [(("curl", "a"), 0, "ok", "", 0.25), None, (("bash", "-c", "x"), 0, "ok", "", 1.0)]),
    # a key on two lines cannot be told apart: None
    ("__np_job j0 0 0.2 a \\0\n__np_job j0 0 0.2 b \\0\n__np_job j1 0 0.2 c \\0\n" + END,
     [None, (("nslookup", "b"), 0, "c", "", 0.2), None]),
    # malformed lines: an unknown escape, a bare \0 inside text, a missing field, a non-numeric
    # status or duration, an empty status (the job's pipe ended before its trailer)
    ("__np_job j0 0 0.2 a\\q \\0\n__np_job j1 0 0.2 a\\0 \\0\n__np_job j2 0 0.2 a\n" + END,
     [None, None, None]),
    ("__np_job j0 x 0.2 a \\0\n__np_job j1 0 soon a \\0\n__np_job j2  0.000000 \\0 \\0\n" + END,
     [None, None, None]),
    # a key that was not sent is ignored
    ("__np_job j9 0 0.2 a \\0\n__np_job j0 0 0.2 a \\0\n" + END,
     [(("curl", "a"), 0, "a", "", 0.2), None, None]),
])
def test_driver_lines(stdout, expected):
    assert [summary(r) for r in split_source_batch(JOBS, result(stdout))] == expected


@pytest.mark.parametrize("stdout, rc", [
    # no end mark: the driver was killed, or the exec cut, after some jobs had printed
    ("__np_job j0 0 0.2 a \\0\n__np_job j1 0 0.2 b \\0\n", 137),
    ("__np_job j0 0 0.2 a \\0\n__np_job j1 0 0.2 b \\0\n__np_job j2 0 0.2 c \\0\n", 0),
    # an end mark for another number of jobs, or cut before its newline
    ("__np_job j0 0 0.2 a \\0\n__np_batch_end 2\n", 0),
    ("__np_job j0 0 0.2 a \\0\n__np_batch_end 3", 0),
    ("", 0),
])
def test_a_batch_without_its_end_mark_believes_no_line(stdout, rc):
    assert split_source_batch(JOBS, result(stdout, rc)) == [None, None, None]


def test_a_source_batch_needs_jobs():
    with pytest.raises(ValueError):
        source_batch_argv([])
    with pytest.raises(ValueError):
        source_batch_argv([["curl"], []])


# -- the agnhost TCP batch's lines (KUBE_TCP_BATCH), read by split_batch and classify --------
TCP = [(ProbeSpec("x/a", t, p, Protocol.TCP), ip) for t, p, ip in
       (("x/b", 80, "10.244.1.11"), ("x/c", 80, "10.244.1.12"), ("x/d", 80, "10.244.1.13"),
        ("x/e", 80, "10.244.1.14"))]


def tcp_line(ip: str, rest: str) -> str:
    exit_, code, body, err = rest.split("|")
    return (f"__np_probe exit={exit_} code={code} time=0.012 url=http://{ip}:80/ body={body} "
            f"err={err}\n")


@pytest.mark.parametrize("rest, outcome, who", [
    ("0|200|x-b|", Outcome.CONNECTED, "x-b"),
    # a body with spaces and a newline comes back whole
    ("0|403|Access\\sdenied\\n|", Outcome.HTTP_DENIED, None),
    ("0|500|internal\\serror|", Outcome.CONNECTED, "internal error"),
    ("7|000|\\0|Failed to connect to 10.244.1.11 port 80 after 1 ms: Couldn't connect to server",
     Outcome.REFUSED, None),
    ("28|000|\\0|Connection timed out after 1001 milliseconds", Outcome.TIMEOUT, None),
    ("28|000|\\0|Operation timed out after 5001 milliseconds with 0 bytes received",
     Outcome.TOOL_ERROR, None),
    ("6|000|\\0|Could not resolve host: web.x", Outcome.DNS_FAILED, None),
    # the body's file could not be written (a read-only root): a tool error, never a result
    ("23|200|\\0|Failure writing output to destination", Outcome.TOOL_ERROR, None),
    # connected with no body: nobody named, so it proves no pod (verdicts.answered_by_target)
    ("0|200|\\0|", Outcome.CONNECTED, None),
])
def test_tcp_batch_lines(rest, outcome, who):
    argv = batch_argv_for(TCP, 1.0, "agnhost")
    assert argv[:4] == ["bash", "-c", KUBE_TCP_BATCH, "np-tcp"]
    per = split_batch(TCP, ExecResult(tuple(argv), 0, tcp_line("10.244.1.11", rest), "", 1.0))
    got = classify(TCP[0][0], per[TCP[0][0]])
    assert (got.outcome, got.answered_by) == (outcome, who), got.detail
    assert set(per) == {TCP[0][0]}      # the other targets have no line: none invented


def test_a_tcp_batch_line_with_a_malformed_body_is_no_result():
    argv = batch_argv_for(TCP, 1.0, "agnhost")
    per = split_batch(TCP, ExecResult(tuple(argv), 0, tcp_line("10.244.1.11", "0|200|x\\q|"),
                                      "", 1.0))
    assert per == {}


# -- the real driver, run here by bash on local commands (no network) -------------------------
TRICKY = ["bash", "-c", "printf 'a b\\\\c\\n\\td&e\\r'; printf 'oops x\\n\\n' >&2; exit 3"]
LOCAL_JOBS = [TRICKY, ["true"], ["bash", "-c", "sleep 0.3; echo late"],
              ["bash", "-c", "echo partial; kill -TERM $$"], ["bash", "-c", ":"]]


def alone(job: list[str]) -> tuple:
    # bytes decoded by hand: text=True would turn the \r into \n
    # and a signal's status as a shell (and the exec API) reports it: 128 + the signal
    r = subprocess.run(job, capture_output=True)
    rc = 128 - r.returncode if r.returncode < 0 else r.returncode
    return rc, r.stdout.decode(), r.stderr.decode().rstrip("\n")


def test_the_driver_gives_each_job_what_it_gives_alone():
    argv = source_batch_argv(LOCAL_JOBS)
    t = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - t
    got = split_source_batch(LOCAL_JOBS, ExecResult(tuple(argv), r.returncode, r.stdout,
                                                    r.stderr, wall))
    assert r.returncode == 0 and r.stderr == ""
    for job, res in zip(LOCAL_JOBS, got, strict=True):
        assert res is not None and res.argv == tuple(job)
        assert (res.returncode, res.stdout, res.stderr) == alone(job), job
    assert got[0].returncode == 3 and got[3].returncode == 128 + signal.SIGTERM
    # the jobs ran at once, each timed on its own
    assert 0.3 <= got[2].elapsed < wall and got[1].elapsed < 0.3


def test_a_killed_driver_gives_no_result_for_any_job():
    jobs = [["true"], ["bash", "-c", "echo fast"], ["sleep", "3"]]
    p = subprocess.Popen(source_batch_argv(jobs), stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    time.sleep(0.5)
    os.killpg(p.pid, signal.SIGKILL)    # the driver and its jobs: all started by this test
    out, _ = p.communicate(timeout=10)
    assert split_source_batch(jobs, ExecResult(tuple(jobs[0]), p.returncode, out, "", 0.5)) \
        == [None, None, None]


def test_the_driver_script_is_the_one_in_the_argv():
    assert source_batch_argv([["true"]])[:4] == ["bash", "-c", KUBE_BATCH_DRIVER, "np-batch"]


# -- the agnhost UDP client, run here by bash against this machine's loopback ----------------
def test_the_kube_udp_client_reads_no_earlier_reply_for_a_refused_target():
    """A refused target's failed read kept the reply text of the target read before it (the
    client's `x`, which a failed `read` leaves as it was in the subshell), so it read as `ok`
    with another pod's name hex-encoded again (seen live on real nodes: 10.244.1.2:82, closed,
    `ok 373832643632`, the hex of `782d62`). Here `x` is preset as an earlier reply would have
    left it, and one target answers on loopback first."""
    import socket
    import threading

    from harness.probes import split_udp, udp_argv_for

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(5)
    port = srv.getsockname()[1]
    closed = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    for c in closed:
        c.bind(("127.0.0.1", 0))
    free = [c.getsockname()[1] for c in closed]
    for c in closed:
        c.close()           # nothing listens there any more: the kernel answers port unreachable

    def serve():
        try:
            _, peer = srv.recvfrom(64)
            srv.sendto(b"x-b", peer)
        except OSError:
            pass

    t = threading.Thread(target=serve)
    t.start()
    probes = [(ProbeSpec("x/a", "x/b", port, Protocol.UDP), "127.0.0.1")] + \
        [(ProbeSpec("x/a", "x/c", p, Protocol.UDP), "127.0.0.1") for p in free]
    argv = udp_argv_for(probes, 1.0, "agnhost")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                       env={**os.environ, "x": "782d62"})
    t.join()
    srv.close()
    per = split_udp(probes, ExecResult(tuple(argv), r.returncode, r.stdout, r.stderr, 1.0))
    got = [(classify(s, per[s]).outcome, classify(s, per[s]).answered_by) for s, _ in probes]
    assert got == [(Outcome.CONNECTED, "x-b")] + [(Outcome.REFUSED, None)] * 4, r.stdout


# -- captured live on real nodes (tests/data/probe-outputs/capture_real_nodes.py) -------------
DATA = os.path.join(os.path.dirname(__file__), "data", "probe-outputs")
C, R, T_, D = Outcome.CONNECTED, Outcome.REFUSED, Outcome.TIMEOUT, Outcome.DNS_TIMEOUT
#: capture -> (target, port, protocol) -> (outcome, who answered); the lookup of kube-dns has
#: no CoreDNS behind it on that cluster: no server could be reached
CAPTURED = {
    "kube-source-batch": {
        ("x/b", 80, "TCP"): (C, "x-b"), ("x/b", 82, "TCP"): (R, None),
        ("y/b", 80, "TCP"): (C, "y-b"), ("y/b", 81, "UDP"): (C, "y-b"),
        ("y/b", 82, "UDP"): (R, None), ("x/b", 81, "UDP"): (C, "x-b"),
        ("kube-dns", 53, "UDP"): (D, None)},
    # a NetworkPolicy selecting y/b, no ingress rule: kube-router rejects (RST, ICMP)
    "kube-source-batch-blocked": {
        ("x/b", 80, "TCP"): (C, "x-b"), ("x/b", 82, "TCP"): (R, None),
        ("y/b", 80, "TCP"): (R, None), ("y/b", 81, "UDP"): (R, None),
        ("y/b", 82, "UDP"): (R, None), ("x/b", 81, "UDP"): (C, "x-b"),
        ("kube-dns", 53, "UDP"): (D, None)},
}


def load_capture(name: str) -> tuple[ExecResult, list[list[str]], list[tuple[int, ProbeSpec, str]]]:
    import json

    from tests.test_prober import jobs_of

    with open(os.path.join(DATA, f"{name}.json")) as fh:
        d = json.load(fh)
    r = ExecResult(tuple(d["argv"]), d["returncode"], d["stdout"], d["stderr"], d["elapsed"])
    probes = [(p["job"], ProbeSpec(p["source"], p["target"], p["port"], Protocol(p["protocol"]),
                                   p["dns_name"]), p["dest"]) for p in d["probes"]]
    return r, [list(j) for j in jobs_of(r.argv)], probes


def outcomes_of(r: ExecResult, jobs, probes) -> dict:
    from harness.prober import _task_outcomes

    got = {}
    for i, res in enumerate(split_source_batch(jobs, r)):
        mine = [(s, d) for j, s, d in probes if j == i]
        task = ("one", mine[0][0]) if jobs[i][0] in ("curl", "nslookup") else ("batch", mine)
        for s, _, o in _task_outcomes(task, mine, res, "no result"):
            got[(s.target, s.port, s.protocol.value)] = (o.outcome, o.answered_by)
    return got


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_captured_source_batches_name_each_answering_pod(name):
    r, jobs, probes = load_capture(name)
    assert r.argv[2] == KUBE_BATCH_DRIVER and len(jobs) == 3
    assert outcomes_of(r, jobs, probes) == CAPTURED[name]


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_a_captured_batch_cut_anywhere_believes_no_line(name):
    """The exec cut after any line (the stream ended, the driver killed): no probe gets a
    result, so none can be a pass or a block."""
    r, jobs, probes = load_capture(name)
    lines = r.stdout.split("\n")
    for cut in range(len(lines) - 1):
        part = ExecResult(r.argv, 137, "\n".join(lines[:cut]) + "\n", "", r.elapsed)
        got = outcomes_of(part, jobs, probes)
        assert set(got.values()) == {(Outcome.TOOL_ERROR, None)}, cut
