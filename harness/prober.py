"""Run a round of probes concurrently and classify each: the observed side of a truth table.

Why it knows nothing of expectations: the prober fills the observed table only (upstream
netpol `probe.go`); comparing with the expectation is verdicts.py's job. A blocked TCP probe
costs one connect timeout, so probes run in a bounded thread pool: a 9x9 matrix takes about
one timeout. A failed exec transport becomes TOOL_ERROR with its cause — never a policy outcome.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from harness.errors import BackendError, ExecError
from harness.model import Addresses
from harness.probes import Outcome, ProbeOutcome, ProbeSpec, argv_for, classify

#: extra seconds the exec may take beyond the tool's own timeout before it counts as hung
EXEC_MARGIN = 5.0


def destination(spec: ProbeSpec, addresses: Addresses) -> str:
    """What the tool is pointed at: an IP for pods/Services/externals, else the name itself."""
    t = spec.target
    if spec.is_dns:
        return spec.dns_name
    if t.startswith("svc:"):
        return addresses.service_ips[t[4:]]
    if t.startswith("ext:"):
        return addresses.external_ips[t[4:]]
    if t in addresses.pod_ips:
        return addresses.pod_ips[t]
    return t  # a DNS name, resolved inside the source pod as an application would


def probe_one(backend, spec: ProbeSpec, addresses: Addresses, timeout: float,
              toolkit: str = "debian") -> ProbeOutcome:
    """One probe: build the argv, exec it in the source, classify the result."""
    started = time.monotonic()
    try:
        argv = argv_for(spec, destination(spec, addresses), timeout, toolkit)
        result = backend.exec(spec.source, argv, timeout=timeout * 2 + EXEC_MARGIN)
    except (ExecError, BackendError, KeyError, ValueError) as exc:
        return ProbeOutcome(Outcome.TOOL_ERROR, None, f"{type(exc).__name__}: {exc}",
                            time.monotonic() - started)
    return classify(spec, result)


def probe_round(backend, specs: Iterable[ProbeSpec], addresses: Addresses, timeout: float,
                concurrency: int = 64, toolkit: str = "debian") -> dict[ProbeSpec, ProbeOutcome]:
    """Every probe of one round, concurrently (at most `concurrency` at once), in input order."""
    specs = list(dict.fromkeys(specs))
    if not specs:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(specs)))) as pool:
        futures = [pool.submit(probe_one, backend, s, addresses, timeout, toolkit) for s in specs]
        return {s: f.result() for s, f in zip(specs, futures)}
