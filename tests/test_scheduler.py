"""harness.scheduler without a cluster: how many scenarios run at once and on which cluster,
extra clusters made on demand and reused, and the stop after Ctrl-C that interrupts what runs.

The clusters here are Backend subclasses whose `exec` waits a little and answers, and which
record how they were used; real clusters under the same scheduler: tests/test_runner_cli.py
(-j 3), tests/plugin/test_sigterm.py and tests/real/test_real_interrupt.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from harness.backends.base import Backend
from harness.errors import ExecResult, HarnessError
from harness.lifecycle import Terminated
from harness.scheduler import Scheduler


class Cluster(Backend):
    """A cluster that only runs commands (each takes `pause` s): what the scheduler touches is
    up, interrupt and exec; everything else is not its business and fails."""

    name, profile = "local", "enforcing"

    def __init__(self, run_id: str, max_parallel: int = 64, pause: float = 0.02):
        self.run_id, self.max_parallel, self.pause = run_id, max_parallel, pause
        self.ups = self.downs = 0
        self.kept = ""   # the model whose pods it kept (test_a_free_worker_takes_...)

    def keeps(self, model) -> bool:
        return self.kept == model

    def up(self) -> None:
        self.ups += 1

    def exec(self, endpoint, argv, timeout):
        self.stop_if_interrupted(f"running {argv[0]}")
        time.sleep(self.pause)
        return ExecResult(tuple(argv), 0, "", "", self.pause, endpoint)

    def _unused(self, *args, **kwargs):
        raise AssertionError("the scheduler never calls this")

    def down(self) -> None:
        self.downs += 1

    capabilities = deploy = undeploy = set_labels = apply_policy = _unused  # type: ignore
    delete_policy = policy_count = _unused  # type: ignore


class Run:
    """A scheduler over one CNI whose first cluster is `primary`; records the extra clusters it
    asks for and which cluster each work item got, and how many ran at once."""

    def __init__(self, jobs: int, primary: Cluster):
        self.primary, self.made, self.used = primary, [], []
        self.now = self.most = 0
        self.lock = threading.Lock()
        self.scheduler: Scheduler[str] = Scheduler(jobs, self.new_cluster)

    def new_cluster(self, cni: str, n: int, apart: bool = False) -> Cluster:
        c = Cluster(f"slot{n}")
        self.made.append(c)
        return c

    def work(self, execs: int):
        def item(log):
            backend = self.scheduler.acquire("enforcing", self.primary, log)
            try:
                with self.lock:
                    self.now += 1
                    self.most = max(self.most, self.now)
                    self.used.append(backend.run_id)
                for _ in range(execs):
                    backend.exec("x/a", ["curl"], 1.0)
                log(f"done on {backend.run_id}")
                return backend.run_id
            finally:
                with self.lock:
                    self.now -= 1
                self.scheduler.release("enforcing", backend, self.primary)
        return item


def test_extra_clusters_are_made_on_demand_reused_and_never_more_than_jobs():
    run = Run(jobs=3, primary=Cluster("first"))
    futures = [run.scheduler.start(i, run.work(5)) for i in range(8)]
    results = [f.result(timeout=30) for f in futures]
    assert run.most == 3 and len(run.made) == 3            # jobs at once, a cluster each
    assert all(c.ups == 1 for c in run.made)               # each brought up once, then reused
    assert "first" not in run.used                         # the first keeps the canary
    assert {r for r, _ in results} == {"slot1", "slot2", "slot3"}
    # each item's lines come back with its result, the bring-up line in the story that caused it
    story = [line for _, lines in results for line in lines]
    assert sum(line.startswith("bringing up local/enforcing cluster") for line in story) == 3
    assert all(lines[-1] == f"done on {r}" for r, lines in results)


def test_a_backend_that_cannot_have_clusters_side_by_side_runs_one_at_a_time_on_its_first():
    run = Run(jobs=4, primary=Cluster("first", max_parallel=1))
    for f in [run.scheduler.start(i, run.work(3)) for i in range(5)]:
        f.result(timeout=30)
    assert run.made == [] and run.most == 1 and set(run.used) == {"first"}


def test_the_same_key_is_started_once_and_the_longest_starts_first():
    run = Run(jobs=2, primary=Cluster("first"))
    order: list[str] = []
    gate = threading.Event()

    def item(name: str):
        def work(log):
            order.append(name)
            gate.wait(10)
            return name
        return work

    # both workers are held by the first two; the rest queue in the order they were started
    run.scheduler.start_all([("a", 1.0, item("a"), None), ("b", 5.0, item("b"), None),
                             ("c", 3.0, item("c"), None), ("d", 5.0, item("d"), None)])
    assert run.scheduler.start("b", item("again")) is run.scheduler.start("b", item("x"))
    gate.set()
    assert [run.scheduler.start(k, item("x")).result(10)[0] for k in "abcd"] == list("abcd")
    assert order[:2] in (["b", "d"], ["d", "b"]) and order[2:] == ["c", "a"]


def test_stop_interrupts_what_runs_cancels_what_waits_and_starts_nothing_new():
    """Ctrl-C with -j: the running items end at their next exec (Terminated), in well under
    the time they would have run; the queued one never starts; nothing starts after."""
    run = Run(jobs=2, primary=Cluster("first"))
    futures = [run.scheduler.start(i, run.work(execs=1000)) for i in range(3)]  # ~20 s each
    deadline = time.monotonic() + 10
    while len(run.used) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(run.used) == 2
    started = time.monotonic()
    run.scheduler.stop()
    assert time.monotonic() - started < 2.0
    for f in futures[:2]:
        with pytest.raises(Terminated, match=r"local run slot\d \(enforcing\) is stopping"):
            f.result(timeout=0)
    assert futures[2].cancelled() and len(run.used) == 2
    assert all(c.interrupted for c in run.made) and not run.primary.interrupted
    with pytest.raises(HarnessError, match="the run is stopping"):
        run.scheduler.start("late", run.work(1))
    assert sorted(c.run_id for c in run.scheduler.clusters("enforcing")) == ["slot1", "slot2"]
    assert run.scheduler.clusters("enforcing") == []      # handed over once, for teardown


def test_on_a_shared_cluster_a_scenario_that_must_run_alone_runs_with_no_other():
    """harness.backends.sharing: tenants of one cluster run beside each other, except one that
    must run alone (harness.scenario.sharing): it waits for those running, none starts beside
    it meanwhile, and the others go on after it."""
    from concurrent.futures import ThreadPoolExecutor

    from harness.backends.sharing import Sharing

    sharing, lock = Sharing(), threading.Lock()
    now, seen = [0], []

    def scenario(alone: bool) -> None:
        with sharing.held(alone):
            with lock:
                now[0] += 1
            for _ in range(10):
                with lock:
                    seen.append((alone, now[0]))
                time.sleep(0.01)
            with lock:
                now[0] -= 1

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(scenario, i in (2, 5)) for i in range(8)]:
            f.result(timeout=30)
    alone = [n for is_alone, n in seen if is_alone]
    assert len(alone) == 20 and set(alone) == {1}          # no other ran meanwhile
    assert max(n for is_alone, n in seen if not is_alone) > 1   # the others side by side
    assert sharing.running == (0, False)


def test_items_in_a_lane_run_one_at_a_time_on_a_cluster_apart_beside_the_pool():
    """The scenarios that must run alone on a backend of tenants (harness.backends.alone_apart):
    in a lane of their own, one at a time, on an extra cluster that no pool item gets, while
    the pool keeps all its workers (a lane item waiting never holds one)."""
    run = Run(jobs=2, primary=Cluster("first"))
    apart_now, apart_most, apart_used = [0], [0], []

    def lonely(log):
        backend = run.scheduler.acquire("enforcing", run.primary, log, apart=True)
        try:
            with run.lock:
                apart_now[0] += 1
                apart_most[0] = max(apart_most[0], apart_now[0])
                apart_used.append(backend.run_id)
            for _ in range(5):
                backend.exec("x/a", ["curl"], 1.0)
            return backend.run_id
        finally:
            with run.lock:
                apart_now[0] -= 1
            run.scheduler.release("enforcing", backend, run.primary)

    run.scheduler.start_all([(("alone", i), 10.0, lonely, "alone-enforcing") for i in range(3)]
                            + [(("pooled", i), 1.0, run.work(5), None) for i in range(6)])
    for key in [("alone", i) for i in range(3)] + [("pooled", i) for i in range(6)]:
        run.scheduler.start(key, run.work(1)).result(timeout=30)
    assert apart_most[0] == 1 and len(set(apart_used)) == 1          # one at a time, one cluster
    assert run.most == 2                                             # the pool kept both workers
    assert not set(apart_used) & set(run.used) and "first" not in apart_used
    made = [c.run_id for c in run.made]
    assert len(made) == 3 and all(c.ups == 1 for c in run.made)     # 2 for the pool, 1 apart
    assert sorted(c.run_id for c in run.scheduler.clusters("enforcing")) == sorted(made)


def test_an_idle_cluster_that_kept_what_an_item_needs_is_lent_first():
    """acquire's `prefer` (the session passes Backend.keeps of the scenario's model): among
    the idle clusters the one it is true for, else the last freed; never a busy one."""
    run = Run(jobs=3, primary=Cluster("first"))
    s = run.scheduler
    lent = [s.acquire("enforcing", run.primary, lambda line: None) for _ in range(3)]
    for c in lent:
        s.release("enforcing", c, run.primary)           # idle, freed in the order slot1..3
    keeper = lent[0]
    got = s.acquire("enforcing", run.primary, lambda line: None,
                    prefer=lambda b: b is keeper)
    assert got is keeper
    other = s.acquire("enforcing", run.primary, lambda line: None,
                      prefer=lambda b: b is keeper)      # the keeper is busy: the last freed
    assert other is lent[2]
    plain = s.acquire("enforcing", run.primary, lambda line: None)
    assert plain is lent[1] and len(run.made) == 3


def test_a_free_worker_takes_the_waiting_item_whose_pods_an_idle_cluster_kept():
    """start_all's `fits` (the session passes Backend.keeps of each scenario's model): a worker
    that becomes free takes the longest waiting item an idle cluster fits, before longer ones
    no idle cluster fits; with none fitting, the longest. Each item here is held until the
    test lets it end, so the order is the scheduler's, not timing's."""
    run = Run(jobs=2, primary=Cluster("first"))
    s = run.scheduler
    gates = {k: threading.Event() for k in ("A1", "B1", "C", "A2", "B2")}
    started: list[tuple[str, bool]] = []          # (item, whether its cluster kept its model)

    def item(name: str):
        model = name[0]

        def work(log):
            backend = s.acquire("enforcing", run.primary, log, prefer=lambda b: b.keeps(model))
            try:
                with run.lock:
                    started.append((name, backend.keeps(model)))
                gates[name].wait(10)
                backend.kept = model                    # as Backend.park keeps its pods
                return name
            finally:
                s.release("enforcing", backend, run.primary)
        return work

    def wait_started(n: int) -> None:
        deadline = time.monotonic() + 10
        while len(started) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(started) == n, started

    estimates = {"A1": 10.0, "B1": 9.0, "C": 8.0, "A2": 2.0, "B2": 1.0}
    s.start_all([(k, v, item(k), None) for k, v in estimates.items()],
                lambda key, b: b.keeps(str(key)[0]))
    wait_started(2)
    gates["A1"].set()
    wait_started(3)
    assert started[2] == ("A2", True)             # not C, the longest: no idle cluster kept C
    gates["A2"].set()
    wait_started(4)
    assert started[3] == ("C", False)             # none fits: the longest waiting, deployed anew
    gates["B1"].set()
    wait_started(5)
    assert started[4] == ("B2", True)
    for g in gates.values():
        g.set()
    assert sorted(s.start(k, item("x")).result(10)[0] for k in estimates) == sorted(estimates)
    assert len(run.made) == 2


def test_stop_cancels_the_items_start_all_left_waiting():
    run = Run(jobs=2, primary=Cluster("first"))
    gate = threading.Event()

    def held(log):
        gate.wait(10)
        return "held"

    run.scheduler.start_all([(i, 1.0, held, None) for i in range(4)], lambda key, b: False)
    deadline = time.monotonic() + 10
    futures = [run.scheduler.start(i, held) for i in range(4)]
    while sum(f.running() for f in futures) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    threading.Timer(0.2, gate.set).start()
    run.scheduler.stop()
    assert [f.result(0)[0] for f in futures[:2]] == ["held", "held"]
    assert futures[2].cancelled() and futures[3].cancelled()


def test_clusters_apart_that_no_item_needs_any_more_go_down_at_once():
    """retire: the idle clusters apart beyond what the items apart still to run need (those
    running hold theirs) go down during the run, not at its end; the pool's are not touched."""
    run = Run(jobs=2, primary=Cluster("first"))
    s, lines = run.scheduler, []
    pooled = s.acquire("enforcing", run.primary, lines.append)
    a = s.acquire("enforcing", run.primary, lines.append, apart=True)
    b = s.acquire("enforcing", run.primary, lines.append, apart=True)
    s.release("enforcing", pooled, run.primary)
    s.release("enforcing", a, run.primary)
    assert s.retire("enforcing", 2, lines.append) == [] and a.downs == 0  # b's item + one more
    assert s.retire("enforcing", 1, lines.append) == []                   # only b's, running
    assert a.downs == 1 and b.downs == 0 and pooled.downs == 0
    assert lines[-1] == f"taking down local/enforcing cluster apart (run {a.run_id}): no " \
                        "scenario left for it"
    s.release("enforcing", b, run.primary)
    s.retire("enforcing", 0, lines.append)
    assert b.downs == 1 and pooled.downs == 0
    assert s.clusters("enforcing") == [pooled]            # the rest is the teardown's


def test_items_queued_by_two_start_all_calls_each_keep_their_own_fits():
    """The session calls start_all once per CNI, each with a `fits` that knows its own items
    only: a worker asks each waiting item with the `fits` it was queued with (a run of two CNIs
    once hung here, a `fits` raising KeyError on the other CNI's item in a worker); a `fits`
    that raises fails its own item."""
    run = Run(jobs=2, primary=Cluster("first"))
    s = run.scheduler
    pooled = s.acquire("enforcing", run.primary, lambda line: None)
    s.release("enforcing", pooled, run.primary)          # an idle cluster: fits is asked

    def fits_of(mine: set):
        def fits(key, cluster):
            if key not in mine:
                raise KeyError(key)
            return False
        return fits

    gate = threading.Event()

    def done(log):
        gate.wait(10)      # both workers held until both calls have queued their items
        return "done"

    first, second = {("a", i) for i in range(4)}, {("b", i) for i in range(4)}
    s.start_all([(k, 1.0, done, None) for k in sorted(first)], fits_of(first))
    s.start_all([(k, 1.0, done, None) for k in sorted(second)], fits_of(second))
    gate.set()
    assert [s.start(k, done).result(10)[0] for k in sorted(first | second)] == ["done"] * 8
    s.start_all([(("c", 0), 1.0, done, None)], lambda key, cluster: 1 / 0 > 0)
    with pytest.raises(ZeroDivisionError):
        s.start(("c", 0), done).result(10)


def test_an_item_apart_is_lent_its_cluster_without_the_primary_and_a_pooled_one_is_not():
    """acquire(apart=True) with no primary (the session's items apart do not wait for the
    CNI's first cluster to come up): a cluster apart is made, lent, given back and lent again;
    a pooled item must name the primary (its limit is the primary's max_parallel)."""
    run = Run(jobs=2, primary=Cluster("first"))
    s, lines = run.scheduler, []
    a = s.acquire("enforcing", None, lines.append, apart=True)
    assert a is run.made[0] and a.ups == 1 and run.primary.ups == 0
    s.release("enforcing", a, None)
    assert s.acquire("enforcing", None, lines.append, apart=True) is a and a.ups == 1
    with pytest.raises(ValueError, match="only a cluster apart"):
        s.acquire("enforcing", None, lines.append)
