"""The fleet signing key and the device CA: made once with mode 0600; the CA names each
device in its certificate whatever the device asks for."""

from __future__ import annotations

import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from django.core.management import CommandError, call_command

from control_plane.signing import (
    CertificateRequestRefused,
    DeviceCAError,
    SigningKeyError,
    control_plane_client_certificate,
    create_device_ca,
    create_signing_key,
    device_ca_certificate,
    issue_device_certificate,
    load_signing_key,
    publisher_tls_context,
)
from fleet_common.wire.statements import decode_public_key, key_id


@pytest.fixture
def key_path(settings, tmp_path):
    settings.SIGNING_KEY_PATH = tmp_path / "keys" / "fleet.pem"
    return settings.SIGNING_KEY_PATH


def test_the_command_writes_a_private_key_only_its_owner_reads(key_path, capsys):
    call_command("create_signing_key")

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    public = decode_public_key(out.split("public key: ")[1].strip())
    assert f"key id: {key_id(public)}" in out
    assert key_id(load_signing_key().public_key()) == key_id(public)


def test_an_existing_key_is_not_replaced_without_force(key_path):
    call_command("create_signing_key")
    before = key_path.read_bytes()

    with pytest.raises(CommandError, match="already exists"):
        call_command("create_signing_key")

    assert key_path.read_bytes() == before


def test_force_replaces_the_key_and_signing_follows(key_path):
    first = key_id(create_signing_key(key_path).public_key())

    second = key_id(create_signing_key(key_path, force=True).public_key())

    assert first != second
    assert key_id(load_signing_key().public_key()) == second
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_the_exported_line_is_what_a_device_trusts(key_path, capsys):
    key = create_signing_key(key_path)

    call_command("export_public_key")

    line = capsys.readouterr().out.strip()
    assert key_id(decode_public_key(line)) == key_id(key.public_key())


def test_exporting_without_a_key_says_how_to_make_one(key_path):
    with pytest.raises(CommandError, match=r"run: manage\.py create_signing_key"):
        call_command("export_public_key")


def test_a_file_that_is_not_a_key_is_refused(key_path):
    key_path.parent.mkdir(parents=True)
    key_path.write_text("not a key")

    with pytest.raises(SigningKeyError, match="cannot read the signing key"):
        load_signing_key()


# The device CA.


@pytest.fixture
def device_ca(settings, tmp_path):
    settings.DEVICE_CA_CERT_PATH = tmp_path / "ca" / "device-ca.pem"
    settings.DEVICE_CA_KEY_PATH = tmp_path / "ca" / "device-ca-key.pem"
    return settings.DEVICE_CA_CERT_PATH, settings.DEVICE_CA_KEY_PATH


def csr_for(key: object, common_name: str = "pi") -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    algorithm = None if isinstance(key, Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(Encoding.PEM).decode()  # type: ignore[arg-type]


def test_the_device_ca_command_writes_a_key_only_its_owner_reads(device_ca, capsys):
    cert_path, key_path = device_ca

    call_command("create_device_ca")

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.public_key() == device_ca_certificate().public_key()
    assert str(cert_path) in capsys.readouterr().out


def test_an_existing_device_ca_is_not_replaced_without_force(device_ca):
    cert_path, key_path = device_ca
    call_command("create_device_ca")
    before = (cert_path.read_bytes(), key_path.read_bytes())

    with pytest.raises(CommandError, match="already exist"):
        call_command("create_device_ca")

    assert (cert_path.read_bytes(), key_path.read_bytes()) == before
    call_command("create_device_ca", force=True)
    assert cert_path.read_bytes() != before[0]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_issuing_without_a_device_ca_says_how_to_make_one(device_ca):
    with pytest.raises(DeviceCAError, match=r"run: manage\.py create_device_ca"):
        issue_device_certificate(csr_for(ec.generate_private_key(ec.SECP256R1())), "pi")


@pytest.mark.parametrize(
    "key",
    [ec.generate_private_key(ec.SECP256R1()), Ed25519PrivateKey.generate()],
    ids=["p256", "ed25519"],
)
def test_a_device_certificate_names_the_device_whatever_the_csr_says(device_ca, key):
    create_device_ca()

    pem, expires_at = issue_device_certificate(csr_for(key, "control-plane"), "device-7")

    certificate = x509.load_pem_x509_certificate(pem.encode())
    assert certificate.subject.rfc4514_string() == "CN=device-7"
    assert certificate.public_key() == key.public_key()
    assert certificate.not_valid_after_utc == expires_at
    certificate.verify_directly_issued_by(device_ca_certificate())


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (ec.generate_private_key(ec.SECP521R1()), "curve secp521r1"),
        (rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024 bits"),
    ],
    ids=["p521", "rsa1024"],
)
def test_a_csr_for_a_key_the_fleet_does_not_use_is_refused(device_ca, key, problem):
    create_device_ca()

    with pytest.raises(CertificateRequestRefused, match=problem):
        issue_device_certificate(csr_for(key), "device-7")


def test_an_oversized_csr_is_refused_before_it_is_parsed(device_ca):
    with pytest.raises(CertificateRequestRefused, match="larger than 4096 bytes"):
        issue_device_certificate("x" * 5000, "device-7")


def test_the_publisher_certificate_is_made_once_per_ca(device_ca):
    create_device_ca()

    first = control_plane_client_certificate()

    assert control_plane_client_certificate() is first
    certificate = x509.load_pem_x509_certificate(first.certificate_pem)
    assert certificate.subject.rfc4514_string() == "CN=control-plane"
    assert "key_pem" not in repr(first)
    create_device_ca(force=True)
    assert control_plane_client_certificate() is not first


def test_the_publisher_tls_context_loads_its_certificate_from_memory(device_ca, tmp_path):
    create_device_ca()
    cert_path, _ = device_ca

    context = publisher_tls_context(cert_path)

    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "ca",
        "device-ca-key.pem",
        "device-ca.pem",
    ]
