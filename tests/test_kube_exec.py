"""Exec through the Kubernetes API: the exit status comes from the error channel's Status
(recorded in tests/data/kube/), and a status that carries no exit code is an ExecError — never a
made-up code. stream_exec is driven through FakeExecStream, a fake of the websocket client (no
API server here)."""

import json
from pathlib import Path

import pytest

from harness.backends.kube import exec as kube_exec
from harness.errors import ExecError
from harness.model import Protocol
from harness.probes import Outcome, ProbeSpec, argv_for, classify

DATA = Path(__file__).parent / "data" / "kube"
ARGV = ["curl", "-sS", "http://10.244.1.5:80/"]


def status(name):
    return (DATA / name).read_text()


@pytest.mark.parametrize("name, code", [("status-success.json", 0), ("status-exit-28.json", 28),
                                        ("status-exit-1.json", 1)])
def test_exit_code_from_recorded_status(name, code):
    assert kube_exec.returncode_from_status(status(name), ARGV, "x/a") == code


def test_command_that_cannot_start_is_an_exec_error_not_a_code():
    with pytest.raises(ExecError) as err:
        kube_exec.returncode_from_status(status("status-not-found.json"), ARGV, "x/a")
    assert "executable file not found" in str(err.value) and "in x/a" in str(err.value)


def test_the_kubernetes_client_parser_would_crash_on_the_same_status():
    # Why the harness parses it itself: ws_client.returncode does int(causes[0].message).
    cause = json.loads(status("status-not-found.json"))["details"]["causes"][0]["message"]
    with pytest.raises(ValueError):
        int(cause)


@pytest.mark.parametrize("text", ["", "   \n", "not json {", '{"status": "Failure"}',
                                  '{"status":"Failure","reason":"NonZeroExitCode","details":'
                                  '{"causes":[{"reason":"ExitCode","message":"x"}]}}', "[1, 2]"])
def test_missing_or_unreadable_status_is_an_exec_error(text):
    with pytest.raises(ExecError):
        kube_exec.returncode_from_status(text, ARGV, "x/a")


def test_yaml_status_is_accepted_like_the_client_does():
    assert kube_exec.returncode_from_status("status: Success\n", ARGV, "x/a") == 0


class FakeExecStream:
    """A fake of kubernetes.stream.ws_client.WSClient: fixed channel contents; stays open
    (a hung command) when `open_forever`."""

    def __init__(self, stdout="", stderr="", error="", open_forever=False):
        self.out, self.err, self.error = stdout, stderr, error
        self.open_forever = open_forever
        self.closed = False
        self.ran_for = None

    def run_forever(self, timeout=None):
        self.ran_for = timeout

    def is_open(self):
        return self.open_forever

    def read_stdout(self):
        return self.out

    def read_stderr(self):
        return self.err

    def read_channel(self, ch):
        assert ch == kube_exec.ERROR_CHANNEL
        return self.error

    def close(self):
        self.closed = True


class FakeCore:
    connect_get_namespaced_pod_exec = object()


@pytest.fixture
def fake_stream(monkeypatch):
    calls = []

    def install(fake):
        def stream(fn, pod, namespace, **kw):
            calls.append((pod, namespace, kw))
            if isinstance(fake, Exception):
                raise fake
            return fake
        monkeypatch.setattr("kubernetes.stream.stream", stream)
        return calls
    return install


def test_stream_exec_timeout_result_classifies_as_timeout(fake_stream):
    spec = ProbeSpec("x/a", "y/b", 80, Protocol.TCP)
    argv = argv_for(spec, "10.244.2.7", 1.0, toolkit="agnhost")
    fake = FakeExecStream(stderr="curl: (28) Failed to connect to 10.244.2.7 port 80 after 1001 ms:"
                                 " Timeout was reached\n", error=status("status-exit-28.json"))
    calls = fake_stream(fake)
    res = kube_exec.stream_exec(FakeCore(), "np-abc123-x", "a", "client", argv, 5, "x/a")
    assert (res.returncode, res.target, res.argv) == (28, "x/a", tuple(argv))
    assert classify(spec, res).outcome == Outcome.TIMEOUT
    pod, ns, kw = calls[0]
    assert (pod, ns, kw["container"], kw["command"], kw["tty"], kw["stdin"]) == \
        ("a", "np-abc123-x", "client", argv, False, False)
    assert fake.closed and fake.ran_for == 5


def test_stream_exec_success_carries_stdout(fake_stream):
    spec = ProbeSpec("x/a", "y/b", 80, Protocol.TCP)
    argv = argv_for(spec, "10.244.2.7", 1.0, toolkit="agnhost")
    from harness.probes import CURL_CODE_MARK
    fake_stream(FakeExecStream(stdout="y-b" + CURL_CODE_MARK + "200",
                               error=status("status-success.json")))
    res = kube_exec.stream_exec(FakeCore(), "np-abc123-x", "a", "client", argv, 5)
    out = classify(spec, res)
    assert (out.outcome, out.answered_by) == (Outcome.CONNECTED, "y-b")


def test_stream_exec_still_open_at_deadline_is_an_exec_error(fake_stream):
    fake_stream(FakeExecStream(open_forever=True, stdout="partial"))
    with pytest.raises(ExecError, match="still running after 2s"):
        kube_exec.stream_exec(FakeCore(), "ns", "a", "client", ARGV, 2)


def test_stream_exec_closed_without_status_is_an_exec_error(fake_stream):
    fake_stream(FakeExecStream(stdout="x"))
    with pytest.raises(ExecError, match="closed without an exit status"):
        kube_exec.stream_exec(FakeCore(), "ns", "a", "client", ARGV, 2)


def test_stream_exec_cannot_connect_is_an_exec_error(fake_stream):
    fake_stream(ConnectionError("handshake status 403 Forbidden"))
    with pytest.raises(ExecError, match="could not open the exec stream: handshake status 403"):
        kube_exec.stream_exec(FakeCore(), "ns", "a", "client", ARGV, 2)
