"""A certificate authority that lives for one test run (EC P-256), and the certificates it
signs: servers' (nginx, the broker) and clients' (devices, the publisher)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class ThrowawayCA:
    """An EC P-256 certificate authority that lives for one test module."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = self.certificate.public_bytes(Encoding.PEM)

    def issue(self, common_name: str, *, server_names: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
        """A fresh key and certificate (PEM each): a server's for ``server_names`` (DNS
        names or IP addresses), otherwise a client's."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(name) for name in server_names]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        return cert.public_bytes(Encoding.PEM), key_pem


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class FleetCA(ThrowawayCA):
    """A `ThrowawayCA` whose certificate is written to ``<directory>/ca.pem`` (what devices
    and clients pin), and which writes the server certificates it issues next to it."""

    def __init__(self, directory: Path, name: str = "pi-fleet test CA") -> None:
        super().__init__(name)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_path = directory / "ca.pem"
        self.cert_path.write_bytes(self.cert_pem)

    def issue_server(self, names: list[str], stem: str = "server") -> tuple[Path, Path]:
        """Writes ``<stem>.pem`` and ``<stem>-key.pem``; clients hold the CA, so it is not sent."""
        cert, key = self.issue(names[0], server_names=tuple(names))
        cert_path = self.directory / f"{stem}.pem"
        cert_path.write_bytes(cert)
        return cert_path, write_private(self.directory / f"{stem}-key.pem", key)

    def client_context(self) -> ssl.SSLContext:
        """What a device does: trust this CA only, check the host name."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def write_private(path: Path, data: bytes) -> Path:
    """Writes ``data`` readable by its owner only (for keys)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path
