"""The notice channel against a real Mosquitto configured by the broker role's templates.

One broker, one scripted control plane that certifies the device's CSR with a throwaway
device CA, and one device host whose heartbeats come every 30 s: a heartbeat within seconds
of a notice is the notice's doing.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion

from fleet_common.wire.channel import ChannelGrant, desired_topic, parse_channel_request
from fleet_common.wire.notices import Notice
from tests.agent.conftest import GOOD_ENROLL, AgentUnderTest, ScriptedControlPlane, scripted_agent
from tests.servers_mqtt import Mosquitto, ThrowawayCA, write_private
from tests.support import wait_until

DEVICE = str(GOOD_ENROLL["device_id"])
TOPIC = desired_topic(DEVICE)
SLOW = json.dumps({"heartbeat_interval_s": 30}).encode()


def _certify(ca: ThrowawayCA, csr_pem: str, common_name: str) -> str:
    """What the control plane does: a clientAuth certificate for the CSR's key, its own CN."""
    request = x509.load_pem_x509_csr(csr_pem.encode())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.PEM).decode()


class Broker:
    def __init__(self, directory: Path) -> None:
        self.device_ca = ThrowawayCA("pi-fleet test device CA")
        (directory / "device-ca.pem").write_bytes(self.device_ca.cert_pem)
        self.mosquitto = Mosquitto(directory, device_ca_file=directory / "device-ca.pem")
        self.directory = directory

    def client(self, identity: str) -> mqtt.Client:
        """A connected MQTT client whose certificate says ``identity``."""
        cert, key = self.device_ca.issue(identity)
        (self.directory / f"{identity}.pem").write_bytes(cert)
        write_private(self.directory / f"{identity}-key.pem", key)
        context = ssl.create_default_context(cafile=str(self.mosquitto.server_ca_file))
        context.load_cert_chain(
            self.directory / f"{identity}.pem", self.directory / f"{identity}-key.pem"
        )
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=identity)
        client.tls_set_context(context)
        client.connect("127.0.0.1", self.mosquitto.port)
        client.loop_start()
        return client

    def publish(self, payload: bytes, topic: str = TOPIC) -> None:
        """Publishes retained with QoS 1, as the control plane's outbox does."""
        client = self.client("control-plane")
        try:
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("broker"))
    broker.mosquitto.start()
    try:
        yield broker
    finally:
        broker.mosquitto.stop()


@pytest.fixture(scope="module")
def device(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory, compiled_dir: Path
) -> Iterator[AgentUnderTest]:
    def grant(body: bytes) -> tuple[int, bytes]:
        csr = parse_channel_request(json.loads(body)).csr
        granted = ChannelGrant(
            broker.mosquitto.url,
            TOPIC,
            _certify(broker.device_ca, csr, DEVICE),
            datetime.now(UTC) + timedelta(days=1),
        )
        return 200, json.dumps(granted.to_json()).encode()

    control_plane = ScriptedControlPlane(
        enroll_answers=[json.dumps({**GOOD_ENROLL, "heartbeat_interval_s": 30}).encode()],
        heartbeat_answer=SLOW,
        channel=grant,
    )
    workdir = tmp_path_factory.mktemp("channel-host")
    with scripted_agent(
        workdir,
        compiled_dir,
        control_plane,
        ca_file=str(broker.mosquitto.server_ca_file),
        heartbeat_interval_s=30.0,
    ) as under_test:
        wait_until(lambda: _channel(under_test)["state"] == "connected", 30, "the channel")
        yield under_test


def _channel(device: AgentUnderTest) -> dict[str, object]:
    channel = device.status()["channel"]
    assert isinstance(channel, dict)
    return channel


def _heartbeats_after(device: AgentUnderTest, publish: object, within: float) -> int:
    """How many heartbeats arrived within ``within`` seconds of calling ``publish``."""
    before = len(device.control_plane.heartbeats)
    publish()  # type: ignore[operator]
    done = threading.Event()
    done.wait(within)
    return len(device.control_plane.heartbeats) - before


def test_the_device_connects_with_its_own_key_and_a_certificate_for_it(device, broker):
    channel = _channel(device)
    key = device.host.workdir / "state" / "agent" / "channel" / "key.pem"

    assert (channel["broker"], channel["topic"]) == (broker.mosquitto.url, TOPIC)
    assert key.stat().st_mode & 0o777 == 0o600
    assert "channel_csr" in json.loads(device.control_plane.enroll_bodies[0])
    assert len(device.control_plane.channel_requests) == 1


def test_a_newer_notice_brings_a_heartbeat_at_once_and_the_state_with_it(device, broker):
    sequence, device.control_plane.heartbeat_answer = device.desired_answer(10)
    before = len(device.control_plane.heartbeats)

    broker.publish(Notice(sequence).to_bytes())

    wait_until(lambda: device.status()["accepted_sequence"] == 10, 10, "the notice's state")
    assert len(device.control_plane.heartbeats) > before
    device.control_plane.heartbeat_answer = SLOW


def test_an_older_notice_and_garbage_bring_no_heartbeat(device, broker):
    wait_until(lambda: device.status()["desired_sequence"] == 10, 10, "sequence 10 applied")
    device.control_plane.wait_for_heartbeats(1)  # answered SLOW: the next is 30 s away
    notices = _channel(device)["notices"]

    def publish() -> None:
        broker.publish(Notice(3).to_bytes())
        broker.publish(b"not json at all")
        broker.publish(b'{"desired_sequence": "11"}')

    assert _heartbeats_after(device, publish, within=2.5) == 0
    assert _channel(device)["notices"] == notices + 1  # only the well-formed one counted


def test_a_device_cannot_read_another_devices_topic(broker):
    received: list[bytes] = []
    broker.publish(Notice(99).to_bytes(), topic=desired_topic("d-other"))
    spy = broker.client("d-spy")
    spy.on_message = lambda _c, _u, message: received.append(message.payload)
    try:
        spy.subscribe(desired_topic("d-other"), qos=1)
        spy.subscribe("pi-fleet/devices/#", qos=1)
        threading.Event().wait(1.5)
    finally:
        spy.disconnect()
        spy.loop_stop()

    assert received == []


def test_with_the_broker_stopped_heartbeats_go_on_and_the_channel_comes_back(device, broker):
    device.control_plane.heartbeat_answer = b'{"heartbeat_interval_s": 1}'
    broker.publish(Notice(11).to_bytes())  # an early heartbeat brings the 1 s interval
    device.control_plane.wait_for_heartbeats(2, timeout=10)
    broker.mosquitto.stop()
    try:
        wait_until(lambda: _channel(device)["state"] == "disconnected", 10, "the disconnect")
        device.control_plane.wait_for_heartbeats(3, timeout=10)
        assert device.status()["healthy"] is True
    finally:
        broker.mosquitto.start()
    wait_until(lambda: _channel(device)["state"] == "connected", 30, "the reconnect")
    device.control_plane.heartbeat_answer = SLOW
