"""The scenario loader driven by fixture files: every valid-*.yaml loads and agrees with the
oracle; every invalid-*.yaml fails with the message, field and line its header comments name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from harness.errors import ScenarioError
from harness.expected import validate_file
from harness.scenario import find_scenarios, load_scenario
from harness.scenario.schema import SCHEMA_PATH, load_schema, schema_errors

DATA = Path(__file__).parent / "data" / "scenarios"
VALID = sorted(DATA.glob("valid-*.yaml"))
INVALID = sorted(DATA.glob("invalid-*.yaml"))


def _header(path: Path) -> dict[str, str]:
    """`# error: ...`, `# field: ...`, `# line: N` from the fixture's first lines."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"#\s*(error|field|line):\s*(.*)$", line)
        if not m:
            break
        out[m.group(1)] = m.group(2).strip()
    return out


def test_there_are_enough_fixtures():
    assert len(VALID) >= 5
    assert len(INVALID) >= 12


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_fixture_loads_and_agrees_with_the_oracle(path):
    scenario = load_scenario(path)
    assert scenario.steps and scenario.description
    assert validate_file(path) == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_fixture_reports_message_field_and_line(path):
    want = _header(path)
    assert "error" in want and "field" in want, f"{path.name} lacks # error: / # field: header"
    problems = validate_file(path)
    assert problems, f"{path.name} was accepted"
    matching = [p for p in problems if want["error"] in p.message]
    assert matching, f"no problem mentions {want['error']!r}: {[str(p) for p in problems]}"
    p = matching[0]
    assert p.path == str(path)
    assert p.field == want["field"], str(p)
    if "line" in want:
        assert p.line == int(want["line"]), str(p)


def test_load_collects_every_problem_not_only_the_first(tmp_path):
    f = tmp_path / "many.yaml"
    f.write_text("kind: Scenario\nname: Bad_Name\nrequires: [egres]\n"
                 "model: {namespaces: [x], pods: [a], ports: [80], protocols: [TCP]}\n"
                 "steps:\n  - titel: t\n    probes:\n      - {from: x/q, to: x/a, port: 80, "
                 "expect: maybe}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    fields = {p.field for p in info.value.problems}
    assert {"name", "description", "requires[0]", "steps[0].titel", "steps[0].probes[0].from",
            "steps[0].probes[0].expect"} <= fields
    text = str(info.value)
    assert f"{f}:2: name:" in text and f"{f}:6: steps[0].titel:" in text


def test_schema_is_valid_draft_2020_12():
    import jsonschema

    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert json.loads(SCHEMA_PATH.read_text()) == schema


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_every_valid_fixture_validates_against_the_schema(path):
    assert schema_errors(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("name, field", [
    ("invalid-misspelled-key.yaml", "steps[0]"),
    ("invalid-misspelled-top-key.yaml", "(top level)"),
    ("invalid-unknown-capability.yaml", "requires[1]"),
])
def test_schema_rejects_what_the_loader_rejects(name, field):
    errors = schema_errors(yaml.safe_load((DATA / name).read_text()))
    assert any(e.startswith(field) for e in errors), errors


def test_find_scenarios_recurses_and_ignores_other_yaml(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "s.yaml").write_text("kind: Scenario\nname: s\n")
    (tmp_path / "a" / "policy.yaml").write_text("apiVersion: networking.k8s.io/v1\n"
                                                "kind: NetworkPolicy\n")
    (tmp_path / "a" / "mentions.yaml").write_text("note: |\n  kind: Scenario\n")
    (tmp_path / "t.yml").write_text("# a comment\nkind: Scenario\n")
    (tmp_path / "notes.txt").write_text("kind: Scenario\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "hidden.yaml").write_text("kind: Scenario\n")
    found = find_scenarios([tmp_path])
    assert found == [tmp_path / "a" / "b" / "s.yaml", tmp_path / "t.yml"]
    assert find_scenarios([tmp_path / "t.yml", tmp_path]) == [tmp_path / "t.yml",
                                                               tmp_path / "a" / "b" / "s.yaml"]
    with pytest.raises(ScenarioError, match="no such file"):
        find_scenarios([tmp_path / "missing"])


def test_find_scenarios_on_the_fixture_directory_finds_them_all():
    found = find_scenarios([DATA])
    assert set(VALID) <= set(found)
    assert not any(p.parent.name == "policies" for p in found)


def test_schema_capabilities_are_the_known_ones():
    from harness.capabilities import KNOWN

    assert sorted(load_schema()["$defs"]["capability"]["enum"]) == sorted(KNOWN)
