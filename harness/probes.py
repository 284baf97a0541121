"""What a probe is, the argv of the real tool that performs it, and the classification of that
tool's result into a named Outcome.

Why pure: classification is the one place where "the packet was blocked" is told apart from "the
harness is broken", so it is a pure function table-tested on real curl/nslookup output
(tests/test_probes.py). Enum values are the strings that appear in reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from harness.model import Protocol


class Outcome(str, Enum):
    CONNECTED = "connected"          # the server answered (TCP: HTTP response; UDP: a reply datagram)
    REFUSED = "refused"              # RST / ICMP unreachable: a closed port, or a CNI that rejects
    TIMEOUT = "timeout"              # nothing came back before the deadline: dropped
    HTTP_DENIED = "http-denied"      # connected, but an L7 proxy answered 403 (Cilium L7 deny)
    DNS_RESOLVED = "dns-resolved"    # the name resolved
    DNS_NXDOMAIN = "dns-nxdomain"    # the DNS server answered: no such name
    DNS_REFUSED = "dns-refused"      # the DNS server (or a DNS proxy) answered REFUSED/SERVFAIL
    DNS_TIMEOUT = "dns-timeout"      # no DNS server could be reached
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
