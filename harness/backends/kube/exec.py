"""Run a command in a pod through the Kubernetes exec API and return its real exit status.

Why its own parser: the kubernetes client's `WSClient.returncode` calls
`int(details.causes[0].message)`, which raises on a non-numeric cause (a command that cannot
start) and returns None while the stream is open (notes §5.4). Here the error channel's Status
is parsed explicitly: `Success` is 0, `NonZeroExitCode` carries the code as its ExitCode cause,
anything else — and no status at all — is an ExecError, never a made-up exit code.
"""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

import yaml

from harness.errors import ExecError
from harness.shell import ExecResult

ERROR_CHANNEL = 3


def returncode_from_status(text: str, argv: Sequence[str], target: str) -> int:
    """The exit code in an exec error-channel Status (JSON), or ExecError when it has none."""
    argv = list(argv)
    if not text or not text.strip():
        raise ExecError(argv, "the exec stream closed without an exit status", target=target)
    try:
        status = json.loads(text)
    except ValueError:
        try:
            status = yaml.safe_load(text)
        except yaml.YAMLError:
            status = None
    if not isinstance(status, dict):
        raise ExecError(argv, f"unreadable exec status {text.strip()[:200]!r}", target=target)
    if status.get("status") == "Success":
        return 0
    causes = (status.get("details") or {}).get("causes") or []
    if status.get("reason") == "NonZeroExitCode":
        for cause in causes:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(str(cause.get("message", "")).strip())
                except ValueError:
                    break
    message = status.get("message") or "; ".join(str(c.get("message")) for c in causes) \
        or text.strip()[:200]
    raise ExecError(argv, f"the exec API reported no exit code: {message}", target=target)


def stream_exec(core_api: Any, namespace: str, pod: str, container: str, argv: Sequence[str],
                timeout: float, target: str = "") -> ExecResult:
    """`kubectl exec` through the API's websocket stream: a new exec (and connection) per call,
    so every probe opens a new connection (policies act on new connections, notes §5.4)."""
    from kubernetes.stream import stream  # imported here: kind/kubeconfig only

    target = target or f"{namespace}/{pod}"
    argv = [str(a) for a in argv]
    started = time.monotonic()
    try:
        resp = stream(core_api.connect_get_namespaced_pod_exec, pod, namespace, command=argv,
                      container=container, stderr=True, stdin=False, stdout=True, tty=False,
                      _preload_content=False)
    except Exception as exc:  # noqa: BLE001 - an API/websocket failure: status unknown
        raise ExecError(argv, f"could not open the exec stream: {exc}", target=target) from exc
    try:
        resp.run_forever(timeout=timeout)
        still_open = resp.is_open()
        out, err = resp.read_stdout() or "", resp.read_stderr() or ""
        status = resp.read_channel(ERROR_CHANNEL) or ""
    except Exception as exc:  # noqa: BLE001
        raise ExecError(argv, f"the exec stream failed: {exc}", target=target) from exc
    finally:
        try:
            resp.close()
        except Exception:  # noqa: BLE001 - closing a broken stream
            pass
    if still_open and not status:
        raise ExecError(argv, f"still running after {timeout:g}s (exec stream timed out)",
                        output=out + err, target=target)
    rc = returncode_from_status(status, argv, target)
    return ExecResult(tuple(argv), rc, out, err, time.monotonic() - started, target)
