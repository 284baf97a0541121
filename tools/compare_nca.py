"""Compare the oracle with IBM's Network Config Analyzer (NCA) on the classic cases.

Why: the oracle is the reference every live run is judged against; an independent analyser
written by other people from the same spec catches the mistakes our own tests share with our
code. NCA (PyPI `network-config-analyzer`) pins old dependencies, so it lives in its own venv
`.venv-nca` at the repository root, created here on first use; it never enters the main env.

For each case the model is written as the YAML NCA reads (a NamespaceList and a PodList whose
pods carry the model's labels, named container ports and stand-in pod IPs) and the policies as
a List; `nca --connectivity --output_format txt_no_fw_rules` prints one line per allowed
(source, destination, connection set), which is compared cell by cell (pod to pod, ports 80/81,
TCP/UDP/SCTP, self excluded) with Oracle.decide. Findings are recorded in docs/oracle.md.

Usage: python tools/compare_nca.py [--case NAME] [--random N [--seed S]] [--nca PATH] [--install]
Exit status: 0 when every difference is one of the KNOWN_DIFFERENCES explained in
docs/oracle.md, 1 otherwise, 2 when NCA cannot be run.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.errors import ExecError  # noqa: E402
from harness.model import ContainerPort, ExternalHost, Model, Namespace, Pod, Protocol, plan_addresses  # noqa: E402
from harness.oracle import Oracle  # noqa: E402
from harness.results import Expectation  # noqa: E402
from harness.shell import run  # noqa: E402

NCA_VERSION = "2.1.0"
VENV = ROOT / ".venv-nca"
PORTS = (80, 81)
PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)


def np(ns: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def sel(**labels) -> dict:
    return {"matchLabels": labels}


@dataclass
class Case:
    name: str
    policies: list[dict]
    model: Model = field(default_factory=Model.default)
    #: why the two analysers are expected to differ here, when they are (see docs/oracle.md)
    known_difference: str = ""
    #: give NCA the policies as written, without `for_nca` (to show where NCA reads them
    #: differently from the API server)
    raw: bool = False


def _web_model() -> Model:
    """Two servers that give the port name `web` different numbers (egress named ports)."""
    def cps(web: int):
        other = 81 if web == 80 else 80
        return (ContainerPort(web, Protocol.TCP, "web"), ContainerPort(other, Protocol.TCP, "other"))
    plain = (ContainerPort(80, Protocol.TCP), ContainerPort(81, Protocol.TCP))
    return Model.build([Namespace("x", {"ns": "x"}), Namespace("y", {"ns": "y"})],
                       [Pod("x", "a", {"pod": "a"}, plain), Pod("y", "b", {"pod": "b"}, cps(80)),
                        Pod("y", "c", {"pod": "c"}, cps(81))])


def _with_externals() -> Model:
    """The conformance model plus three hosts outside the cluster, serving like the pods."""
    m = Model.default()
    serve = tuple(ContainerPort.serve(p, proto) for p in PORTS for proto in PROTOCOLS)
    return Model.build(m.namespaces, m.pods, (), [
        ExternalHost("inside", "10.0.0.10", serve), ExternalHost("excepted", "10.0.1.5", serve),
        ExternalHost("outside", "192.0.2.10", serve)])


DENY_INGRESS = np("x", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress"]})
POD_A = sel(pod="a")
IPBLOCK_PODS = ("ipBlock matching pod IPs: the upstream conformance tests (netpol "
                "'should allow egress access to server in CIDR block', 'should enforce except "
                "clause while egress access to server in CIDR block') expect ipBlock to match "
                "pod IPs; NCA applies ipBlock to addresses outside the cluster's pods only")
FROM_UPDATED = np("x", "from-updated", {"podSelector": POD_A, "ingress": [
    {"from": [{"namespaceSelector": sel(ns2="updated")}]}]})

EGRESS_ONLY_WITH_INGRESS_RULES = np("x", "eg-only", {
    "podSelector": POD_A, "policyTypes": ["Egress"],
    "ingress": [{"from": [{"podSelector": sel(pod="nope")}]}],
    "egress": [{"to": [{"namespaceSelector": {"matchExpressions": [
        {"key": "ns", "operator": "Exists"}]}}], "ports": [{"protocol": "UDP"}]}]})
NCA_REFUSES = ("NCA refuses a policy with ingress rules but no Ingress in policyTypes (exit 7); "
               "the API server accepts it and every implementation ignores those rules")
EMPTY_EGRESS = np("y", "empty-egress", {"podSelector": sel(pod="b"), "egress": []})
EMPTY_EGRESS_WHY = ("`egress: []` without policyTypes: the API server defaults policyTypes to "
                    "[Ingress] because len(egress) == 0 (SetDefaults_NetworkPolicy); NCA "
                    "isolates the pod for egress as well")

EXISTS_WHY = ("a peer combining namespaceSelector with a podSelector that uses Exists or "
              "DoesNotExist: NCA 2.1.0 matches no pod (alone, the same podSelector works); per "
              "the API reference such a peer 'selects particular Pods within particular "
              "namespaces', so the pods of those namespaces whose labels satisfy the "
              "expressions are allowed")

CASES = [
    Case("no-policy", []),
    Case("deny-all-ingress", [DENY_INGRESS]),
    Case("deny-all-egress", [np("x", "deny-egress", {"podSelector": {},
                                                     "policyTypes": ["Egress"]})]),
    Case("allow-from-one-namespace", [DENY_INGRESS, np("x", "allow-from-y", {
        "podSelector": {}, "ingress": [{"from": [{"namespaceSelector": sel(ns="y")}]}]})]),
    Case("pod-and-namespace-selector-and", [np("x", "and", {"podSelector": POD_A, "ingress": [
        {"from": [{"namespaceSelector": sel(ns="y"), "podSelector": sel(pod="b")}]}]})]),
    Case("pod-and-namespace-selector-or", [np("x", "or", {"podSelector": POD_A, "ingress": [
        {"from": [{"namespaceSelector": sel(ns="y")}, {"podSelector": sel(pod="b")}]}]})]),
    Case("namespace-selector-empty", [np("x", "all-ns", {"podSelector": POD_A, "ingress": [
        {"from": [{"namespaceSelector": {}, "podSelector": sel(pod="b")}]}]})]),
    Case("match-expressions", [np("x", "expr", {"podSelector": POD_A, "ingress": [
        {"from": [{"namespaceSelector": {"matchExpressions": [
            {"key": "ns", "operator": "NotIn", "values": ["x", "y"]}]},
            "podSelector": {"matchExpressions": [
                {"key": "pod", "operator": "In", "values": ["a", "c"]}]}}]}]})]),
    Case("selector-matching-nothing", [np("x", "nothing", {"podSelector": POD_A, "ingress": [
        {"from": [{"podSelector": sel(pod="nope")}]}]})]),
    Case("empty-from", [np("x", "empty-from", {"podSelector": POD_A, "ingress": [
        {"from": [], "ports": [{"port": 81}]}]})]),
    Case("ipblock-except-egress", [np("x", "egress-cidr", {
        "podSelector": POD_A, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                        "except": ["10.244.1.13/32", "10.244.1.16/30"]}}]}]})],
         known_difference=IPBLOCK_PODS),
    Case("ipblock-except-ingress", [np("x", "ingress-cidr", {
        "podSelector": POD_A,
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.1.8/29",
                                           "except": ["10.244.1.12/31"]}}]}]})],
         known_difference=IPBLOCK_PODS),
    Case("exists-pod-selector-with-namespace-selector", [np("x", "exists", {
        "podSelector": POD_A, "policyTypes": ["Egress"], "egress": [{"to": [{
            "namespaceSelector": sel(ns="y"),
            "podSelector": {"matchExpressions": [{"key": "pod", "operator": "Exists"}]}}]}]})],
         known_difference=EXISTS_WHY),
    Case("does-not-exist-pod-selector-with-namespace-selector", [np("x", "dne", {
        "podSelector": POD_A, "policyTypes": ["Egress"], "egress": [{"to": [{
            "namespaceSelector": {"matchExpressions": [
                {"key": "ns", "operator": "NotIn", "values": ["x"]}]},
            "podSelector": {"matchExpressions": [
                {"key": "other", "operator": "DoesNotExist"}]}}]}]})],
         known_difference=EXISTS_WHY),
    Case("does-not-exist-pod-selector-alone", [np("x", "dne-alone", {
        "podSelector": POD_A, "policyTypes": ["Egress"], "egress": [{"to": [{
            "podSelector": {"matchExpressions": [
                {"key": "other", "operator": "DoesNotExist"}]}}]}]})]),
    Case("named-port-ingress", [np("x", "named", {"podSelector": POD_A, "ingress": [
        {"ports": [{"port": "serve-81-tcp"}]}]})]),
    Case("named-port-egress-per-destination", [np("x", "egress-web", {
        "podSelector": POD_A, "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": "web"}]}]})], model=_web_model()),
    Case("end-port", [np("x", "range", {"podSelector": POD_A, "policyTypes": ["Egress"],
                                        "egress": [{"ports": [{"port": 81, "endPort": 82}]}]})]),
    Case("sctp-only", [np("x", "sctp", {"podSelector": POD_A, "ingress": [
        {"ports": [{"protocol": "SCTP", "port": 80}]}]})]),
    Case("multiple-additive", [DENY_INGRESS,
        np("x", "a-from-y-a", {"podSelector": POD_A, "ingress": [
            {"from": [{"namespaceSelector": sel(ns="y"), "podSelector": sel(pod="a")}]}]}),
        np("x", "b-from-z", {"podSelector": sel(pod="b"), "ingress": [
            {"from": [{"namespaceSelector": sel(ns="z")}]}]})]),
    Case("needs-egress-and-ingress", [
        np("x", "a-egress-to-y", {"podSelector": POD_A, "policyTypes": ["Egress"], "egress": [
            {"to": [{"namespaceSelector": sel(ns="y")}]}]}),
        np("y", "deny-b", {"podSelector": sel(pod="b")})]),
    Case("named-port-protocol-mismatch", [np("x", "udp-name-as-tcp", {
        "podSelector": POD_A, "ingress": [{"ports": [{"port": "serve-80-udp"}]}]})]),
    Case("policy-types-egress-ignores-ingress-rules", [EGRESS_ONLY_WITH_INGRESS_RULES]),
    Case("raw-policy-types-egress-ignores-ingress-rules", [EGRESS_ONLY_WITH_INGRESS_RULES],
         raw=True, known_difference=NCA_REFUSES),
    Case("empty-egress-list-without-policy-types", [EMPTY_EGRESS]),
    Case("raw-empty-egress-list-without-policy-types", [EMPTY_EGRESS], raw=True,
         known_difference=EMPTY_EGRESS_WHY),
    Case("egress-rules-default-policy-types", [np("x", "eg", {"podSelector": POD_A, "egress": [
        {"to": [{"podSelector": {}}]}]})]),
    Case("external-egress-ipblock-except", [np("x", "to-inside", {
        "podSelector": POD_A, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {
            "cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}], "ports": [{"port": 80}]}]})],
         model=_with_externals()),
    Case("external-ingress-ipblock", [np("x", "from-testnet", {
        "podSelector": sel(pod="b"), "ingress": [{"from": [
            {"ipBlock": {"cidr": "192.0.2.0/24"}}, {"namespaceSelector": sel(ns="y")}]}]})],
         model=_with_externals()),
    Case("external-selectors-never-match", [np("x", "in-cluster-only", {
        "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"namespaceSelector": {}}]}],
        "egress": [{"to": [{"namespaceSelector": {}}]}]})], model=_with_externals()),
    Case("external-egress-to-everyone-on-udp", [np("z", "udp-out", {
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"ports": [{"protocol": "UDP", "port": 81}]}]})], model=_with_externals()),
    Case("policy-update-step-1", [DENY_INGRESS]),
    Case("policy-update-step-2", [np("x", "deny-all", {"podSelector": {}, "ingress": [{}]})]),
    Case("label-change-step-1", [FROM_UPDATED]),
    Case("label-change-step-2", [FROM_UPDATED], model=Model.default().with_labels(
        namespace_labels={"y": {"ns2": "updated"}}, pod_labels={"x/b": {"pod": "a"}})),
]


# -- NCA input ----------------------------------------------------------------------------------
def for_nca(manifest: dict) -> dict:
    """The policy as the API server stores it, in the form NCA accepts.

    Why: NCA 2.1.0 reads two spellings differently from the API server, and both have one
    meaning once the server has applied its defaults (SetDefaults_NetworkPolicy):
    - policyTypes missing or [] is defaulted: Ingress, plus Egress when len(egress) != 0. NCA
      takes `egress: []` as "has Egress"; we write the defaulted policyTypes explicitly.
    - rules for a direction not in policyTypes are ignored by every implementation; NCA refuses
      the file (exit 7). We drop them.
    The raw cases (Case.raw) keep the original spelling to document these two differences.
    """
    spec = dict(manifest.get("spec") or {})
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress")
                                        else ["Ingress"])
    spec["policyTypes"] = list(types)
    for direction, key in (("Ingress", "ingress"), ("Egress", "egress")):
        if direction not in types:
            spec.pop(key, None)
    return {**manifest, "spec": spec}


# -- NCA input ------------------------------------------------------------------------------------
def k8s_resources(model: Model) -> tuple[dict, dict]:
    """The model's user namespaces and pods as the NamespaceList/PodList NCA reads."""
    addrs = plan_addresses(model)
    nss = [{"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": n.name, "labels": n.effective_labels}}
           for n in model.namespaces if not n.system]
    pods = []
    for p in model.user_pods:
        containers = [{"name": f"c{i}", "image": "registry.k8s.io/e2e-test-images/agnhost:2.43",
                       "ports": [{"containerPort": cp.port, "protocol": cp.protocol.value,
                                  **({"name": cp.name} if cp.name else {})}]}
                      for i, cp in enumerate(p.ports)]
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": p.name, "namespace": p.namespace,
                                  "labels": dict(p.labels)},
                     "spec": {"containers": containers},
                     "status": {"phase": "Running", "podIP": addrs.pod_ips[p.key],
                                "hostIP": "172.18.0.2"}})
    return ({"apiVersion": "v1", "kind": "NamespaceList", "items": nss},
            {"apiVersion": "v1", "kind": "PodList", "items": pods})


def ensure_nca(explicit: str | None) -> Path:
    """The nca executable: --nca, or .venv-nca/bin/nca, creating the venv on first use."""
    if explicit:
        return Path(explicit)
    nca = VENV / "bin" / "nca"
    if nca.exists():
        return nca
    print(f"creating {VENV} with network-config-analyzer=={NCA_VERSION} (first use) ...",
          file=sys.stderr)
    run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300,
        doing=f"creating the venv {VENV}")
    run([str(VENV / "bin" / "pip"), "install", "-q", f"network-config-analyzer=={NCA_VERSION}"],
        check=True, timeout=900, doing=f"installing network-config-analyzer into {VENV}")
    return nca


# -- NCA output -----------------------------------------------------------------------------------
_LINE = re.compile(r"^(?P<src>\S+?) => (?P<dst>\S+?) : (?P<conn>.+)$")
_SET = re.compile(r"\{protocols:(?P<protos>[A-Z, ]+?)(?:,dst_ports:(?P<ports>[0-9,\- ]+))?\}")

# (protocols, port ranges or None for every port); None as a whole means "All connections"
ConnSet = list[tuple[frozenset[str], list[tuple[int, int]] | None]] | None
# an endpoint of an NCA line: a pod key, or a list of inclusive IPv4 ranges as integers
Endpoint = str | list[tuple[int, int]]


def parse_connections(text: str) -> ConnSet:
    """One NCA connection-set text ("All connections", "{protocols:TCP,dst_ports:80-81}")."""
    text = text.strip()
    if text == "All connections":
        return None
    out = []
    for m in _SET.finditer(text):
        protos = frozenset(p.strip() for p in m.group("protos").split(",") if p.strip())
        ranges = None
        if m.group("ports"):
            ranges = []
            for part in m.group("ports").split(","):
                lo, _, hi = part.strip().partition("-")
                ranges.append((int(lo), int(hi or lo)))
        out.append((protos, ranges))
    if not out:
        raise ValueError(f"cannot read NCA connection set {text!r}: update parse_connections")
    return out


def parse_endpoint(text: str) -> Endpoint:
    """`x/a[Pod]` -> "x/a"; `10.0.0.0-10.0.255.255[,…]` -> [(first, last), …] as integers."""
    if text.endswith("[Pod]"):
        return text[:-len("[Pod]")]
    ranges = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            ranges.append((int(ipaddress.ip_address(lo)), int(ipaddress.ip_address(hi or lo))))
        except ValueError:
            raise ValueError(f"cannot read NCA endpoint {text!r}: update parse_endpoint") from None
    return ranges


def allows(conns: ConnSet, port: int, proto: Protocol) -> bool:
    if conns is None:
        return True
    return any(proto.value in protos and (ranges is None or any(lo <= port <= hi
                                                                for lo, hi in ranges))
               for protos, ranges in conns)


def _covers(endpoint: Endpoint, key: str, ip: int | None) -> bool:
    if isinstance(endpoint, str):
        return endpoint == key
    return ip is not None and any(lo <= ip <= hi for lo, hi in endpoint)


NcaLines = list[tuple[Endpoint, Endpoint, ConnSet]]


def nca_allows(lines: NcaLines, src: str, dst: str, ips: dict[str, int], port: int,
               proto: Protocol) -> bool:
    """Does NCA's report allow src -> dst (pod keys or ext:name) on port/proto?"""
    s_ip, d_ip = (ips[src] if src.startswith("ext:") else None,
                  ips[dst] if dst.startswith("ext:") else None)
    return any(_covers(a, src, s_ip) and _covers(b, dst, d_ip) and allows(c, port, proto)
               for a, b, c in lines)


def run_nca(nca: Path, case: Case, workdir: Path) -> NcaLines:
    """Run NCA's connectivity report on one case: one (src, dst, connections) per line."""
    ns_list, pod_list = k8s_resources(case.model)
    files = {"ns.yaml": ns_list, "pods.yaml": pod_list,
             "policies.yaml": {"apiVersion": "v1", "kind": "List", "items": (
                 case.policies if case.raw else [for_nca(p) for p in case.policies])}}
    for name, data in files.items():
        (workdir / name).write_text(yaml.safe_dump(data, sort_keys=False))
    res = run([str(nca), "--connectivity", str(workdir / "policies.yaml"),
               "--pod_list", str(workdir / "pods.yaml"), "--ns_list", str(workdir / "ns.yaml"),
               "--output_format", "txt_no_fw_rules"], timeout=120,
              doing=f"running NCA on case {case.name}")
    if res.returncode != 0 or "Total run time" not in res.stdout:
        raise ExecError(list(res.argv), f"NCA failed on case {case.name} (exit "
                        f"{res.returncode})", output=(res.stdout + res.stderr)[-2000:])
    lines: NcaLines = []
    for line in res.stdout.splitlines():
        m = _LINE.match(line.strip())
        if m and ("[Pod]" in m["src"] or "[Pod]" in m["dst"]):
            lines.append((parse_endpoint(m["src"]), parse_endpoint(m["dst"]),
                          parse_connections(m["conn"])))
    return lines


@dataclass
class CaseResult:
    case: Case
    cells: int
    differing: list[tuple[str, str, int, str, str, str]]   # src, dst, port, proto, oracle, nca


def compare(nca: Path, case: Case, workdir: Path) -> CaseResult:
    """Every pod -> pod, pod -> external and external -> pod cell the oracle defines."""
    lines = run_nca(nca, case, workdir)
    oracle = Oracle(case.model, case.policies)
    ips = {f"ext:{name}": int(ipaddress.ip_address(ip))
           for name, ip in oracle.addresses.external_ips.items()}
    pods = list(case.model.pod_keys)
    exts = [e.key for e in case.model.externals]
    ports = sorted({cp.port for p in case.model.user_pods for cp in p.ports} | set(PORTS))
    cells, diff = 0, []
    for s in pods + exts:
        for d in pods + exts:
            if s == d or (s in exts and d in exts):
                continue
            for port in ports:
                for proto in PROTOCOLS:
                    dec = oracle.decide(s, d, port, proto)
                    if dec.expectation is Expectation.UNDEFINED:
                        continue   # nothing listens there: not a policy question
                    cells += 1
                    theirs = nca_allows(lines, s, d, ips, port, proto)
                    ours = dec.expectation is Expectation.ALLOW
                    if ours != theirs:
                        diff.append((s, d, port, proto.value, "allow" if ours else "deny",
                                     "allow" if theirs else "deny"))
    return CaseResult(case, cells, diff)


def _exists_with_namespace(manifest: dict) -> bool:
    """A peer with namespaceSelector and a podSelector using Exists/DoesNotExist (an NCA bug)."""
    spec = manifest.get("spec") or {}
    for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
        for peer in (rule.get("from") or []) + (rule.get("to") or []):
            exprs = (peer.get("podSelector") or {}).get("matchExpressions") or []
            if "namespaceSelector" in peer and any(
                    e["operator"] in ("Exists", "DoesNotExist") for e in exprs):
                return True
    return False


def random_cases(count: int, seed: int, size: int = 4) -> list[Case]:
    """Seeded random policy sets (tests/test_oracle_props.random_policy) without the two known
    differences (see docs/oracle.md).

    Why without them: ipBlock on pod IPs and NCA's reading of Exists/DoesNotExist pod selectors
    beside a namespaceSelector would drown every other finding; classic cases cover both.
    """
    sys.path.insert(0, str(ROOT / "tests"))
    from test_oracle_props import random_policy

    rng = random.Random(seed)
    cases = []
    for i in range(count):
        policies = []
        while len(policies) < size:
            p = random_policy(rng, f"p{len(policies)}")
            if "ipBlock" not in repr(p) and not _exists_with_namespace(p):
                policies.append(p)
        cases.append(Case(f"random-{seed}-{i}", policies))
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", help="run only this case (repeatable)")
    ap.add_argument("--nca", help="path of an nca executable (default: .venv-nca/bin/nca)")
    ap.add_argument("--show-cells", type=int, default=4, help="differing cells shown per case")
    ap.add_argument("--random", type=int, default=0, metavar="N",
                    help="also compare N seeded random policy sets (4 policies each, no ipBlock)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--install", action="store_true",
                    help="only create .venv-nca with NCA (scripts/setup.sh does, for the tests)")
    args = ap.parse_args(argv)
    if args.install:
        try:
            print(f"NCA: {ensure_nca(None)}")
        except ExecError as exc:
            print(f"cannot install NCA: {exc}\n{exc.output}", file=sys.stderr)
            return 2
        return 0
    cases = [c for c in CASES if not args.case or c.name in args.case]
    cases += random_cases(args.random, args.seed)
    if not cases:
        print(f"no such case; cases are: {', '.join(c.name for c in CASES)}", file=sys.stderr)
        return 2
    try:
        nca = ensure_nca(args.nca)
        version = run([str(nca), "--version"], timeout=60).stdout.strip()
    except ExecError as exc:
        print(f"cannot run NCA: {exc}\n{exc.output}", file=sys.stderr)
        return 2
    print(f"oracle vs NCA ({version or 'nca ' + NCA_VERSION}): pod-to-pod cells, ports and "
          f"protocols of each model, self excluded")
    print(f"{'case':<44} {'cells':>5} {'differ':>6}  verdict")
    unexplained = 0
    with tempfile.TemporaryDirectory(prefix="netpol-proof-nca-") as tmp:
        for case in cases:
            work = Path(tmp) / case.name
            work.mkdir()
            try:
                r = compare(nca, case, work)
            except ExecError as exc:
                if case.known_difference:
                    print(f"{case.name:<44} {'-':>5} {'-':>6}  NCA refuses the input (known: "
                          f"see docs/oracle.md): {exc.output.strip().splitlines()[-1]}")
                    continue
                print(f"{case.name:<44} NCA failed: {exc}\n{exc.output}")
                unexplained += 1
                continue
            if not r.differing:
                verdict = "agree"
            elif case.known_difference:
                verdict = "differ (known: see docs/oracle.md)"
            else:
                verdict = "DIFFER (unexplained)"
                unexplained += 1
            print(f"{case.name:<44} {r.cells:>5} {len(r.differing):>6}  {verdict}")
            for s, d, port, proto, ours, theirs in r.differing[:args.show_cells]:
                print(f"    {s} -> {d} {proto} {port}: oracle {ours}, NCA {theirs}")
            if len(r.differing) > args.show_cells:
                print(f"    ... {len(r.differing) - args.show_cells} more")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
