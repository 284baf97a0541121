"""Label selector parsing and matching, per apimachinery's LabelSelectorAsSelector."""

import pytest

from harness.selectors import LabelSelector

L = {"app": "web", "tier": "front"}


@pytest.mark.parametrize("sel,labels,want", [
    ({}, {}, True),
    ({}, L, True),
    ({"matchLabels": {"app": "web"}}, L, True),
    ({"matchLabels": {"app": "db"}}, L, False),
    ({"matchLabels": {"app": "web", "tier": "back"}}, L, False),          # ANDed
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web"]}]}, L, True),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}, L, False),
    ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, L, False),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}, L, True),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, L, False),
    # NotIn matches when the key is missing altogether
    ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, L, True),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, L, True),
    ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, L, False),
    ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, L, True),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, L, False),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}, L, False),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "tier", "operator": "Exists"},
                           {"key": "x", "operator": "DoesNotExist"}]}, L, True),
])
def test_matches(sel, labels, want):
    assert LabelSelector.parse(sel).matches(labels) is want


def test_empty_selector_is_empty_and_none_is_refused():
    assert LabelSelector.parse({}).is_empty
    assert LabelSelector.parse({"matchLabels": {}, "matchExpressions": []}).is_empty
    with pytest.raises(ValueError, match="spec.podSelector: a selector is required"):
        LabelSelector.parse(None, "spec.podSelector")


@pytest.mark.parametrize("sel,msg", [
    ({"matchLabel": {"a": "b"}}, r"sel: unknown field\(s\) matchLabel"),
    ({"matchLabels": ["a"]}, r"sel.matchLabels: must be a mapping"),
    ({"matchExpressions": [{"key": "a", "operator": "in", "values": ["b"]}]},
     r"sel.matchExpressions\[0\].operator: 'in' is not one of"),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]},
     r"sel.matchExpressions\[0\].values: operator In needs at least one value"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]},
     r"sel.matchExpressions\[0\].values: operator Exists takes no values"),
    ({"matchExpressions": [{"operator": "Exists"}]}, r"sel.matchExpressions\[0\].key: required"),
    ("app=web", r"sel: must be a mapping"),
])
def test_parse_errors_name_the_field(sel, msg):
    with pytest.raises(ValueError, match=msg):
        LabelSelector.parse(sel, "sel")


def test_describe_and_round_trip():
    data = {"matchLabels": {"pod": "a"},
            "matchExpressions": [{"key": "ns", "operator": "In", "values": ["x", "y"]},
                                 {"key": "t", "operator": "DoesNotExist"}]}
    sel = LabelSelector.parse(data)
    assert sel.describe() == "pod=a, ns in (x, y), t does not exist"
    assert LabelSelector.parse(sel.to_dict()) == sel
    assert LabelSelector.parse({}).describe() == "{}"
    assert LabelSelector.from_labels({"b": "2", "a": "1"}).match_labels == (("a", "1"), ("b", "2"))
