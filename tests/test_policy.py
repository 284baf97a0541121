"""NetworkPolicy manifest parsing: defaults, missing vs empty fields, and API-level validation."""

import pytest
from test_oracle_helpers import np

from harness.model import Protocol
from harness.policy import IPBlock, PortRule, is_cluster_scoped, is_network_policy, parse_policy, policy_key


def test_policy_types_default_to_ingress_and_egress_when_egress_rules_exist():
    assert parse_policy(np("x", "p", {"podSelector": {}})).policy_types == ("Ingress",)
    assert parse_policy(np("x", "p", {"podSelector": {}, "egress": [{}]})).policy_types == \
        ("Ingress", "Egress")
    # an empty egress list is "no egress rules": Ingress only
    assert parse_policy(np("x", "p", {"podSelector": {}, "egress": []})).policy_types == \
        ("Ingress",)
    # an explicit empty list is defaulted too (the API server tests len(policyTypes) == 0)
    assert parse_policy(np("x", "p", {"podSelector": {}, "policyTypes": [],
                                      "egress": [{}]})).policy_types == ("Ingress", "Egress")
    # explicit policyTypes win, order normalised
    p = parse_policy(np("x", "p", {"podSelector": {}, "policyTypes": ["Egress"],
                                   "ingress": [{}]}))
    assert p.policy_types == ("Egress",) and not p.affects_ingress and p.affects_egress


def test_missing_and_empty_peers_and_ports_both_mean_all():
    p = parse_policy(np("x", "p", {"podSelector": {}, "ingress": [{}, {"from": [], "ports": []}]}))
    missing, empty = p.ingress
    assert missing.peers is None and missing.ports is None
    assert empty.peers == () and empty.ports == ()
    assert missing.all_peers and empty.all_peers and missing.all_ports and empty.all_ports


def test_peers_ports_and_ipblock_are_parsed():
    p = parse_policy(np("x", "p", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{
        "from": [{"podSelector": {}, "namespaceSelector": {"matchLabels": {"ns": "y"}}},
                 {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
        "ports": [{"port": 80}, {"protocol": "UDP", "port": "dns"},
                  {"protocol": "SCTP"}, {"port": 1000, "endPort": 2000}]}]}))
    assert p.key == "x/p"
    both, block = p.ingress[0].peers
    assert both.pod_selector.is_empty and both.namespace_selector.match_labels == (("ns", "y"),)
    assert block.ip_block == IPBlock("10.0.0.0/8", ("10.1.0.0/16",))
    assert p.ingress[0].ports == (PortRule(Protocol.TCP, 80), PortRule(Protocol.UDP, "dns"),
                                  PortRule(Protocol.SCTP, None), PortRule(Protocol.TCP, 1000, 2000))


def test_ipblock_contains():
    b = IPBlock("10.0.0.0/8", ("10.1.0.0/16", "10.2.3.4/32"))
    assert b.contains("10.9.9.9") and not b.contains("10.1.2.3") and not b.contains("10.2.3.4")
    assert b.contains("10.2.3.5") and not b.contains("11.0.0.1") and not b.contains("::1")


@pytest.mark.parametrize("spec,msg", [
    ({"podSelector": {}, "ingres": []}, r"x/p: spec has unknown field\(s\) ingres"),
    ({"podSelector": {}, "policyTypes": ["ingress"]}, r"'ingress' is not Ingress or Egress"),
    ({"podSelector": {}, "ingress": [{"from": [{}]}]},
     r"spec.ingress\[0\].from\[0\]: a peer must set"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                             "podSelector": {}}]}]},
     r"spec.egress\[0\].to\[0\]: ipBlock cannot be combined"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]},
     r"ipBlock.cidr: '10.0.0.0' needs a prefix length"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "nope/8"}}]}]},
     r"ipBlock.cidr: 'nope/8' is not a CIDR"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16",
                                                          "except": ["10.0.0.0/16"]}}]}]},
     r"except\[0\]: 10.0.0.0/16 must be a strict subset"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 79}]}]},
     r"ports\[0\].endPort: 79 must be between port 80 and 65535"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
     r"ports\[0\].endPort: needs a numeric port"),
    ({"podSelector": {}, "ingress": [{"ports": [{"endPort": 90}]}]},
     r"ports\[0\].endPort: needs a numeric port"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "80"}]}]},
     r"ports\[0\].port: '80' is not a valid port name"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]}, r"port: 0 is outside 1-65535"),
    ({"podSelector": {}, "ingress": [{"ports": [{"protocol": "tcp"}]}]},
     r"protocol: 'tcp' must be TCP, UDP or SCTP"),
    ({"podSelector": {}, "ingress": [{"from": [], "to": []}]}, r"unknown field\(s\) to"),
    ({"podSelector": {"matchLabels": {"a": None}}}, r"spec.podSelector.matchLabels.a"),
])
def test_invalid_policies_name_the_field(spec, msg):
    with pytest.raises(ValueError, match=msg):
        parse_policy(np("x", "p", spec), where="scen.yaml step 1")


def test_metadata_is_required():
    m = np("x", "p", {"podSelector": {}})
    del m["metadata"]["namespace"]
    with pytest.raises(ValueError, match="metadata.namespace: required"):
        parse_policy(m)
    assert parse_policy(m, default_namespace="y").namespace == "y"
    with pytest.raises(ValueError, match="apiVersion/kind must be networking.k8s.io/v1"):
        parse_policy({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy"})


def test_kind_helpers():
    m = np("x", "p", {"podSelector": {}})
    assert is_network_policy(m) and policy_key(m) == "x/p" and not is_cluster_scoped(m)
    calico = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
              "metadata": {"name": "c", "namespace": "x"}}
    assert not is_network_policy(calico) and not is_cluster_scoped(calico)
    anp = {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
           "metadata": {"name": "a"}}
    assert is_cluster_scoped(anp) and policy_key(anp) == "a"
