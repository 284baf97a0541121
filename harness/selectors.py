"""Kubernetes label selectors: matchLabels and matchExpressions, parsed strictly and matched.

Why a module of its own: the oracle, the backends (which program a dataplane from policies) and
Services all select pods by labels; one implementation means one set of semantics
(k8s.io/apimachinery/pkg/labels), tested once.

Semantics, as in apimachinery's LabelSelectorAsSelector:
- every matchLabels pair and every matchExpressions requirement must hold (ANDed);
- `In`: the label exists and its value is one of the values;
- `NotIn`: the label is missing, or its value is none of the values;
- `Exists` / `DoesNotExist`: the key is present / absent (values must be empty);
- the empty selector `{}` matches every object. A *missing* selector (None) is a different thing
  whose meaning depends on the field (a missing namespaceSelector in a peer means "the policy's
  own namespace"), so `parse` refuses None and callers decide what a missing selector means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry: `key operator values`."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist

    def describe(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{self.key} {'exists' if self.operator == 'Exists' else 'does not exist'}"
        word = "in" if self.operator == "In" else "not in"
        return f"{self.key} {word} ({', '.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector. `match_labels` is a sorted tuple of (key, value) pairs."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @staticmethod
    def parse(data: Any, where: str = "selector") -> LabelSelector:
        """Parse a selector dict; raise ValueError naming `where` and the bad field.

        Why strict: a misspelled `matchLabel` would otherwise silently become `{}`, the selector
        that matches everything, which turns a narrow allow into a wide one.
        """
        if data is None:
            raise ValueError(f"{where}: a selector is required here (use {{}} to select everything)")
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: must be a mapping with matchLabels/matchExpressions, "
                             f"got {type(data).__name__}")
        unknown = set(data) - {"matchLabels", "matchExpressions"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                             f"a label selector has only matchLabels and matchExpressions")
        labels = data.get("matchLabels") or {}
        if not isinstance(labels, Mapping):
            raise ValueError(f"{where}.matchLabels: must be a mapping of label key to value")
        pairs = []
        for k, v in labels.items():
            if not isinstance(k, str) or not k:
                raise ValueError(f"{where}.matchLabels: label key {k!r} must be a non-empty string")
            if v is None or isinstance(v, (dict, list, bool)):
                raise ValueError(f"{where}.matchLabels.{k}: value must be a string, got {v!r}")
            pairs.append((k, str(v)))
        exprs = data.get("matchExpressions") or []
        if not isinstance(exprs, list):
            raise ValueError(f"{where}.matchExpressions: must be a list")
        reqs = tuple(_parse_requirement(e, f"{where}.matchExpressions[{i}]")
                     for i, e in enumerate(exprs))
        return LabelSelector(tuple(sorted(pairs)), reqs)

    @staticmethod
    def from_labels(labels: Mapping[str, str]) -> LabelSelector:
        """A matchLabels-only selector (e.g. a Service's selector)."""
        return LabelSelector(tuple(sorted((k, str(v)) for k, v in labels.items())))

    @property
    def is_empty(self) -> bool:
        """True for `{}`: selects everything."""
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self.match_labels:
            if labels.get(k) != v:
                return False
        return all(r.matches(labels) for r in self.match_expressions)

    def describe(self) -> str:
        """A short human form: `{}` or `pod=a, ns in (x, y)`."""
        if self.is_empty:
            return "{}"
        parts = [f"{k}={v}" for k, v in self.match_labels]
        parts += [r.describe() for r in self.match_expressions]
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The manifest form, for writing policies back out (e.g. for other analysers)."""
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [
                {"key": r.key, "operator": r.operator, **({"values": list(r.values)}
                                                          if r.values else {})}
                for r in self.match_expressions]
        return out


def _parse_requirement(data: Any, where: str) -> Requirement:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: must be a mapping with key, operator and values")
    unknown = set(data) - {"key", "operator", "values"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    key = data.get("key")
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}.key: required, a non-empty label key")
    op = data.get("operator")
    if op not in OPERATORS:
        raise ValueError(f"{where}.operator: {op!r} is not one of {', '.join(OPERATORS)}")
    values = data.get("values") or []
    if not isinstance(values, list):
        raise ValueError(f"{where}.values: must be a list of strings")
    if op in ("In", "NotIn") and not values:
        raise ValueError(f"{where}.values: operator {op} needs at least one value "
                         f"(the Kubernetes API rejects an empty list)")
    if op in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"{where}.values: operator {op} takes no values "
                         f"(the Kubernetes API rejects them)")
    for v in values:
        if v is None or isinstance(v, (dict, list, bool)):
            raise ValueError(f"{where}.values: {v!r} is not a string")
    return Requirement(key, op, tuple(str(v) for v in values))
