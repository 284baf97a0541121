"""The one place netpol-proof starts local processes.

Why one place: argv lists only (never a shell string), one result type whatever the command, a
pasteable command line in every error, and one spot to audit for what the harness runs on the
machine. Backends that exec through an API (Kubernetes) return the same ExecResult.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any, Mapping, Sequence

from harness.errors import ExecError, ExecResult, pretty_command

__all__ = ["ExecResult", "pretty_command", "run", "spawn"]


def run(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = False,
    doing: str = "",
    target: str = "",
    cwd: str | os.PathLike[str] | None = None,
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
            cwd=cwd,
        )
    except FileNotFoundError as exc:
        raise ExecError(argv, f"{doing + ': ' if doing else ''}command not found ({exc.filename})",
                        target=target) from exc
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or b""
        out = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        raise ExecError(argv, f"{doing + ': ' if doing else ''}still running after {timeout}s",
                        output=out, target=target) from exc
    result = ExecResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr,
                        time.monotonic() - started, target)
    if check and proc.returncode != 0:
        raise ExecError(argv, f"{doing + ': ' if doing else ''}exit status {proc.returncode}",
                        output=(proc.stdout + proc.stderr).strip(), target=target)
    return result


def spawn(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          log_path: str | None = None, pipes: bool = False) -> subprocess.Popen[bytes]:
    """Start a long-running process (a pod's servers, the DNS server) and return its handle.

    Its output goes to `log_path` (or is discarded); the caller owns stopping it. With
    pipes=True its stdin and stdout are pipes to the caller (a process driven by requests;
    stderr still goes to `log_path`).
    """
    argv = [str(a) for a in argv]
    log = open(log_path, "ab") if log_path else None   # the child keeps its own copy
    out: Any = log if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(argv, stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                                stdout=subprocess.PIPE if pipes else out,
                                stderr=out if pipes else subprocess.STDOUT,
                                env=dict(env) if env is not None else None, start_new_session=True)
    except FileNotFoundError as exc:
        raise ExecError(argv, f"command not found ({exc.filename})") from exc
    finally:
        if log is not None:
            log.close()


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
