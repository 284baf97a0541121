"""Fault steps in scenario files: what the reader accepts, and every mistake reported with its
file, field and line (docs/scenarios.md, "Fault steps"). Offline: no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import ScenarioError
from harness.expected import validate_file
from harness.scenario import load_scenario
from harness.scenario.schema import schema_errors

DATA = Path(__file__).parent / "data" / "scenarios"

HEAD = """kind: Scenario
name: f
description: a fault
requires: [networkpolicy, engine-fault]
model: {namespaces: [x, y], pods: [a, b], ports: [80], protocols: [TCP]}
steps:
  - title: one
"""


def problems(tmp_path: Path, body: str, head: str = HEAD) -> dict[str, tuple[int | None, str]]:
    f = tmp_path / "s.yaml"
    f.write_text(head + body)
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    assert all(p.path == str(f) for p in info.value.problems)
    return {p.field: (p.line, p.message) for p in info.value.problems}


def test_a_valid_fault_step_is_read_in_order():
    s = load_scenario(DATA / "valid-fault-engine-stop.yaml")
    assert validate_file(DATA / "valid-fault-engine-stop.yaml") == []
    assert s.steps[0].fault is None
    f = s.steps[1].fault
    assert f is not None
    assert [a.label for a in f.actions] == ["stop engine", "change", "wait 2 s", "start engine"]
    assert (f.every, f.before, f.after) == (0.25, 1.0, 2.0)
    assert [(c.source, c.target, c.port, c.protocol.value) for c in f.watch] == [
        ("y/a", "x/a", 80, "TCP"), ("x/a", "y/a", 80, "TCP")]
    assert f.targets == {"engine"}


def test_defaults_and_node_and_apiserver(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(HEAD.replace("engine-fault]", "engine-fault, apiserver-fault]") + """\
    fault:
      watch: [{from: y/a, to: x/a, port: 80}]
      actions:
        - {kill: engine, node: 1}
        - {start: engine, node: 1}
        - {restart: engine, node: all}
        - {stop: apiserver, for: 3}
""")
    fault = load_scenario(f).steps[0].fault
    assert fault is not None and (fault.every, fault.before, fault.after) == (0.5, 1.0, 3.0)
    assert [(a.kind.name, a.target, a.node, a.seconds) for a in fault.actions] == [
        ("kill", "engine", 1, 0.0), ("start", "engine", 1, 0.0), ("restart", "engine", None, 0.0),
        ("stop", "apiserver", None, 3.0)]


def test_a_bad_sequence_is_reported_action_by_action(tmp_path):
    got = problems(tmp_path, """\
    fault:
      watch: [{from: y/a, to: x/a, port: 80}]
      actions:
        - {start: engine}
        - {kill: engine, node: 2}
        - {stop: engine, node: 2}
        - {stop: engine}
        - {start: engine}
        - {start: engine, node: 3}
""")
    assert got["steps[0].fault.actions[0]"] == (11, "start engine: no engine is down (stop or "
                                                    "kill it first, or use restart)")
    assert got["steps[0].fault.actions[2]"][0] == 13
    assert "node 2's engine is already down" in got["steps[0].fault.actions[2]"][1]
    assert "already down" in got["steps[0].fault.actions[3]"][1]
    assert "its engine is not down" in got["steps[0].fault.actions[5]"][1]


def test_an_engine_left_down_is_an_error(tmp_path):
    got = problems(tmp_path, """\
    fault:
      watch: [{from: y/a, to: x/a, port: 80}]
      actions: [{kill: engine, node: 1}, {wait: 1}]
""")
    line, msg = got["steps[0].fault.actions"]
    assert line == 10 and "still down on node 1 when the fault ends" in msg


def test_field_errors_name_their_lines(tmp_path):
    got = problems(tmp_path, """\
    fault:
      watch:
        - {from: y/q, to: x/a, port: 80}
        - {from: y/a, to: x/a, port: 80, proto: TCP}
        - {from: y/a, to: b.x.svc.cluster.local, port: 80}
      every: 0
      after: 1000
      actions:
        - {stop: engine, node: 0}
        - {halt: engine}
        - {stop: apiserver}
        - {kill: apiserver, for: 2}
        - {wait: -1}
        - [stop]
      tempo: 3
""")
    assert got["steps[0].fault.watch[0].from"][0] == 10
    assert 'did you mean "y/b"' in got["steps[0].fault.watch[0].from"][1]
    assert got["steps[0].fault.watch[1].proto"][0] == 11
    assert "not a DNS name" in got["steps[0].fault.watch[2].to"][1]
    assert got["steps[0].fault.every"] == (13, "must be a number of seconds from 0.1 to 10, got 0")
    assert got["steps[0].fault.after"][0] == 14
    assert got["steps[0].fault.actions[0].node"][0] == 16
    assert got["steps[0].fault.actions[1]"][0] == 17
    assert got["steps[0].fault.actions[2].for"][0] == 18
    assert "kill what? expected engine" in got["steps[0].fault.actions[3].kill"][1]
    assert got["steps[0].fault.actions[4].wait"][0] == 20
    assert got["steps[0].fault.actions[5]"][0] == 21
    assert 'did you mean "after"' not in got["steps[0].fault.tempo"][1]
    assert got["steps[0].fault.tempo"][0] == 22


def test_change_must_be_placed_and_only_once(tmp_path):
    policy = """\
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-all, namespace: y}
        spec: {podSelector: {}, policyTypes: [Ingress]}
"""
    got = problems(tmp_path, policy + """\
    fault:
      watch: [{from: y/a, to: x/a, port: 80}]
      actions: [{restart: engine}]
""")
    assert "say when, with a `change` action" in got["steps[0].fault.actions"][1]
    got = problems(tmp_path, """\
    fault:
      watch: [{from: y/a, to: x/a, port: 80}]
      actions: [change, {restart: engine}]
""")
    assert "the step has none" in got["steps[0].fault.actions"][1]
    got = problems(tmp_path, policy + """\
    fault:
      watch: [{from: y/a, to: x/a, port: 80}]
      actions: [change, {restart: engine}, change]
""")
    assert got["steps[0].fault.actions"] == (15, "`change` may appear once")


def test_a_fault_needs_its_capability_in_requires(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(HEAD.replace("[networkpolicy, engine-fault]", "[networkpolicy]") + """\
    fault:
      watch: [{from: y/a, to: x/a, port: 80}]
      actions: [{restart: engine}, {stop: apiserver, for: 1}]
""")
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    got = sorted((p.line, p.message) for p in info.value.problems if p.field == "requires")
    assert [line for line, _ in got] == [4, 4]
    assert "'apiserver-fault'" in got[0][1] + got[1][1]
    assert "'engine-fault'" in got[0][1] + got[1][1]


def test_watch_and_actions_are_required(tmp_path):
    got = problems(tmp_path, """\
    fault: {every: 1}
""")
    assert "required" in got["steps[0].fault.watch"][1]
    assert "required" in got["steps[0].fault.actions"][1]
    got = problems(tmp_path, "    fault: [stop]\n")
    assert got["steps[0].fault"] == (8, "must be a mapping {watch, actions, every, before, after}")


def test_a_restart_may_kill_the_engine_first(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(HEAD + """\
    fault:
      watch: [{from: y/a, to: x/a, port: 80}]
      actions:
        - {restart: engine, node: 1, signal: KILL}
        - {restart: engine, signal: TERM}
        - {restart: engine}
""")
    fault = load_scenario(f).steps[0].fault
    assert fault is not None
    assert [(a.label, a.backend_action) for a in fault.actions] == [
        ("restart engine on node 1 (SIGKILL)", "kill-restart"),
        ("restart engine", "restart"), ("restart engine", "restart")]
    got = problems(tmp_path, """\
    fault:
      watch: [{from: y/a, to: x/a, port: 80}]
      actions:
        - {restart: engine, signal: HUP}
        - {stop: engine, signal: KILL}
        - {start: engine}
""")
    assert got["steps[0].fault.actions[0].signal"][0] == 11
    assert "TERM (stop, then start) or KILL (kill, then start), got 'HUP'" in \
        got["steps[0].fault.actions[0].signal"][1]
    assert "steps[0].fault.actions[1].signal" in got     # only a restart takes a signal


@pytest.mark.parametrize("actions, needs", [
    ("[{restart: engine}]", ("engine-fault", "networkpolicy")),
    ("[{restart: engine, signal: KILL, node: 2}]", ("engine-fault", "networkpolicy")),
    ("[{kill: engine}, {start: engine}]", ("engine-fault", "engine-hold", "networkpolicy")),
    ("[{stop: engine, node: 1}, {start: engine, node: 1}]",
     ("engine-fault", "engine-hold", "networkpolicy")),
])
def test_what_a_fault_needs_is_derived_from_its_actions(tmp_path, actions, needs):
    """Per-action support as data: a backend that can restart an engine but not hold it down
    (the kubeconfig backend) skips exactly the scenarios that stop, kill or start it."""
    f = tmp_path / "s.yaml"
    f.write_text(HEAD + f"""\
    fault:
      watch: [{{from: y/a, to: x/a, port: 80}}]
      actions: {actions}
""")
    s = load_scenario(f)
    assert s.requires == ("networkpolicy", "engine-fault")
    assert s.needs == needs


def test_the_library_fault_scenarios_need_what_their_actions_do():
    lib = Path(__file__).parents[1] / "scenarios" / "faults"
    needs = {p.stem: load_scenario(p).needs for p in sorted(lib.glob("*.yaml"))}
    assert "engine-hold" not in needs["engine-restart"]
    assert "engine-hold" in needs["engine-stop"] and "engine-hold" in needs["engine-kill"]
    assert "apiserver-fault" in needs["apiserver-down"]


def test_a_watched_cell_may_say_what_it_must_do(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(HEAD + """\
    fault:
      watch:
        - {from: y/a, to: x/a, port: 80, must: hold}
        - {from: x/a, to: y/a, port: 80}
      actions: [{restart: engine}]
""")
    fault = load_scenario(f).steps[0].fault
    assert fault is not None and [c.must for c in fault.watch] == ["hold", None]
    assert schema_errors(yaml.safe_load(f.read_text())) == []


@pytest.mark.parametrize("value", ["never-open", True, 1, None])
def test_an_unknown_requirement_names_its_field_line_and_the_words_it_takes(tmp_path, value):
    got = problems(tmp_path, f"""\
    fault:
      watch:
        - {{from: y/a, to: x/a, port: 80, must: {'null' if value is None else value}}}
      actions: [{{restart: engine}}]
""")
    line, message = got["steps[0].fault.watch[0].must"]
    assert line == 10
    assert message.startswith("what the watched cell must do across the fault: hold ")
    assert f"got {value!r}" in message
