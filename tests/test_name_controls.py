"""A probe by name that could not resolve its name (curl exit 6) on a CNI that rejects: a block
only when the same name resolved in that round, from a source allowed to look it up or on
the DNS server itself; else a probe error.

Why: behind a rejecting CNI a denied DNS query fails at once with "could not resolve host",
exactly like a name that no longer exists. A control that proves only that the DNS server
answers (any name, or NXDOMAIN for this one) turned a name that stopped resolving into a pass.

Without a cluster: Run.probe on a backend that replays captured tool output (tests/data/
probe-outputs) for each argv, so each case is exactly the round it names.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from harness.backends.base import Backend
from harness.capabilities import Capabilities
from harness.model import plan_addresses
from harness.plan import plan_steps
from harness.probes import CURL_CODE_MARK
from harness.runner import Run
from harness.scenario import load_scenario
from harness.settings import build
from harness.shell import ExecResult

DATA = Path(__file__).parent / "data" / "probe-outputs"
NAME = "backend.prod.svc.cluster.local"

SCENARIO = f"""
kind: Scenario
name: name-rejected
description: frontend may look nothing up; tool (dev, not isolated) may call backend by name.
requires: [networkpolicy, egress]
model:
  namespaces: {{prod: {{labels: {{env: prod}}}}, dev: {{labels: {{env: dev}}}}}}
  pods:
    prod/frontend: {{labels: {{app: frontend}}, ports: [80]}}
    prod/backend: {{labels: {{app: backend}}, ports: [80]}}
    dev/tool: {{labels: {{app: tool}}, ports: [80]}}
  services:
    prod/backend: {{selector: {{app: backend}}, ports: [{{port: 80, targetPort: 80}}]}}
steps:
  - title: deny all egress of frontend (DNS too)
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {{name: deny-egress, namespace: prod}}
        spec: {{podSelector: {{matchLabels: {{app: frontend}}}}, policyTypes: [Egress]}}
    probes:
      - {{from: prod/frontend, to: {NAME}, port: 80, protocol: TCP, expect: deny}}
      - {{from: dev/tool, to: {NAME}, port: 80, protocol: TCP, expect: allow}}
"""


def captured(name: str) -> ExecResult:
    d = json.loads((DATA / f"{name}.json").read_text())
    return ExecResult(tuple(d["argv"]), d["returncode"], d["stdout"], d["stderr"], d["elapsed"])


class Replays(Backend):
    """A rejecting cluster, as far as this round needs one: frontend's curl cannot resolve
    the name (exit 6); tool's curl gets `tool` (an answer, or the same exit 6); the DNS
    server, asked on its own loopback, answers `loopback` (a capture) for any name. A Backend
    (the prober calls its neutral DNS helpers); what a round does not use says so."""

    name = "replay"
    toolkit = "debian"

    def _unused(self, *args, **kwargs):
        raise AssertionError("a probe round calls exec, capabilities and the DNS helpers only")

    up = down = deploy = undeploy = set_labels = apply_policy = delete_policy = _unused
    policy_count = _unused

    def __init__(self, tool: str, loopback: str):
        self.tool, self.loopback = tool, loopback
        self.asked: list[tuple[str, ...]] = []
        self.lock = threading.Lock()

    def capabilities(self) -> Capabilities:
        return Capabilities(frozenset({"networkpolicy", "egress"}), deny_response="reject")

    def exec(self, endpoint, argv, timeout):
        argv = tuple(argv)
        with self.lock:
            self.asked.append(argv)
        if argv[0] == "nslookup":
            r = captured(self.loopback)
        elif endpoint == "prod/frontend" or self.tool == "unresolvable":
            r = captured("curl-unresolvable-name")
        else:
            r = ExecResult(argv, 0, f"prod/backend{CURL_CODE_MARK}200", "", 0.01)
        return ExecResult(argv, r.returncode, r.stdout, r.stderr, r.elapsed, endpoint)


def one_round(tmp_path: Path, tool: str, loopback: str):
    f = tmp_path / "name-rejected.yaml"
    f.write_text(SCENARIO)
    scenario = load_scenario(f)
    addresses = plan_addresses(scenario.model)
    (cells,) = plan_steps(scenario, addresses)
    backend = Replays(tool, loopback)
    run = Run(scenario, backend, build({"cnis": "enforcing"}, env={}), log=lambda line: None)
    run.addresses = addresses
    run.probe(cells, 1)
    denied = next(c for c in cells if c.spec.source == "prod/frontend")
    assert denied.attempts[-1].outcome == "dns-failed"
    return denied.last, backend


@pytest.mark.parametrize("tool, loopback, verdict", [
    # the same name resolved from a source allowed to look it up, in the same round: a block
    ("connected", "nslookup-nxdomain", "pass"),
    # nobody resolved it, but the DNS server answers it with an address on its own loopback
    ("unresolvable", "nslookup-resolved", "pass"),
    # the name no longer exists: the DNS server answers NXDOMAIN for it. That proves the DNS
    # server lives, not that the name resolves: a name that stopped resolving is no block
    ("unresolvable", "nslookup-nxdomain", "probe error"),
    # no DNS server answers at all
    ("unresolvable", "nslookup-timeout", "probe error"),
])
def test_could_not_resolve_is_a_block_only_when_the_name_resolved_in_that_round(
        tmp_path, tool, loopback, verdict):
    j, backend = one_round(tmp_path, tool, loopback)
    assert j.verdict.value == verdict, j.reason
    if verdict == "probe error":
        assert "nothing proved in the same round that the name resolves" in j.reason, j.reason
    looked_up = [a for a in backend.asked if a[0] == "nslookup"]
    if tool == "connected":
        assert not looked_up          # the allowed source's answer was proof enough
    else:
        assert looked_up and looked_up[0][-2:] == (NAME, "127.0.0.1"), looked_up


def test_the_name_control_is_the_fully_qualified_name_whoever_looks_it_up(tmp_path):
    """A short name is the name the source's search path makes of it: `backend` from prod is
    the Service's full name, the same name as tool's from dev, one control for both."""
    f = tmp_path / "short.yaml"
    f.write_text(SCENARIO.replace(f"to: {NAME}, port: 80, protocol: TCP, expect: deny",
                                  "to: backend, port: 80, protocol: TCP, expect: deny"))
    scenario = load_scenario(f)
    (cells,) = plan_steps(scenario, plan_addresses(scenario.model))
    short, full = cells
    assert short.spec.target == "backend" and full.spec.target == NAME
    assert short.name_key == full.name_key == ("name", NAME)
    assert short.name_loopback is not None and short.name_loopback.dns_name == NAME
