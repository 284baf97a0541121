"""The expectations of a step: `expect:` truth tables and `probes:`, read and validated.

Why its own module: expectations are the part of a scenario that names pods, ports and DNS
names, so most of its checks are about the model (unknown pods, ports no pod serves, matrix
shape); keeping them apart leaves harness.scenario with the file's overall structure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.model import DNS_SERVICE_ENDPOINT, Endpoint, Model, Protocol
from harness.results import Expectation
from harness.scenario.lines import (
    LineDict,
    Report,
    did_you_mean,
    is_mapping,
    optional_list,
)
from harness.scenario.topology import check_keys
from harness.truthtable import TruthTable

#: report(field, message, line)

_DNS_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$")
_PROBE_WORDS = {"allow": Expectation.ALLOW, "deny": Expectation.DENY}
_DNS_WORDS = {"resolves": Expectation.ALLOW, "fails": Expectation.DENY}


@dataclass(frozen=True)
class MatrixExpectation:
    """One `expect:` entry: a truth table of symbols ('.', 'X', '-') for one port/protocol.

    `row_lines` maps each source pod to the file line of its matrix row, so a disagreement
    names the exact line to fix.
    """

    port: int | str
    protocol: Protocol
    table: TruthTable
    field: str
    line: int
    row_lines: tuple[tuple[str, int], ...] = ()

    def row_line(self, row: str) -> int:
        return dict(self.row_lines).get(row, self.line)


@dataclass(frozen=True)
class ProbeExpectation:
    """One `probes:` entry. For a DNS probe `dns_name` is set and `target` is the DNS Service."""

    source: str
    target: str
    port: int | str
    protocol: Protocol
    expect: Expectation
    field: str
    line: int
    dns_name: str | None = None


def _port_value(value: Any, field: str, line: int, report: Report) -> int | str | None:
    if isinstance(value, bool) or value is None or not isinstance(value, (int, str)):
        report(field, f"required: a port number or a port name, got {value!r}", line)
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not 1 <= value <= 65535:
        report(field, f"{value} is outside 1-65535", line)
        return None
    return value


def _protocol(value: Any, field: str, line: int, report: Report) -> Protocol | None:
    try:
        return Protocol.parse(value if value is not None else "TCP")
    except ValueError as exc:
        report(field, str(exc), line)
        return None


def _model_has_port(model: Model, port: int | str, protocol: Protocol) -> bool:
    return any((n := p.resolve_port(port, protocol)) is not None and p.serves(n, protocol)
               for p in model.user_pods)


def read_matrices(raw: LineDict, where: str, model: Model,
              report: Report) -> list[MatrixExpectation]:
    data = optional_list(raw, "expect", where, "a list of {port, protocol, matrix}", report)
    if data is None:
        return []
    out, seen = [], set()
    keys = model.pod_keys
    for j, item in enumerate(data):
        w, ln = f"{where}.expect[{j}]", data.item_line(j)
        if not is_mapping(item):
            report(w, "must be a mapping {port, protocol, matrix}", ln)
            continue
        check_keys(item, ("port", "protocol", "matrix"), w, report)
        port = _port_value(item.get("port"), f"{w}.port", item.key_line("port"), report)
        proto = _protocol(item.get("protocol"), f"{w}.protocol", item.key_line("protocol"),
                          report)
        text = item.get("matrix")
        if not isinstance(text, str):
            report(f"{w}.matrix", "required: the truth table as a block (matrix: |)", ln)
            continue
        if port is None or proto is None:
            continue
        if (port, proto) in seen:
            report(w, f"a second table for {port}/{proto.value} in this step", ln)
            continue
        seen.add((port, proto))
        if not _model_has_port(model, port, proto):
            report(f"{w}.port", f"no pod of the model serves {proto.value} {port}", 
                   item.key_line("port"))
            continue
        first = item.value_line("matrix")
        try:
            table = TruthTable.parse(text, keys, keys, line_offset=first - 1)
        except ValueError as exc:
            msg = str(exc)
            m = re.match(r"lines? (\d+)", msg)
            bad = re.search(r"unknown row label '(.)';", msg)
            if bad:  # a one-character "label" is a mistyped symbol in an unlabelled row
                msg = re.sub(r"unknown row label .*", f"bad symbol {bad.group(1)!r}; use '.' "
                             f"(connects), 'X' (blocked) or '-' (not asserted)", msg)
            report(f"{w}.matrix", re.sub(r"^lines? [\d-]+: ", "", msg),
                   int(m.group(1)) if m else first)
            continue
        out.append(MatrixExpectation(port, proto, table, f"{w}.matrix", first,
                                     _row_lines(text, keys, first)))
    return out


def _row_lines(text: str, rows: tuple[str, ...], first: int) -> tuple[tuple[str, int], ...]:
    """The file line of each row of a matrix that TruthTable.parse accepted."""
    out, next_row, done = [], 0, set()
    for i, raw in enumerate(text.splitlines()):
        tokens = raw.split()
        if not tokens or tokens[0].startswith("#") or tuple(tokens) == rows:
            continue
        label = tokens[0] if tokens[0] in rows else None
        if label is None:
            while next_row < len(rows) and rows[next_row] in done:
                next_row += 1
            if next_row >= len(rows):
                break
            label = rows[next_row]
        done.add(label)
        out.append((label, first + i))
    return tuple(out)


def _endpoint_problem(value: Any, model: Model, role: str) -> str | None:
    """Why `value` is not a valid probe source/target, or None."""
    if not isinstance(value, str) or not value:
        return "required"
    ep = Endpoint.parse(value)
    if ep.is_external:
        names = [e.name for e in model.externals]
        return None if ep.key in names else (
            f"unknown external host {ep.key!r}" + (did_you_mean(ep.key, names) if names
                                                   else " (the model declares none)"))
    if ep.is_service:
        if role == "from":
            return "a Service cannot open a connection; use a pod or ext:<host>"
        names = [s.key for s in model.services]
        return None if ep.key in names else (
            f"unknown Service {ep.key!r}{did_you_mean(ep.key, names)}")
    if ep.is_pod:
        keys = [p.key for p in model.user_pods]
        return None if value in keys else f"unknown pod {value!r}{did_you_mean(value, keys)}"
    if role == "from":
        return f"{value!r} is not a pod (ns/name) or an external host (ext:name)"
    if not _DNS_NAME_RE.match(value):
        return f"{value!r} is not a pod, svc:ns/name, ext:name or DNS name"
    return None


def read_probes(raw: LineDict, where: str, model: Model,
            report: Report) -> list[ProbeExpectation]:
    data = optional_list(raw, "probes", where, "a list of probes", report)
    if data is None:
        return []
    out = []
    for j, item in enumerate(data):
        w, ln = f"{where}.probes[{j}]", data.item_line(j)
        if not is_mapping(item):
            report(w, "a probe is {from, to, port, protocol, expect} or {from, dns, expect}", ln)
            continue
        dns = "dns" in item
        check_keys(item, ("from", "dns", "expect") if dns else
                   ("from", "to", "port", "protocol", "expect"), w, report)
        bad = False
        for role in ("from",) if dns else ("from", "to"):
            why = _endpoint_problem(item.get(role), model, role)
            if why:
                report(f"{w}.{role}", why, item.key_line(role))
                bad = True
        words = _DNS_WORDS if dns else _PROBE_WORDS
        raw_expect = item.get("expect")
        expect = words.get(raw_expect) if isinstance(raw_expect, str) else None
        if expect is None:
            report(f"{w}.expect", f"must be {' or '.join(words)}, got {item.get('expect')!r}",
                   item.key_line("expect"))
            bad = True
        if dns:
            name = item.get("dns")
            if not isinstance(name, str) or not _DNS_NAME_RE.match(name):
                report(f"{w}.dns", f"{name!r} is not a DNS name", item.key_line("dns"))
                bad = True
            if not bad and expect is not None:
                out.append(ProbeExpectation(item["from"], DNS_SERVICE_ENDPOINT,
                                            53, Protocol.UDP, expect, w, ln, name))
            continue
        port = _port_value(item.get("port"), f"{w}.port", item.key_line("port"), report)
        proto = _protocol(item.get("protocol"), f"{w}.protocol", item.key_line("protocol"),
                          report)
        if bad or port is None or proto is None or expect is None:
            continue
        out.append(ProbeExpectation(item["from"], item["to"], port, proto, expect, w, ln))
    return out
