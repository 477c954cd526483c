"""The notice channel: an MQTT subscription that tells the agent when to heartbeat early.

The device keeps its own EC P-256 key (``key.pem``, 0600, never sent), asks the control
plane to certify it (at enrollment, or ``POST /api/v1/channel`` when it has no certificate
or a third of its lifetime is left) and listens on its one topic over mutual TLS, pinned to
the fleet CA. A notice only says "desired state N is ready"; the envelope still comes, signed,
with the next heartbeat. So the channel may be down for any reason (no broker configured, the
broker stopped, a NAT dropping idle flows) and the device still converges by heartbeat; the
channel only makes it faster. paho-mqtt runs its own network thread and reconnects with
back-off; this module's thread only keeps the certificate fresh.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from device_host.agent.conditions import Conditions
from device_host.agent.control_plane import ControlPlaneClient, ControlPlaneError
from device_host.agent.supervisor import Supervisor
from device_host.agent.tls import pinned_context
from fleet_common.atomic import atomic_write_bytes
from fleet_common.wire.channel import ChannelError, ChannelGrant, parse_channel_grant
from fleet_common.wire.notices import NoticeError, parse_notice

log = logging.getLogger(__name__)

NO_BROKER_RETRY_S = 600.0
"""After a 503 (the control plane has no broker), ask again this much later."""
FIRST_RETRY_S = 30.0
"""After any other failure to get a certificate; doubles up to `NO_BROKER_RETRY_S`."""
CHECK_INTERVAL_S = 60.0
"""How often the certificate's remaining lifetime is looked at."""
RENEW_AT = 2 / 3
"""Renew once this share of the certificate's lifetime has passed."""
KEEPALIVE_S = 60
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60
CONDITION = "channel"


class NoticeChannel:
    """One device's MQTT subscription, with the key and certificate it connects with.

    ``accepted_sequence`` reads the agent's newest accepted desired state; ``poke`` asks it
    for a heartbeat now. Both are called from paho's thread.
    """

    def __init__(
        self,
        directory: Path,
        ca_file: Path,
        client: ControlPlaneClient,
        conditions: Conditions,
        *,
        device_name: str,
        accepted_sequence: Callable[[], int],
        poke: Callable[[], None],
    ) -> None:
        self._directory = directory
        self._ca_file = ca_file
        self._client = client
        self._conditions = conditions
        self._device_name = device_name
        self._accepted_sequence = accepted_sequence
        self._poke = poke
        self._key_path = directory / "key.pem"
        self._cert_path = directory / "cert.pem"
        self._grant_path = directory / "grant.json"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._supervisor = Supervisor("notice channel", self._loop, self._stop)
        self._grant = self._load_grant()
        self._mqtt: mqtt.Client | None = None
        self._connected_grant: ChannelGrant | None = None
        self._next_request = 0.0
        self._failures = 0
        self.state = "waiting for a certificate"
        self.notices = 0
        self.last_notice: int | None = None

    def csr(self) -> str:
        """A PEM CSR for this device's channel key, made (once) if it has none yet."""
        key = self._key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self._device_name[:64] or "pi")])
        request = (
            x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        )
        return request.public_bytes(serialization.Encoding.PEM).decode()

    def accept_grant(self, grant: ChannelGrant) -> None:
        """Keeps a grant (from enrollment or a renewal) and reconnects with it."""
        if not self._fits_key(grant):
            self._conditions.report(CONDITION, "refused a certificate that is not for this key")
            return
        atomic_write_bytes(self._cert_path, grant.certificate.encode())
        atomic_write_bytes(self._grant_path, json.dumps(grant.to_json()).encode())
        with self._lock:
            self._grant = grant
        self._wake.set()

    def start(self) -> None:
        self._supervisor.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._supervisor.join(timeout=10)
        self._disconnect()

    def wake(self) -> None:
        """Looks at the certificate now (the agent just enrolled)."""
        self._wake.set()

    def status(self) -> dict[str, object]:
        with self._lock:
            grant = self._grant
        return {
            "state": self.state,
            "broker": None if grant is None else grant.broker_url,
            "topic": None if grant is None else grant.topic,
            "cert_expires_at": None if grant is None else grant.expires_at.isoformat(),
            "notices": self.notices,
            "last_notice": self.last_notice,
        }

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._client.token is not None:
                self._renew_if_due()
                self._connect_if_needed()
            self._supervisor.progress()
            self._wake.wait(CHECK_INTERVAL_S)
            self._wake.clear()

    def _renew_if_due(self) -> None:
        with self._lock:
            grant = self._grant
        if not self._due(grant) or time.monotonic() < self._next_request:
            return
        try:
            fresh = self._client.request_channel(self.csr())
        except ControlPlaneError as exc:
            self._failures += 1
            if exc.status == 503:
                wait, why = NO_BROKER_RETRY_S, "the control plane has no broker"
            else:
                wait, why = (
                    min(FIRST_RETRY_S * 2 ** (self._failures - 1), NO_BROKER_RETRY_S),
                    str(exc),
                )
            wait = max(wait, exc.retry_after_s or 0.0)
            self._next_request = time.monotonic() + wait
            if grant is None:
                self.state = "no certificate"
            self._conditions.report(
                CONDITION,
                f"no channel certificate ({why}); heartbeats only, asking again in {wait:.0f} s",
            )
            return
        self._failures = 0
        self._conditions.clear(CONDITION)
        self.accept_grant(fresh)

    def _connect_if_needed(self) -> None:
        with self._lock:
            grant = self._grant
        if grant is None or grant == self._connected_grant or not self._valid(grant):
            return
        self._disconnect()
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=grant.topic.split("/")[-2],
            protocol=mqtt.MQTTv311,
        )
        client.tls_set_context(pinned_context(self._ca_file, (self._cert_path, self._key_path)))
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.user_data_set(grant)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.state = "connecting"
        client.connect_async(grant.host, grant.port, keepalive=KEEPALIVE_S)
        client.loop_start()
        self._mqtt, self._connected_grant = client, grant
        log.info("notice channel: connecting to %s for %s", grant.broker_url, grant.topic)

    def _disconnect(self) -> None:
        client, self._mqtt, self._connected_grant = self._mqtt, None, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
            self.state = "disconnected"

    def _on_connect(
        self, client: mqtt.Client, grant: ChannelGrant, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.state = f"refused by the broker: {reason}"
            self._conditions.report(CONDITION, f"the broker refused the connection: {reason}")
            return
        client.subscribe(grant.topic, qos=1)
        self.state = "connected"
        self._conditions.clear(CONDITION)
        log.info("notice channel: connected to %s", grant.broker_url)

    def _on_subscribe(
        self, _client: mqtt.Client, grant: ChannelGrant, _mid: int, reasons: Any, _props: Any
    ) -> None:
        if any(reason.is_failure for reason in reasons):
            self._conditions.report(
                CONDITION, f"the broker refused the subscription to {grant.topic}"
            )

    def _on_disconnect(
        self, _client: mqtt.Client, _grant: ChannelGrant, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if self.state == "connected":
            log.info("notice channel: disconnected (%s); paho reconnects with back-off", reason)
        self.state = "disconnected"

    def _on_message(self, _client: mqtt.Client, _grant: ChannelGrant, message: Any) -> None:
        try:
            notice = parse_notice(bytes(message.payload))
        except NoticeError as exc:
            log.warning("notice channel: ignoring a payload on %s: %s", message.topic, exc)
            return
        self.notices += 1
        self.last_notice = notice.sequence
        if notice.sequence > self._accepted_sequence():
            self._poke()

    def _due(self, grant: ChannelGrant | None) -> bool:
        """Whether to ask for a certificate: none yet, or a third of its lifetime left."""
        if grant is None:
            return True
        validity = _validity(grant)
        if validity is None:
            return True
        start, end = validity
        return time.time() >= start + (end - start) * RENEW_AT

    def _valid(self, grant: ChannelGrant) -> bool:
        validity = _validity(grant)
        return validity is not None and validity[0] <= time.time() < validity[1]

    def _key(self) -> ec.EllipticCurvePrivateKey:
        try:
            key = serialization.load_pem_private_key(self._key_path.read_bytes(), password=None)
        except FileNotFoundError:
            pass
        except ValueError as exc:
            log.error("notice channel: replacing the unreadable key %s: %s", self._key_path, exc)
        else:
            if isinstance(key, ec.EllipticCurvePrivateKey):
                return key
        fresh = ec.generate_private_key(ec.SECP256R1())
        pem = fresh.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomic_write_bytes(self._key_path, pem)  # mkstemp creates it 0600
        return fresh

    def _fits_key(self, grant: ChannelGrant) -> bool:
        try:
            certificate = x509.load_pem_x509_certificate(grant.certificate.encode())
        except ValueError:
            return False
        ours = (
            self._key()
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        theirs = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return ours == theirs

    def _load_grant(self) -> ChannelGrant | None:
        try:
            grant = parse_channel_grant(json.loads(self._grant_path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, ChannelError) as exc:
            log.error("notice channel: ignoring the stored grant: %s", exc)
            return None
        return grant if self._cert_path.exists() else None


def _validity(grant: ChannelGrant) -> tuple[float, float] | None:
    """The certificate's not-before and not-after (epoch seconds), or None if unreadable."""
    try:
        certificate = x509.load_pem_x509_certificate(grant.certificate.encode())
    except ValueError:
        return None
    start = certificate.not_valid_before_utc.timestamp()
    end = min(certificate.not_valid_after_utc, grant.expires_at.astimezone(UTC)).timestamp()
    return start, max(start, end)
