"""The scheduler of a run: scenarios run at most `jobs` at once, each on a cluster of its own.

What it does: a thread pool of `jobs` scenarios, started longest first (or, given `fits`, each
free worker taking the longest waiting one whose pods an idle cluster kept); per CNI the clusters
they run on (the CNI's first cluster when its backend cannot have clusters side by side, else
extra clusters brought up on demand and reused, at most `Backend.max_parallel` in use); the
items that want a cluster apart (a scenario that must run alone, on a backend whose other
scenarios share one cluster: harness.backends.alone_apart) in a lane of their own per CNI, one
at a time on a cluster of their own, beside the pool instead of stopping it, each such cluster
going down once no item is left for it (`retire`); and the stop after Ctrl-C or SIGTERM:
nothing new starts, every cluster with a scenario on it is interrupted (Backend.interrupt: its
scenario ends at its next probe), and the pool is waited for. Each scenario's story is kept
and handed back whole with its result, never interleaved.

Why apart from harness.session: the session decides *what* runs on which CNI (settings, bring-up,
canary, run or skip, reports); this module only decides *when* and *on which cluster*, and
knows nothing of scenarios, settings or CNIs beyond their names (the way pytest-xdist keeps its
scheduling in `dsession.py`/`scheduler/`, apart from what a test is).

The interface: `start(key, work, lane)` / `start_all(...)` run `work(log)` in the pool (or in
`lane`'s own one-at-a-time pool); inside it, `acquire(cni, primary, log, apart)` ...
`release(cni, backend, primary)` lend a cluster;
`clusters(cni)` hands the extra clusters over for teardown; `stop()` ends the pool; and
`bring_down(clusters)` takes clusters down side by side.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Hashable, TypeVar

from harness.backends.base import Backend
from harness.errors import HarnessError
from harness.settings import MAX_JOBS

Log = Callable[[str], None]
T = TypeVar("T")

#: one letter per CNI appended to a local run id: both local profiles exist at once in one run
CNI_SUFFIX = "abcdefgh"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

#: CPU seconds one probe costs on the local backend, everything included (bring-up, servers,
#: the harness itself): the library's CPU divided by its probes, measured by
#: bench/bench_library.py on this project's 2-core machine
PROBE_CPU_SECONDS = 0.0014
#: probes per second one local scenario runs at a 1 s probe timeout (rounds wait for blocked
#: probes, so this scales with 1 / timeout): the library's probes divided by the sum of its
#: scenarios' durations, same benchmark
PROBES_PER_SECOND = 67.0
#: the share of the cores the scenarios may keep busy: the rest is for bring-ups, teardowns and
#: the servers' answers, so that a saturated machine never delays a reply past the probe
#: timeout (an UNSTABLE cell). At 0.75 (16 at once on 2 cores) 2 of 20 soak runs had one
#: lookup answered after its 1 s timeout while other work shared the machine
BUSY = 0.6


def default_jobs(cpus: int | None, probe_timeout: float) -> int:
    """Scenarios to run at once on the local backend: as many as keep the cores busy.

    One scenario keeps PROBES_PER_SECOND x PROBE_CPU_SECONDS of a core busy (scaled by the probe
    timeout); most of its time is spent waiting for blocked probes' timeouts. More than BUSY of
    the cores can serve would only make every probe slower, never the run shorter.
    """
    cores_per_scenario = PROBES_PER_SECOND * PROBE_CPU_SECONDS / max(probe_timeout, 0.1)
    return max(1, min(MAX_JOBS, round((cpus or 1) * BUSY / cores_per_scenario)))


def slot_run_id(run_id: str, worker: int, cni_index: int, slot: int) -> str:
    """The run id of the extra local cluster number `slot` (1..35) of a CNI: the first five
    characters of the run's id and three that encode (pytest-xdist worker, CNI, slot), so that
    every cluster of a run, in every worker, has a name of its own within 8 characters."""
    n = (worker * len(CNI_SUFFIX) + cni_index) * 36 + slot
    if not 1 <= slot < 36 or n >= 36 ** 3:
        raise HarnessError(f"no run id for cluster {slot} of worker {worker}: too many clusters")
    return run_id[:5] + _B36[n // 1296] + _B36[n // 36 % 36] + _B36[n % 36]


def worker_index(worker: str | None) -> int:
    """0 for a process alone, N for pytest-xdist worker gwN."""
    digits = re.sub(r"\D", "", worker or "")
    return int(digits) if digits else 0


class Scheduler(Generic[T]):
    """Work items (one scenario on one CNI each) at most `jobs` at once, and the clusters they
    run on; see the module docstring. `new_cluster(cni, n)` builds (does not bring up) the
    n-th extra cluster of a CNI (1, 2, ...), `apart` when it is one for the items that run
    apart (acquire)."""

    def __init__(self, jobs: int, new_cluster: Callable[[str, int, bool], Backend]):
        self.jobs = jobs
        self._new_cluster = new_cluster
        self._mutex = threading.RLock()
        self._pool: ThreadPoolExecutor | None = None
        self._lanes: dict[str, ThreadPoolExecutor] = {}  # one worker each (start's `lane`)
        self._futures: dict[Hashable, Future[tuple[T, list[str]]]] = {}
        #: the pool's items start_all queued with `fits`, longest first, not yet taken (_take),
        #: each with its `fits`
        self._waiting: list[tuple[Hashable, Callable[[Log], T], Future[tuple[T, list[str]]],
                                  Callable[[Hashable, Backend], bool]]] = []
        self._extra: dict[str, list[Backend]] = {}   # every extra cluster per CNI (teardown)
        self._free: dict[tuple[str, bool], list[Backend]] = {}  # the idle ones, (cni, apart)
        self._limits: dict[str, threading.BoundedSemaphore] = {}
        self._busy: list[Backend] = []               # clusters a scenario runs on (or comes up)
        self._apart: list[Backend] = []              # the extra clusters lent `apart` only
        self._stopping = False

    @property
    def parallel(self) -> bool:
        """Whether work runs in the pool at all (jobs above 1); else the caller runs it."""
        return self.jobs > 1

    # -- work -------------------------------------------------------------------------------
    def start(self, key: Hashable, work: Callable[[Log], T],
              lane: str | None = None) -> Future[tuple[T, list[str]]]:
        """Start `work(log)` in the pool, once per `key` (a later call returns the same
        future); the future's value is (its result, the lines it logged). With a `lane`: in
        that lane's own pool of one worker instead, so items that wait for the one cluster of
        their lane never hold a worker of the pool."""
        with self._mutex:
            if self._stopping:
                raise HarnessError("the run is stopping")
            if key not in self._futures:
                if lane is not None:
                    pool = self._lanes.get(lane)
                    if pool is None:
                        pool = self._lanes[lane] = ThreadPoolExecutor(
                            max_workers=1, thread_name_prefix=f"netpol-{lane}")
                else:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(max_workers=self.jobs,
                                                        thread_name_prefix="netpol-scenario")
                    pool = self._pool

                self._futures[key] = pool.submit(_told, work)
            return self._futures[key]

    def start_all(self, items: list[tuple[Hashable, float, Callable[[Log], T], str | None]],
                  fits: Callable[[Hashable, Backend], bool] | None = None) -> None:
        """Start (key, estimated seconds, work, lane) items, the longest first (ties in the
        order given): runs done at once end when the last does, so a long one started last
        would run on alone.

        `fits(key, cluster)`: whether an idle cluster suits an item better than any other (it
        kept the pods the item needs: Backend.keeps). Then the pool's items are not queued in a
        fixed order: a worker that becomes free takes the longest waiting item that an idle
        cluster fits (the one its last item just released, mostly), else the longest waiting.
        Why: on a kube cluster a fresh deploy is the costliest part of a scenario (pods,
        sandboxes, every engine resyncing), and in a fixed order most items met a cluster that
        kept another model's pods (docs/real-nodes.md §14)."""
        ordered = sorted(items, key=lambda item: -item[1])
        if fits is None:
            for key, _, work, lane in ordered:
                self.start(key, work, lane)
            return
        pooled = []
        with self._mutex:
            if self._stopping:
                raise HarnessError("the run is stopping")
            for key, _, work, lane in ordered:
                if lane is not None or key in self._futures:
                    continue
                future: Future[tuple[T, list[str]]] = Future()
                self._futures[key] = future
                self._waiting.append((key, work, future, fits))
                pooled.append(key)
            if pooled and self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.jobs,
                                                thread_name_prefix="netpol-scenario")
            pool = self._pool
        for key, _, work, lane in ordered:
            if lane is not None:
                self.start(key, work, lane)
        for _ in pooled:
            assert pool is not None
            try:
                pool.submit(self._take)
            except RuntimeError:   # stopped meanwhile: stop() cancelled what was waiting
                break

    def _take(self) -> None:
        """One worker's turn (start_all with `fits`): the waiting item an idle cluster fits
        (each item asked with the `fits` it was queued with: start_all is called once per CNI),
        the longest of those, else the longest waiting; run, its future given the result. A
        `fits` that raises fails its own item, never leaves one waiting with no worker."""
        failed: BaseException | None = None
        with self._mutex:
            if not self._waiting:
                return
            idle = [b for (_, apart), free in self._free.items() if not apart for b in free]
            pick = 0
            for i, (key, _, _, fits) in enumerate(self._waiting):
                try:
                    if any(fits(key, b) for b in idle):
                        pick = i
                        break
                except Exception as exc:  # noqa: BLE001 - reported as that item's failure
                    pick, failed = i, exc
                    break
            key, work, future, _ = self._waiting.pop(pick)
        if not future.set_running_or_notify_cancel():
            return
        if failed is not None:
            future.set_exception(failed)
            return
        try:
            future.set_result(_told(work))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the item
            future.set_exception(exc)

    # -- clusters ---------------------------------------------------------------------------
    def acquire(self, cni: str, primary: Backend | None, log: Log, apart: bool = False,
                prefer: Callable[[Backend], bool] | None = None) -> Backend:
        """An idle cluster of `cni` for one work item: `primary` (the CNI's first cluster, up)
        when its backend cannot have clusters side by side, else an idle extra cluster or a
        new one brought up here (its bring-up line goes to `log`, in the item's story). Blocks
        while `min(jobs, primary.max_parallel)` are in use. `apart`: a cluster only items
        started in a lane get, never one of the others' (the lane runs them one at a time).
        `prefer`: an idle cluster it is true for is lent first (one that kept the pods the
        item needs: Backend.keeps). `release` gives it back. `primary` may be None for an item
        apart only (unused then: that item need not wait for the CNI's first cluster)."""
        if apart:
            return self._lend(cni, primary, log, apart=True, prefer=prefer)
        if primary is None:
            raise ValueError("acquire: only a cluster apart can be lent without the primary")
        with self._mutex:
            limit = self._limits.get(cni)
            if limit is None:
                limit = self._limits[cni] = threading.BoundedSemaphore(
                    max(1, min(self.jobs, primary.max_parallel)))
        limit.acquire()
        try:
            return self._lend(cni, primary, log, prefer=prefer)
        except BaseException:
            limit.release()
            raise

    def _lend(self, cni: str, primary: Backend | None, log: Log, apart: bool = False,
              prefer: Callable[[Backend], bool] | None = None) -> Backend:
        with self._mutex:
            if self._stopping:
                raise HarnessError("the run is stopping")
            if not apart and primary is not None and primary.max_parallel == 1:
                self._busy.append(primary)
                return primary
            free = self._free.setdefault((cni, apart), [])
            if free:
                # the last freed first, unless an idle one is preferred
                backend = next((b for b in reversed(free) if prefer is not None and prefer(b)),
                               free[-1])
                free.remove(backend)
                self._busy.append(backend)
                return backend
            n = len(self._extra.setdefault(cni, [])) + 1
            backend = self._new_cluster(cni, n, apart)
            self._extra[cni].append(backend)   # registered first: teardown runs after a failure
            if apart:
                self._apart.append(backend)
            self._busy.append(backend)         # and an interrupt reaches its bring-up
        log(f"bringing up {backend.name}/{cni} cluster {n + 1} (run {backend.run_id})"
            f"{' for the scenarios that run alone' if apart else ''} ...")
        backend.up()
        return backend

    def release(self, cni: str, backend: Backend, primary: Backend | None) -> None:
        """Give back a cluster `acquire` lent."""
        with self._mutex:
            if backend in self._busy:
                self._busy.remove(backend)
            apart = backend in self._apart
            if backend is not primary:
                self._free.setdefault((cni, apart), []).append(backend)
        if not apart:
            self._limits[cni].release()

    def retire(self, cni: str, needed: int, log: Log) -> list[str]:
        """Bring down the idle clusters apart of `cni` beyond those `needed` more items apart
        will want (each running one holds its own already): a cluster apart whose items are
        done does not stay up, idle, until the run's end, its control plane and nodes taking
        the cores the others' scenarios need (docs/real-nodes.md §14). The failures, as
        `cni: error` (bring_down's)."""
        with self._mutex:
            if self._stopping:
                return []
            ours = self._extra.get(cni, [])
            free = self._free.get((cni, True), [])
            busy = sum(1 for b in self._busy if b in self._apart and b in ours)
            doomed = [free.pop() for _ in range(max(0, len(free) - max(0, needed - busy)))]
            for b in doomed:
                ours.remove(b)
                self._apart.remove(b)
        for b in doomed:
            log(f"taking down {b.name}/{cni} cluster apart (run {b.run_id}): no scenario "
                f"left for it")
        return bring_down([(cni, b) for b in doomed])

    def clusters(self, cni: str) -> list[Backend]:
        """Hand over the extra clusters of `cni` (for their teardown): forgotten here."""
        with self._mutex:
            self._free.pop((cni, False), None)
            self._free.pop((cni, True), None)
            return self._extra.pop(cni, [])

    def cnis(self) -> list[str]:
        """The CNIs that have extra clusters."""
        with self._mutex:
            return list(self._extra)

    # -- the end ----------------------------------------------------------------------------
    def stop(self) -> None:
        """End the pool: nothing new starts; work still running (after Ctrl-C or SIGTERM) has
        its cluster interrupted (Backend.interrupt: it ends at its next probe and undeploys);
        returns once every item is done. The clusters stay up: the caller brings them down."""
        with self._mutex:
            pools = [p for p in [self._pool, *self._lanes.values()] if p is not None]
            self._pool, self._lanes = None, {}
            self._stopping = True
            running = [f for f in self._futures.values() if not f.done()]
            busy = list(self._busy)
            waiting, self._waiting = self._waiting, []
        for _, _, future, _ in waiting:   # never taken: cancelled, as the pool's own queue is
            future.cancel()
        if not pools:
            return
        for f in running:
            f.cancel()
        if any(not f.done() for f in running):
            for backend in busy:
                backend.interrupt()
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


def _told(work: Callable[[Log], T]) -> tuple[T, list[str]]:
    """`work(log)` run, with the lines it logged: an item's result and its story."""
    lines: list[str] = []
    return work(lines.append), lines


def bring_down(clusters: list[tuple[str, Backend]]) -> list[str]:
    """`down()` every (CNI, cluster) side by side, past failures; the failures as `cni: error`.

    Why side by side: a cluster's down is mostly waiting (processes given their grace period,
    an API server stopping), and after Ctrl-C with `-j` every extra cluster goes at once.
    """
    if len(clusters) <= 1:
        return [err for cni, b in clusters if (err := _down(cni, b))]
    with ThreadPoolExecutor(max_workers=len(clusters), thread_name_prefix="netpol-down") as pool:
        futures = [pool.submit(_down, cni, b) for cni, b in clusters]
    return [err for f in futures if (err := f.result())]


def _down(cni: str, backend: Backend) -> str | None:
    try:
        backend.down()
    except HarnessError as exc:
        return f"{cni}: {exc}"
    return None
