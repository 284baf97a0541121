"""A fault step's watch: its cells probed in rounds that start every `every` seconds, on lanes
(moved from harness.runner)."""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator, Protocol

from harness.backends.base import Backend
from harness.plan import Cell
from harness.prober import ROUND_PAUSE
from harness.results import Expectation, StepResult
from harness.settings import Settings


class StepRun(Protocol):
    """What a fault step drives of the scenario's run (harness.runner.Run), named here so that
    harness.faults does not import the runner."""

    backend: Backend
    settings: Settings
    log: Callable[[str], None]

    def probe(self, cells: list[Cell], round_no: int,
              expectation_override: Expectation | None = None) -> object: ...
    def change(self, step) -> None: ...
    def converge(self, index: int, title: str, cells: list[Cell], start: float) -> StepResult: ...


#: at most this many watch rounds of a fault step in flight at once
WATCH_LANES = 4


class Watch:
    """The watched cells of a fault step, probed in rounds that start `every` seconds apart
    until `stop()`; each round judged against what the spec requires when it starts (the
    `before` cells until the change, then the `after` ones).

    Why lanes: a round lasts as long as its slowest probe, a blocked one's probe timeout, so
    rounds one after the other could not start more often than about once a timeout, and a
    window shorter than that would be missed. The rounds go to `lanes` threads in turn (as
    many as a round's length needs to start one every `every` seconds), each with copies of the
    cells of its own; their attempts are merged by time at the end (`merged`). Every round is a
    round like any other: its own probes, its own positive controls.
    Why a gate around each round and the change: a round is judged against one state of the
    spec, so the change waits for the rounds in progress, and new rounds for the change.
    """

    def __init__(self, run: StepRun, before: list[Cell], after: list[Cell], every: float,
                 lanes: int = 1):
        self.run, self.every = run, every
        self.lanes = max(1, min(WATCH_LANES, lanes))
        #: each lane's (before, after) cells: lane 0 the step's own, the others fresh copies
        self._cells = [(before, after)] + [([_fresh(c) for c in before],
                                            [_fresh(c) for c in after])
                                           for _ in range(self.lanes - 1)]
        self.starts: list[float] = []
        self._after = False
        self._gate = threading.Condition()
        self._active = 0
        self._changing = False
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True,
                                          name=f"netpol-watch-{i}") for i in range(self.lanes)]
        self.error: BaseException | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        for t in self._threads:
            t.start()

    @contextmanager
    def change(self) -> Iterator[None]:
        """Hold the rounds for the step's change: waits for the rounds in progress; rounds
        started later use the after cells."""
        with self._gate:
            self._changing = True
            self._gate.wait_for(lambda: self._active == 0)
        try:
            yield
            self._after = True
        finally:
            with self._gate:
                self._changing = False
                self._gate.notify_all()

    def stop(self) -> None:
        """End the watch with the rounds in progress (never a round more or less because of a
        result) and wait for them."""
        self._stop.set()
        with self._gate:
            self._gate.notify_all()
        for t in self._threads:
            t.join()

    def merged(self) -> list[tuple[Cell, Cell]]:
        """(before, after) per watched cell with every lane's attempts, in time order."""
        out = []
        for k, (b, a) in enumerate(zip(*self._cells[0], strict=True)):
            for lane_b, lane_a in self._cells[1:]:
                b.attempts += lane_b[k].attempts
                a.attempts += lane_a[k].attempts
            out.append((b, a))
        return out

    def _loop(self, lane: int) -> None:
        before, after = self._cells[lane]
        start = self._t0 + lane * self.every
        try:
            while not self._stop.wait(max(0.0, start - time.monotonic())):
                with self._gate:
                    self._gate.wait_for(lambda: not self._changing or self._stop.is_set())
                    if self._stop.is_set():
                        return
                    self._active += 1
                    began = time.monotonic()
                    self.starts.append(began)
                    number = len(self.starts)
                    cells = after if self._after else before
                try:
                    self.run.probe(cells, number)
                    for c in cells:
                        a = c.attempts[-1]
                        a.at, a.expected = began, c.expectation.value
                finally:
                    with self._gate:
                        self._active -= 1
                        self._gate.notify_all()
                # this lane's next round: `lanes` slots later, or at once after a long round
                start = max(start + self.lanes * self.every, time.monotonic() + ROUND_PAUSE)
        except BaseException as exc:  # noqa: BLE001 - handed to the step, which reports it
            self.error = exc


def _fresh(c: Cell) -> Cell:
    """A copy of a cell with no attempts: a watch lane's own."""
    return replace(c, attempts=[], last=None)


def watch_lanes(every: float, probe_timeout: float) -> int:
    """Lanes a watch needs to start a round every `every` seconds when a round can last a probe
    timeout and its positive control."""
    return max(1, min(WATCH_LANES, math.ceil((probe_timeout + 2 * ROUND_PAUSE) / every)))
