"""Policy documents of a scenario step: `file:` references, inline manifests, and their checks.

Why its own module: a policy in a scenario must be one the Kubernetes API server would accept,
so it is validated against the real Kubernetes OpenAPI schema (kubernetes-validate, pinned to one
Kubernetes version), then parsed by harness.policy for the rules the schema cannot express
(ipBlock except inside cidr, endPort with a numeric port...). Placeholders are replaced by
stand-in addresses first, so `{{podIP x/a}}/32` is checked as the CIDR it will become.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from harness.model import Addresses, Model
from harness.policy import API_VERSION, KIND, is_network_policy, parse_policy
from harness.scenario.lines import Report, did_you_mean, load_documents, plain, yaml_error_line
from harness.scenario.placeholders import PlaceholderError, render_manifest

#: The Kubernetes version whose OpenAPI schema policies are validated against. Pinned so a
#: scenario that is valid today stays valid when kubernetes-validate ships a newer schema.
K8S_SCHEMA_VERSION = "1.35.0"

#: Policy kinds the oracle does not model but a scenario may apply (CNI-specific scenarios):
#: kind -> (API groups it may come from, capability a scenario applying it must require or None)
OTHER_POLICY_KINDS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "CiliumNetworkPolicy": (("cilium.io",), None),
    "CiliumClusterwideNetworkPolicy": (("cilium.io",), "cluster-scoped-policy"),
    "NetworkPolicy": (("projectcalico.org", "crd.projectcalico.org"), "calico-policy"),
    "GlobalNetworkPolicy": (("projectcalico.org", "crd.projectcalico.org"), "calico-policy"),
    "AdminNetworkPolicy": (("policy.networking.k8s.io",), "admin-network-policy"),
    "BaselineAdminNetworkPolicy": (("policy.networking.k8s.io",), "admin-network-policy"),
    "ClusterNetworkPolicy": (("policy.networking.k8s.io",), "admin-network-policy"),
}

#: report(field, message, line, path-of-file-or-None)


@dataclass(frozen=True)
class PolicyDoc:
    """One policy manifest of a step, and where it was written (`file:line`).

    `manifest` keeps any {{placeholders}}; harness.scenario.placeholders.render_manifest substitutes
    them once the addresses are known.
    """

    manifest: dict
    origin: str

    @property
    def key(self) -> str:
        meta = self.manifest.get("metadata") or {}
        ns = meta.get("namespace")
        return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))

    @property
    def kind(self) -> str:
        return f"{self.manifest.get('apiVersion')} {self.manifest.get('kind')}"


@cache
def _validator(kind: str, api_version: str):
    """A Draft 2020-12 validator for one kind from kubernetes-validate's pinned strict schema,
    or None when the package has no schema for it (a CRD kind).

    Why not kubernetes_validate.validate(): it re-reads the ~1 MB definitions file on every
    call (40 ms); a scenario directory validates hundreds of policies.
    """
    # imported when used: jsonschema and kubernetes-validate take 0.4-0.6 s to import
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    version = utils.major_minor(K8S_SCHEMA_VERSION)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json",
                                       K8S_SCHEMA_VERSION)
    except FileNotFoundError:
        return None
    defs = utils.schema_contents(f"{folder}/_definitions.json", K8S_SCHEMA_VERSION)
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _schema_validate(manifest: dict) -> tuple[str, list] | None:
    """(message, path) of the first Kubernetes schema error, or None when valid."""
    validator = _validator(str(manifest.get("kind")), str(manifest.get("apiVersion")))
    if validator is None:
        return None
    import jsonschema  # loaded by _validator already

    best = jsonschema.exceptions.best_match(validator.iter_errors(manifest))
    if best is None:
        return None
    if best.validator == "additionalProperties" and isinstance(best.instance, dict):
        # Why: "Additional properties are not allowed" does not say what was meant; a typo
        # such as `ingres` deserves the same did-you-mean as a typo in the scenario itself.
        known = list(best.schema.get("properties") or {})
        extra = [k for k in best.instance if k not in known]
        if extra:
            return (f"unknown field {extra[0]!r}{did_you_mean(str(extra[0]), known)}",
                    list(best.path) + [extra[0]])
    return best.message.splitlines()[0], list(best.path)


def _path_text(path: list) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _path_in_message(msg: str) -> list:
    """The field path harness.policy names in its message (spec.ingress[0].ports[1]), as a list."""
    m = re.search(r"\bspec(?:\.[A-Za-z]+|\[\d+\])*", msg)
    if not m:
        return []
    return [int(p) if p.isdigit() else p for p in re.findall(r"[A-Za-z]+|\d+", m.group(0))]


def _line_at(doc: Any, path: list) -> int | None:
    """The file line of the deepest element of `path` that exists in the loaded document."""
    line = getattr(doc, "line", None)
    node = doc
    for p in path:
        if isinstance(node, dict) and p in node:
            line = node.key_line(p) if hasattr(node, "key_line") else line
            node = node[p]
        elif isinstance(node, list) and isinstance(p, int) and 0 <= p < len(node):
            line = node.item_line(p) if hasattr(node, "item_line") else line
            node = node[p]
        else:
            break
    return line


def read_apply_entry(entry: Any, field: str, line: int, scenario_path: Path, model: Model,
                     stand_ins: Addresses, report: Report) -> list[PolicyDoc]:
    """The policy documents one `apply:` entry stands for, each validated; problems reported."""
    if not isinstance(entry, dict):
        report(field, "an apply entry is an inline manifest or {file: PATH, namespace: NS}", line)
        return []
    if "file" in entry:
        extra = set(entry) - {"file", "namespace"}
        if extra:
            report(field, f"a file entry has only file and namespace; unexpected "
                          f"{', '.join(sorted(map(str, extra)))}", line)
        ref = entry["file"]
        if not isinstance(ref, str) or not ref:
            report(f"{field}.file", "must be a path relative to the scenario file", line)
            return []
        fpath = (scenario_path.parent / ref)
        if not fpath.is_file():
            report(f"{field}.file", f"{ref}: no such file (looked for {fpath}; paths are "
                                    f"relative to the scenario file)", line)
            return []
        try:
            docs = load_documents(fpath.read_text())
        except yaml.YAMLError as exc:
            report(f"{field}.file", f"{ref}: not valid YAML: {exc}", yaml_error_line(exc),
                   str(fpath))
            return []
        if not docs:
            report(f"{field}.file", f"{ref}: holds no YAML document", line)
        origin_path, default_ns = str(fpath), entry.get("namespace")
        if default_ns is not None and not isinstance(default_ns, str):
            report(f"{field}.namespace", "must be a namespace name", line)
            default_ns = None
        # Why the entry's field: the problem's path and line point into the policy file itself
        found: list[tuple[Any, str, int, str | None]] = [
            (d, field, getattr(d, "line", 1), origin_path) for d in docs]
    else:
        default_ns = None
        found = [(entry, field, line, None)]
    out = []
    for doc, where, dline, other_path in found:
        pd = _check_manifest(doc, where, dline, other_path, scenario_path, default_ns, model,
                             stand_ins, report)
        if pd is not None:
            out.append(pd)
    return out


def _check_manifest(doc: Any, where: str, line: int, file_path: str | None, scenario_path: Path,
                    default_ns: str | None, model: Model, stand_ins: Addresses,
                    report: Report) -> PolicyDoc | None:
    def rep(field: str, message: str, ln: int | None) -> None:
        if file_path is None:
            report(field, message, ln)
        else:
            report(field, message, ln, file_path)

    if not isinstance(doc, dict):
        rep(where, "a policy manifest must be a mapping with apiVersion, kind, metadata, spec",
            line)
        return None
    # Why plain: the manifest goes to API clients and YAML dumpers, which reject dict subclasses;
    # the line-carrying `doc` is kept for error messages.
    manifest = plain(doc)
    api, kind = manifest.get("apiVersion"), manifest.get("kind")
    meta = manifest.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        rep(f"{where}.metadata.name", "required: every policy needs a name", line)
        return None
    network_policy = is_network_policy(manifest)
    other = OTHER_POLICY_KINDS.get(str(kind))
    group = str(api).split("/")[0] if isinstance(api, str) else ""
    if not network_policy and not (other and group in other[0]):
        rep(f"{where}.kind", f"{api} {kind} is not a policy kind netpol-proof knows; use "
                             f"{API_VERSION} {KIND} (or a CNI policy kind: "
                             f"{', '.join(sorted(OTHER_POLICY_KINDS))})", line)
        return None
    if default_ns and not meta.get("namespace"):
        meta["namespace"] = default_ns
    ns = meta.get("namespace")
    cluster_scoped = kind in ("CiliumClusterwideNetworkPolicy", "GlobalNetworkPolicy",
                              "AdminNetworkPolicy", "BaselineAdminNetworkPolicy",
                              "ClusterNetworkPolicy")
    if not ns and not cluster_scoped:
        rep(f"{where}.metadata.namespace", f"required: policy {meta['name']!r} names no "
                                           f"namespace (set it, or `namespace:` on the file "
                                           f"entry, like kubectl apply -n)", line)
        return None
    if ns and not any(n.name == ns for n in model.namespaces):
        rep(f"{where}.metadata.namespace", f"namespace {ns!r} is not in the model "
                                           f"({', '.join(n.name for n in model.namespaces)})",
            line)
        return None
    try:
        rendered = render_manifest(doc, stand_ins)
    except PlaceholderError as exc:
        for f, ln, msg in exc.problems:
            rep(f"{where}.{f}", msg, ln or line)
        return None
    if ns:
        rendered.setdefault("metadata", {})["namespace"] = ns
    ok = True
    if network_policy:
        err = _schema_validate(rendered)
        if err is not None:
            msg, path = err
            rep(f"{where}.{_path_text(path)}" if path else where,
                f"the Kubernetes {K8S_SCHEMA_VERSION.rsplit('.', 1)[0]} API would reject this "
                f"NetworkPolicy: {msg}", _line_at(doc, path) or line)
            ok = False
        else:
            try:
                parse_policy(rendered, where="")
            except ValueError as exc:
                msg = str(exc).lstrip(": ")
                path = _path_in_message(msg)
                rep(f"{where}.{_path_text(path)}" if path else where,
                    f"invalid NetworkPolicy: {msg}", _line_at(doc, path) or line)
                ok = False
    if not ok:
        return None
    origin_file = file_path or str(scenario_path)
    return PolicyDoc(manifest, f"{origin_file}:{line}")
