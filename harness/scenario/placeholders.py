"""Placeholders in policy manifests: {{podIP x/a}}, {{podCIDR}}, {{hostIP ext}}, {{serviceIP ns/s}}.

Why: an ipBlock that names one pod or one external host needs an address that only the backend
knows. Scenarios write the placeholder; offline (check/expect/explain) the model's stand-in
addresses (harness.model.plan_addresses) replace it, on a live backend the real ones, so the same
file evaluates the same way in both places.
"""

from __future__ import annotations

import re
from typing import Any

from harness.model import Addresses

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z]+)(?:\s+([^\s}]+))?\s*\}\}")

#: placeholder name -> (needs an argument, what the argument is)
PLACEHOLDERS = {"podIP": (True, "a pod ns/name"), "podCIDR": (False, ""),
                "hostIP": (True, "an external host name"),
                "serviceIP": (True, "a Service ns/name")}


class PlaceholderError(ValueError):
    """One or more placeholders could not be substituted; `problems` is [(field, line, msg)]."""

    def __init__(self, problems: list[tuple[str, int | None, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for f, _, m in problems))


def _value(name: str, arg: str | None, addresses: Addresses) -> str:
    """The address one placeholder stands for; ValueError says what is wrong with it."""
    if name not in PLACEHOLDERS:
        raise ValueError(f"unknown placeholder {{{{{name}}}}}; known: "
                         + ", ".join("{{" + k + (" ARG" if v[0] else "") + "}}"
                                     for k, v in PLACEHOLDERS.items()))
    needs_arg, what = PLACEHOLDERS[name]
    if needs_arg and not arg:
        raise ValueError(f"{{{{{name}}}}} needs {what}, e.g. {{{{{name} "
                         f"{'x/a' if name != 'hostIP' else 'ext'}}}}}")
    if not needs_arg and arg:
        raise ValueError(f"{{{{{name}}}}} takes no argument (got {arg!r})")
    table = {"podIP": addresses.pod_ips, "hostIP": addresses.external_ips,
             "serviceIP": addresses.service_ips}.get(name)
    if table is None:
        return addresses.pod_cidr
    key = arg[4:] if name == "hostIP" and arg.startswith("ext:") else arg
    key = key[4:] if name == "serviceIP" and key.startswith("svc:") else key
    if key not in table:
        known = ", ".join(sorted(table)) or "none"
        raise ValueError(f"{{{{{name} {arg}}}}}: {what} {arg!r} is not in the model "
                         f"(known: {known})")
    return table[key]


def render_string(text: str, addresses: Addresses) -> str:
    """`text` with every placeholder replaced; ValueError names the first bad one."""
    return PLACEHOLDER_RE.sub(lambda m: _value(m.group(1), m.group(2), addresses), text)


def render_manifest(manifest: Any, addresses: Addresses) -> Any:
    """A plain deep copy of `manifest` with placeholders substituted in every string value.

    Raises PlaceholderError listing every unknown placeholder or unknown object, each with the
    field path (spec.ingress[0].from[0].ipBlock.cidr) and, when known, the file line.
    """
    problems: list[tuple[str, int | None, str]] = []

    def walk(value: Any, path: str, line: int | None) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                ln = value.key_line(k) if hasattr(value, "key_line") else line
                out[k] = walk(v, f"{path}.{k}" if path else str(k), ln)
            return out
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]",
                         value.item_line(i) if hasattr(value, "item_line") else line)
                    for i, v in enumerate(value)]
        if isinstance(value, str) and "{{" in value:
            try:
                rendered = render_string(value, addresses)
            except ValueError as exc:
                problems.append((path, line, str(exc)))
                return value
            if "{{" in rendered or "}}" in rendered:
                problems.append((path, line, f"{value!r} has a malformed placeholder; write "
                                             f"{{{{podIP x/a}}}}, {{{{podCIDR}}}}, "
                                             f"{{{{hostIP NAME}}}} or {{{{serviceIP ns/name}}}}"))
            return rendered
        return value

    result = walk(manifest, "", getattr(manifest, "line", None))
    if problems:
        raise PlaceholderError(problems)
    return result
