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

    answer = enroll_request(client, secret, agent_url="http://pi-1.local:3000")

    assert answer.status_code == 201
    body = answer.json()
    device = Device.objects.get(pk=body["device_id"])
    assert body["heartbeat_interval_s"] == 10
    assert device.token_hash == hash_token(body["device_token"]) != body["device_token"]
    assert (device.name, device.host_version, device.agent_url) == (
        "pi-1",
        "0.1.0",
        "http://pi-1.local:3000",
    )


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


def test_a_bad_agent_url_is_refused_without_spending_the_token(client):
    token, secret = create_enrollment_token(label="x")

    answer = enroll_request(client, secret, agent_url="ftp://pi")

    assert answer.status_code == 400
    assert answer.json()["error"].startswith("agent_url: ")
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
