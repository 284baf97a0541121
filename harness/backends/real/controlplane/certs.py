"""The control plane's PKI: one CA per run, serving and client certificates, the service-account
signing key, and kubeconfig files that embed them.

Why a real CA per run: the API server is started the way a cluster runs it (client certificates
checked against a CA, RBAC deciding what each user may do), so engines that talk to it later get
real TLS and real authorization errors, not a server that accepts anyone. Keys are ECDSA P-256:
the API server and Go's TLS accept them, and generating one takes microseconds where RSA takes
tens of milliseconds, which matters when a plane comes up per run on a shared 2-core machine.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: certificates outlive any run by far; backdated an hour against clock skew between processes
VALIDITY = dt.timedelta(days=30)
BACKDATE = dt.timedelta(hours=1)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> Path:
    """Write a secret (a key, a kubeconfig with a key in it) readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as written on disk."""

    cert: Path
    key: Path

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


class CertAuthority:
    """A self-signed CA that issues the plane's certificates into `directory`."""

    def __init__(self, directory: Path, name: str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert = self.dir / "ca.crt"
        self.key = self.dir / "ca.key"
        self.cert.write_bytes(_cert_pem(self._cert))
        write_private(self.key, _key_pem(self._key))

    def issue(self, stem: str, common_name: str, *, organizations: Iterable[str] = (),
              ips: Iterable[str] = (), dns_names: Iterable[str] = (), server: bool = False,
              client: bool = False) -> Issued:
        """Sign a leaf certificate; writes `<stem>.crt` and `<stem>.key`.

        For a client certificate the API server takes the user name from the common name and
        the groups from the organizations (so O=system:masters is a cluster admin)."""
        key = _key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        if not usages:
            raise ValueError(f"certificate {stem}: neither server nor client")
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs)).issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                         key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
        )
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        sans += [x509.DNSName(d) for d in dns_names]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        issued.cert.write_bytes(_cert_pem(cert))
        write_private(issued.key, _key_pem(key))
        return issued


def signing_key(directory: Path, stem: str = "sa") -> tuple[Path, Path]:
    """The service-account token signing key pair: (`<stem>.key` private, `<stem>.pub` public)."""
    key = _key()
    directory = Path(directory)
    priv = write_private(directory / f"{stem}.key", _key_pem(key))
    pub = directory / f"{stem}.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def kubeconfig(server: str, ca_pem: bytes, client: Issued, *, cluster: str, user: str) -> dict:
    """A kubeconfig with everything embedded (no paths), so it works from any mount namespace."""
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    context = cluster
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {"server": server,
                                                    "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(client.cert_pem()),
                                          "client-key-data": b64(client.key_pem())}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
    }


def write_kubeconfig(path: Path, config: dict) -> Path:
    return write_private(Path(path), yaml.safe_dump(config, sort_keys=False).encode())
