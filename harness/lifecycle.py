"""Process lifecycle: make SIGTERM unwind the stack like Ctrl-C, so teardown always runs.

Why: Python's default SIGTERM kills the process without running `finally` blocks or context
managers, which would leave network namespaces and clusters behind when CI cancels a job. The
CLI and the pytest plugin call `install_sigterm_handler()` once at start.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives; a KeyboardInterrupt so that every
    `except KeyboardInterrupt` teardown path handles it too."""


def _raise_terminated(signum, frame):
    # Further SIGTERMs while tearing down must not interrupt the teardown itself.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"terminated by signal {signum}")


def stop_reason(exc: BaseException) -> str:
    """What stopped a run, for its results file (`meta.stopped`): a Terminated is SIGTERM; any
    other KeyboardInterrupt is Python's SIGINT handler (Ctrl-C, or a CI runner cancelling)."""
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT (Ctrl-C)"


def install_sigterm_handler() -> bool:
    """Turn SIGTERM into a Terminated exception in the main thread. False when not possible
    (called from another thread, where Python does not allow signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _raise_terminated)
    return True


@contextlib.contextmanager
def sigterm_deferred() -> Iterator[None]:
    """While tearing down, a SIGTERM waits: it is raised (as Terminated) once the block is done.

    Why: the signal asks for exactly the teardown in progress; raised in its middle it would
    leave the rest of the namespaces behind. Only in the main thread with our handler
    installed; elsewhere a plain block.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not _raise_terminated:
        yield
        return
    got: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, _raise_terminated)
    if got:
        _raise_terminated(got[0], None)
