"""Every wait of a run: a check, a success condition, a deadline, and a message naming what
never became ready.

Why one module on tenacity: waits written inline drift into fixed sleeps and silent timeouts;
here each wait states what it waits for, polls at a fixed interval, and on the deadline says
which object never got there (as lightkube's `wait(for_conditions=..., raise_for_conditions=...)`
in `core/client.py` does). No pytest, no backend knowledge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar, cast

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.errors import HarnessError

T = TypeVar("T")


class WaitTimeout(HarnessError):
    """A wait reached its deadline; the message names what never became ready and the last state."""


@dataclass
class Polled(Generic[T]):
    """The outcome of a poll: the last value, whether it satisfied the condition, every value."""

    value: T | None
    ok: bool
    attempts: list[T] = field(default_factory=list)
    elapsed: float = 0.0


def poll(check: Callable[[], T], done: Callable[[T], bool], timeout: float,
         interval: float = 0.2, min_attempts: int = 1) -> Polled[T]:
    """Call `check` every `interval` s until `done(value)` (after at least `min_attempts`) or
    `timeout` s passed. Never raises for the deadline: the caller decides what a miss means."""
    attempts: list[T] = []
    started = time.monotonic()

    def once() -> T:
        value = check()
        attempts.append(value)
        return value

    def unfinished(value: T) -> bool:
        return len(attempts) < min_attempts or not done(value)

    retrying = Retrying(stop=stop_after_delay(max(0.0, timeout)), wait=wait_fixed(interval),
                        retry=retry_if_result(unfinished), reraise=True)
    value: T | None
    try:
        value = retrying(once)
        ok = True
    except RetryError:
        value, ok = (attempts[-1] if attempts else None), False
    if ok and unfinished(cast(T, value)):
        ok = False
    return Polled(value, ok, attempts, time.monotonic() - started)


def wait_for(check: Callable[[], T], done: Callable[[T], bool], timeout: float, what: str,
             interval: float = 0.2, describe: Callable[[T], str] = repr) -> T:
    """Like poll, but the deadline raises WaitTimeout naming `what` and its last state."""
    p = poll(check, done, timeout, interval)
    if not p.ok:
        last = describe(p.attempts[-1]) if p.attempts else "never checked"
        raise WaitTimeout(f"{what} did not happen within {timeout:g}s "
                          f"({len(p.attempts)} checks); last state: {last}")
    return cast(T, p.value)   # ok: the value satisfied `done`
