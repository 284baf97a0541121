"""The exception hierarchy of netpol-proof, and ExecResult: what running a command returns,
beside ExecError for when its exit status is unknown.

Why: every error the harness raises names what it was doing and the object it was doing it to,
so that a user reads one line and knows which file, field, pod or command to look at. A broken
transport is never turned into an exit code (see ExecError): in a policy harness that would turn
"the harness is broken" into "the packet was blocked".
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Sequence


class HarnessError(Exception):
    """Base class: something netpol-proof itself could not do."""


@dataclass
class Problem:
    """One problem found in a scenario file: where it is and what is wrong."""

    path: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


class ScenarioError(HarnessError):
    """A scenario file is malformed or disagrees with the oracle.

    Carries every problem found, not only the first: a user fixes a file in one pass.
    """

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


#: how much of a tool's output an error message carries (its end: where tools say why)
OUTPUT_LIMIT = 1500


def output_tail(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """The end of a tool's output for an error message: stripped, at most `limit` characters."""
    text = (text or "").strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def with_output(msg: str, output: str) -> str:
    """`msg` followed by the end of `output` (indented), unless it already holds it."""
    tail = output_tail(output)
    if not tail or tail in msg:
        return msg
    return msg + ":\n  " + tail.replace("\n", "\n  ")


class BackendError(HarnessError):
    """A backend could not do what was asked (bring a cluster up, create a pod, apply a policy).

    `output` is what the tool printed (its stderr, a server's log): the message carries its
    end, so that a user reads why without digging for a log.
    """

    def __init__(self, doing: str, cause: str = "", output: str = ""):
        self.doing = doing
        self.cause = cause
        self.output = output
        msg = f"while {doing}: {cause}" if cause else doing
        super().__init__(with_output(msg, output))


class PrivilegeError(BackendError):
    """The local backend needs root or CAP_NET_ADMIN and does not have it."""


class MissingToolError(BackendError):
    """A system tool the backend needs is not installed; the message names the package."""


@dataclass
class ExecError(HarnessError):
    """A command's exit status is unknown: the transport failed, not the command.

    Why a separate type: kr8s sets returncode=1 when an exec stream carries no status; in a
    policy harness that would make a broken exec look like a blocked connection.
    """

    argv: list[str]
    cause: str
    output: str = ""
    target: str = ""

    def __post_init__(self) -> None:
        Exception.__init__(self, str(self))

    def __str__(self) -> str:
        where = f" in {self.target}" if self.target else ""
        return with_output(f"exec{where} failed: {self.cause}: {' '.join(self.argv)}",
                            self.output)


@dataclass(frozen=True)
class ExecResult:
    """The completed run of one command, shaped like subprocess.CompletedProcess.

    `returncode` is always a real exit status; when the status is unknown an ExecError is
    raised instead of inventing one.
    """

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    target: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def pretty(self) -> str:
        return pretty_command(self.argv)


def pretty_command(argv: Sequence[str]) -> str:
    """A shell-quoted line a person can paste into a terminal."""
    return " ".join(shlex.quote(a) for a in argv)


class UsageError(HarnessError):
    """The user asked for something that cannot be done as asked (bad option, unsafe context)."""
