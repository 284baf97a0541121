"""The one place netpol-proof starts local processes.

Why one place: argv lists only (never a shell string), one result type whatever the command, a
pasteable command line in every error, and one spot to audit for what the harness runs on the
machine. Backends that exec through an API (Kubernetes) return the same ExecResult.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from harness.errors import ExecError


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


def run(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = False,
    doing: str = "",
    target: str = "",
) -> ExecResult:
    """Run argv to completion and return its ExecResult.

    A command that cannot be started, or that outlives `timeout`, raises ExecError: its exit
    status is unknown. With check=True a non-zero exit raises ExecError naming `doing` and
    carrying the command's output.
    """
    argv = [str(a) for a in argv]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
        )
    except FileNotFoundError as exc:
        raise ExecError(argv, f"{doing + ': ' if doing else ''}command not found ({exc.filename})",
                        target=target) from exc
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        raise ExecError(argv, f"{doing + ': ' if doing else ''}still running after {timeout}s",
                        output=out, target=target) from exc
    result = ExecResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr,
                        time.monotonic() - started, target)
    if check and proc.returncode != 0:
        raise ExecError(argv, f"{doing + ': ' if doing else ''}exit status {proc.returncode}",
                        output=(proc.stdout + proc.stderr).strip(), target=target)
    return result


def spawn(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          log_path: str | None = None) -> subprocess.Popen:
    """Start a long-running process (a pod's servers, the DNS server) and return its handle.

    Its output goes to `log_path` (or is discarded); the caller owns stopping it.
    """
    argv = [str(a) for a in argv]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None, start_new_session=True)
    except FileNotFoundError as exc:
        raise ExecError(argv, f"command not found ({exc.filename})") from exc
    finally:
        if log_path:
            out.close()


def stop(proc: subprocess.Popen, grace: float = 5.0) -> int | None:
    """Stop a process started by `spawn`: SIGTERM, up to `grace` seconds, then SIGKILL.

    Returns its exit status (negative for a signal), or None when it outlived SIGKILL by 5 s
    (a process stuck in the kernel): the caller reports it.
    """
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.terminate()
        return proc.wait(timeout=grace)
    except ProcessLookupError:
        return proc.poll()
    except subprocess.TimeoutExpired:
        pass
    try:
        proc.kill()
        return proc.wait(timeout=5)
    except ProcessLookupError:
        return proc.poll()
    except subprocess.TimeoutExpired:
        return None
