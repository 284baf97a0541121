"""The line-keeping YAML loader under the scenario loader."""

from __future__ import annotations

import pytest
import yaml

from harness.scenario.lines import did_you_mean, load_documents, plain, yaml_error_line

TEXT = """\
a: 1
b:
  - x
  - {k: v}
m: |
  first
  second
f: >-
  folded
q: "quoted"
---
second: doc
"""


def test_lines_of_keys_items_and_block_scalars():
    first, second = load_documents(TEXT)
    assert first.line == 1 and first.key_line("a") == 1 and first.key_line("b") == 2
    assert first["b"].item_line(0) == 3 and first["b"].item_line(1) == 4
    assert first["b"][1].line == 4 and first["b"][1].key_line("k") == 4
    assert first.value_line("m") == 6   # the first content line, not the `|` line
    assert first.value_line("f") == 9
    assert first.value_line("q") == 10
    assert second.line == 12 and second == {"second": "doc"}
    assert first.key_line("missing") == 1  # unknown key: the mapping's own line


def test_plain_copies_are_ordinary_dicts_a_safe_dumper_accepts():
    (doc, _) = load_documents(TEXT)
    with pytest.raises(yaml.representer.RepresenterError):
        yaml.safe_dump(doc)
    copy = plain(doc)
    assert type(copy) is dict and type(copy["b"]) is list and copy == doc
    assert yaml.safe_load(yaml.safe_dump(copy)) == copy


def test_duplicate_keys_and_syntax_errors_name_the_line():
    with pytest.raises(yaml.YAMLError, match="duplicate key 'a'") as info:
        load_documents("a: 1\nb: 2\na: 3\n")
    assert yaml_error_line(info.value) == 3
    with pytest.raises(yaml.YAMLError) as info:
        load_documents("a: 1\nb: x: y\nc: 3\n")
    assert yaml_error_line(info.value) == 2


def test_anchors_aliases_and_merge_keys():
    (doc,) = load_documents("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert doc["other"] == {"x": 1, "y": 2}


def test_did_you_mean():
    assert did_you_mean("expcet", ["expect", "probes"]) == ' (did you mean "expect"?)'
    assert did_you_mean("zzz", ["expect", "probes"]) == "; allowed: expect, probes"
