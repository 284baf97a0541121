"""Who runs on a cluster whose extra clusters are tenants of it (Backend.tenant): any number
of scenarios beside each other, or one alone (harness.scenario.sharing says which); such a
backend holds one and hands it out as `Backend.sharing(alone)`."""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator


class Sharing:
    """Who runs on a cluster whose extra clusters are tenants of it (Backend.tenant):
    any number of tenants beside each other, or one alone. A scenario that wants to run alone
    waits until the running ones end, and none starts beside it meanwhile (it is not starved
    by a stream of short ones); it then runs with no other on the cluster."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._beside = 0          # scenarios running beside others
        self._alone = False       # a scenario running alone
        self._waiting_alone = 0   # scenarios waiting to run alone

    def enter(self, alone: bool) -> None:
        with self._cond:
            if alone:
                self._waiting_alone += 1
                try:
                    self._cond.wait_for(lambda: not self._alone and self._beside == 0)
                finally:
                    self._waiting_alone -= 1
                self._alone = True
            else:
                self._cond.wait_for(lambda: not self._alone and self._waiting_alone == 0)
                self._beside += 1

    def leave(self, alone: bool) -> None:
        with self._cond:
            if alone:
                self._alone = False
            else:
                self._beside -= 1
            self._cond.notify_all()

    @property
    def running(self) -> tuple[int, bool]:
        """(scenarios running beside others, whether one runs alone)."""
        with self._cond:
            return self._beside, self._alone

    @contextlib.contextmanager
    def held(self, alone: bool) -> Iterator[None]:
        self.enter(alone)
        try:
            yield
        finally:
            self.leave(alone)
