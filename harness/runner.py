"""One scenario end to end: deploy -> baseline -> for each step: change, probe until settled,
judge -> result. The only sequencing code of a run.

Why it reads as a story: a failing run is debugged from its log, so every step says what it did
(labels, deletes, applies), how many rounds it probed and what it found. Expectations come from
the scenario (harness.scenario / the oracle), observations from harness.prober, verdicts from
harness.verdicts; this module only orders them. Polling never leans toward the expectation:
every attempt of every cell is kept, a step ends when two consecutive rounds agree on every
verdict (or the convergence deadline passes), and a cell's verdict is its last round's.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Hashable

from harness import scenario as scn
from harness.canary import loopback_probe, toolkit_of
from harness.errors import HarnessError
from harness.expected import expected_cells, model_at
from harness.model import DNS_POD, SYSTEM_NAMESPACE, Addresses, Model, Protocol
from harness.prober import probe_round
from harness.probes import Outcome, ProbeOutcome, ProbeSpec
from harness.results import Attempt, CellResult, Expectation, ScenarioResult, StepResult, Verdict
from harness.verdicts import (Judgement, all_pass, blocked_kind, judge, positive_controls,
                              scenario_outcome, self_probe_proves, settled)

Log = Callable[[str], None]
#: pause between probe rounds: a blocked probe already costs one connect timeout per round
ROUND_PAUSE = 0.1
#: the baseline retries a cell at least this often before calling the network broken
BASELINE_MIN_ROUNDS = 3
#: a step is probed at least this often: two rounds must agree before anything is final
STEP_MIN_ROUNDS = 2


@dataclass
class Cell:
    """One probed cell of a step: what to run, what the spec says, and what was seen."""

    spec: ProbeSpec
    expectation: Expectation
    reason: str
    #: cells probing the same server share a control key (target, port, protocol)
    control_key: Hashable
    #: (endpoint, port, protocol, dns_name) for a loopback self-probe, or None when impossible
    loopback: tuple | None
    nxdomain: bool = False
    #: for a probe by DNS name: the cluster DNS server's control key and loopback probe, which
    #: decide a round where the lookup itself timed out
    dns_key: Hashable | None = None
    dns_loopback: tuple | None = None
    #: False when the target pod does not serve the port at all (nothing to baseline)
    served: bool = True
    attempts: list[Attempt] = field(default_factory=list)
    last: Judgement | None = None

    def looked_up_name(self, o: ProbeOutcome | None) -> bool:
        """True when this name-based probe got past name resolution in that round."""
        return (self.dns_key is not None and o is not None
                and o.outcome not in _NAME_NOT_RESOLVED)

    def control_for(self, o: ProbeOutcome | None) -> tuple[Hashable, tuple | None]:
        """(control key, loopback probe) that must back a blocked outcome of this round: the
        DNS server when the lookup timed out or failed, else the server behind the target."""
        if self.dns_key is not None and o is not None and \
                o.outcome in (Outcome.DNS_TIMEOUT, Outcome.DNS_FAILED):
            return self.dns_key, self.dns_loopback
        return self.control_key, self.loopback

    def result(self) -> CellResult:
        j = self.last
        reason = self.reason
        if j is not None and j.verdict in (Verdict.PROBE_ERROR,):
            reason = f"{j.reason} (spec: {self.reason})"
        return CellResult(self.spec.source, self.spec.target, str(self.spec.port),
                          self.spec.protocol.value, self.expectation.value,
                          j.observed if j else "not probed",
                          (j.verdict if j else Verdict.PROBE_ERROR).value, reason,
                          list(self.attempts), self.spec.dns_name)


def _short(o: ProbeOutcome | None, limit: int = 240) -> ProbeOutcome | None:
    """The outcome with a one-line detail: an exec error's detail holds the whole argv (the
    UDP client is a script), which would bury every report."""
    if o is None or ("\n" not in o.detail and len(o.detail) <= limit):
        return o
    first = o.detail.splitlines()[0] if o.detail else ""
    return replace(o, detail=(first[:limit] + " ...").strip())


def _reason_text(decision) -> str:
    reasons = getattr(decision, "reasons", None) or ()
    return "; ".join(r.text for r in reasons) or "scenario expectation"


def _dns_pod(model: Model) -> str:
    for p in model.pods:
        if p.system and p.labels.get("k8s-app") == "kube-dns":
            return p.key
    return f"{SYSTEM_NAMESPACE}/{DNS_POD}"


#: outcomes of a probe by name that never got past name resolution
_NAME_NOT_RESOLVED = frozenset({Outcome.DNS_TIMEOUT, Outcome.DNS_FAILED, Outcome.TOOL_ERROR})


def _server_of(model: Model, source: str, target: str, port, protocol: Protocol
               ) -> tuple | None:
    """(endpoint, numeric port, protocol) of the server a probe reaches, or None.

    Why: cells that reach the same server (a pod directly, through its Service's IP or through
    the Service's DNS name) share one positive control; keyed by the target as written, a probe
    by name could never be backed by the direct probes of the same server.
    """
    if target.startswith("ext:"):
        return (target, port, protocol) if isinstance(port, int) else None
    if target.startswith("svc:"):
        try:
            svc = model.service(target[4:])
        except KeyError:
            return None
    else:
        try:
            pod = model.pod(target)
        except KeyError:
            ns = source.partition("/")[0] if "/" in source else None
            svc = model.find_service_by_dns(target, ns)
            if svc is None:
                return None  # an address or a foreign name: only another source can prove it
        else:
            n = pod.resolve_port(port, protocol)
            return (pod.key, n, protocol) if n else None
    for sp in svc.ports:
        if sp.port == port and sp.protocol == protocol:
            for pod in model.service_backends(svc):
                n = pod.resolve_port(sp.target_port, protocol)
                if n:
                    return (pod.key, n, protocol)
    return None


def _serves(model: Model, server: tuple | None, target: str) -> bool:
    """False only when the target is a pod of the model that does not serve the port."""
    if server is None:
        try:
            model.pod(target)
        except KeyError:
            return True
        return False
    endpoint, port, protocol = server
    if endpoint.startswith("ext:"):
        return True
    return model.pod(endpoint).serves(port, protocol)


def _is_name(model: Model, target: str) -> bool:
    """True for a target written as a DNS name (resolved inside the source pod)."""
    if target.startswith(("svc:", "ext:")) or target.replace(".", "").isdigit():
        return False
    try:
        model.pod(target)
    except KeyError:
        return True
    return False


def plan_cells(model: Model, expected) -> list[Cell]:
    """Cells to probe from the scenario's expected cells of one step (named ports resolved)."""
    cells = []
    dns = _dns_pod(model)
    for e in expected:
        protocol = e.protocol if isinstance(e.protocol, Protocol) else Protocol.parse(e.protocol)
        dns_name = getattr(e, "dns_name", None)
        port = e.port
        if dns_name:
            spec = ProbeSpec(e.source, e.target, port, protocol, dns_name)
            key: Hashable = ("dns", dns, protocol.value)
            loop = (dns, 53, protocol, dns_name)
            served = True
        else:
            if isinstance(port, str) and not port.isdigit():
                try:
                    port = model.pod(e.target).resolve_port(port, protocol) or port
                except KeyError:
                    pass
            elif isinstance(port, str):
                port = int(port)
            spec = ProbeSpec(e.source, e.target, port, protocol)
            server = _server_of(model, e.source, e.target, port, protocol)
            key = (server[0], server[1], server[2].value) if server else \
                (e.target, port, protocol.value)
            served = _serves(model, server, e.target)
            loop = (*server, None) if server and served else None
        by_name = not dns_name and _is_name(model, e.target)
        decision = getattr(e, "decision", None)
        cells.append(Cell(spec, Expectation(getattr(e.expectation, "value", e.expectation)),
                          _reason_text(decision), key, loop,
                          nxdomain=bool(getattr(decision, "nxdomain", False)),
                          dns_key=("dns", dns, Protocol.UDP.value) if by_name else None,
                          dns_loopback=(dns, 53, Protocol.UDP, e.target) if by_name else None,
                          served=served))
    return cells


class Run:
    """The state of one scenario run on one backend; `run_scenario` is its public face."""

    def __init__(self, scenario, backend, settings, log: Log):
        self.scenario, self.backend, self.settings, self.log = scenario, backend, settings, log
        caps = backend.capabilities()
        self.deny_response = caps.deny_response
        self.dns_proxy = "fqdn" in caps.supported
        self.declared_enforcing = caps.enforces
        self.addresses: Addresses | None = None
        self.policies_seen = 0
        self.applied_kinds: dict[str, str] = {}
        #: how long a stable non-pass result must last; none when the canary already proved
        #: (by waiting the full deadline) that this cluster enforces nothing
        self.settle = settings.settle_seconds

    # -- one round -----------------------------------------------------------------------------
    def probe(self, cells: list[Cell], round_no: int, expectation_override: Expectation | None = None
              ) -> dict[Hashable, Verdict]:
        """Probe every cell once, add positive controls, judge, record attempts."""
        s = self.settings
        observed = probe_round(self.backend, [c.spec for c in cells], self.addresses,
                               s.probe_timeout, s.concurrency, toolkit_of(self.backend))

        def exp(c: Cell) -> Expectation:
            return expectation_override or c.expectation

        controls = self.controls(cells, observed, exp)
        verdicts: dict[Hashable, Verdict] = {}
        for i, c in enumerate(cells):
            o: ProbeOutcome | None = _short(observed.get(c.spec))
            control = controls.get(c.control_for(o)[0])
            if c.nxdomain and o is not None and o.outcome.value == "dns-nxdomain" \
                    and exp(c) == Expectation.DENY:
                j = Judgement(Verdict.PASS, o.outcome.value, "the DNS server answered that the "
                                                              "name does not exist, as the spec says")
            else:
                j = judge(exp(c), o, control, self.deny_response, self.dns_proxy)
            c.last = j
            # A control matters only for a cell that did not get through; a delivered probe
            # proves its own server, so None ("not needed") is recorded for it.
            needed = o is not None and o.outcome.delivered is not True
            c.attempts.append(Attempt(round_no, o.outcome.value if o else "exec-failed",
                                      round(o.elapsed, 4) if o else 0.0,
                                      o.answered_by if o else None, o.detail if o else "",
                                      bool(control) if needed else None))
            verdicts[i] = j.verdict
        return verdicts

    def controls(self, cells: list[Cell], observed: dict, exp) -> dict[Hashable, bool]:
        """Positive controls of one round: an allowed source that connected, else (for blocked
        cells only) the server's own loopback answer, asked in the same round."""
        s = self.settings
        controls = positive_controls((c.control_for(observed.get(c.spec))[0], exp(c),
                                      observed.get(c.spec)) for c in cells)
        for c in cells:
            # a probe by name that got past resolution proves the DNS server answered
            if c.looked_up_name(observed.get(c.spec)):
                controls[c.dns_key] = True
        need = {}
        for c in cells:
            o = observed.get(c.spec)
            key, loopback = c.control_for(o)
            if o is not None and blocked_kind(o.outcome, self.deny_response, self.dns_proxy) \
                    == "blocked" and not controls.get(key) and loopback:
                need[key] = loopback
        if need:
            with ThreadPoolExecutor(max_workers=max(1, min(s.concurrency, len(need)))) as pool:
                futs = {k: pool.submit(loopback_probe, self.backend, ep, port, proto,
                                       s.probe_timeout, dns)
                        for k, (ep, port, proto, dns) in need.items()}
                for k, f in futs.items():
                    controls[k] = self_probe_proves(f.result())
        return controls

    # -- baseline ------------------------------------------------------------------------------
    def baseline(self, steps_cells: list[list[Cell]]) -> StepResult:
        """Before any policy every probed cell must connect or resolve; else the network is broken."""
        seen: dict[ProbeSpec, Cell] = {}
        for cells in steps_cells:
            for c in cells:
                # a port the target does not serve has nothing to connect to, policy or not:
                # left out of the baseline unless the scenario asserts the cell (then the
                # refused baseline is the scenario's or the harness's error, reported as such)
                asserted = c.expectation != Expectation.UNDEFINED
                if c.spec.source != c.spec.target and (c.served or asserted) \
                        and c.spec not in seen:
                    seen[c.spec] = Cell(c.spec, Expectation.ALLOW,
                                        "baseline: no policy exists, everything must connect",
                                        c.control_key, c.loopback, dns_key=c.dns_key,
                                        dns_loopback=c.dns_loopback)
        cells = list(seen.values())
        started = time.monotonic()
        rounds = 0
        ok = False
        pending = cells
        # Unlike a step, the baseline only asks "does the network work at all?": a cell that
        # connected once is healthy, so later rounds re-probe only the others (a slow exec on a
        # loaded machine is retried, not called a broken network), for at least
        # BASELINE_MIN_ROUNDS rounds and until the convergence deadline.
        while True:
            rounds += 1
            self.probe(pending, rounds)
            pending = [c for c in pending if c.last is None or c.last.verdict != Verdict.PASS]
            if not pending:
                ok = True
                break
            if rounds >= BASELINE_MIN_ROUNDS and \
                    time.monotonic() - started >= self.settings.converge_timeout:
                break
            time.sleep(ROUND_PAUSE)
        step = StepResult(0, "baseline: no policy, everything connects", ok,
                          round(time.monotonic() - started, 3) if ok else None, rounds,
                          [c.result() for c in cells])
        if not ok:
            bad = [c for c in cells if c.last and c.last.verdict != Verdict.PASS]
            listed = "; ".join(f"{c.spec.label}: {c.last.observed}" for c in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            step.infra_error = (f"baseline: {len(bad)} of {len(cells)} probes did not connect "
                                f"before any policy ({listed}{more}); the network or the harness "
                                "is broken, so no policy verdict is given")
        self.log(f"  baseline: {len(cells)} probes, {'all connected' if ok else 'FAILED'} "
                 f"({rounds} round{'s' * (rounds != 1)}, {time.monotonic() - started:.2f}s)")
        return step

    # -- steps ---------------------------------------------------------------------------------
    def change(self, step) -> None:
        """Labels, then deletes, then applies (the order docs/scenarios.md promises)."""
        ns_labels = getattr(step, "namespace_labels", None) or {}
        pod_labels = getattr(step, "pod_labels", None) or {}
        if ns_labels or pod_labels:
            self.backend.set_labels(ns_labels, pod_labels)
            self.log(f"    labels: {dict(ns_labels) or ''} {dict(pod_labels) or ''}".rstrip())
        for key in getattr(step, "delete", ()) or ():
            ns, _, name = str(key).partition("/")
            self.backend.delete_policy(ns, name, self.applied_kinds.pop(str(key), "NetworkPolicy"))
            self.log(f"    deleted {key}")
        for doc in getattr(step, "apply", ()) or ():
            manifest = scn.render_manifest(doc.manifest, self.addresses)
            self.backend.apply_policy(manifest)
            meta = manifest.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") \
                else str(meta.get("name"))
            self.applied_kinds[key] = str(manifest.get("kind"))
            self.log(f"    applied {manifest.get('kind')} {key} ({getattr(doc, 'origin', '')})")
        self.policies_seen = max(self.policies_seen, self.backend.policy_count())

    def converge(self, index: int, title: str, cells: list[Cell], applied: float) -> StepResult:
        """Probe rounds until two consecutive rounds agree (and, for a non-pass result, the
        settle time has passed) or the convergence deadline passes."""
        s = self.settings
        prev: dict | None = None
        prev_start = applied
        rounds = 0
        converged, seconds = False, None
        while True:
            rounds += 1
            start = time.monotonic()
            verdicts = self.probe(cells, rounds)
            if settled(verdicts, prev) and (all_pass(verdicts)
                                            or time.monotonic() - applied >= self.settle):
                converged, seconds = True, round(prev_start - applied, 3)
                break
            if rounds >= STEP_MIN_ROUNDS and time.monotonic() - applied >= s.converge_timeout:
                break
            prev, prev_start = verdicts, start
            time.sleep(ROUND_PAUSE)
        step = StepResult(index, title, converged, seconds, rounds, [c.result() for c in cells])
        counts: dict[str, int] = {}
        for c in step.cells:
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
        text = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        when = f"settled after {seconds:.2f}s" if converged else \
            f"did NOT settle within {s.converge_timeout:g}s"
        self.log(f"    {len(cells)} probes, {rounds} rounds, {when}: {text}")
        return step


def run_scenario(scenario, backend, settings, log: Log = print,
                 enforcing: bool | None = None) -> ScenarioResult:
    """Run one loaded scenario on an up backend and return its result; always undeploys.

    `enforcing` is the canary's finding for this cluster (None when not run), recorded as is.
    """
    started = time.monotonic()
    result = ScenarioResult(scenario.name, str(scenario.path), backend.name, backend.profile,
                            settings.run_id, getattr(scenario, "description", "") or "",
                            enforcing_cluster=enforcing)
    run = Run(scenario, backend, settings, log)
    if enforcing is False:
        run.settle = 0.0
    log(f"scenario {scenario.name} [{backend.profile}] on {backend.name} ({scenario.path})")
    has_deny = False
    try:
        t = time.monotonic()
        run.addresses = backend.deploy(scenario.model)
        log(f"  deployed {len(scenario.model.user_pods)} pods in {time.monotonic() - t:.2f}s")
        steps_cells = []
        for i, _ in enumerate(scenario.steps):
            cells = plan_cells(model_at(scenario, i),
                               expected_cells(scenario, i, run.addresses))
            has_deny |= any(c.expectation == Expectation.DENY for c in cells)
            steps_cells.append(cells)
        result.baseline = run.baseline(steps_cells)
        if result.baseline.infra_error:
            result.infra_error = result.baseline.infra_error
            return result
        for i, step in enumerate(scenario.steps):
            title = getattr(step, "title", "") or f"step {i + 1}"
            log(f"  step {i + 1}: {title}")
            try:
                run.change(step)
            except HarnessError as exc:
                msg = f"step {i + 1} ({title}): {exc}"
                result.steps.append(StepResult(i + 1, title, False, None, 0, [], msg))
                result.infra_error = msg
                return result
            result.steps.append(run.converge(i + 1, title, steps_cells[i], time.monotonic()))
    except HarnessError as exc:
        result.infra_error = f"{type(exc).__name__}: {exc}"
    finally:
        result.policies_accepted = run.policies_seen
        try:
            backend.undeploy()
        except HarnessError as exc:
            log(f"  teardown: {exc}")
            result.infra_error = result.infra_error or f"teardown failed: {exc}"
        final = [Verdict(c.verdict) for s in result.steps for c in s.cells]
        result.outcome = scenario_outcome(final, run.declared_enforcing, has_deny,
                                          infra_error=bool(result.infra_error))
        result.duration = round(time.monotonic() - started, 3)
        log(f"  result: {result.outcome} ({result.duration:.2f}s, "
            f"{result.policies_accepted} policies accepted by the API)")
    return result



# -- the end of a run (shared by the pytest plugin and `python -m harness run`) -------------------
def run_meta(settings, canaries: dict, started: str) -> dict:
    """What makes a run reproducible, for the report files: settings, canary findings, versions."""
    import platform
    try:
        from importlib.metadata import version
        ours = version("netpol-proof")
    except Exception:  # noqa: BLE001 - running from a source tree that is not installed
        ours = "unknown"
    return {"backend": settings.backend, "cnis": list(settings.cnis), "run_id": settings.run_id,
            "probe_timeout": settings.probe_timeout, "converge_timeout": settings.converge_timeout,
            "started": started, "canary": dict(canaries),
            "versions": {"netpol-proof": ours, "python": platform.python_version(),
                         "kernel": platform.release()}}


def write_reports(results: list[ScenarioResult], settings, meta: dict) -> list[str]:
    """JSON, HTML and the GitHub step summary, as configured; returns what was written."""
    import os
    written = []
    if settings.json_path:
        from harness.reports import json_report
        json_report.write(results, settings.json_path, meta)
        written.append(settings.json_path)
    if settings.html_path:
        from harness.reports import html_report
        html_report.write(results, settings.html_path, meta)
        written.append(settings.html_path)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        from harness.reports import github
        if github.write_step_summary(results, meta):
            written.append(os.environ["GITHUB_STEP_SUMMARY"])
    return written
