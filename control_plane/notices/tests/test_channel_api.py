"""``POST /api/v1/channel``: a device's CSR becomes a client certificate for its own topic,
whatever the CSR asks for; everything else is refused with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from control_plane.notices.tests.conftest import DeviceCA, make_csr
from fleet_common.wire.channel import desired_topic, parse_channel_grant
from fleet_common.wire.paths import CHANNEL

PEM_NOT_A_CSR = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"


def post(client, body: object, token: str | None = "") -> object:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(CHANNEL, data, content_type="application/json", **headers)


@pytest.fixture
def device(enroll):
    return enroll("pi-x")


def test_a_good_csr_is_granted_a_client_certificate_for_the_devices_topic(
    client, device, device_ca: DeviceCA, broker
):
    enrolled, token = device
    csr, _ = make_csr()

    answer = post(client, {"csr": csr}, token)

    assert answer.status_code == 200
    grant = parse_channel_grant(answer.json())
    assert grant.broker_url == broker.url
    assert grant.topic == desired_topic(str(enrolled.pk))
    certificate = x509.load_pem_x509_certificate(grant.certificate.encode())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == str(
        enrolled.pk
    )
    ca = x509.load_pem_x509_certificate(device_ca.cert_path.read_bytes())
    certificate.verify_directly_issued_by(ca)
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert grant.expires_at == certificate.not_valid_after_utc
    assert abs(grant.expires_at - datetime.now(UTC) - timedelta(days=90)) < timedelta(minutes=1)


def test_a_csr_asking_for_another_name_and_a_ca_still_gets_the_device_id_only(client, device):
    enrolled, token = device
    key = ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "control-plane")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.PEM)
        .decode()
    )

    answer = post(client, {"csr": forged}, token)

    assert answer.status_code == 200
    certificate = x509.load_pem_x509_certificate(answer.json()["certificate"].encode())
    assert certificate.subject.rfc4514_string() == f"CN={enrolled.pk}"
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json", "the body is not JSON"),
        ({}, "csr must be a PEM certificate request"),
        ({"csr": "hello"}, "csr is not a PEM CERTIFICATE REQUEST block"),
        ({"csr": PEM_NOT_A_CSR}, "the CSR is not a PEM certificate request"),
    ],
)
def test_a_bad_body_is_refused_naming_the_problem(client, device, body, problem):
    answer = post(client, body, device[1])

    assert answer.status_code == 400
    assert problem in answer.json()["error"]


def test_a_csr_whose_signature_does_not_verify_is_refused(client, device):
    csr, _ = make_csr("pi-x")
    # The last bit of the signature flipped: still well-formed DER, no longer a signature.
    request = x509.load_pem_x509_csr(csr.encode())
    signature = request.signature
    flipped = signature[:-1] + bytes([signature[-1] ^ 1])
    tampered = request.public_bytes(Encoding.DER).replace(signature, flipped)
    pem = x509.load_der_x509_csr(tampered).public_bytes(Encoding.PEM).decode()

    answer = post(client, {"csr": pem}, device[1])

    assert answer.status_code == 400
    assert "signature does not verify" in answer.json()["error"]


def test_a_body_larger_than_a_csr_is_refused_before_it_is_read(client, device):
    answer = post(client, {"csr": "A" * 20_000}, device[1])

    assert answer.status_code == 413
    assert "larger than" in answer.json()["error"]


def test_a_request_without_a_known_token_is_refused(client, device):
    csr, _ = make_csr()

    assert post(client, {"csr": csr}, None).status_code == 401
    assert post(client, {"csr": csr}, "not-a-token").status_code == 401


def test_without_a_broker_the_device_is_told_to_rely_on_heartbeats(client, device, settings):
    settings.MQTT_URL = None
    csr, _ = make_csr()

    answer = post(client, {"csr": csr}, device[1])

    assert answer.status_code == 503
    assert "no broker" in answer.json()["error"]


def test_only_post_is_served(client, device):
    answer = client.get(CHANNEL, HTTP_AUTHORIZATION=f"Bearer {device[1]}")

    assert answer.status_code == 405
