"""What a probe is, the argv of the real tool that performs it, and the classification of that
tool's result into a named Outcome.

Why pure: classification is the one place where "the packet was blocked" is told apart from "the
harness is broken", so it is a pure function table-tested on real curl/nslookup output
(tests/test_probes.py). Enum values are the strings that appear in reports.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from enum import Enum
from typing import Callable

from harness.errors import ExecResult
from harness.model import Protocol
from harness.probe_clients import (
    BATCH_END_MARK,
    DIAL_MARK,
    JOB_MARK,
    KUBE_BATCH_DRIVER,
    KUBE_DIAL_CLIENT,
    KUBE_TCP_BATCH,
    KUBE_UDP_CLIENT,
    UDP_CLIENT,
    UDP_CLIENT_ARGV,
    UDP_MARK,
)


class Outcome(str, Enum):
    CONNECTED = "connected"          # the server answered (TCP: HTTP response; UDP: a reply datagram)
    REFUSED = "refused"              # RST / ICMP unreachable: a closed port, or a CNI that rejects
    TIMEOUT = "timeout"              # nothing came back before the deadline: dropped
    HTTP_DENIED = "http-denied"      # connected, but an L7 proxy answered 403 (Cilium L7 deny)
    DNS_RESOLVED = "dns-resolved"    # the name resolved
    DNS_NXDOMAIN = "dns-nxdomain"    # the DNS server answered: no such name
    DNS_REFUSED = "dns-refused"      # the DNS server (or a DNS proxy) answered REFUSED/SERVFAIL
    DNS_TIMEOUT = "dns-timeout"      # no DNS server could be reached
    DNS_FAILED = "dns-failed"        # a client (curl, agnhost) could not resolve the target name
    LATE_REPLY = "late-reply"        # an answer came after the timeout, within the grace: neither
    #                                  a drop nor a clean delivery (late_grace)
    TOOL_ERROR = "tool-error"        # the tool failed for a reason that says nothing of policy

    @property
    def delivered(self) -> bool | None:
        """True: traffic got through; False: it was blocked; None: says nothing about policy."""
        if self in (Outcome.CONNECTED, Outcome.DNS_RESOLVED, Outcome.DNS_NXDOMAIN,
                    Outcome.HTTP_DENIED):
            return True
        if self in (Outcome.TIMEOUT, Outcome.DNS_TIMEOUT):
            return False
        return None


@dataclass(frozen=True)
class ProbeSpec:
    """One probe: from a pod (or external host) to a target.

    target: a pod key `x/a`, a Service `svc:ns/name`, an external host `ext:name`, or a DNS name
    (resolved inside the source pod, as an application would). For DNS probes `dns_name` is set
    and port/protocol are those of the DNS query (53/UDP).
    """

    source: str
    target: str
    port: int | str
    protocol: Protocol
    dns_name: str | None = None

    @property
    def is_dns(self) -> bool:
        return self.dns_name is not None

    @property
    def kind(self) -> ProbeKind:
        """What kind of probe this is (KINDS): a DNS lookup, or a probe of its protocol."""
        return DNS if self.dns_name is not None else kind_of(self.protocol)

    @property
    def label(self) -> str:
        if self.is_dns:
            return f"{self.source} -> dns {self.dns_name}"
        return f"{self.source} -> {self.target}:{self.port}/{self.protocol.value}"


@dataclass(frozen=True)
class ProbeOutcome:
    """The classified result of one probe attempt."""

    outcome: Outcome
    #: who answered (the server's identity from its reply), when anyone did
    answered_by: str | None = None
    #: the tool's exit code and the first line of its error output, for reports
    detail: str = ""
    elapsed: float = 0.0


# -- the real tools that perform a probe ------------------------------------------------------

#: What `-w` appends after curl's body, so classify() reads the HTTP status from stdout.
CURL_CODE_MARK = "\n__np_http_code="

def late_grace(timeout: float) -> float:
    """Seconds a UDP probe or a DNS lookup keeps listening after its timeout: the probe
    timeout itself, and at least one second (2 s in all at the default 1 s timeout).

    Why: a reply that comes after the timeout was not dropped. Closing the socket at the
    deadline turned it into a timeout, which the same round's positive control then made a
    block (a fail-open cell read as a pass). A loaded machine delays replies by scheduling
    alone, by a fraction of the timeout and sometimes more; a reply later than twice the
    timeout is treated as none, as any finite wait must. The cost: a blocked UDP probe ends
    after timeout + grace instead of the timeout (a round with one lasts about 1 s longer at
    the defaults); a timed-out lookup gets a second lookup that waits as long (lookup_again).
    A reply inside the grace is LATE_REPLY: a probe error, never a block, never a pass.
    """
    return max(1.0, timeout)



TOOLKITS = ("debian", "agnhost")


def max_time(timeout: float) -> float:
    """curl's whole-transfer limit. Only a connected probe can reach it (a dropped SYN ends at
    the connect timeout), so it is generous: a slow server on a loaded machine must not look
    like anything but a slow server."""
    return timeout * 2 + 3


def _fmt(seconds: float) -> str:
    return f"{seconds:g}"


def argv_for(spec: ProbeSpec, dest: str, timeout: float, toolkit: str = "debian") -> list[str]:
    """The in-pod argv of the real tool that performs `spec` against `dest` (IP or DNS name):
    its kind's (KINDS).

    Why per toolkit: the local backend's pods see this machine's tools (curl, nslookup, python3);
    kind and kubeconfig pods run the agnhost image: curl, nslookup, bash for UDP
    (KUBE_UDP_CLIENT) and netexec's /dial for SCTP (KUBE_DIAL_CLIENT), each printing the reply
    that names the pod.
    """
    if toolkit not in TOOLKITS:
        raise ValueError(f"unknown probe toolkit {toolkit!r}: expected one of {', '.join(TOOLKITS)}")
    if timeout <= 0:
        raise ValueError(f"probe timeout must be positive, got {timeout}")
    return spec.kind.argv(spec, dest, timeout, toolkit)


def _port_of(spec: ProbeSpec) -> int:
    if not isinstance(spec.port, int):
        raise ValueError(f"probe {spec.label}: port {spec.port!r} must be resolved to a number first")
    return spec.port


def _nslookup_argv(spec: ProbeSpec, dest: str, timeout: float, toolkit: str) -> list[str]:
    argv = ["nslookup", f"-timeout={max(1, round(timeout))}", "-retry=0"]
    if spec.protocol == Protocol.TCP:
        argv.append("-vc")
    return argv + [str(spec.dns_name)]


def _curl_argv(spec: ProbeSpec, dest: str, timeout: float, toolkit: str) -> list[str]:
    # A fresh connection per probe: policies act on new connections (conntrack).
    return ["curl", "-sS", "--connect-timeout", _fmt(timeout), "--max-time", _fmt(max_time(timeout)),
            "--no-keepalive", "-w", CURL_CODE_MARK + "%{http_code}", f"http://{dest}:{_port_of(spec)}/"]


def _sctp_argv(spec: ProbeSpec, dest: str, timeout: float, toolkit: str) -> list[str]:
    port = _port_of(spec)
    if toolkit == "agnhost":
        return ["bash", "-c", KUBE_DIAL_CLIENT, "np-dial", "/agnhost", "sctp", _fmt(timeout),
                _fmt(timeout + late_grace(timeout)), f"{dest}:{port}"]
    return ["/agnhost", "connect", f"{dest}:{port}", f"--protocol={spec.protocol.value.lower()}",
            f"--timeout={_fmt(timeout)}s"]


def _udp_argv(spec: ProbeSpec, dest: str, timeout: float, toolkit: str) -> list[str]:
    _port_of(spec)
    return udp_argv_for([(spec, dest)], timeout, toolkit)


def second_look_argv(spec: ProbeSpec, dest: str, first: Outcome, timeout: float,
                     toolkit: str = "debian") -> list[str] | None:
    """The argv of a second observation for a probe whose tool stopped listening at its
    timeout, so that a late answer can be seen; None when the first needs none.

    Which: a lookup that timed out (nslookup, or the resolver of a probe by name: curl's gives
    up at the connect timeout) is looked up again with nslookup, waiting timeout + grace
    (late_grace). The UDP clients (debian and agnhost) and the agnhost SCTP client need none:
    they listen through the grace themselves. Why a second lookup and
    not one that waits longer: nslookup does not say when its answer came (docs/sources.md
    §15), so a lookup that waits past the timeout cannot tell a late answer from one in time;
    the first, with the timeout, decides "in time", the second "late, or never". Why only
    after a timeout: an answer in time needs nothing more, and a start of nslookup costs
    ~18 ms of CPU. The cost: a round with a blocked lookup lasts about timeout + grace longer.
    """
    wait = timeout + late_grace(timeout)
    if first == Outcome.DNS_TIMEOUT:
        argv = ["nslookup", f"-timeout={math.ceil(wait)}", "-retry=0"]
        if spec.is_dns and spec.protocol == Protocol.TCP:
            argv.append("-vc")
        return argv + [dest]
    return None


def after_second_look(first: ProbeOutcome, spec: ProbeSpec, second: ExecResult) -> ProbeOutcome:
    """The probe's outcome once its second observation (second_look_argv) is in. Pure.

    An answer to the second (a reply, an address, NXDOMAIN) means the path delivers, only
    late (or the dataplane changed between the two): LATE_REPLY, a probe error, never the
    block the first read as. Anything else leaves the first as it was.
    """
    again = classify(spec, second)
    if again.outcome.delivered is True:
        return ProbeOutcome(Outcome.LATE_REPLY, again.answered_by,
                            f"{first.outcome.value} at the timeout ({first.detail}); a second "
                            f"look right after, waiting through the grace, was answered "
                            f"({again.detail}; {second.elapsed:.2f} s in all)", first.elapsed)
    return replace(first, detail=f"{first.detail}; a second look, waiting through the grace, "
                                 f"got no answer either ({again.outcome.value})")


#: The per-transfer line a batched curl writes (`-w`), one per URL, in completion order.
BATCH_MARK = "__np_probe "
BATCH_FORMAT = (BATCH_MARK + "exit=%{exitcode} code=%{http_code} time=%{time_total} "
                "pod=%header{x-pod} url=%{url} err=%{errormsg}\n")


def batch_argv_for(probes: list[tuple[ProbeSpec, str]], timeout: float, toolkit: str = "debian"
                   ) -> list[str]:
    """One curl that runs several TCP probes of one source concurrently (`--parallel`).

    Why: starting a curl costs ~10 ms of CPU; a 9x9 matrix as 81 processes on two busy cores
    spreads the starts over most of a second, so blocked probes finish near 2x the timeout.
    Nine processes of nine transfers each finish in about one timeout. Every transfer is still
    its own new connection (--no-keepalive, distinct URLs). Bodies are discarded; the answering
    pod comes from the server's `X-Pod` header (the local backend's servers send it), so this
    is for the "debian" toolkit only; L7 403 bodies are not seen (no L7 proxy exists there).
    The "agnhost" toolkit's servers name the pod in the body only: its batch (KUBE_TCP_BATCH)
    keeps each body in a file and prints it on the transfer's line (`body=`).
    """
    urls = _targets(probes, Protocol.TCP, "http://{}:{}/", "a curl batch needs distinct URLs: "
                    "results are matched by URL")
    if toolkit == "agnhost":
        return ["bash", "-c", KUBE_TCP_BATCH, "np-tcp", _fmt(timeout), _fmt(max_time(timeout)),
                *urls]
    argv = ["curl", "--parallel", "--parallel-immediate", "--parallel-max", str(len(urls)),
            "-sS", "--no-progress-meter", "--connect-timeout", _fmt(timeout),
            "--max-time", _fmt(max_time(timeout)), "--no-keepalive", "-w", BATCH_FORMAT]
    for url in urls:
        argv += ["-o", "/dev/null", url]
    return argv


def udp_argv_for(probes: list[tuple[ProbeSpec, str]], timeout: float, toolkit: str = "debian"
                 ) -> list[str]:
    """One UDP client process for several UDP probes of one source, all sent at once: this
    machine's python3 (UDP_CLIENT) for the "debian" toolkit, bash (KUBE_UDP_CLIENT) for
    "agnhost"."""
    targets = _targets(probes, Protocol.UDP, "{}:{}", "a UDP batch needs distinct targets: "
                       "results are matched by target")
    if toolkit == "agnhost":
        return ["bash", "-c", KUBE_UDP_CLIENT, "np-udp", str(round(timeout * 1e6)),
                str(round(late_grace(timeout) * 1e6)), *targets]
    return [*UDP_CLIENT_ARGV, _fmt(timeout), _fmt(late_grace(timeout)), *targets]


def _targets(probes: list[tuple[ProbeSpec, str]], protocol: Protocol, form: str,
             duplicate: str) -> list[str]:
    """`form` filled with (destination, port) per probe, for one process that runs them all:
    ValueError for a probe of another kind or an unresolved port, or for two probes with the
    same target (results are matched back by target)."""
    out = []
    for spec, dest in probes:
        if spec.is_dns or spec.protocol != protocol or not isinstance(spec.port, int):
            raise ValueError(f"probe {spec.label}: only resolved {protocol.value} probes can be "
                             "batched")
        out.append(form.format(dest, spec.port))
    if len(set(out)) != len(out):
        raise ValueError(duplicate)
    return out


def split_udp(probes: list[tuple[ProbeSpec, str]], result: ExecResult
              ) -> dict[ProbeSpec, ExecResult]:
    """Per-probe results of one UDP client run (each with only its own line), for classify().
    A probe without a line is left out (the caller reports a tool error)."""
    lines = {}
    for line in result.stdout.splitlines():
        if line.startswith(UDP_MARK):
            target = line[len(UDP_MARK):].split(" ", 1)[0]
            lines[target] = line
    out = {}
    for spec, dest in probes:
        got = lines.get(f"{dest}:{spec.port}")
        if got is None:
            continue
        try:
            elapsed = float(got[len(UDP_MARK):].split(" ")[2])
        except (IndexError, ValueError):
            elapsed = result.elapsed
        out[spec] = ExecResult(result.argv, result.returncode, got + "\n", "", elapsed,
                               result.target)
    return out


def split_batch(probes: list[tuple[ProbeSpec, str]], result: ExecResult) -> dict[ProbeSpec, ExecResult]:
    """Per-probe results of a batched curl, shaped like a single curl's, for classify().

    A probe without a result line is missing from the answer (the caller reports a tool error).
    """
    lines = {}
    for line in result.stdout.splitlines():
        if not line.startswith(BATCH_MARK):
            continue
        fields, rest = {}, line[len(BATCH_MARK):]
        head, _, err = rest.partition(" err=")
        for part in head.split(" "):
            k, _, v = part.partition("=")
            fields[k] = v
        fields["err"] = err
        lines[fields.get("url", "")] = fields
    out = {}
    for spec, dest in probes:
        f = lines.get(f"http://{dest}:{spec.port}/")
        if f is None or not f.get("exit", "").isdigit():
            continue
        rc = int(f["exit"])
        # the agnhost batch's body (escaped), else the debian batch's X-Pod header
        body = _unescape(f["body"]) if "body" in f else f.get("pod", "")
        if body is None:
            continue
        stdout = f"{body}{CURL_CODE_MARK}{f['code']}" if rc == 0 else ""
        stderr = f"curl: ({rc}) {f['err']}" if rc else ""
        try:
            elapsed = float(f.get("time", "0"))
        except ValueError:
            elapsed = result.elapsed
        out[spec] = ExecResult(result.argv, rc, stdout, stderr, elapsed, result.target)
    return out


#: The toolkits whose probes of one source in one round run in one exec (source_batch_argv):
#: "agnhost", whose every exec goes through the Kubernetes API. The "debian" toolkit's exec is
#: a process start (`ip netns exec`), which the driver would only add to.
SOURCE_BATCH_TOOLKITS = ("agnhost",)


def source_batch_argv(jobs: list[list[str]]) -> list[str]:
    """One exec that runs several jobs at once in one pod (KUBE_BATCH_DRIVER): each job the
    argv that a probe (argv_for) or a batch of one kind (Batch.argv) would otherwise be exec'd
    with; split_source_batch gives back each job's result as its own exec would have."""
    if not jobs or any(not job for job in jobs):
        raise ValueError("a source batch needs at least one job, and every job an argv")
    argv = ["bash", "-c", KUBE_BATCH_DRIVER, "np-batch"]
    for i, job in enumerate(jobs):
        argv += [f"j{i}", str(len(job)), *[str(w) for w in job]]
    return argv


_UNESCAPE = {"\\": "\\", "s": " ", "n": "\n", "t": "\t", "r": "\r"}
_ESCAPED = re.compile(r"(?:[^\\]|\\[\\sntr])*")


def _unescape(field: str) -> str | None:
    r"""A STDOUT/STDERR field of a `__np_job` line as the tool printed it; None when malformed
    (an unknown escape, or `\0`, the empty field, inside other text)."""
    if field == "\\0":
        return ""
    if not _ESCAPED.fullmatch(field):
        return None
    return re.sub(r"\\(.)", lambda m: _UNESCAPE[m.group(1)], field)


def split_source_batch(jobs: list[list[str]], result: ExecResult) -> list[ExecResult | None]:
    """Each job's result of one source batch, in the order given, shaped as if the job had
    been exec'd alone (its own argv, exit status, stdout, stderr less trailing newlines, and
    duration), for classify() or its kind's Batch.split; None for a job without a result.

    Which results are believed: only a batch that ran to its end mark (`__np_batch_end N`, N
    the number of jobs): a driver killed midway, or an exec cut short, gives every job None
    (a probe error each), never the lines it printed before. Then, only a line that is whole
    (ends with a newline) and well formed, for a key that was sent, once: a key on two lines
    is None, as is one missing."""
    lines = result.stdout.split("\n")[:-1]     # the last part has no newline: not a whole line
    if f"{BATCH_END_MARK}{len(jobs)}" not in lines:
        return [None] * len(jobs)
    seen: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith(JOB_MARK):
            parts = line[len(JOB_MARK):].split(" ")
            seen.setdefault(parts[0], []).append(line)
    out: list[ExecResult | None] = []
    for i, job in enumerate(jobs):
        got = seen.get(f"j{i}", [])
        out.append(_job_result(job, got[0], result) if len(got) == 1 else None)
    return out


def _job_result(job: list[str], line: str, result: ExecResult) -> ExecResult | None:
    parts = line[len(JOB_MARK):].split(" ")
    if len(parts) != 5 or not parts[1].isdigit():
        return None
    try:
        elapsed = float(parts[2])
    except ValueError:
        return None
    out, err = _unescape(parts[3]), _unescape(parts[4])
    if out is None or err is None:
        return None
    return ExecResult(tuple(job), int(parts[1]), out, err, elapsed, result.target)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _tool(argv: tuple[str, ...]) -> Tool | None:
    """Which tool ran (TOOLS), ignoring a wrapper such as `ip netns exec NS` or `kubectl exec
    -- `: the first word of argv one of them recognises."""
    for a in argv:
        for tool in TOOLS:
            if tool.ran(a):
                return tool
    return None


def classify(spec: ProbeSpec, result: ExecResult) -> ProbeOutcome:
    """The named outcome of one probe from the tool's own exit status and output. Pure.

    Why here: this is where "blocked" is told apart from "the harness is broken"; anything that
    does not positively say connected, refused, timed out or a DNS answer is TOOL_ERROR.
    """
    tool = _tool(result.argv)
    rc, out, err = result.returncode, result.stdout, result.stderr
    detail = f"exit {rc}: {_first_line(err) or _first_line(out)}".rstrip(": ")
    if tool is None:
        return ProbeOutcome(Outcome.TOOL_ERROR, None, f"unrecognised probe tool: {detail}",
                            result.elapsed)
    return tool.classify(result, detail)


def _classify_dial(result: ExecResult, detail: str) -> ProbeOutcome:
    marks = [ln for ln in result.stdout.splitlines() if ln.startswith(DIAL_MARK)]
    if len(marks) == 1:
        return _classify_dial_line(marks[0], result.elapsed, _dial_timeout(result.argv))
    return ProbeOutcome(Outcome.TOOL_ERROR, None,
                        f"{len(marks)} dial results for one probe: {detail}", result.elapsed)


def _classify_udp(result: ExecResult, detail: str) -> ProbeOutcome:
    marks = [ln for ln in result.stdout.splitlines() if ln.startswith(UDP_MARK)]
    if len(marks) == 1:
        return _classify_udp_line(marks[0], result.elapsed)
    return ProbeOutcome(Outcome.TOOL_ERROR, None,
                        f"{len(marks)} UDP client results for one probe: {detail}", result.elapsed)


def _classify_curl(rc: int, out: str, detail: str, el: float) -> ProbeOutcome:
    if rc == 0:
        body, _, code = out.rpartition(CURL_CODE_MARK)
        if not _:
            return ProbeOutcome(Outcome.TOOL_ERROR, None, f"curl output lacks the status mark: {detail}", el)
        code = code.strip()
        if code == "403" and "access denied" in body.lower():
            return ProbeOutcome(Outcome.HTTP_DENIED, None, f"HTTP 403: {_first_line(body)}", el)
        if code == "000":
            return ProbeOutcome(Outcome.TOOL_ERROR, None, "curl exit 0 without an HTTP response", el)
        return ProbeOutcome(Outcome.CONNECTED, body.strip() or None, f"HTTP {code}", el)
    if rc == 28:
        low = detail.lower()
        # the name of the target could not be resolved in time: DNS was blocked, not the target
        if "resolving timed out" in low:
            return ProbeOutcome(Outcome.DNS_TIMEOUT, None, detail, el)
        # the connection was made but no response came: the packets were delivered, the server
        # (or the machine) is too slow or hung — an anomaly, never a policy drop
        if "bytes received" in low or "operation timed out" in low:
            return ProbeOutcome(Outcome.TOOL_ERROR, None,
                                f"connected, but no HTTP response in time: {detail}", el)
        return ProbeOutcome(Outcome.TIMEOUT, None, detail, el)
    if rc == 7:
        return ProbeOutcome(Outcome.REFUSED, None, detail, el)
    if rc == 6:
        return ProbeOutcome(Outcome.DNS_FAILED, None, detail, el)
    return ProbeOutcome(Outcome.TOOL_ERROR, None, detail, el)


_UDP_STATUS = {"timeout": Outcome.TIMEOUT, "refused": Outcome.REFUSED, "dns": Outcome.DNS_FAILED}


def _classify_udp_line(line: str, el: float) -> ProbeOutcome:
    """One `__np_udp TARGET STATUS SECONDS TEXT` line of the debian UDP client."""
    parts = line[len(UDP_MARK):].rstrip("\n").split(" ", 3)
    status, text = (parts[1], parts[3] if len(parts) > 3 else "") if len(parts) > 1 else ("", "")
    if status in ("ok", "late"):
        try:
            reply = bytes.fromhex(text).decode(errors="replace").strip()
            seconds = float(parts[2])
        except (ValueError, IndexError):
            return ProbeOutcome(Outcome.TOOL_ERROR, None, f"unreadable UDP reply: {line[:200]}", el)
        if status == "late":
            return ProbeOutcome(Outcome.LATE_REPLY, reply or None,
                                f"a reply {seconds:.3f} s after the request: after the probe "
                                "timeout, within its grace", el)
        return ProbeOutcome(Outcome.CONNECTED, reply or None, "connected", el)
    detail = f"{status}: {text}".strip(": ")
    return ProbeOutcome(_UDP_STATUS.get(status, Outcome.TOOL_ERROR), None, detail, el)


def _dial_timeout(argv: tuple[str, ...]) -> float | None:
    """The probe timeout a KUBE_DIAL_CLIENT argv was given (None when unreadable)."""
    try:
        return float(argv[list(argv).index(KUBE_DIAL_CLIENT) + 4])
    except (ValueError, IndexError):
        return None


def _classify_dial_line(line: str, el: float, timeout: float | None) -> ProbeOutcome:
    """One `__np_dial TARGET STATUS SECONDS TEXT` line of KUBE_DIAL_CLIENT: netexec's /dial
    JSON (or curl's error) after `exit=N`."""
    parts = line[len(DIAL_MARK):].rstrip("\n").split(" ", 3)
    status, text = (parts[1], parts[3] if len(parts) > 3 else "") if len(parts) > 1 else ("", "")
    try:
        el = float(parts[2])
    except (IndexError, ValueError):
        pass
    if status == "exit=28":      # curl gave up: the dial got no answer within the timeout
        return ProbeOutcome(Outcome.TIMEOUT, None, f"no answer within the timeout ({text})", el)
    if status != "exit=0":
        return ProbeOutcome(Outcome.TOOL_ERROR, None, f"{status}: {text}".strip(": "), el)
    try:
        got = json.loads(text)
    except ValueError:
        got = None
    if not isinstance(got, dict):
        # netexec answers 400 "host and/or port param are invalid" for a name it cannot resolve
        low = text.lower()
        dns = "invalid" in low and ("no such host" in low or "lookup" in low)
        return ProbeOutcome(Outcome.DNS_FAILED if dns else Outcome.TOOL_ERROR, None, text, el)
    replies = [str(r) for r in got.get("responses") or [] if str(r).strip()]
    if replies and timeout is not None and el > timeout:
        return ProbeOutcome(Outcome.LATE_REPLY, replies[0], f"a reply {el:.3f} s after the "
                            "dial started: after the probe timeout, within its grace", el)
    if replies:
        return ProbeOutcome(Outcome.CONNECTED, replies[0], "connected", el)
    errors = "; ".join(str(e) for e in got.get("errors") or [])
    low = errors.lower()
    if "connection refused" in low:
        return ProbeOutcome(Outcome.REFUSED, None, errors, el)
    if "i/o timeout" in low:
        return ProbeOutcome(Outcome.TIMEOUT, None, errors, el)
    return ProbeOutcome(Outcome.TOOL_ERROR, None, errors or f"no reply and no error: {text}", el)


def _classify_connect(rc: int, out: str, err: str, detail: str, el: float) -> ProbeOutcome:
    if rc == 0:
        return ProbeOutcome(Outcome.CONNECTED, out.strip() or None, "connected", el)
    head = err.lstrip()
    for prefix, outcome in (("TIMEOUT", Outcome.TIMEOUT), ("REFUSED", Outcome.REFUSED),
                            ("DNS", Outcome.DNS_FAILED)):
        if head.startswith(prefix):
            return ProbeOutcome(outcome, None, detail, el)
    return ProbeOutcome(Outcome.TOOL_ERROR, None, detail, el)


def _classify_nslookup(rc: int, text: str, detail: str, el: float) -> ProbeOutcome:
    # nslookup exits 1 for every failure, so the output decides (docs/sources.md §5.4).
    low = text.lower()
    # a genuine answer wins over warning lines printed on the way (search-path misses, a
    # first server that timed out): exit 0 with answer addresses is resolved
    addrs = _nslookup_addresses(text) if rc == 0 else []
    if addrs:
        return ProbeOutcome(Outcome.DNS_RESOLVED, ",".join(addrs), f"resolved to {', '.join(addrs)}", el)
    if "communications error" in low or "no servers could be reached" in low \
            or "connection timed out" in low:
        return ProbeOutcome(Outcome.DNS_TIMEOUT, None, detail, el)
    if "nxdomain" in low:
        return ProbeOutcome(Outcome.DNS_NXDOMAIN, None, detail, el)
    if "refused" in low or "servfail" in low:
        return ProbeOutcome(Outcome.DNS_REFUSED, None, detail, el)
    return ProbeOutcome(Outcome.TOOL_ERROR, None, detail, el)


def _nslookup_addresses(text: str) -> list[str]:
    """The answer addresses (after the `Name:` line; the first `Address:` is the server's)."""
    addrs, seen_name = [], False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Name:"):
            seen_name = True
        elif seen_name and line.startswith("Address:"):
            addrs.append(line.split(":", 1)[1].strip())
    return addrs


# -- the kinds of probe and their tools, as data ----------------------------------------------
# Why a table: which tool performs a probe, how its output is read, which probes share one
# process and what a backend must carry for it are facts of the kind, read by argv_for and
# classify here, by harness.prober (batching) and harness.scenario.needs (capabilities). A new
# kind of probe is a row of KINDS (and a Tool when it needs one), its captured outputs in
# tests/data/probe-outputs, and the servers that answer it when its protocol is new.


@dataclass(frozen=True)
class Tool:
    """A program that performs probes: the argv word that says it ran, and how its exit status
    and output become an outcome (given the result and its one-line detail)."""

    name: str
    ran: Callable[[str], bool]
    classify: Callable[[ExecResult, str], ProbeOutcome]


def _named(name: str) -> Callable[[str], bool]:
    return lambda word: word.rsplit("/", 1)[-1] == name


TOOLS = (
    Tool("curl", lambda word: _named("curl")(word) or word == KUBE_TCP_BATCH,
         lambda r, d: _classify_curl(r.returncode, r.stdout, d, r.elapsed)),
    Tool("nslookup", _named("nslookup"),
         lambda r, d: _classify_nslookup(r.returncode, r.stdout + "\n" + r.stderr, d, r.elapsed)),
    Tool("connect", _named("agnhost"),
         lambda r, d: _classify_connect(r.returncode, r.stdout, r.stderr, d, r.elapsed)),
    Tool("udp-client", lambda word: word in (UDP_CLIENT, KUBE_UDP_CLIENT), _classify_udp),
    Tool("dial", lambda word: word == KUBE_DIAL_CLIENT, _classify_dial),
)


@dataclass(frozen=True)
class Batch:
    """Several probes of one source and kind in one process, each classified from its own line,
    with the toolkits in `toolkits` only: `argv` for the probes (timeout, toolkit), `split`
    their per-probe results. `names`: targets may be DNS names (curl resolves them in
    parallel), else addresses only (the UDP clients resolve names one after the other).
    `single`: a group of one runs as a single probe (its tool's plain form), not a batch of one."""

    argv: Callable[[list[tuple[ProbeSpec, str]], float, str], list[str]]
    split: Callable[[list[tuple[ProbeSpec, str]], ExecResult], dict[ProbeSpec, ExecResult]]
    toolkits: tuple[str, ...]
    names: bool
    single: bool


@dataclass(frozen=True)
class ProbeKind:
    """One kind of probe: the protocol of the port it probes (None for a DNS lookup, whose query
    is 53/UDP, or TCP with -vc), the capability a backend declares to carry it (None: every
    backend does), the argv of one probe per toolkit, and its batching (None: one process per
    probe)."""

    name: str
    protocol: Protocol | None
    capability: str | None
    argv: Callable[[ProbeSpec, str, float, str], list[str]]
    batch: Batch | None = None


KINDS: dict[str, ProbeKind] = {k.name: k for k in (
    ProbeKind("tcp", Protocol.TCP, None, _curl_argv,
              Batch(batch_argv_for, split_batch, ("debian", "agnhost"), names=True,
                    single=True)),
    ProbeKind("udp", Protocol.UDP, "udp", _udp_argv,
              Batch(udp_argv_for, split_udp, ("debian", "agnhost"), names=False, single=False)),
    ProbeKind("sctp", Protocol.SCTP, "sctp", _sctp_argv),
    ProbeKind("dns", None, None, _nslookup_argv),
)}
DNS = KINDS["dns"]


def kind_of(protocol: Protocol) -> ProbeKind:
    """The kind of probe of a port of `protocol`."""
    for k in KINDS.values():
        if k.protocol is protocol:
            return k
    raise ValueError(f"no probe kind for protocol {protocol.value}")
