"""The `model:` section of a scenario file, read into a harness.model.Model.

Why its own module: the topology has two forms (the conformance model narrowed by a few keys, or
namespaces/pods/Services/external hosts declared one by one) and each has its own checks; the
rest of the loader only needs "a Model, or the problems that prevent one".
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from harness.model import (DEFAULT_NAMESPACES, DEFAULT_PODS, DEFAULT_PORTS, DEFAULT_PROTOCOLS,
                           POD_CIDR, SERVICE_CIDR, SYSTEM_NAMESPACE, ContainerPort, ExternalHost,
                           Model, Namespace, Pod, Protocol, Service, ServicePort)
from harness.scenario.lines import LineDict, LineList, did_you_mean

#: report(field, message, line)
Report = Callable[[str, str, int], None]

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}"
                        r"[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

MODEL_KEYS = ("namespaces", "pods", "ports", "protocols", "services", "externals")


def _line(container: Any, key: Any) -> int:
    if isinstance(container, LineDict):
        return container.key_line(key)
    if isinstance(container, LineList) and isinstance(key, int):
        return container.item_line(key)
    return getattr(container, "line", None)


def check_keys(data: LineDict, allowed: tuple[str, ...], where: str, report: Report) -> None:
    """Report every key of `data` that is not in `allowed`, with a did-you-mean."""
    for key in data:
        if key not in allowed:
            report(f"{where}.{key}" if where else str(key),
                   f"unknown key {key!r}{did_you_mean(str(key), allowed)}", data.key_line(key))


def check_labels(labels: Any, where: str, line: int, report: Report,
                 allow_null: bool = False) -> dict[str, str | None]:
    """Labels as the API accepts them; a value YAML read as a number or boolean is an error."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        report(where, "labels must be a mapping of key: value", line)
        return {}
    out: dict[str, str | None] = {}
    for k, v in labels.items():
        ln = _line(labels, k)
        if not isinstance(k, str) or not _LABEL_KEY.match(k):
            report(f"{where}.{k}", f"{k!r} is not a valid label key", ln)
            continue
        if v is None and allow_null:
            out[k] = None
            continue
        if not isinstance(v, str):
            text = str(v).lower() if isinstance(v, bool) else str(v)
            report(f"{where}.{k}", f"label value {text} must be a string: YAML reads it as "
                                   f"{type(v).__name__}; quote it (\"{text}\")", ln)
            continue
        if not _LABEL_VALUE.match(v):
            report(f"{where}.{k}", f"{v!r} is not a valid label value (at most 63 characters "
                                   f"of A-Za-z0-9-_., beginning and ending alphanumeric)", ln)
            continue
        out[k] = v
    return out


def _protocol(value: Any, where: str, line: int, report: Report) -> Protocol | None:
    if isinstance(value, Protocol):
        return value
    try:
        return Protocol.parse(value)
    except ValueError as exc:
        report(where, str(exc), line)
        return None


def _port_number(value: Any, where: str, line: int, report: Report) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        report(where, f"{value!r} is not a port number (1-65535)", line)
        return None
    return value


def _container_ports(data: Any, where: str, line: int, report: Report) -> tuple[ContainerPort, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        report(where, "ports must be a list: [80, {port: 5432, protocol: TCP, name: pg}]", line)
        return ()
    out = []
    for i, item in enumerate(data):
        w, ln = f"{where}[{i}]", _line(data, i)
        if isinstance(item, int) and not isinstance(item, bool):
            num = _port_number(item, w, ln, report)
            if num:
                out.append(ContainerPort(num, Protocol.TCP))
            continue
        if not isinstance(item, dict):
            report(w, "a port is a number or {port, protocol, name}", ln)
            continue
        check_keys(item, ("port", "protocol", "name"), w, report)
        num = _port_number(item.get("port"), f"{w}.port", ln, report)
        proto = _protocol(item.get("protocol", "TCP"), f"{w}.protocol", ln, report)
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or not _PORT_NAME.match(name)
                                 or not re.search("[a-z]", name)):
            report(f"{w}.name", f"{name!r} is not a valid port name (lower case a-z0-9-, at "
                                f"most 15 characters, at least one letter)", ln)
            name = None
        if num and proto:
            out.append(ContainerPort(num, proto, name))
    return tuple(out)


def _name_list(data: Any, where: str, line: int, report: Report, default: tuple) -> tuple:
    if data is None:
        return default
    if not isinstance(data, list) or not data:
        report(where, "must be a non-empty list", line)
        return default
    return tuple(data)


def parse_model(data: Any, report: Report) -> Model:
    """The Model a scenario's `model:` section describes (the conformance model when None).

    Problems go to `report`; the Model returned is the best that could be built, so later checks
    (matrix rows, probes) still run and the user sees every problem at once.
    """
    if data is None:
        return Model.default()
    if not isinstance(data, dict):
        report("model", "must be a mapping (or omitted for the conformance model)",
               getattr(data, "line", 0))
        return Model.default()
    check_keys(data, MODEL_KEYS, "model", report)
    custom = isinstance(data.get("pods"), dict) or isinstance(data.get("namespaces"), dict)
    model = _custom(data, report) if custom else _narrowed(data, report)
    services = _services(data.get("services"), model, report, _line(data, "services"))
    externals = _externals(data.get("externals"), report, _line(data, "externals"))
    return Model.build(model.namespaces, model.pods, services, externals)


def _narrowed(data: LineDict, report: Report) -> Model:
    nss = _name_list(data.get("namespaces"), "model.namespaces", _line(data, "namespaces"), report,
                     DEFAULT_NAMESPACES)
    pods = _name_list(data.get("pods"), "model.pods", _line(data, "pods"), report, DEFAULT_PODS)
    for what, names in (("namespaces", nss), ("pods", pods)):
        for i, n in enumerate(names):
            if not isinstance(n, str) or not _DNS_LABEL.match(n):
                report(f"model.{what}[{i}]", f"{n!r} is not a valid name (lower case a-z0-9-)",
                       _line(data.get(what), i))
    ports_raw = _name_list(data.get("ports"), "model.ports", _line(data, "ports"), report,
                           DEFAULT_PORTS)
    ports = tuple(p for i, p in enumerate(ports_raw)
                  if _port_number(p, f"model.ports[{i}]", _line(data.get("ports"), i), report))
    protos_raw = _name_list(data.get("protocols"), "model.protocols", _line(data, "protocols"),
                            report, DEFAULT_PROTOCOLS)
    protos = tuple(p for p in (_protocol(v, f"model.protocols[{i}]",
                                         _line(data.get("protocols"), i), report)
                               for i, v in enumerate(protos_raw)) if p is not None)
    return Model.default(tuple(n for n in nss if isinstance(n, str)),
                         tuple(p for p in pods if isinstance(p, str)), ports or DEFAULT_PORTS,
                         protos or DEFAULT_PROTOCOLS)


def _custom(data: LineDict, report: Report) -> Model:
    for key in ("ports", "protocols"):
        if key in data:
            report(f"model.{key}", f"{key} narrows the conformance model only; with a custom "
                                   f"model give each pod its own ports", data.key_line(key))
    declared: dict[str, Namespace] = {}
    raw_ns = data.get("namespaces")
    if isinstance(raw_ns, list):
        raw_ns = {n: None for n in raw_ns if isinstance(n, str)}
    elif raw_ns is not None and not isinstance(raw_ns, dict):
        report("model.namespaces", "must be a mapping name: {labels: {...}}",
               _line(data, "namespaces"))
        raw_ns = {}
    for name, spec in (raw_ns or {}).items():
        w, ln = f"model.namespaces.{name}", _line(raw_ns, name)
        if not isinstance(name, str) or not _DNS_LABEL.match(name):
            report(w, f"{name!r} is not a valid namespace name (lower case a-z0-9-)", ln)
            continue
        if name == SYSTEM_NAMESPACE:
            report(w, "kube-system is part of every model (it holds the cluster DNS)", ln)
            continue
        if spec is not None and not isinstance(spec, dict):
            report(w, "must be a mapping {labels: {...}}", ln)
            spec = None
        if spec:
            check_keys(spec, ("labels",), w, report)
        labels = check_labels((spec or {}).get("labels"), f"{w}.labels", ln, report)
        declared[name] = Namespace(name, labels)
    pods: list[Pod] = []
    raw_pods = data.get("pods")
    if not isinstance(raw_pods, dict) or not raw_pods:
        report("model.pods", "a custom model needs pods: {ns/name: {labels: ..., ports: ...}}",
               _line(data, "pods"))
        raw_pods = {}
    for key, spec in raw_pods.items():
        w, ln = f"model.pods.{key}", _line(raw_pods, key)
        ns, _, name = str(key).partition("/")
        if not _DNS_LABEL.match(ns) or not _DNS_LABEL.match(name):
            report(w, f"{key!r} must be <namespace>/<pod> in lower case a-z0-9-", ln)
            continue
        if ns == SYSTEM_NAMESPACE:
            report(w, "kube-system holds only the cluster DNS; put pods in your own namespaces",
                   ln)
            continue
        if spec is not None and not isinstance(spec, dict):
            report(w, "must be a mapping {labels: {...}, ports: [...]}", ln)
            spec = None
        spec = spec or LineDict()
        check_keys(spec, ("labels", "ports"), w, report)
        labels = check_labels(spec.get("labels"), f"{w}.labels", ln, report)
        ports = _container_ports(spec.get("ports"), f"{w}.ports", ln, report)
        if not ports:
            report(f"{w}.ports", "a pod must serve at least one port (probes need a server)", ln)
        names = [cp.name for cp in ports if cp.name]
        if len(set(names)) != len(names):
            report(f"{w}.ports", "port names must be unique within a pod", ln)
        declared.setdefault(ns, Namespace(ns, {}))
        pods.append(Pod(ns, name, labels, ports))
    return Model.build(tuple(declared.values()), pods)


def _services(data: Any, model: Model, report: Report, line: int) -> tuple[Service, ...]:
    if data is None:
        return ()
    if not isinstance(data, dict):
        report("model.services", "must be a mapping ns/name: {selector, ports}", line)
        return ()
    out = []
    for key, spec in data.items():
        w, ln = f"model.services.{key}", _line(data, key)
        ns, _, name = str(key).partition("/")
        if not _DNS_LABEL.match(ns) or not _DNS_LABEL.match(name):
            report(w, f"{key!r} must be <namespace>/<service> in lower case a-z0-9-", ln)
            continue
        if not any(n.name == ns for n in model.namespaces):
            report(w, f"namespace {ns!r} is not in the model"
                      f"{did_you_mean(ns, [n.name for n in model.namespaces if not n.system])}",
                   ln)
            continue
        if not isinstance(spec, dict):
            report(w, "must be a mapping {selector: {...}, ports: [...]}", ln)
            continue
        check_keys(spec, ("selector", "ports"), w, report)
        selector = check_labels(spec.get("selector"), f"{w}.selector", ln, report)
        ports = []
        raw_ports = spec.get("ports")
        if not isinstance(raw_ports, list) or not raw_ports:
            report(f"{w}.ports", "a Service needs ports: [{port: 80, targetPort: http}]", ln)
            raw_ports = []
        for i, item in enumerate(raw_ports):
            pw, pln = f"{w}.ports[{i}]", _line(raw_ports, i)
            if isinstance(item, int) and not isinstance(item, bool):
                item = {"port": item}
            if not isinstance(item, dict):
                report(pw, "a Service port is a number or {port, targetPort, protocol, name}", pln)
                continue
            if isinstance(item, LineDict):
                check_keys(item, ("port", "targetPort", "protocol", "name"), pw, report)
            num = _port_number(item.get("port"), f"{pw}.port", pln, report)
            proto = _protocol(item.get("protocol", "TCP"), f"{pw}.protocol", pln, report)
            target = item.get("targetPort", num)
            if isinstance(target, str):
                backends = [p for p in model.pods if p.namespace == ns and
                            all(p.labels.get(k) == v for k, v in selector.items())]
                if proto and backends and not any(p.resolve_port(target, proto)
                                                  for p in backends):
                    report(f"{pw}.targetPort", f"no pod this Service selects has a "
                                               f"{proto.value} port named {target!r}", pln)
            elif target is not None:
                target = _port_number(target, f"{pw}.targetPort", pln, report)
            if num and proto and target:
                ports.append(ServicePort(num, target, proto, item.get("name")))
        out.append(Service(ns, name, selector, tuple(ports)))
    return tuple(out)


def _externals(data: Any, report: Report, line: int) -> tuple[ExternalHost, ...]:
    if data is None:
        return ()
    if not isinstance(data, dict):
        report("model.externals", "must be a mapping name: {ip, ports}", line)
        return ()
    out = []
    reserved = [("the pod CIDR", ipaddress.ip_network(POD_CIDR)),
                ("the Service CIDR", ipaddress.ip_network(SERVICE_CIDR))]
    for name, spec in data.items():
        w, ln = f"model.externals.{name}", _line(data, name)
        if not isinstance(name, str) or not _DNS_LABEL.match(name):
            report(w, f"{name!r} is not a valid host name (lower case a-z0-9-)", ln)
            continue
        spec = spec if spec is not None else LineDict()
        if not isinstance(spec, dict):
            report(w, "must be a mapping {ip: ..., ports: [...]}", ln)
            continue
        check_keys(spec, ("ip", "ports"), w, report)
        ip = spec.get("ip")
        if ip is not None:
            iln = _line(spec, "ip")
            try:
                addr = ipaddress.ip_address(str(ip))
            except ValueError:
                report(f"{w}.ip", f"{ip!r} is not an IP address", iln)
                continue
            bad = next(((what, net) for what, net in reserved if addr in net), None)
            if bad:
                report(f"{w}.ip", f"{ip} is inside {bad[0]} {bad[1]}: an external host must be "
                                  f"outside the cluster; pick e.g. 192.0.2.10 or omit ip", iln)
                continue
            if addr.is_loopback or addr.is_multicast or addr.is_unspecified:
                report(f"{w}.ip", f"{ip} cannot be a host address", iln)
                continue
            ip = str(addr)
        # Why a default port: the backend runs a server on each external host, and a host that
        # serves nothing would make every probe to it undefined.
        ports = (_container_ports(spec.get("ports"), f"{w}.ports", ln, report)
                 or (ContainerPort(80, Protocol.TCP),))
        out.append(ExternalHost(name, ip, ports))
    return tuple(out)
