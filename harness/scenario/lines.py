"""YAML reading that remembers where everything came from: line numbers of keys and items.

Why: a scenario error must name the file line to fix. PyYAML throws node positions away once it
has built Python objects, so this loader keeps them on the mappings and lists it builds
(`LineDict.key_line`, `LineList.item_line`) while they stay ordinary dicts and lists for every
other consumer (jsonschema, kubernetes-validate, the oracle).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable, TypeGuard

import yaml


class LineDict(dict):
    """A dict that knows the line of itself, of each key, and of each value's first content."""

    line: int = 0
    key_lines: dict
    value_lines: dict

    def key_line(self, key: Any) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)

    def value_line(self, key: Any) -> int:
        """Line of the value's first content line (for a `|` block: the line after the `|`)."""
        return getattr(self, "value_lines", {}).get(key, self.key_line(key))


class LineList(list):
    """A list that knows its own line and the line of each item."""

    line: int = 0
    item_lines: list

    def item_line(self, index: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[index] if 0 <= index < len(lines) else self.line


def is_mapping(value: object) -> TypeGuard[LineDict]:
    """isinstance(value, dict), typed as a LineDict: every mapping this loader builds is one."""
    return isinstance(value, dict)


def is_sequence(value: object) -> TypeGuard[LineList]:
    """isinstance(value, list), typed as a LineList: every list this loader builds is one."""
    return isinstance(value, list)


#: how the readers report a problem: report(field, message, line)
Report = Callable[..., None]


def _optional(raw: LineDict, key: str, where: str, shape: str, report: Report,
              fits: Callable[[object], bool]) -> Any:
    data = raw.get(key)
    if data is None:
        return None
    if not fits(data):
        report(f"{where}.{key}", f"must be {shape}", raw.key_line(key))
        return None
    return data


def optional_mapping(raw: LineDict, key: str, where: str, shape: str,
                     report: Report) -> LineDict | None:
    """raw[key] when it is a mapping; None when it is absent, or anything else (then reported
    as `<where>.<key>: must be <shape>` at the key's line)."""
    data: LineDict | None = _optional(raw, key, where, shape, report, is_mapping)
    return data


def optional_list(raw: LineDict, key: str, where: str, shape: str,
                  report: Report) -> LineList | None:
    """raw[key] when it is a list; the rest as optional_mapping."""
    data: LineList | None = _optional(raw, key, where, shape, report, is_sequence)
    return data


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences are LineDict / LineList with 1-based lines."""


def _content_line(node: yaml.Node) -> int:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        line += 1  # the indicator line holds no content
    return line


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines, out.value_lines = {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key",
                key_node.start_mark) from None
        if key in out:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r} (a later value would silently win)",
                key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
        out.value_lines[key] = _content_line(value_node)
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_documents(text: str) -> list[Any]:
    """Every YAML document of `text`, with line information; yaml.YAMLError on bad YAML."""
    return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]


def yaml_error_line(exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def plain(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (what goes to the API or to json.dumps)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for a near miss, else a list of what is allowed."""
    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if close:
        return f' (did you mean "{close[0]}"?)'
    return f"; allowed: {', '.join(choices)}"
