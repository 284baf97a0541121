"""Scenario loading, placeholders, and what each step must produce (expected_cells / check)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from harness.errors import ScenarioError
from harness.model import Addresses, Protocol, plan_addresses
from harness.results import Expectation
from harness.expected import check_scenario, expected_cells, model_at, model_ports, policies_at
from harness.scenario import load_scenario, render_manifest
from harness.scenario.placeholders import PlaceholderError

DATA = Path(__file__).parent / "data" / "scenarios"

DENY_ALL = """\
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: guard, namespace: x}
        spec: {podSelector: {}, policyTypes: [Ingress]}
"""
ALLOW_FROM_Y = """\
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: guard, namespace: x}
        spec:
          podSelector: {}
          ingress:
            - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
"""


def write(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text("kind: Scenario\nname: t\ndescription: test scenario\n" + body)
    return path


def test_default_model_and_narrowing(tmp_path):
    s = load_scenario(write(tmp_path, "steps:\n  - title: nothing\n"))
    assert s.model.pod_keys == tuple(f"{n}/{p}" for n in "xyz" for p in "abc")
    assert len(model_ports(s.model)) == 6  # 80, 81 x TCP, UDP, SCTP
    s = load_scenario(write(tmp_path, "model: {namespaces: [x, y], pods: [a], ports: [81], "
                                      "protocols: [udp]}\nsteps: [{title: n}]\n"))
    assert s.model.pod_keys == ("x/a", "y/a")
    assert model_ports(s.model) == [(81, Protocol.UDP)]
    assert s.model.pod("x/a").ports[0].name == "serve-81-udp"
    assert s.source_lines[0] == "kind: Scenario"


def test_custom_model_services_externals_and_file_policies():
    s = load_scenario(DATA / "valid-custom-model.yaml")
    m = s.model
    assert m.pod_keys == ("prod/frontend", "prod/backend", "prod/db", "dev/tool")
    assert m.namespace("prod").labels == {"env": "prod"}
    assert m.namespace("dev").effective_labels == {"kubernetes.io/metadata.name": "dev"}
    assert m.pod("prod/db").resolve_port("pg", Protocol.TCP) == 5432
    assert [b.key for b in m.service_backends(m.service("prod/backend"))] == ["prod/backend"]
    assert m.external("outside").ip == "192.0.2.10"
    assert m.pod("kube-system/coredns").system
    docs = s.steps[0].apply
    assert [d.key for d in docs] == ["prod/allow-frontend-to-backend", "prod/backend-egress"]
    assert docs[0].origin.endswith("policies/shop.yaml:2")
    assert docs[1].origin.endswith("policies/shop.yaml:19")
    # the stored manifest keeps its placeholder and is plain data a YAML dumper accepts
    assert "{{podIP prod/db}}/32" in yaml.safe_dump(docs[1].manifest)
    assert type(docs[1].manifest) is dict


def test_render_manifest_substitutes_every_placeholder():
    s = load_scenario(DATA / "valid-custom-model.yaml")
    addrs = plan_addresses(s.model)
    manifest = {"spec": {"egress": [{"to": [
        {"ipBlock": {"cidr": "{{podIP prod/db}}/32"}},
        {"ipBlock": {"cidr": "{{ podCIDR }}", "except": ["{{hostIP outside}}/32"]}},
        {"ipBlock": {"cidr": "{{serviceIP prod/backend}}/32"}}]}]}, "n": 3}
    out = render_manifest(manifest, addrs)
    to = out["spec"]["egress"][0]["to"]
    assert to[0]["ipBlock"]["cidr"] == addrs.pod_ips["prod/db"] + "/32"
    assert to[1]["ipBlock"] == {"cidr": "10.244.0.0/16", "except": ["192.0.2.10/32"]}
    assert to[2]["ipBlock"]["cidr"] == addrs.service_ips["prod/backend"] + "/32"
    assert out["n"] == 3 and manifest["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"].startswith("{{")
    live = Addresses({"prod/db": "10.9.9.9"}, {}, {}, pod_cidr="10.9.0.0/16")
    assert render_manifest({"c": "{{podIP prod/db}}/32 {{podCIDR}}"}, live) == \
        {"c": "10.9.9.9/32 10.9.0.0/16"}


def test_render_manifest_reports_every_bad_placeholder_with_its_field():
    addrs = plan_addresses(load_scenario(DATA / "valid-custom-model.yaml").model)
    with pytest.raises(PlaceholderError) as info:
        render_manifest({"a": ["{{podIP x/q}}", "{{nodeIP}}"], "b": {"c": "{{podCIDR x}}"},
                         "d": "{{hostIP}}"}, addrs)
    fields = [f for f, _, _ in info.value.problems]
    assert fields == ["a[0]", "a[1]", "b.c", "d"]
    text = str(info.value)
    assert "'x/q' is not in the model" in text and "unknown placeholder {{nodeIP}}" in text
    assert "takes no argument" in text and "needs an external host name" in text


def test_placeholder_policies_evaluate_with_stand_in_addresses():
    s = load_scenario(DATA / "valid-custom-model.yaml")
    cells = expected_cells(s, 0)
    # backend-egress allows {{podIP prod/db}}/32 on 5432 only: pg is open, http to frontend not
    by = {(c.source, c.target, c.port): c for c in cells}
    assert by[("prod/backend", "prod/frontend", 80)].decision.expectation is Expectation.DENY
    outside = next(c for c in cells if c.target == "ext:outside")
    assert outside.decision.expectation is Expectation.ALLOW and outside.explicit


def test_step_without_expectations_gets_the_full_oracle_matrix(tmp_path):
    s = load_scenario(write(tmp_path, "model: {ports: [80], protocols: [TCP, UDP]}\nsteps:\n"
                                      "  - apply:\n" + DENY_ALL))
    cells = expected_cells(s, 0)
    assert len(cells) == 2 * 9 * 9 and not any(c.explicit for c in cells)
    assert {(c.port, c.protocol) for c in cells} == {(80, Protocol.TCP), (80, Protocol.UDP)}
    for c in cells:
        if c.source == c.target:
            assert c.expectation is Expectation.UNDEFINED
        elif c.target.startswith("x/"):
            assert c.expectation is Expectation.DENY, c
        else:
            assert c.expectation is Expectation.ALLOW, c
        assert c.expectation is c.decision.expectation


def test_policy_update_and_delete_between_steps(tmp_path):
    s = load_scenario(write(tmp_path, "model: {ports: [80], protocols: [TCP]}\nsteps:\n"
                                      "  - apply:\n" + DENY_ALL +
                                      "  - apply:\n" + ALLOW_FROM_Y +
                                      "  - delete: [x/guard]\n"))

    def decision(step, src):
        cell = next(c for c in expected_cells(s, step) if (c.source, c.target) == (src, "x/a"))
        return cell.expectation

    assert [decision(i, "y/b") for i in range(3)] == [Expectation.DENY, Expectation.ALLOW,
                                                       Expectation.ALLOW]
    assert [decision(i, "z/b") for i in range(3)] == [Expectation.DENY, Expectation.DENY,
                                                       Expectation.ALLOW]
    assert len(policies_at(s, 1)) == 1 and policies_at(s, 2) == []


def test_label_changes_accumulate_over_steps():
    s = load_scenario(DATA / "valid-oracle-computes.yaml")
    assert model_at(s, 1).namespace("y").labels == {"ns": "y", "team": "blue"}
    assert model_at(s, 2).namespace("y").labels == {"ns": "y"}

    def y_to_x(step):
        return next(c.expectation for c in expected_cells(s, step)
                    if (c.source, c.target) == ("y/a", "x/a"))

    assert [y_to_x(i) for i in range(3)] == [Expectation.DENY, Expectation.ALLOW,
                                             Expectation.DENY]
    with pytest.raises(IndexError, match="step 3 does not exist"):
        expected_cells(s, 3)


def test_named_port_matrix_cells_carry_the_resolved_number():
    s = load_scenario(DATA / "valid-named-port-endport-udp.yaml")
    cells = [c for c in expected_cells(s, 0) if c.field == "steps[0].expect[0].matrix"]
    assert len(cells) == 16 and {c.port for c in cells} == {80}
    udp = [c for c in expected_cells(s, 0) if c.protocol is Protocol.UDP]
    assert all(c.expectation in (Expectation.ALLOW, Expectation.UNDEFINED) for c in udp)


def test_dns_probe_cells_target_the_dns_service():
    s = load_scenario(DATA / "valid-custom-model.yaml")
    dns = [c for c in expected_cells(s, 0) if c.dns_name]
    assert [(c.target, c.port, c.protocol, c.expectation) for c in dns] == [
        ("svc:kube-system/kube-dns", 53, Protocol.UDP, Expectation.ALLOW),
        ("svc:kube-system/kube-dns", 53, Protocol.UDP, Expectation.DENY)]
    assert dns[1].decision.nxdomain  # fails because the name does not exist, not blocked


def test_check_names_file_step_cell_expected_computed_and_rule(tmp_path):
    path = write(tmp_path, "model: {namespaces: [x, y], pods: [a], ports: [80], "
                           "protocols: [TCP]}\nsteps:\n  - title: guard x\n    apply:\n" +
                 DENY_ALL + "    expect:\n      - port: 80\n        matrix: |\n"
                            "          x/a - .\n          y/a . -\n")
    problems = check_scenario(load_scenario(path))
    assert len(problems) == 1
    p = problems[0]
    assert (p.path, p.line, p.field) == (str(path), 16, "steps[0].expect[0].matrix")
    assert "step 1 (guard x): y/a -> x/a on TCP 80" in p.message
    assert "expected allow, the oracle computes deny" in p.message
    assert "x/guard isolates x/a for ingress" in p.message


def test_assume_allows_asserting_undefined_cells_but_not_contradicting_defined_ones(tmp_path):
    body = ("model: {namespaces: [x], pods: [a, b], ports: [80], protocols: [TCP]}\nsteps:\n"
            "  - apply:\n" + DENY_ALL.replace("guard", "g") +
            "    assume: {cni: calico, why: self traffic is never filtered}\n"
            "    expect:\n      - port: 80\n        matrix: |\n          . {ab}\n          X .\n")
    ok = load_scenario(write(tmp_path, body.replace("{ab}", "X")))
    assert check_scenario(ok) == []
    bad = load_scenario(write(tmp_path, body.replace("{ab}", ".")))
    assert [p.line for p in check_scenario(bad)] == [15]


def test_yaml_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, "steps: []\nsteps: [{title: a}]\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:5: yaml: .*duplicate key 'steps'"):
        load_scenario(path)


def test_file_reference_without_namespace_is_an_error(tmp_path):
    (tmp_path / "p.yaml").write_text(textwrap.dedent(DENY_ALL.replace("- ", "  ", 1)).replace(
        "namespace: x", "labels: {}"))
    path = write(tmp_path, "steps:\n  - apply:\n      - file: p.yaml\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    (problem,) = info.value.problems
    assert problem.field == "steps[0].apply[0].metadata.namespace"
    assert (problem.path, problem.line) == (str(tmp_path / "p.yaml"), 1)
    assert "kubectl apply -n" in problem.message


def test_cni_policy_kinds_need_their_capability(tmp_path):
    path = write(tmp_path, "requires: [networkpolicy]\nsteps:\n  - apply:\n"
                           "      - apiVersion: policy.networking.k8s.io/v1alpha1\n"
                           "        kind: AdminNetworkPolicy\n"
                           "        metadata: {name: anp}\n        spec: {priority: 10}\n"
                           "    probes: [{from: x/a, to: y/a, port: 80, expect: deny}]\n"
                           "    assume: {cni: kube-network-policies, why: ANP denies}\n")
    with pytest.raises(ScenarioError, match="needs the capability 'admin-network-policy'"):
        load_scenario(path)
    fixed = path.read_text().replace("[networkpolicy]", "[networkpolicy, admin-network-policy]")
    path.write_text(fixed)
    assert check_scenario(load_scenario(path)) == []


def test_probe_named_ports_resolve_on_pods_and_services(tmp_path):
    path = write(tmp_path, "model:\n  pods:\n    p/a: {ports: [{port: 8080, name: web}]}\n"
                           "    p/b: {ports: [80]}\n"
                           "  services:\n    p/svc: {selector: {}, ports: [{port: 90, "
                           "targetPort: 80, name: front}]}\nsteps:\n  - probes:\n"
                           "      - {from: p/b, to: p/a, port: web, expect: allow}\n"
                           "      - {from: p/a, to: svc:p/svc, port: front, expect: allow}\n")
    s = load_scenario(path)
    assert [c.port for c in expected_cells(s, 0)] == [8080, 90]


@pytest.mark.parametrize("spec", [
    {"podSelector": {}},
    {"podSelector": {}, "ingress": [{"ports": {"port": 80}}]},
    {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": 5}}]}]},
    {"podSelector": {}, "ingres": []},
    {"podSelector": {"matchLabels": {"a": 1}}},
])
def test_cached_schema_validation_agrees_with_kubernetes_validate(spec):
    import kubernetes_validate as kv

    from harness.scenario.policies import K8S_SCHEMA_VERSION, _schema_validate

    manifest = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "p", "namespace": "x"}, "spec": spec}
    ours = _schema_validate(manifest)
    try:
        kv.validate(manifest, K8S_SCHEMA_VERSION, strict=True)
        theirs = None
    except kv.ValidationError as exc:
        theirs = (str(exc.message).splitlines()[0], list(exc.path))
    if theirs and theirs[0].startswith("Additional properties"):
        # ours names the unknown field (and its path) with a did-you-mean instead
        assert ours == ("unknown field 'ingres' (did you mean \"ingress\"?)",
                        theirs[1] + ["ingres"])
    else:
        assert ours == theirs


def test_missing_requirements_names_what_the_content_uses(tmp_path):
    from harness.expected import missing_requirements

    path = write(tmp_path, "requires: [networkpolicy]\nmodel:\n  pods:\n"
                           "    x/a: {ports: [80, {port: 53, protocol: UDP, name: dns}]}\n"
                           "  externals: {out: {ip: 192.0.2.1}}\nsteps:\n  - apply:\n"
                           "      - apiVersion: networking.k8s.io/v1\n"
                           "        kind: NetworkPolicy\n"
                           "        metadata: {name: p, namespace: x}\n"
                           "        spec:\n          podSelector: {}\n"
                           "          egress:\n            - to: [{ipBlock: {cidr: 10.0.0.0/8}}]\n"
                           "              ports: [{port: 1000, endPort: 2000}, {port: dns, "
                           "protocol: UDP}]\n"
                           "    probes: [{from: x/a, to: ext:out, port: 80, expect: deny}]\n")
    s = load_scenario(path)
    missing = {p.message.split(" ")[0]: p.message for p in missing_requirements(s)}
    assert set(missing) == {"egress", "ipblock", "endport", "named-ports", "udp",
                            "external-hosts"}
    assert "policy x/p names port dns" in missing["named-ports"]
    assert missing_requirements(load_scenario(DATA / "valid-custom-model.yaml")) == []
