"""One real Mosquitto per test module, rendered from the broker role's templates and trusting
a device CA made by `control_plane.signing`; helpers for devices' keys, CSRs and clients."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from control_plane.signing import create_device_ca
from tests.servers_mqtt import Mosquitto, write_private


@dataclass(frozen=True)
class DeviceCA:
    cert_path: Path
    key_path: Path


@pytest.fixture(scope="module")
def device_ca(tmp_path_factory: pytest.TempPathFactory) -> DeviceCA:
    folder = tmp_path_factory.mktemp("device-ca")
    ca = DeviceCA(folder / "device-ca.pem", folder / "device-ca-key.pem")
    create_device_ca(ca.cert_path, ca.key_path)
    return ca


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, device_ca: DeviceCA) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("mosquitto"), device_ca.cert_path) as running:
        yield running


@pytest.fixture(autouse=True)
def channel_settings(settings, device_ca: DeviceCA, broker: Mosquitto) -> Mosquitto:
    """Every test talks to the module's broker with the module's device CA, broker started."""
    settings.DEVICE_CA_CERT_PATH = device_ca.cert_path
    settings.DEVICE_CA_KEY_PATH = device_ca.key_path
    settings.MQTT_URL = broker.url
    settings.MQTT_CA_FILE = broker.server_ca_file
    broker.start()
    return broker


def make_csr(
    common_name: str = "anything", key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[str, bytes]:
    """A CSR (PEM text) asking for ``common_name`` and the PEM of the key it is for."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return csr.public_bytes(Encoding.PEM).decode(), key_pem


class DeviceClient:
    """A device's MQTT connection with a certificate from the control plane; the messages
    it receives queue up in ``messages`` as (topic, payload)."""

    def __init__(self, broker: Mosquitto, folder: Path, certificate: str, key_pem: bytes) -> None:
        cert_file = folder / "device.pem"
        cert_file.write_text(certificate)
        key_file = write_private(folder / "device-key.pem", key_pem)
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.granted: queue.Queue[list[mqtt.ReasonCode]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.tls_set(
            ca_certs=str(broker.server_ca_file), certfile=str(cert_file), keyfile=str(key_file)
        )
        self.client.on_message = lambda _c, _u, message: self.messages.put(
            (message.topic, message.payload)
        )
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.granted.put(codes)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        """Subscribes and waits for the broker's SUBACK (retained messages come right after)."""
        self.client.subscribe(topic, qos=1)
        self.granted.get(timeout=5)

    def next_message(self, timeout: float = 5.0) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
