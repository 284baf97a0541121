"""Run a round of probes concurrently and classify each: the observed side of a truth table.

Why it knows nothing of expectations: the prober fills the observed table only (upstream
netpol `probe.go`); comparing with the expectation is verdicts.py's job. A blocked TCP probe
costs one connect timeout, so probes run in a bounded thread pool: a 9x9 matrix takes about
one timeout. A failed exec transport becomes TOOL_ERROR with its cause — never a policy outcome.

With batch=True, the UDP probes of one source run in one UDP client (probes.udp_argv_for: this
machine's python3 for the "debian" toolkit, bash in the agnhost image for "agnhost") and its TCP
probes in one curl (`--parallel`, see probes.batch_argv_for; on "agnhost" each body kept, as the
servers name the pod in it): process starts, not packets, are what a busy two-core machine runs
out of. On the "agnhost" toolkit (kube backends: each exec goes through the API server, the
kubelet and the runtime) every task of one source then runs in one exec (probe_source,
probes.source_batch_argv): a round is one exec per source. Each transfer is still a new
connection (a new socket), classified on its own by the rule its own exec's output would be.
Which kinds batch, on which toolkits and to what, is each kind's Batch (probes.KINDS).
At most `concurrency` processes run at once (`--netpol-concurrency`, default 16 in
harness.settings): with the probes of one source and kind in one process, a 9x9 TCP matrix is
nine processes, one wave.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Iterable

from harness.backends.base import Backend
from harness.errors import BackendError, ExecError, ExecResult, HarnessError
from harness.model import Addresses, Endpoint, Protocol
from harness.probes import (
    SOURCE_BATCH_TOOLKITS,
    Outcome,
    ProbeOutcome,
    ProbeSpec,
    after_second_look,
    argv_for,
    classify,
    late_grace,
    second_look_argv,
    source_batch_argv,
    split_source_batch,
)

#: pause between probe rounds: a blocked probe already costs one connect timeout per round
ROUND_PAUSE = 0.1
#: extra seconds the exec may take beyond the tool's own timeout before it counts as hung
EXEC_MARGIN = 10.0


def real_name(backend: Backend | None, name: str) -> str:
    """A DNS name as the backend's cluster knows it. Why: scenarios write logical namespaces
    (`web.y.svc.cluster.local`) while kube backends create `np-<run>-y`: Backend.real_dns_name
    maps them (harness.backends.kube); any other backend's names are as written."""
    return backend.real_dns_name(name) if backend is not None else name


def destination(spec: ProbeSpec, addresses: Addresses | None, backend: Backend | None = None
                ) -> str:
    """What the tool is pointed at: an IP for pods/Services/externals, else the name itself
    (mapped to the backend's real namespaces). With no addresses (a loopback probe to
    127.0.0.1) the target is used as written."""
    if spec.dns_name is not None:   # spec.is_dns
        return real_name(backend, spec.dns_name)
    if addresses is None:
        return spec.target
    ep = Endpoint.parse(spec.target)
    if ep.is_service or ep.is_external or spec.target in addresses.pod_ips:
        return addresses.ip_of(ep)
    return real_name(backend, spec.target)  # a name, resolved inside the source pod


def probe_one(backend: Backend, spec: ProbeSpec, addresses: Addresses | None, timeout: float,
              toolkit: str = "debian") -> ProbeOutcome:
    """One probe: build the argv, exec it in the source, classify the result."""
    started = time.monotonic()
    try:
        dest = destination(spec, addresses, backend)
        argv = argv_for(replace(spec, dns_name=dest) if spec.is_dns else spec, dest, timeout,
                        toolkit)
        result = backend.exec(spec.source, argv, timeout=timeout * 2 + EXEC_MARGIN)
    except (ExecError, BackendError, KeyError, ValueError) as exc:
        return ProbeOutcome(Outcome.TOOL_ERROR, None, f"{type(exc).__name__}: {exc}",
                            time.monotonic() - started)
    return second_looks(backend, [(spec, dest, classify(spec, result))], timeout, toolkit)[spec]


def second_looks(backend: Backend, probes: list[tuple[ProbeSpec, str, ProbeOutcome]],
                 timeout: float, toolkit: str = "debian") -> dict[ProbeSpec, ProbeOutcome]:
    """Each probe's outcome after its second observation, where it needs one
    (probes.second_look_argv: a lookup or an agnhost UDP probe that timed out). One second
    look per distinct argv of a source (a name looked up once for all its probes), at once."""
    out = {spec: o for spec, _, o in probes}
    looks: dict[tuple[str, ...], list[ProbeSpec]] = {}
    for spec, dest, o in probes:
        argv = second_look_argv(spec, dest, o.outcome, timeout, toolkit)
        if argv is not None:
            looks.setdefault(tuple(argv), []).append(spec)
    if not looks:
        return out

    def look(argv: tuple[str, ...]) -> None:
        specs = looks[argv]
        try:
            result = backend.exec(specs[0].source, list(argv), timeout=second_look_timeout(timeout))
        except (ExecError, BackendError) as exc:
            for spec in specs:
                out[spec] = replace(out[spec], detail=f"{out[spec].detail}; the second look "
                                                      f"failed ({type(exc).__name__}: {exc})")
            return
        for spec in specs:
            out[spec] = after_second_look(out[spec], spec, result)

    with ThreadPoolExecutor(max_workers=len(looks)) as pool:
        for f in [pool.submit(look, argv) for argv in looks]:
            f.result()
    return out


def second_look_timeout(timeout: float) -> float:
    """How long a second look may run: nslookup tries the search path one name at a time (up
    to six queries with the pods' ndots:5), each waiting timeout + grace."""
    return 6 * math.ceil(timeout + late_grace(timeout)) + EXEC_MARGIN


def loopback_probe(backend: Backend, endpoint: str, port: int, protocol: Protocol,
                   timeout: float, dns_name: str | None = None) -> ProbeOutcome:
    """Probe a server from inside its own pod on 127.0.0.1: proves it serves, whatever policy says.

    The positive control when no source may reach a target: the upstream readiness probe, a
    request to the server on 127.0.0.1 inside its own pod. For DNS the query goes to 127.0.0.1
    as the server (nslookup NAME 127.0.0.1), unless the backend names a DNS-control client
    (`dns_control()` -> (endpoint, server address)): a cluster DNS image without tools
    (CoreDNS is distroless) is then asked from that pod, which no scenario policy selects.
    """
    if dns_name:
        via = backend.dns_control()   # only kube backends with a DNS-control pod name one
        endpoint, server = via if via else (endpoint, "127.0.0.1")
        spec = ProbeSpec(endpoint, server, 53, Protocol.UDP, real_name(backend, dns_name))
        argv = argv_for(spec, real_name(backend, dns_name), timeout, backend.toolkit) + [server]
        started = time.monotonic()
        try:
            res = backend.exec(endpoint, argv, timeout=timeout * 2 + EXEC_MARGIN)
        except HarnessError as exc:
            return ProbeOutcome(Outcome.TOOL_ERROR, None, f"{type(exc).__name__}: {exc}",
                                time.monotonic() - started)
        return classify(spec, res)
    spec = ProbeSpec(endpoint, "127.0.0.1", port, protocol)
    return probe_one(backend, spec, None, timeout, backend.toolkit)


def _is_address(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def probe_batch(backend: Backend, probes: list[tuple[ProbeSpec, str]], timeout: float,
                toolkit: str = "debian") -> dict[ProbeSpec, ProbeOutcome]:
    """Probes of one source and kind in one process (its kind's Batch: a batched curl for TCP,
    the UDP client for UDP); each classified on its own line of output."""
    started = time.monotonic()
    source = probes[0][0].source
    batch = probes[0][0].kind.batch
    assert batch is not None, "only a kind with a Batch is batched"
    try:
        argv = batch.argv(probes, timeout, toolkit)
        result = backend.exec(source, argv, timeout=timeout * 2 + EXEC_MARGIN)
    except (ExecError, BackendError, ValueError) as exc:
        el = time.monotonic() - started
        return {s: ProbeOutcome(Outcome.TOOL_ERROR, None, f"{type(exc).__name__}: {exc}", el)
                for s, _ in probes}
    per = batch.split(probes, result)
    out = []
    for spec, dest in probes:
        if spec in per:
            out.append((spec, dest, classify(spec, per[spec])))
        else:
            out.append((spec, dest, ProbeOutcome(
                Outcome.TOOL_ERROR, None, f"the batched probe process gave no result for this "
                f"probe (exit {result.returncode}: {result.stderr.strip()[:200]})",
                result.elapsed)))
    return second_looks(backend, out, timeout, backend.toolkit)


def _plan(specs: list[ProbeSpec], addresses: Addresses, toolkit: str, batch: bool,
          backend: Backend | None = None) -> list[tuple[str, Any]]:
    """Tasks: ("one", spec) or ("batch", [(spec, dest), ...]) grouped by source and kind, as
    each kind's Batch allows (harness.probes.KINDS: TCP probes batch to any destination, curl
    resolving names itself in parallel; UDP probes only to addresses)."""
    tasks: list[tuple[str, Any]] = []
    groups: dict[Any, dict[str, tuple[ProbeSpec, str]]] = {}
    for s in specs:
        dest = None
        rule = s.kind.batch
        if batch and rule is not None and toolkit in rule.toolkits and isinstance(s.port, int):
            try:
                dest = destination(s, addresses, backend)
            except KeyError:
                dest = None
            if dest is not None and not rule.names and not _is_address(dest):
                dest = None
        if dest is None:
            tasks.append(("one", s))
            continue
        group = groups.setdefault((s.source, s.kind.name), {})
        url = f"{dest}:{s.port}"
        if url in group:            # the same target twice: results are matched by target
            tasks.append(("one", s))
        else:
            group[url] = (s, dest)
    for group in groups.values():
        items = list(group.values())
        rule = items[0][0].kind.batch
        if len(items) == 1 and rule is not None and rule.single:
            tasks.append(("one", items[0][0]))
        else:
            tasks.append(("batch", items))
    return tasks


def _task_argv(task: tuple[str, Any], addresses: Addresses, timeout: float, toolkit: str,
               backend: Backend) -> tuple[list[str], list[tuple[ProbeSpec, str]]]:
    """A task's argv and its (probe, destination)s, as its own exec's; KeyError/ValueError."""
    kind, arg = task
    if kind == "one":
        spec = arg
        dest = destination(spec, addresses, backend)
        return argv_for(replace(spec, dns_name=dest) if spec.is_dns else spec, dest, timeout,
                        toolkit), [(spec, dest)]
    batch = arg[0][0].kind.batch
    assert batch is not None, "only a kind with a Batch is batched"
    return batch.argv(arg, timeout, toolkit), list(arg)


def _task_outcomes(task: tuple[str, Any], probes: list[tuple[ProbeSpec, str]],
                   result: ExecResult | None, why: str
                   ) -> list[tuple[ProbeSpec, str, ProbeOutcome]]:
    """Each probe's first outcome from its task's result, as from its own exec's; TOOL_ERROR
    (`why`) for a task without a result, or a probe its batch gave none for."""
    if result is None:
        return [(s, d, ProbeOutcome(Outcome.TOOL_ERROR, None, why, 0.0)) for s, d in probes]
    if task[0] == "one":
        return [(probes[0][0], probes[0][1], classify(probes[0][0], result))]
    batch = probes[0][0].kind.batch
    assert batch is not None
    per = batch.split(probes, result)
    return [(s, d, classify(s, per[s]) if s in per else ProbeOutcome(
        Outcome.TOOL_ERROR, None, f"the batched probe process gave no result for this probe "
        f"(exit {result.returncode}: {result.stderr.strip()[:200]})", result.elapsed))
        for s, d in probes]


def probe_source(backend: Backend, tasks: list[tuple[str, Any]], addresses: Addresses,
                 timeout: float, toolkit: str) -> dict[ProbeSpec, ProbeOutcome]:
    """Every task of one source (probes and batches of one kind, from _plan) in one exec
    (probes.source_batch_argv): each task's result split back out and classified as its own
    exec's would be (_task_outcomes). The exec gets the time one probe's exec gets: each job's
    tool is bounded as it is alone, and they run at once.

    A failed or timed-out exec, or one that did not run to its end, is a TOOL_ERROR for every
    probe in it (split_source_batch believes no line of a batch without its end mark); a job
    without a whole line is one for its probes. Never a policy outcome."""
    started = time.monotonic()
    source = tasks[0][1].source if tasks[0][0] == "one" else tasks[0][1][0][0].source
    built: list[tuple[tuple[str, Any], list[str], list[tuple[ProbeSpec, str]]]] = []
    out: list[tuple[ProbeSpec, str, ProbeOutcome]] = []
    for task in tasks:
        try:
            argv, probes = _task_argv(task, addresses, timeout, toolkit, backend)
        except (KeyError, ValueError) as exc:
            specs = [task[1]] if task[0] == "one" else [s for s, _ in task[1]]
            out += [(s, "", ProbeOutcome(Outcome.TOOL_ERROR, None, f"{type(exc).__name__}: "
                                         f"{exc}", 0.0)) for s in specs]
            continue
        built.append((task, argv, probes))
    if built:
        jobs = [argv for _, argv, _ in built]
        results: list[ExecResult | None]
        try:
            result = backend.exec(source, source_batch_argv(jobs), timeout=timeout * 2 + EXEC_MARGIN)
            results = split_source_batch(jobs, result)
            why = (f"the source's batch exec gave no whole result for this probe (exit "
                   f"{result.returncode}: {(result.stderr or result.stdout).strip()[-200:]})")
        except (ExecError, BackendError) as exc:
            results = [None] * len(jobs)
            why = f"{type(exc).__name__}: {exc}"
        el = time.monotonic() - started
        for (task, _, probes), res in zip(built, results, strict=True):
            got = _task_outcomes(task, probes, res, why)
            out += [(s, d, o if res is not None else replace(o, elapsed=el)) for s, d, o in got]
    return second_looks(backend, out, timeout, toolkit)


def probe_round(backend: Backend, specs: Iterable[ProbeSpec], addresses: Addresses, timeout: float,
                concurrency: int = 16, toolkit: str = "debian", batch: bool = True,
                per_source: bool = True) -> dict[ProbeSpec, ProbeOutcome]:
    """Every probe of one round, concurrently (at most `concurrency` execs at once), in input
    order; with per_source on a SOURCE_BATCH_TOOLKITS toolkit, a source's tasks in one exec."""
    specs = list(dict.fromkeys(specs))
    if not specs:
        return {}
    tasks = _plan(specs, addresses, toolkit, batch, backend)
    work: list[tuple[str, Any]] = tasks
    if batch and per_source and toolkit in SOURCE_BATCH_TOOLKITS:
        by_source: dict[str, list[tuple[str, Any]]] = {}
        for t in tasks:
            by_source.setdefault(t[1].source if t[0] == "one" else t[1][0][0].source, []).append(t)
        work = [w for g in by_source.values() for w in ([("source", g)] if len(g) > 1 else g)]
    results: dict[ProbeSpec, ProbeOutcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(work)))) as pool:
        def one(s: ProbeSpec) -> dict[ProbeSpec, ProbeOutcome]:
            return {s: probe_one(backend, s, addresses, timeout, toolkit)}

        futures = []
        for kind, arg in work:
            if kind == "one":
                futures.append(pool.submit(one, arg))
            elif kind == "source":
                futures.append(pool.submit(probe_source, backend, arg, addresses, timeout,
                                           toolkit))
            else:
                futures.append(pool.submit(probe_batch, backend, arg, timeout, toolkit))
        for f in futures:
            results.update(f.result())
    return {s: results[s] for s in specs}
