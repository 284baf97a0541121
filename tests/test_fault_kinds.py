"""The kinds of fault action (harness.faults.kinds) as a table: what each does, what it needs,
the words reports print for it (read back by the timeline), and that the scenario schema and
the capability vocabulary name the same verbs and capabilities. Pure."""

from __future__ import annotations

import pytest

from harness.capabilities import FAULT_CAPABILITIES, KNOWN
from harness.faults import kinds
from harness.faults.kinds import KINDS, Target
from harness.scenario.schema import load_schema

# name: (verb, signal, starts, leaves it down, holds (engine-hold), a backend's action)
TABLE = {
    "stop": ("stop", "TERM", False, True, True, True),
    "kill": ("kill", "KILL", False, True, True, True),
    "start": ("start", None, True, False, True, True),
    "restart": ("restart", "TERM", True, False, False, True),
    "kill-restart": ("restart", "KILL", True, False, False, True),
    "wait": ("wait", None, False, False, False, False),
    "change": ("change", None, False, False, False, False),
}


def test_every_kind_carries_its_facts():
    assert set(KINDS) == set(TABLE)
    for name, (verb, signal, starts, down, holds, backend) in TABLE.items():
        k = KINDS[name]
        assert (k.verb, k.signal, k.starts, k.leaves_down, k.holds, k.is_fault) == \
            (verb, signal, starts, down, holds, backend), name


@pytest.mark.parametrize("name, target, needs", [
    ("stop", Target.ENGINE, {"engine-fault", "engine-hold"}),
    ("kill", Target.ENGINE, {"engine-fault", "engine-hold"}),
    ("start", Target.ENGINE, {"engine-fault", "engine-hold"}),
    ("restart", Target.ENGINE, {"engine-fault"}),
    ("kill-restart", Target.ENGINE, {"engine-fault"}),
    ("stop", Target.APISERVER, {"apiserver-fault"}),
    ("wait", None, set()),
    ("change", None, set()),
])
def test_what_an_action_needs(name, target, needs):
    assert kinds.needs(KINDS[name], target) == needs
    assert needs <= set(FAULT_CAPABILITIES) and needs <= set(KNOWN)


def test_a_backend_is_asked_only_for_what_acts_on_a_component():
    assert kinds.kind_named("kill-restart") is KINDS["kill-restart"]
    for word in ("wait", "change", "pause", "STOP"):
        with pytest.raises(ValueError, match="expected stop, kill, start, restart or kill-restart"):
            kinds.kind_named(word)


def test_verbs_targets_and_signals_as_a_scenario_writes_them():
    assert kinds.verbs() == {"stop": (Target.ENGINE, Target.APISERVER), "kill": (Target.ENGINE,),
                             "start": (Target.ENGINE,), "restart": (Target.ENGINE,)}
    assert kinds.signals("restart") == ("TERM", "KILL")     # the default first
    assert kinds.signals("stop") == kinds.signals("wait") == ()
    assert kinds.kind_for("restart") is KINDS["restart"]
    assert kinds.kind_for("restart", "KILL") is KINDS["kill-restart"]
    with pytest.raises(ValueError):
        kinds.kind_for("stop", "KILL")


@pytest.mark.parametrize("name, target, node, seconds, text", [
    ("stop", Target.ENGINE, None, 0.0, "stop engine"),
    ("kill", Target.ENGINE, 2, 0.0, "kill engine on node 2"),
    ("start", Target.ENGINE, 1, 0.0, "start engine on node 1"),
    ("restart", Target.ENGINE, None, 0.0, "restart engine"),
    ("kill-restart", Target.ENGINE, 1, 0.0, "restart engine on node 1 (SIGKILL)"),
    ("stop", Target.APISERVER, None, 5.0, "stop apiserver for 5 s"),
    ("wait", None, None, 2.5, "wait 2.5 s"),
    ("change", None, None, 0.0, "change"),
])
def test_labels_are_read_back_as_what_made_them(name, target, node, seconds, text):
    assert kinds.label(KINDS[name], target, node, seconds) == text
    assert kinds.parse_label(text) == (KINDS[name], target)


def test_words_no_kind_makes_are_no_kind():
    assert kinds.parse_label("pause engine") is None
    assert kinds.parse_label("") is None


def test_the_schema_names_the_same_verbs_and_targets():
    """harness/schema/scenario.schema.json is written for editors: it must offer what the
    reader accepts, no more, no less."""
    items = load_schema()["$defs"]
    fault = next(v for v in _walk(items) if isinstance(v, dict) and "actions" in v
                 and isinstance(v["actions"], dict) and "items" in v["actions"])
    offered: dict[str, set[str]] = {}
    simple: set[str] = set()
    for alt in fault["actions"]["items"]["oneOf"]:
        if "const" in alt:
            simple.add(alt["const"])
            continue
        for key, prop in alt["properties"].items():
            if "const" in prop:
                offered.setdefault(key, set()).add(prop["const"])
            if key == "signal":
                assert tuple(prop["enum"]) == kinds.signals("restart")
        if alt.get("required") == ["wait"]:
            simple.add("wait")
    assert offered == {v: {t.value for t in ts} for v, ts in kinds.verbs().items()}
    assert simple == {kinds.WAIT.verb, kinds.CHANGE.verb}


def _walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
