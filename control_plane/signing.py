"""The one place that signs: the fleet's Ed25519 key, the device CA, and what they sign.

The keys are 0600 PEM files on this host, never in the database. Releases, compiled
artifacts and desired states are built by `fleet_common.wire.statements`, the same code
devices verify with, and signed here, so the two sides cannot drift apart. The device CA
(EC P-256) issues the MQTT client certificates devices and the control plane's publisher
show the broker. No other module of the control plane touches a private key, so moving
signing out of the web process later changes this module and its callers only.
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings

from control_plane.errors import ControlPlaneError
from fleet_common.footprint import Footprint
from fleet_common.wire.channel import MAX_CSR_BYTES
from fleet_common.wire.statements import (
    compiled_statement,
    desired_state_statement,
    encode_public_key,
    key_id,
    release_statement,
    sign,
)

log = logging.getLogger(__name__)


class SigningKeyError(ControlPlaneError):
    """The signing key is missing, unreadable, not Ed25519, or already exists."""


def signing_key_path() -> Path:
    return Path(settings.SIGNING_KEY_PATH)


def create_signing_key(path: Path | None = None, *, force: bool = False) -> Ed25519PrivateKey:
    """Generates a key and writes it with mode 0600; refuses to replace one unless ``force``."""
    path = path or signing_key_path()
    key = Ed25519PrivateKey.generate()
    if path.exists() and not force:
        raise SigningKeyError(
            f"{path} already exists; devices trust its public key "
            "(use --force to replace it, after trusting the new key fleet-wide)"
        )
    _write_file(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), 0o600)
    _load.cache_clear()
    return key


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Writes ``data`` with ``mode`` from the first byte (a key is never briefly world-readable),
    fsynced, replacing ``path`` in one rename so readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = path.with_name(f".{path.name}.new")
    target.unlink(missing_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(target, path)
    finally:
        target.unlink(missing_ok=True)


def load_signing_key() -> Ed25519PrivateKey:
    """The current key; re-read when the file changes, so a rotation needs no restart."""
    path = signing_key_path()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SigningKeyError(
            f"no signing key at {path} (run: manage.py create_signing_key)"
        ) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("signing key %s is readable by others (chmod 600 it)", path)
    return _load(str(path), info.st_mtime_ns, info.st_size)


@lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int, size: int) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def sign_release(
    manifest: Mapping[str, Any], serial: int, sha256: str, size: int
) -> dict[str, str]:
    """The signed release of a component under ``serial`` (a rollback is a new serial)."""
    return sign(release_statement(manifest, serial, sha256, size), load_signing_key())


def sign_compiled(
    release: Mapping[str, Any],
    engine: Mapping[str, Any],
    sha256: str,
    size: int,
    footprint: Footprint,
) -> dict[str, str]:
    """The signed statement that an artifact is ``release``'s machine code for ``engine``."""
    return sign(compiled_statement(release, engine, sha256, size, footprint), load_signing_key())


def sign_desired_state(
    device_id: str,
    sequence: int,
    releases: list[dict[str, str]],
    compiled: list[dict[str, str]],
    key: Ed25519PrivateKey | None = None,
) -> dict[str, str]:
    """One device's signed desired state; ``key`` lets a refresh of many devices read it once."""
    statement = desired_state_statement(device_id, sequence, releases, compiled)
    return sign(statement, key or load_signing_key())


def public_key_text(key: Ed25519PrivateKey | None = None) -> str:
    """The line to put in a device's trusted-keys directory (``<key id>.pub``)."""
    return encode_public_key((key or load_signing_key()).public_key())


def signing_key_id(key: Ed25519PrivateKey | None = None) -> str:
    return key_id((key or load_signing_key()).public_key())


# The device CA: the only issuer of MQTT client certificates the broker accepts.

DEVICE_CA_NAME = "pi-fleet device CA"
DEVICE_CA_DAYS = 3650
PUBLISHER_IDENTITY = "control-plane"
"""The CN of the publisher's certificate; the broker's ACL lets only it write notices."""
PUBLISHER_CERT_DAYS = 7
_CLOCK_SKEW = timedelta(minutes=5)


class DeviceCAError(ControlPlaneError):
    """The device CA is missing, unreadable, not an EC P-256 CA, or already exists."""


class CertificateRequestRefused(ControlPlaneError):
    """A device's CSR is not one the device CA signs; the message says why."""


@dataclass(frozen=True)
class ClientCertificate:
    """A key and its certificate from the device CA, both PEM, for one TLS client."""

    certificate_pem: bytes
    key_pem: bytes = field(repr=False)
    expires_at: datetime


def create_device_ca(
    cert_path: Path | None = None, key_path: Path | None = None, *, force: bool = False
) -> x509.Certificate:
    """Makes the device CA: key 0600, certificate 0644 (the broker's ``cafile``); refuses to
    replace either unless ``force`` (every device's certificate then stops working)."""
    cert_path = cert_path or Path(settings.DEVICE_CA_CERT_PATH)
    key_path = key_path or Path(settings.DEVICE_CA_KEY_PATH)
    existing = [str(path) for path in (cert_path, key_path) if path.exists()]
    if existing and not force:
        raise DeviceCAError(
            f"{' and '.join(existing)} already exist(s); the broker and every device's client "
            "certificate depend on it (use --force to replace it, then reissue all certificates)"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEVICE_CA_NAME)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=DEVICE_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_file(
        key_path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), 0o600
    )
    _write_file(cert_path, certificate.public_bytes(Encoding.PEM), 0o644)
    _load_device_ca.cache_clear()
    _publisher_certificate.cache_clear()
    return certificate


def device_ca_certificate() -> x509.Certificate:
    """The device CA's certificate (public: what the broker trusts for clients)."""
    return _device_ca()[0]


def _device_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA, re-read when either file changes, so a replacement needs no restart."""
    paths = (Path(settings.DEVICE_CA_CERT_PATH), Path(settings.DEVICE_CA_KEY_PATH))
    try:
        cert_info, key_info = (path.stat() for path in paths)
    except FileNotFoundError as exc:
        raise DeviceCAError(
            f"no device CA at {exc.filename} (run: manage.py create_device_ca)"
        ) from None
    if key_info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("device CA key %s is readable by others (chmod 600 it)", paths[1])
    return _load_device_ca(
        str(paths[0]), str(paths[1]), (cert_info.st_mtime_ns, key_info.st_mtime_ns)
    )


@lru_cache(maxsize=2)
def _load_device_ca(
    cert_path: str, key_path: str, mtimes: tuple[int, int]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        certificate = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        key = load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise DeviceCAError(f"cannot read the device CA ({cert_path}, {key_path}): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DeviceCAError(f"{key_path} is not an EC P-256 private key")
    if certificate.public_key() != key.public_key():
        raise DeviceCAError(f"{cert_path} is not the certificate of the key {key_path}")
    return certificate, key


def issue_device_certificate(csr_pem: str, device_id: str) -> tuple[str, datetime]:
    """A client certificate for ``device_id`` over the CSR's key, PEM, and when it expires.

    Only the key is taken from the CSR, after its signature proves the device holds it: the
    subject and any extensions it asks for are ignored, so the CN (the broker's username,
    which the ACL maps to a topic) is always the device id and the use is clientAuth only.
    """
    if len(csr_pem.encode()) > MAX_CSR_BYTES:
        raise CertificateRequestRefused(f"the CSR is larger than {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise CertificateRequestRefused("the CSR is not a PEM certificate request") from None
    try:
        public_key = csr.public_key()
        signed = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateRequestRefused(f"the CSR's key cannot be used: {exc}") from None
    if not signed:
        raise CertificateRequestRefused("the CSR's signature does not verify with its own key")
    _check_client_key(public_key)
    days = settings.DEVICE_CERT_DAYS
    certificate = _issue(public_key, device_id, timedelta(days=days))
    return certificate.public_bytes(Encoding.PEM).decode(), certificate.not_valid_after_utc


def _check_client_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise CertificateRequestRefused(
                f"the CSR's key is on curve {key.curve.name}; use P-256 or P-384"
            )
    elif isinstance(key, rsa.RSAPublicKey):
        if not 2048 <= key.key_size <= 4096:
            raise CertificateRequestRefused(
                f"the CSR's RSA key has {key.key_size} bits; use 2048 to 4096"
            )
    elif not isinstance(key, Ed25519PublicKey):
        raise CertificateRequestRefused(
            f"the CSR's key is {type(key).__name__}; use EC P-256, Ed25519 or RSA"
        )


def _issue(public_key: Any, common_name: str, lifetime: timedelta) -> x509.Certificate:
    ca_certificate, ca_key = _device_ca()
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def control_plane_client_certificate() -> ClientCertificate:
    """The publisher's own key and certificate (CN=control-plane), made in memory and kept
    per process until a day before it expires or the device CA changes; never on disk."""
    ca_certificate, _ = _device_ca()
    current = _publisher_certificate(ca_certificate.fingerprint(hashes.SHA256()))
    if current.expires_at - datetime.now(UTC) < timedelta(days=1):
        _publisher_certificate.cache_clear()
        current = _publisher_certificate(ca_certificate.fingerprint(hashes.SHA256()))
    return current


@lru_cache(maxsize=1)
def _publisher_certificate(ca_fingerprint: bytes) -> ClientCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _issue(key.public_key(), PUBLISHER_IDENTITY, timedelta(days=PUBLISHER_CERT_DAYS))
    return ClientCertificate(
        certificate_pem=certificate.public_bytes(Encoding.PEM),
        key_pem=key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        expires_at=certificate.not_valid_after_utc,
    )


def publisher_tls_context(broker_ca_file: Path) -> ssl.SSLContext:
    """A TLS client context that pins the broker's CA and shows the publisher's certificate.

    OpenSSL loads a certificate chain only from a path: the PEMs go through an anonymous
    in-memory file (memfd), so the key never touches a disk or a temporary directory.
    """
    context = ssl.create_default_context(cafile=str(broker_ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    client = control_plane_client_certificate()
    fd = os.memfd_create("pi-fleet-publisher", os.MFD_CLOEXEC)
    try:
        os.write(fd, client.key_pem + client.certificate_pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return context
