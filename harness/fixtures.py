"""Fixtures for tests written in Python instead of YAML (registered by harness.plugin).

Why thin: each fixture is a method of `Topology`, which builds a Model, deploys it on the run's
backend and probes through the same prober, positive controls and verdict rules as scenario
files; nothing here decides a verdict on its own. See examples/test_python_api.py and
docs/plugin.md.

  netpol_cluster                 the backend of the run's first CNI, up (session scope)
  netpol_namespace(name, labels) declare a namespace                 -> its name
  netpol_pods(ns, {pod: labels}, ports=(80,), protocols=("TCP",))     -> ["ns/pod", ...]
  netpol_apply_policy(manifest | yaml)  apply a NetworkPolicy (deploys first)  -> "ns/name"
  netpol_probe(src, dst, port, protocol, once=False)  a real probe, observed for the window
                                 from the last change (once=True: one sample)  -> Probe
  netpol_dns_probe(src, name, once=False)  a real DNS lookup, the same    -> Probe
  netpol_assert_matrix(text, port, protocol, assume=None)  check the table against the oracle
                                 (a wrong table fails before any probe), probe the pods x pods
                                 matrix until stable; on a difference, fail with the
                                 expected/observed tables

Every name starts with `netpol_`: short names collide with other plugins' fixtures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, cast

import pytest
import yaml

from harness.backends.base import Backend
from harness.expected import ExpectedCell, disagreement, unasserted
from harness.items import SESSION_KEY
from harness.model import (
    DNS_POD,
    DNS_SERVICE_ENDPOINT,
    SYSTEM_NAMESPACE,
    Addresses,
    ContainerPort,
    Model,
    Namespace,
    Pod,
    Protocol,
    Server,
)
from harness.oracle import Oracle
from harness.plan import Cell, Loopback, servers_of
from harness.prober import ROUND_PAUSE, loopback_probe, probe_one
from harness.probes import Outcome, ProbeOutcome, ProbeSpec
from harness.reports.terminal import render_step
from harness.results import Expectation, StepResult, Verdict
from harness.runner import converge_cells
from harness.session import Session
from harness.settings import Settings
from harness.truthtable import EXPECTATION_OF_SYMBOL, TruthTable
from harness.verdicts import (
    UNKNOWN_OLD_STATE,
    Judgement,
    Window,
    judge,
    over_rounds,
    self_probe_proves,
)


@dataclass(frozen=True)
class Probe:
    """One probe's outcome, read by the same rules as a scenario's cells (harness.verdicts),
    observed for the same window as a scenario's step (unless made with once=True).

    Why both judgements: the Python API states no expectation, so the probe is judged as if the
    spec allowed it (`connected`: it passes as allowed) and as if it denied it (`blocked`: it
    passes as denied). A reply from someone else, a dead server, or an L7 proxy's deny on a CNI
    that declares none is then neither connected nor blocked, exactly as in a YAML scenario.
    """

    outcome: Outcome
    detail: str
    answered_by: str | None
    #: did the target's server answer on its own loopback in the same moment (None: not asked)
    server_serves: bool | None
    #: the judgements over every round of the observation window (verdicts.over_rounds: the
    #: last round's, or UNSTABLE when the cell flapped); outcome, detail, answered_by and
    #: server_serves are the last round's
    as_allowed: Judgement
    as_denied: Judgement
    #: each round's outcome, in order (one for a probe made with once=True)
    rounds: tuple[str, ...] = ()

    @property
    def connected(self) -> bool:
        """The intended server answered (a lookup resolved)."""
        return self.as_allowed.verdict == Verdict.PASS

    @property
    def blocked(self) -> bool:
        """Dropped (rejected on a rejecting CNI, denied by a declared L7 proxy) while the server
        provably serves."""
        return self.as_denied.verdict == Verdict.PASS

    @property
    def reason(self) -> str:
        """Why it reads as it does: the rule that decided (connected, blocked or neither)."""
        return (self.as_allowed if self.connected or not self.blocked else self.as_denied).reason


class Topology:
    """A test's own namespaces and pods on the run's backend; deployed lazily, removed at the end."""

    def __init__(self, backend: Backend, settings: Settings):
        self.backend, self.settings = backend, settings
        self.namespaces: dict[str, dict] = {}
        self.pod_list: list[Pod] = []
        self.policies: dict[str, dict] = {}
        self.model: Model | None = None
        self.addresses: Addresses | None = None
        self._deployed_model: Model | None = None
        #: when the topology or its policies last changed (time.monotonic()): the start of the
        #: observation window of the next probe, as a scenario step's change is
        self.changed_at = time.monotonic()

    # -- building ------------------------------------------------------------------------------
    def namespace(self, name: str, labels: Mapping[str, str] | None = None) -> str:
        self.namespaces[name] = dict(labels or {})
        return name

    def pods(self, namespace: str, pods: Mapping[str, Mapping[str, str] | None],
             ports=(80,), protocols=("TCP",)) -> list[str]:
        if namespace not in self.namespaces:
            self.namespace(namespace)
        cps = tuple(ContainerPort.serve(int(p), Protocol.parse(pr)) for p in ports for pr in protocols)
        keys = []
        for name, labels in pods.items():
            self.pod_list.append(Pod(namespace, name, dict(labels or {"pod": name}), cps))
            keys.append(f"{namespace}/{name}")
        return keys

    def current_model(self) -> Model:
        return Model.build([Namespace(n, labels) for n, labels in self.namespaces.items()], self.pod_list)

    def deploy(self):
        """Deploy (or redeploy after the test added pods) and re-apply the test's policies."""
        model = self.current_model()
        if self._deployed_model != model:
            if not model.user_pods:
                raise ValueError("netpol_pods: declare at least one pod before probing")
            self.addresses = self.backend.deploy(model)
            self._deployed_model = self.model = model
            for manifest in self.policies.values():
                self.backend.apply_policy(manifest)
            self.changed_at = time.monotonic()
        return self.addresses

    def close(self) -> None:
        if self._deployed_model is not None:
            self.backend.undeploy()
            self._deployed_model = None

    # -- acting --------------------------------------------------------------------------------
    def apply(self, manifest: Mapping | str) -> str:
        if isinstance(manifest, str):
            manifest = yaml.safe_load(manifest)
        manifest = dict(cast(Mapping, manifest))
        meta = manifest.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        self.policies[key] = manifest
        if self._deployed_model is not None and self._deployed_model == self.current_model():
            self.backend.apply_policy(manifest)
            self.changed_at = time.monotonic()
        else:
            self.deploy()
        return key

    def _observe(self, spec: ProbeSpec, loop: Loopback | None,
                 servers: frozenset[str] | None = None, once: bool = False) -> Probe:
        """Probe in rounds for the observation window, as a scenario step is observed
        (verdicts.Window from the last change: at least min_rounds rounds and min_window
        seconds, then until two rounds agree, or the convergence deadline), each round with its
        own positive control; the same rounds whatever they show. `once`: one round only."""
        addresses = self.deploy()
        s = self.settings
        window = Window(s.min_rounds, s.min_window)
        caps = self.backend.capabilities()
        rounds: list[tuple[ProbeOutcome, bool | None, Judgement, Judgement]] = []
        while True:
            start = time.monotonic()
            o: ProbeOutcome = probe_one(self.backend, spec, addresses, s.probe_timeout,
                                        self.backend.toolkit)
            serves = None
            if o.outcome.delivered is not True and loop is not None:
                ctl = loopback_probe(self.backend, loop.server.endpoint, loop.server.port,
                                     loop.server.protocol, s.probe_timeout, loop.dns_name)
                serves = self_probe_proves(ctl)

            def as_if(exp: Expectation, o: ProbeOutcome = o, serves: bool | None = serves
                      ) -> Judgement:
                return judge(exp, o, serves, caps.deny_response, "fqdn" in caps.supported,
                             l7_proxy="l7-http" in caps.supported, servers=servers)

            allowed, denied = as_if(Expectation.ALLOW), as_if(Expectation.DENY)
            agreed = bool(rounds) and (rounds[-1][2].verdict, rounds[-1][3].verdict) == \
                (allowed.verdict, denied.verdict)
            rounds.append((o, serves, allowed, denied))
            if once or window.may_end(len(rounds), start - self.changed_at, agreed):
                break
            now = time.monotonic()
            if len(rounds) >= window.min_rounds and now - self.changed_at >= s.converge_timeout:
                break
            time.sleep(max(ROUND_PAUSE, start + window.interval - now))
        last, serves, _, _ = rounds[-1]
        return Probe(last.outcome, last.detail, last.answered_by, serves,
                     # the state before the last change is not known here: one change into a
                     # held pass from a failure is forgiven (late programming), as for a matrix
                     over_rounds([r[2] for r in rounds], UNKNOWN_OLD_STATE),
                     over_rounds([r[3] for r in rounds], UNKNOWN_OLD_STATE),
                     tuple(r[0].outcome.value for r in rounds))

    def probe(self, src: str, dst: str, port: int = 80, protocol: str = "TCP",
              once: bool = False) -> Probe:
        proto = Protocol.parse(protocol)
        self.deploy()
        assert self.model is not None
        server = self.model.server_of(src, dst, port, proto)
        return self._observe(ProbeSpec(src, dst, port, proto),
                             Loopback(server) if server else None,
                             servers_of(self.model, src, dst, port, proto), once)

    def dns_probe(self, src: str, name: str, once: bool = False) -> Probe:
        dns = Server(f"{SYSTEM_NAMESPACE}/{DNS_POD}", 53, Protocol.UDP)
        return self._observe(ProbeSpec(src, DNS_SERVICE_ENDPOINT, 53, Protocol.UDP, name),
                             Loopback(dns, name), once=once)

    def table_problems(self, table: TruthTable, port: int, protocol: Protocol,
                       assume: str | None = None) -> list[str]:
        """Where the test's table disagrees with the oracle at this topology's real addresses
        and policies (harness.expected's rules for a scenario file: a decided cell must
        agree, an undefined one may be asserted and a decided one left '-' only with
        `assume`)."""
        assert self.model is not None and self.addresses is not None, "deployed first"
        oracle = Oracle(self.model, list(self.policies.values()), self.addresses)
        hint = "pass assume='CNI: why' to netpol_assert_matrix"
        problems = []
        for src, dst, sym in table.items():
            cell = ExpectedCell(src, dst, port, protocol, EXPECTATION_OF_SYMBOL[sym],
                                oracle.decide(src, dst, port, protocol), explicit=True)
            for text in (disagreement(cell, assume is not None, hint),
                         unasserted(cell, assume is not None, hint)):
                if text:
                    problems.append(text)
        return problems

    def matrix(self, expected_text: str, port: int = 80, protocol: str = "TCP",
               assume: str | None = None) -> StepResult:
        """Check `expected_text` against the oracle, then probe every pod pair until two rounds
        agree; the StepResult. A table the oracle disagrees with fails the test before any
        probe: the table is wrong, and no verdict on the CNI is given."""
        self.deploy()
        assert self.model is not None, "deploy() built the model"
        keys = list(self.model.pod_keys)
        table = TruthTable.parse(expected_text, keys, keys)
        proto = Protocol.parse(protocol)
        problems = self.table_problems(table, port, proto, assume)
        if problems:
            pytest.fail("netpol_assert_matrix: the test's table disagrees with the oracle (the "
                        "table is wrong, not the CNI; nothing was probed):\n"
                        + "\n".join(f"  {p}" for p in problems), pytrace=False)
        assert self.addresses is not None, "deploy() sets the addresses"
        oracle = Oracle(self.model, list(self.policies.values()), self.addresses)
        cells = []
        for src, dst, sym in table.items():
            decision = oracle.decide(src, dst, port, proto)
            reason = "; ".join(r.text for r in decision.reasons) or "the test's expectation"
            if assume is not None and decision.expectation is Expectation.UNDEFINED:
                reason = f"assumed ({assume}): {reason}"
            server = Server(dst, port, proto)
            # the state before is not known here (whatever the test did last): one change into
            # a held pass from a failure is forgiven, never one out of a pass
            cells.append(Cell(ProbeSpec(src, dst, port, proto), EXPECTATION_OF_SYMBOL[sym],
                              reason, server, Loopback(server),
                              servers=self.model.pod(dst).identities, old=UNKNOWN_OLD_STATE))
        return converge_cells(self.backend, self.settings, self.addresses, cells,
                              f"{port}/{proto.value} matrix")


def _session(config) -> Session:
    return config.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def netpol_cluster(pytestconfig):
    """The backend of the run's first CNI, up, with its canary run (shared with scenario items)."""
    session = _session(pytestconfig)
    return session.backend(session.settings.cnis[0])


@pytest.fixture
def netpol_topology(netpol_cluster, pytestconfig):
    session = _session(pytestconfig)
    topo = Topology(netpol_cluster, session.settings_for(netpol_cluster.profile))
    yield topo
    topo.close()


@pytest.fixture
def netpol_namespace(netpol_topology):
    return netpol_topology.namespace


@pytest.fixture
def netpol_pods(netpol_topology):
    return netpol_topology.pods


@pytest.fixture
def netpol_apply_policy(netpol_topology):
    """apply(manifest or YAML text): deploy (the first time) and apply a policy -> "ns/name"."""
    return netpol_topology.apply


@pytest.fixture
def netpol_probe(netpol_topology):
    """probe(src, dst, port=80, protocol="TCP", once=False) -> Probe: a real probe, repeated in
    rounds for the observation window from the last change (as a scenario step: at least
    --min-rounds rounds and --min-window seconds, then until two rounds agree), judged over
    the rounds. once=True: a single sample, no window (a CNI that programs late or flaps can
    read either way)."""
    return netpol_topology.probe


@pytest.fixture
def netpol_dns_probe(netpol_topology):
    """dns_probe(src, name, once=False) -> Probe: a real DNS lookup from `src`, observed for the
    window as netpol_probe is (once=True: a single sample)."""
    return netpol_topology.dns_probe


@pytest.fixture
def netpol_assert_matrix(netpol_topology):
    """Check the table against the oracle, then probe the pods x pods matrix until stable and
    compare: `netpol_assert_matrix(text, port=80, protocol="TCP", assume=None)` fails before
    probing when the table disagrees with the oracle (the table is wrong), and with the
    expected and observed tables when a cell differs. `assume="CNI: why"` says the table
    describes one CNI where the spec is silent (as a scenario step's assume:)."""

    def check(expected_text: str, port: int = 80, protocol: str = "TCP",
              assume: str | None = None) -> StepResult:
        step = netpol_topology.matrix(expected_text, port, protocol, assume)
        bad = [c for c in step.cells if c.verdict not in ("pass", "not asserted")]
        if bad:
            pytest.fail("\n".join(render_step(step, "matrix")), pytrace=False)
        return step

    return check

