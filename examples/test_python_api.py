"""Writing NetworkPolicy tests in Python with netpol-proof's fixtures (instead of YAML).

Run:  sudo pytest examples/test_python_api.py --backend local --cni enforcing

Each test declares its own namespaces and pods; they are deployed on the run's backend the
first time a test probes or applies a policy, and removed when the test ends. `netpol_probe`
and `netpol_dns_probe` run the real tools (curl, nslookup) inside the source pod, in rounds for
the same observation window as a scenario's step (from the last change); `netpol_assert_matrix`
checks the table against the oracle first (a wrong table fails before any probe), then probes
every pod pair until two rounds agree and fails with the expected and observed tables side by
side. A probe counts as blocked only when the target's server
answered on its own loopback in the same moment (`.blocked`), so a dead server never passes as
"enforced".
"""

import pytest

DENY_ALL_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all-ingress, namespace: prod}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""

ALLOW_FRONTEND_TO_BACKEND = {
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    "metadata": {"name": "allow-frontend-to-backend", "namespace": "prod"},
    "spec": {"podSelector": {"matchLabels": {"app": "backend"}},
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                          "ports": [{"protocol": "TCP", "port": 80}]}]},
}


@pytest.fixture
def prod(netpol_namespace, netpol_pods):
    """The seed article's shape: a frontend and a backend in `prod`, a tools pod in `dev`."""
    netpol_namespace("prod", {"env": "prod"})
    netpol_namespace("dev", {"env": "dev"})
    netpol_pods("prod", {"frontend": {"app": "frontend"}, "backend": {"app": "backend"}})
    netpol_pods("dev", {"tools": {"app": "tools"}})


@pytest.mark.netpol
def test_everything_connects_before_any_policy(prod, netpol_probe):
    assert netpol_probe("dev/tools", "prod/backend", 80, "TCP").connected


@pytest.mark.netpol
@pytest.mark.requires("networkpolicy")
def test_frontend_reaches_backend_and_nothing_else_does(prod, netpol_apply_policy, netpol_probe,
                                                        netpol_assert_matrix):
    netpol_apply_policy(DENY_ALL_INGRESS)
    netpol_apply_policy(ALLOW_FRONTEND_TO_BACKEND)
    assert netpol_probe("prod/frontend", "prod/backend", 80).connected
    denied = netpol_probe("dev/tools", "prod/backend", 80)
    assert denied.blocked, denied  # dropped, while the backend still serves on loopback
    netpol_assert_matrix("""
        #              prod/frontend prod/backend dev/tools
        prod/frontend       -             .           .
        prod/backend        X             -           .
        dev/tools           X             X           -
    """, port=80, protocol="TCP")


@pytest.mark.netpol
def test_dns_resolves_the_api_server_name(prod, netpol_dns_probe):
    result = netpol_dns_probe("prod/frontend", "kubernetes.default.svc.cluster.local")
    assert result.connected, result.detail
