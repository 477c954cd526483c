"""The channel's certificate: asked for over real HTTP when missing or two thirds used up, and
not asked for again soon after a 503 (the control plane has no broker)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from device_host.agent.channel import NoticeChannel
from device_host.agent.conditions import Conditions
from device_host.agent.control_plane import ControlPlaneClient
from fleet_common.wire.channel import ChannelGrant, desired_topic, parse_channel_request
from tests.agent.conftest import ScriptedControlPlane
from tests.servers_mqtt import ThrowawayCA
from tests.support import wait_until

CA = ThrowawayCA("device CA")


def _certificate(csr_pem: str, *, born: timedelta, lives: timedelta) -> str:
    request = x509.load_pem_x509_csr(csr_pem.encode())
    start = datetime.now(UTC) - born
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d-7")]))
        .issuer_name(CA.certificate.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lives)
        .sign(CA.key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.PEM).decode()


def _grant(certificate: str) -> ChannelGrant:
    expires = x509.load_pem_x509_certificate(certificate.encode()).not_valid_after_utc
    return ChannelGrant("mqtts://127.0.0.1:1", desired_topic("d-7"), certificate, expires)


@pytest.fixture
def control_plane() -> Iterator[ScriptedControlPlane]:
    script = ScriptedControlPlane()
    script.start()
    yield script
    script.stop()


@pytest.fixture
def channel(control_plane: ScriptedControlPlane, tmp_path: Path) -> Iterator[NoticeChannel]:
    (tmp_path / "ca.pem").write_bytes(CA.cert_pem)
    made = NoticeChannel(
        tmp_path / "channel",
        tmp_path / "ca.pem",
        ControlPlaneClient(control_plane.url, "device-token"),
        Conditions(),
        device_name="pi-1",
        accepted_sequence=lambda: 0,
        poke=lambda: None,
    )
    yield made
    made.stop()


def test_after_a_503_the_device_waits_ten_minutes_before_asking_again(control_plane, channel):
    channel.start()
    wait_until(lambda: control_plane.channel_requests, 10, "the first request")
    for _ in range(5):
        channel.wake()
    wait_until(lambda: channel.state == "no certificate", 10, "the refusal")

    assert len(control_plane.channel_requests) == 1
    assert parse_channel_request(json.loads(control_plane.channel_requests[0])).csr


def test_a_certificate_with_a_third_of_its_life_left_is_renewed(control_plane, channel):
    old = _certificate(channel.csr(), born=timedelta(days=2), lives=timedelta(days=3))
    channel.accept_grant(_grant(old))
    fresh = _certificate(channel.csr(), born=timedelta(minutes=1), lives=timedelta(days=3))
    control_plane.channel = lambda _body: (200, json.dumps(_grant(fresh).to_json()).encode())

    channel.start()

    wait_until(
        lambda: channel.status()["cert_expires_at"] == _grant(fresh).expires_at.isoformat(), 10
    )
    assert len(control_plane.channel_requests) == 1


def test_a_young_certificate_is_kept(control_plane, channel):
    young = _certificate(channel.csr(), born=timedelta(days=1), lives=timedelta(days=3))
    channel.accept_grant(_grant(young))

    channel.start()
    channel.wake()
    wait_until(lambda: channel.state != "waiting for a certificate", 10, "a connection attempt")

    assert control_plane.channel_requests == []


def test_a_certificate_for_another_key_is_refused(channel, tmp_path):
    foreign, _ = CA.issue("d-7")  # a certificate for a key this device never made

    channel.accept_grant(_grant(foreign.decode()))

    assert channel.status()["broker"] is None
    assert not (tmp_path / "channel" / "cert.pem").exists()
