"""Scenario files: find them, read them strictly, and turn them into Scenario / Step data.

Why strict and exhaustive: a scenario is the contract a live run is judged against. An unknown
key, a pod that does not exist or a policy the API server would reject must stop the run before
any cluster is touched, and every problem is reported at once with file, line and field (the
way kind's config loader decodes strictly and validates everything before returning). The format
is documented in docs/scenarios.md; harness/schema/scenario.schema.json mirrors it for editors.

What the oracle says about the expectations (check_scenario, expected_cells, validate_file) is in
harness.expected; this module only reads and validates the file's own content.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from harness import capabilities
from harness.errors import Problem, ScenarioError
from harness.model import Model, plan_addresses
from harness.scenario.expectations import read_matrices, read_probes
from harness.scenario.faults import read_fault
from harness.scenario.lines import (
    LineDict,
    did_you_mean,
    is_mapping,
    is_sequence,
    load_documents,
    optional_list,
    optional_mapping,
    yaml_error_line,
)
from harness.scenario.policies import OTHER_POLICY_KINDS, PolicyDoc, read_apply_entry
from harness.scenario.topology import check_keys, check_labels, parse_model
from harness.scenario.types import Assume, Scenario, Step

__all__ = ["load_scenario", "find_scenarios", "is_scenario_file"]

TOP_KEYS = ("kind", "name", "description", "requires", "model", "steps")
STEP_KEYS = ("title", "namespace_labels", "pod_labels", "apply", "delete", "expect", "probes",
             "assume", "fault")
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


# -- finding ------------------------------------------------------------------------------------
def is_scenario_file(path: Path) -> bool:
    """True for a YAML file whose top level (first document) has `kind: Scenario`.

    Why a cheap text scan first: directories hold many YAML files (policies, kind configs) and
    only scenario files should be parsed.
    """
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    if not re.search(r"^kind:\s*['\"]?Scenario['\"]?\s*(#.*)?$", text, re.M):
        return False
    try:
        first = next(iter(yaml.safe_load_all(text)), None)
    except yaml.YAMLError:
        return True  # looks like a scenario: let load_scenario report the YAML error
    return is_mapping(first) and first.get("kind") == "Scenario"


def find_scenarios(paths: Iterable[str | Path]) -> list[Path]:
    """Scenario files among `paths`: files as given (if they are scenarios), directories
    searched recursively (hidden ones skipped), sorted; a path that does not exist raises
    ScenarioError."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            # Why skip hidden directories: .git, .venv and tool caches hold YAML of their own
            out.extend(f for f in sorted(p.rglob("*"))
                       if not any(part.startswith(".") for part in f.relative_to(p).parts)
                       and is_scenario_file(f))
        elif p.is_file():
            if is_scenario_file(p):
                out.append(p)
        else:
            raise ScenarioError(Problem(str(p), "path", "no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


# -- loading ------------------------------------------------------------------------------------
class _Collector:
    """Collects problems for one file; `report(field, message, line, path=None)`."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.problems: list[Problem] = []

    def __call__(self, field: str, message: str, line: int | None = None,
                 path: str | None = None) -> None:
        self.problems.append(Problem(path or self.path, field, message, line))


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file; ScenarioError lists every problem found."""
    path = Path(path)
    report = _Collector(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(Problem(str(path), "file", f"cannot read: {exc.strerror}")) from None
    try:
        docs = load_documents(text)
    except yaml.YAMLError as exc:
        msg = " ".join(str(getattr(exc, "problem", exc) or exc).split())
        raise ScenarioError(Problem(str(path), "yaml", f"not valid YAML: {msg}",
                                    yaml_error_line(exc))) from None
    data = docs[0] if len(docs) == 1 else None
    if not is_mapping(data):
        raise ScenarioError(Problem(str(path), "file", "a scenario file holds exactly one YAML "
                                                      "mapping with kind: Scenario", 1))
    if data.get("kind") != "Scenario":
        report("kind", f"must be Scenario, got {data.get('kind')!r}", data.key_line("kind"))
    check_keys(data, TOP_KEYS, "", report)
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        report("name", f"required: a name of lower case a-z0-9- (the test id), got {name!r}",
               data.key_line("name"))
        name = path.stem
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        report("description", "required: say what the scenario shows and why it matters "
                              "(reports and labs print it)", data.key_line("description"))
        description = ""
    requires = _requires(data.get("requires"), data.key_line("requires"), report)
    model = parse_model(data.get("model"), report)
    steps = _steps(data.get("steps"), data, path, model, report)
    _check_requires_kinds(steps, requires, data.key_line("requires"), report)
    _check_requires_faults(steps, requires, data.key_line("requires"), report)
    if report.problems:
        # Why sorted: a user fixes a file top to bottom (policy files referenced come last)
        raise ScenarioError(sorted(report.problems, key=lambda p: (
            p.path != report.path, p.path, p.line or 0)))
    return Scenario(path, name, description.strip(), requires, model, steps,
                    tuple(text.splitlines()))


def _requires(data: Any, line: int, report: _Collector) -> tuple[str, ...]:
    if data is None:
        return ()
    if not is_sequence(data) or not all(isinstance(r, str) for r in data):
        report("requires", "must be a list of capability names, e.g. [networkpolicy, egress]",
               line)
        return ()
    for i, r in enumerate(data):
        if r in capabilities.unknown([r]):
            report(f"requires[{i}]", f"unknown capability {r!r}"
                                     f"{did_you_mean(r, capabilities.KNOWN)}", data.item_line(i))
    return tuple(data)


def _check_requires_kinds(steps: tuple[Step, ...], requires: tuple[str, ...], line: int,
                          report: _Collector) -> None:
    """A scenario applying a CNI-specific policy kind must require the capability for it."""
    for step in steps:
        for doc in step.apply:
            need = OTHER_POLICY_KINDS.get(str(doc.manifest.get("kind")), (None, None))[1]
            if need and doc.manifest.get("apiVersion") != "networking.k8s.io/v1" \
                    and need not in requires:
                report("requires", f"{doc.kind} {doc.key} (step {step.index + 1}) needs the "
                                   f"capability {need!r}: add it to requires so backends "
                                   f"without it skip the scenario", line)


def _check_requires_faults(steps: tuple[Step, ...], requires: tuple[str, ...], line: int,
                           report: _Collector) -> None:
    """A scenario with fault steps must require the capability for each kind of fault, so
    that a backend which cannot (or must not) stop that component skips it with the reason."""
    needed: dict[str, int] = {}
    for step in steps:
        for target in sorted(step.fault.targets if step.fault else ()):
            needed.setdefault(target.capability, step.index)
    for need, index in needed.items():
        if need not in requires:
            report("requires", f"step {index + 1} has a fault step that needs the capability "
                               f"{need!r}: add it to requires so backends without it skip the "
                               f"scenario", line)


def _steps(data: Any, top: LineDict, path: Path, model: Model,
           report: _Collector) -> tuple[Step, ...]:
    if not is_sequence(data) or not data:
        report("steps", "required: a non-empty list of steps", top.key_line("steps"))
        return ()
    stand_ins = plan_addresses(model)
    steps = []
    in_force: set[str] = set()
    current = model
    for i, raw in enumerate(data):
        where, line = f"steps[{i}]", data.item_line(i)
        if not is_mapping(raw):
            report(where, "a step is a mapping (title, apply, expect, ...)", line)
            continue
        check_keys(raw, STEP_KEYS, where, report)
        title = raw.get("title") or f"step {i + 1}"
        if not isinstance(title, str):
            report(f"{where}.title", "must be a string", raw.key_line("title"))
            title = f"step {i + 1}"
        ns_labels = _label_changes(raw, "namespace_labels", where, current, report)
        pod_labels = _label_changes(raw, "pod_labels", where, current, report)
        try:
            current = current.with_labels(ns_labels, pod_labels)
        except KeyError:
            pass  # already reported by _label_changes
        delete = _deletes(raw, where, in_force, report)
        in_force -= set(delete)
        apply = _applies(raw, where, path, current, stand_ins, report)
        in_force |= {d.key for d in apply}
        expect = read_matrices(raw, where, current, report)
        probes = read_probes(raw, where, current, report)
        assume = _assume(raw, where, report)
        has_change = any(k in raw for k in ("namespace_labels", "pod_labels", "delete", "apply"))
        fault = read_fault(raw, where, current, has_change, report)
        steps.append(Step(i, title, ns_labels, pod_labels, tuple(apply), tuple(delete),
                          tuple(expect), tuple(probes), assume, line, fault))
    return tuple(steps)


def _label_changes(raw: LineDict, key: str, where: str, model: Model,
                   report: _Collector) -> dict:
    data = optional_mapping(raw, key, where, "a mapping: {<target>: {label: value or null}}",
                            report)
    if data is None:
        return {}
    w = f"{where}.{key}"
    names = ([n.name for n in model.namespaces] if key == "namespace_labels"
             else [p.key for p in model.pods])
    out = {}
    for target, labels in data.items():
        if target not in names:
            what = "namespace" if key == "namespace_labels" else "pod"
            report(f"{w}.{target}", f"unknown {what} {target!r}{did_you_mean(str(target), names)}",
                   data.key_line(target))
            continue
        out[target] = check_labels(labels, f"{w}.{target}", data.key_line(target), report,
                                   allow_null=True)
    return out


def _deletes(raw: LineDict, where: str, in_force: set[str], report: _Collector) -> list[str]:
    data = optional_list(raw, "delete", where, "a list of ns/name", report)
    if data is None:
        return []
    out = []
    for j, key in enumerate(data):
        w, ln = f"{where}.delete[{j}]", data.item_line(j)
        if not isinstance(key, str) or key not in in_force:
            report(w, f"no policy {key!r} is in force at this step"
                      f"{did_you_mean(str(key), in_force) if in_force else ' (none is)'}", ln)
            continue
        out.append(key)
    return out


def _applies(raw: LineDict, where: str, path: Path, model: Model, stand_ins,
             report: _Collector) -> list[PolicyDoc]:
    data = optional_list(raw, "apply", where, "a list of manifests or {file: PATH}", report)
    if data is None:
        return []
    out: list[PolicyDoc] = []
    seen: dict[tuple[str, str], str] = {}
    for j, entry in enumerate(data):
        w, ln = f"{where}.apply[{j}]", data.item_line(j)
        for doc in read_apply_entry(entry, w, ln, path, model, stand_ins, report):
            ident = (str(doc.manifest.get("kind")), doc.key)
            if ident in seen:
                report(w, f"{ident[0]} {doc.key} is applied twice in this step (first at "
                          f"{seen[ident]}); one object per name: merge them or rename one", ln)
                continue
            seen[ident] = doc.origin
            out.append(doc)
    return out


def _assume(raw: LineDict, where: str, report: _Collector) -> Assume | None:
    data = optional_mapping(raw, "assume", where, "{cni: NAME, why: TEXT}", report)
    if data is None:
        return None
    w, line = f"{where}.assume", raw.key_line("assume")
    check_keys(data, ("cni", "why"), w, report)
    cni, why = data.get("cni"), data.get("why")
    if not isinstance(cni, str) or not cni or not isinstance(why, str) or not why.strip():
        report(w, "needs both cni (which CNI this behaviour describes) and why", line)
        return None
    return Assume(cni, why.strip())
