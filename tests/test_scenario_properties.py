"""Property tests of check: the oracle's own tables always pass, and any one flipped cell is
reported once, at the line of its row, naming the cell."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.model import Model, Protocol, plan_addresses
from harness.oracle import Oracle
from harness.expected import check_scenario
from harness.scenario import load_scenario, render_manifest
from harness.truthtable import symbol_of

MODEL = "model: {namespaces: [x, y], pods: [a, b], ports: [80, 81], protocols: [TCP, UDP]}\n"
KEYS = ("x/a", "x/b", "y/a", "y/b")
PORTS = [(80, Protocol.TCP), (81, Protocol.UDP)]

selectors = st.sampled_from([{}, {"matchLabels": {"pod": "a"}},
                             {"matchExpressions": [{"key": "pod", "operator": "NotIn",
                                                    "values": ["a"]}]}])
peers = st.sampled_from([
    {"podSelector": {"matchLabels": {"pod": "b"}}},
    {"namespaceSelector": {"matchLabels": {"ns": "y"}}},
    {"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "a"}}},
    {"ipBlock": {"cidr": "{{podIP y/a}}/32"}},
    {"ipBlock": {"cidr": "{{podCIDR}}", "except": ["{{podIP x/b}}/32"]}},
])
ports = st.sampled_from([{"port": 80}, {"protocol": "UDP", "port": "serve-81-udp"},
                         {"protocol": "UDP", "port": 70, "endPort": 90}])
rules = st.fixed_dictionaries({}, optional={"peers": st.lists(peers, max_size=2),
                                            "ports": st.lists(ports, min_size=1, max_size=2)})


@st.composite
def policies(draw):
    out = []
    for i in range(draw(st.integers(0, 3))):
        spec = {"podSelector": draw(selectors),
                "policyTypes": draw(st.sampled_from([["Ingress"], ["Egress"],
                                                     ["Ingress", "Egress"]]))}
        for direction, field in (("ingress", "from"), ("egress", "to")):
            rs = []
            for r in draw(st.lists(rules, max_size=2)):
                rule = {}
                if "peers" in r:
                    rule[field] = r["peers"]
                if "ports" in r:
                    rule["ports"] = r["ports"]
                rs.append(rule)
            if rs:
                spec[direction] = rs
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": f"p{i}", "namespace": draw(st.sampled_from("xy"))},
                    "spec": spec})
    return out


def oracle_tables(manifests) -> dict[tuple[int, Protocol], list[list[str]]]:
    model = Model.default(("x", "y"), ("a", "b"), (80, 81), (Protocol.TCP, Protocol.UDP))
    addrs = plan_addresses(model)
    oracle = Oracle(model, [render_manifest(m, addrs) for m in manifests], addrs)
    return {(p, pr): [[symbol_of(oracle.decide(s, d, p, pr)) for d in KEYS] for s in KEYS]
            for p, pr in PORTS}


def scenario_text(manifests, tables) -> str:
    step = {"title": "random policies"}
    if manifests:
        step["apply"] = manifests
    # safe_dump writes the step's keys at column 2 ("- title: ..."), so expect: goes there too
    head = ("kind: Scenario\nname: prop\ndescription: generated\n" + MODEL + "steps:\n" +
            yaml.safe_dump([step], sort_keys=False, width=1000) + "  expect:\n")
    body = ""
    for (port, proto), rows in tables.items():
        body += f"      - port: {port}\n        protocol: {proto.value}\n        matrix: |\n"
        body += "".join(f"          {k} {' '.join(r)}\n" for k, r in zip(KEYS, rows))
    return head + body


SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(manifests=policies())
def test_the_oracles_own_tables_always_pass_check(tmp_path_factory, manifests):
    path = tmp_path_factory.mktemp("p") / "s.yaml"
    path.write_text(scenario_text(manifests, oracle_tables(manifests)))
    assert check_scenario(load_scenario(path)) == []


@SETTINGS
@given(manifests=policies(), table=st.integers(0, 1), row=st.integers(0, 3),
       col=st.integers(0, 3))
def test_one_flipped_cell_is_reported_once_at_its_row(tmp_path_factory, manifests, table, row,
                                                      col):
    tables = oracle_tables(manifests)
    key = PORTS[table]
    original = tables[key][row][col]
    if original == "-":
        return  # an undefined cell cannot be flipped into a disagreement
    tables[key][row][col] = "X" if original == "." else "."
    path = tmp_path_factory.mktemp("p") / "s.yaml"
    text = scenario_text(manifests, tables)
    path.write_text(text)
    problems = check_scenario(load_scenario(path))
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    lines = text.splitlines()
    assert lines[p.line - 1].split()[0] == KEYS[row]
    assert f"expect[{table}].matrix" in p.field
    assert f"{KEYS[row]} -> {KEYS[col]} on {key[1].value} {key[0]}" in p.message
    want = {"X": "deny", ".": "allow"}
    assert f"expected {want[tables[key][row][col]]}, the oracle computes {want[original]}" \
        in p.message


junk = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.sampled_from(
        ["", "x/a", "x", "TCP", "{{podIP x/a}}", "{{bad}}", ".", "X -", "svc:x/a", "ext:e",
         "10.244.1.1", "serve-80-tcp", "networking.k8s.io/v1", "NetworkPolicy"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["port", "protocol", "matrix", "from", "to", "file", "labels", "spec",
                         "pods", "x/a", "x", "cni", "why", "apiVersion", "kind"]),
        children, max_size=3),
    max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_junk_anywhere_gives_problems_never_a_crash(tmp_path_factory, data):
    from pathlib import Path

    from harness.errors import ScenarioError
    from harness.expected import validate_file

    fixtures = sorted((Path(__file__).parent / "data" / "scenarios").glob("valid-*.yaml"))
    base = yaml.safe_load(data.draw(st.sampled_from(fixtures)).read_text())
    for _ in range(data.draw(st.integers(1, 2))):
        paths = [p for p in _paths(base) if p]
        where = data.draw(st.sampled_from(paths))
        node = base
        for k in where[:-1]:
            node = node[k]
        node[where[-1]] = data.draw(junk)
    d = tmp_path_factory.mktemp("j")
    (d / "policies").mkdir()
    (d / "policies" / "shop.yaml").write_text(
        (Path(__file__).parent / "data" / "scenarios" / "policies" / "shop.yaml").read_text())
    path = d / "s.yaml"
    path.write_text(yaml.safe_dump(base))
    try:
        problems = validate_file(path)
    except ScenarioError:  # pragma: no cover - validate_file returns problems instead
        raise AssertionError("validate_file must return problems, not raise")
    for p in problems:
        assert p.path and p.field and p.message
