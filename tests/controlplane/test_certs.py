"""The control plane's PKI: certificates chain to the run's CA, carry what the API server reads
(SANs, usages, user and groups), keys are private, and mutual TLS really works with them."""

from __future__ import annotations

import socket
import ssl
import stat
import threading

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.backends.real.controlplane import certs


@pytest.fixture
def ca(tmp_path):
    return certs.CertAuthority(tmp_path / "pki", "test CA")


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_leaf_certificates_chain_to_the_ca_and_say_who_they_are(ca):
    server = ca.issue("srv", "kube-apiserver", server=True, ips=["127.0.0.1", "10.96.0.1"],
                      dns_names=["kubernetes.default.svc"])
    admin = ca.issue("admin", "someone", organizations=["system:masters"], client=True)
    ca_cert = load(ca.cert)
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for issued in (server, admin):
        cert = load(issued.cert)
        cert.verify_directly_issued_by(ca_cert)      # raises when the signature is wrong
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    srv = load(server.cert)
    sans = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "10.96.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["kubernetes.default.svc"]
    assert list(srv.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.SERVER_AUTH]
    adm = load(admin.cert)
    # the API server's user is the CN, its groups the O attributes
    assert adm.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "someone"
    assert [a.value for a in adm.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == \
        ["system:masters"]
    assert list(adm.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_keys_are_readable_by_their_owner_only(ca, tmp_path):
    issued = ca.issue("c", "x", client=True)
    priv, pub = certs.signing_key(tmp_path / "pki")
    for key in (ca.key, issued.key, priv):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert b"PUBLIC KEY" in pub.read_bytes() and b"PRIVATE KEY" in priv.read_bytes()


def test_a_certificate_with_neither_usage_is_refused(ca):
    with pytest.raises(ValueError, match="neither server nor client"):
        ca.issue("bad", "x")


def _tls_server(ca, server, seen: dict) -> tuple[socket.socket, threading.Thread]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(server.cert), str(server.key))
    ctx.load_verify_locations(str(ca.cert))
    ctx.verify_mode = ssl.CERT_REQUIRED
    lsock = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = lsock.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError) as exc:
            seen["error"] = exc

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return lsock, t


def test_mutual_tls_works_with_the_issued_certificates_and_fails_with_a_foreign_ca(ca, tmp_path):
    server = ca.issue("srv", "kube-apiserver", server=True, ips=["127.0.0.1"])
    admin = ca.issue("admin", "netpol-proof-admin", organizations=["system:masters"], client=True)
    seen: dict = {}
    lsock, t = _tls_server(ca, server, seen)
    client = ssl.create_default_context(cafile=str(ca.cert))   # verifies the IP SAN too
    client.load_cert_chain(str(admin.cert), str(admin.key))
    with socket.create_connection(lsock.getsockname()) as raw, \
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.recv(5) == b"hello"
    t.join(5)
    subject = dict(x[0] for x in seen["peer"]["subject"])
    assert subject == {"organizationName": "system:masters", "commonName": "netpol-proof-admin"}

    other = certs.CertAuthority(tmp_path / "other", "another CA")
    stranger = other.issue("s", "stranger", client=True)
    seen.clear()
    lsock2, t2 = _tls_server(ca, server, seen)
    client2 = ssl.create_default_context(cafile=str(ca.cert))
    client2.load_cert_chain(str(stranger.cert), str(stranger.key))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection(lsock2.getsockname()) as raw, \
                client2.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.recv(5)
    t2.join(5)
    assert "error" in seen and "peer" not in seen
    lsock.close()
    lsock2.close()


def test_kubeconfig_embeds_everything_and_the_kubernetes_client_reads_it(ca, tmp_path):
    from kubernetes import config

    admin = ca.issue("admin", "netpol-proof-admin", organizations=["system:masters"], client=True)
    path = certs.write_kubeconfig(tmp_path / "kc", certs.kubeconfig(
        "https://127.0.0.1:6443", ca.cert.read_bytes(), admin, cluster="np-test", user="admin"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = yaml.safe_load(path.read_text())
    assert str(tmp_path) not in path.read_text(), "no file paths: it must work from any mount ns"
    assert doc["current-context"] == "np-test"
    api = config.new_client_from_config(config_file=str(path), context="np-test")
    assert api.configuration.host == "https://127.0.0.1:6443"
    assert api.configuration.verify_ssl
