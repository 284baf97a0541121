"""Run a round of probes concurrently and classify each: the observed side of a truth table.

Why it knows nothing of expectations: the prober fills the observed table only (upstream
netpol `probe.go`); comparing with the expectation is verdicts.py's job. A blocked TCP probe
costs one connect timeout, so probes run in a bounded thread pool: a 9x9 matrix takes about
one timeout. A failed exec transport becomes TOOL_ERROR with its cause — never a policy outcome.

With the "debian" toolkit and batch=True, the TCP probes of one source run in one curl
(`--parallel`, see probes.batch_argv_for): process starts, not packets, are what a busy
two-core machine runs out of. Each transfer is still a new connection, classified on its own.
The default concurrency is 128 rather than 64 so that a 9x9 matrix fits in one wave.
"""

from __future__ import annotations

import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from harness.errors import BackendError, ExecError
from harness.model import Addresses
from harness.probes import (Outcome, ProbeOutcome, ProbeSpec, argv_for, batch_argv_for, classify,
                            split_batch)

#: extra seconds the exec may take beyond the tool's own timeout before it counts as hung
EXEC_MARGIN = 10.0


def real_name(backend, name: str) -> str:
    """A DNS name as the backend's cluster knows it. Why: scenarios write logical namespaces
    (`web.y.svc.cluster.local`) while kube backends create `np-<run>-y`; a backend that maps
    names has `real_dns_name` (harness.backends.kube), any other resolves names as written."""
    mapper = getattr(backend, "real_dns_name", None)
    return mapper(name) if mapper is not None else name


def destination(spec: ProbeSpec, addresses: Addresses, backend=None) -> str:
    """What the tool is pointed at: an IP for pods/Services/externals, else the name itself
    (mapped to the backend's real namespaces)."""
    t = spec.target
    if spec.is_dns:
        return real_name(backend, spec.dns_name)
    if t.startswith("svc:"):
        return addresses.service_ips[t[4:]]
    if t.startswith("ext:"):
        return addresses.external_ips[t[4:]]
    if t in addresses.pod_ips:
        return addresses.pod_ips[t]
    return real_name(backend, t)  # a name, resolved inside the source pod as an application would


def probe_one(backend, spec: ProbeSpec, addresses: Addresses, timeout: float,
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
    return classify(spec, result)


def probe_batch(backend, probes: list[tuple[ProbeSpec, str]], timeout: float
                ) -> dict[ProbeSpec, ProbeOutcome]:
    """TCP probes of one source in one batched curl; each classified on its own line."""
    started = time.monotonic()
    source = probes[0][0].source
    try:
        result = backend.exec(source, batch_argv_for(probes, timeout),
                              timeout=timeout * 2 + EXEC_MARGIN)
    except (ExecError, BackendError, ValueError) as exc:
        el = time.monotonic() - started
        return {s: ProbeOutcome(Outcome.TOOL_ERROR, None, f"{type(exc).__name__}: {exc}", el)
                for s, _ in probes}
    per = split_batch(probes, result)
    out = {}
    for spec, _ in probes:
        if spec in per:
            out[spec] = classify(spec, per[spec])
        else:
            out[spec] = ProbeOutcome(Outcome.TOOL_ERROR, None,
                                     f"batched curl gave no result for this probe (exit "
                                     f"{result.returncode}: {result.stderr.strip()[:200]})",
                                     result.elapsed)
    return out


def _plan(specs: list[ProbeSpec], addresses: Addresses, toolkit: str, batch: bool, backend=None):
    """Tasks: ("one", spec) or ("batch", [(spec, dest), ...]) grouped by source."""
    tasks, groups = [], {}
    for s in specs:
        dest = None
        if batch and toolkit == "debian" and not s.is_dns and s.protocol.value == "TCP" \
                and isinstance(s.port, int):
            try:
                dest = destination(s, addresses, backend)
            except KeyError:
                dest = None
        if dest is None:
            tasks.append(("one", s))
            continue
        group = groups.setdefault(s.source, {})
        url = f"{dest}:{s.port}"
        if url in group:            # the same URL twice: results are matched by URL
            tasks.append(("one", s))
        else:
            group[url] = (s, dest)
    for group in groups.values():
        items = list(group.values())
        if len(items) == 1:
            tasks.append(("one", items[0][0]))
        else:
            tasks.append(("batch", items))
    return tasks


def probe_round(backend, specs: Iterable[ProbeSpec], addresses: Addresses, timeout: float,
                concurrency: int = 128, toolkit: str = "debian", batch: bool = True
                ) -> dict[ProbeSpec, ProbeOutcome]:
    """Every probe of one round, concurrently (at most `concurrency` execs at once), in input
    order."""
    specs = list(dict.fromkeys(specs))
    if not specs:
        return {}
    tasks = _plan(specs, addresses, toolkit, batch, backend)
    results: dict[ProbeSpec, ProbeOutcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(tasks)))) as pool:
        futures = []
        for kind, arg in tasks:
            if kind == "one":
                futures.append(pool.submit(lambda s=arg: {s: probe_one(backend, s, addresses,
                                                                        timeout, toolkit)}))
            else:
                futures.append(pool.submit(probe_batch, backend, arg, timeout))
        for f in futures:
            results.update(f.result())
    return {s: results[s] for s in specs}
