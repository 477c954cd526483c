"""Enrollment: a token is spent once per device, and refused when used, expired or unknown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from control_plane.devices.models import Device, EnrollmentToken
from control_plane.devices.services import create_enrollment_token
from control_plane.devices.tokens import hash_token

pytestmark = pytest.mark.django_db

ENROLL = "/api/v1/enroll"


def enroll_request(client, token: str, name: str = "pi-1", **extra: object):
    body = {"enrollment_token": token, "name": name, "host_version": "0.1.0", **extra}
    return client.post(ENROLL, body, content_type="application/json")


def test_enrolling_returns_an_id_a_token_and_the_interval(client):
    _, secret = create_enrollment_token(label="bench")

    answer = enroll_request(client, secret)

    assert answer.status_code == 201
    body = answer.json()
    device = Device.objects.get(pk=body["device_id"])
    assert body["heartbeat_interval_s"] == 10
    assert "channel" not in body  # no CSR, no channel: the device relies on heartbeats
    assert device.token_hash == hash_token(body["device_token"]) != body["device_token"]
    assert (device.name, device.host_version) == ("pi-1", "0.1.0")


def test_a_legacy_agent_url_is_ignored(client):
    """Older hosts still send one; the control plane never pushes, so it keeps none."""
    _, secret = create_enrollment_token(label="old host")

    answer = enroll_request(client, secret, agent_url="http://169.254.169.254/latest")

    assert answer.status_code == 201
    assert not hasattr(Device.objects.get(), "agent_url")


def test_a_token_enrolls_only_once(client):
    _, secret = create_enrollment_token(label="one shot")
    assert enroll_request(client, secret).status_code == 201

    again = enroll_request(client, secret, name="pi-2")

    assert again.status_code == 403
    assert again.json() == {"error": "enrollment token 'one shot' is used up"}
    assert Device.objects.count() == 1


def test_a_token_with_several_uses_counts_down(client):
    token, secret = create_enrollment_token(label="rack", uses=2)

    codes = [enroll_request(client, secret, name=f"pi-{i}").status_code for i in range(3)]

    assert codes == [201, 201, 403]
    token.refresh_from_db()
    assert token.uses_left == 0


def test_an_expired_token_is_refused(client):
    _, secret = create_enrollment_token(
        label="old", expires_at=timezone.now() - timedelta(minutes=1)
    )

    answer = enroll_request(client, secret)

    assert answer.status_code == 403
    assert answer.json()["error"].startswith("enrollment token 'old' expired at ")


def test_an_unknown_token_is_refused(client):
    answer = enroll_request(client, "made-up")

    assert (answer.status_code, answer.json()) == (403, {"error": "unknown enrollment token"})


def test_a_bad_name_is_refused_without_spending_the_token(client):
    token, secret = create_enrollment_token(label="x")

    answer = enroll_request(client, secret, name="p" * 101)

    assert answer.status_code == 400
    assert answer.json()["error"].startswith("name: ")
    token.refresh_from_db()
    assert token.uses_left == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{", "the body is not JSON"),
        (b"[]", "the body must be a JSON object"),
        (b'{"enrollment_token": "x"}', "name is required"),
        (b'{"enrollment_token": 7, "name": "pi"}', "enrollment_token must be a string"),
    ],
)
def test_a_malformed_enrollment_is_a_400_naming_the_problem(client, body, error):
    answer = client.post(ENROLL, body, content_type="application/json")

    assert answer.status_code == 400
    assert answer.json()["error"].startswith(error)


def test_the_command_prints_a_token_that_enrolls(client, capsys):
    call_command("create_enrollment_token", "--label", "lab", "--uses", "2")

    secret = capsys.readouterr().out.strip()
    token = EnrollmentToken.objects.get(label="lab")
    assert token.token_hash == hash_token(secret)
    assert token.uses_left == 2
    assert token.expires_at is not None
    assert enroll_request(client, secret).status_code == 201


@pytest.fixture
def broker(settings, tmp_path):
    """A control plane with a broker and a device CA."""
    from control_plane.signing import create_device_ca

    settings.MQTT_URL = "mqtts://broker.test:8883"
    settings.DEVICE_CA_CERT_PATH = tmp_path / "device-ca.pem"
    settings.DEVICE_CA_KEY_PATH = tmp_path / "device-ca-key.pem"
    return create_device_ca(settings.DEVICE_CA_CERT_PATH, settings.DEVICE_CA_KEY_PATH)


def csr_pem(common_name: str = "pi-1") -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(Encoding.PEM).decode()


def test_enrolling_with_a_csr_grants_the_device_its_channel(client, broker):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    _, secret = create_enrollment_token(label="with channel")

    answer = enroll_request(client, secret, channel_csr=csr_pem(common_name="someone-else"))

    assert answer.status_code == 201
    body = answer.json()
    channel = body["channel"]
    assert channel["broker_url"] == "mqtts://broker.test:8883"
    assert channel["topic"] == f"pi-fleet/devices/{body['device_id']}/desired"
    certificate = x509.load_pem_x509_certificate(channel["certificate"].encode())
    [cn] = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn.value == body["device_id"]  # never the CSR's subject


def test_without_a_broker_a_csr_gets_no_channel(client, settings):
    settings.MQTT_URL = None
    _, secret = create_enrollment_token(label="no broker")

    answer = enroll_request(client, secret, channel_csr=csr_pem())

    assert answer.status_code == 201
    assert "channel" not in answer.json()


def test_a_csr_the_signer_refuses_leaves_the_token_unspent(client, broker):
    token, secret = create_enrollment_token(label="bad csr")
    pem = csr_pem()
    body = pem.split("\n")
    body[2] = body[2][:10] + ("A" if body[2][10] != "A" else "B") + body[2][11:]

    answer = enroll_request(client, secret, channel_csr="\n".join(body))

    assert answer.status_code == 400
    assert answer.json()["error"].startswith("channel_csr: ")
    token.refresh_from_db()
    assert token.uses_left == 1 and not Device.objects.exists()
