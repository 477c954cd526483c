"""The control plane's one connection to the MQTT broker: publish retained notices, count
the acknowledgements.

paho-mqtt's network loop runs in its own thread for the life of a `NoticePublisher`; every
wait here is bounded, so a broker that hangs costs a job a few seconds, never a request.
TLS pins the broker's CA (``MQTT_CA_FILE``) and shows the publisher's certificate from
`control_plane.signing`, which keeps the key.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit
from uuid import uuid4

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from control_plane.errors import ControlPlaneError
from control_plane.signing import PUBLISHER_IDENTITY, DeviceCAError, publisher_tls_context

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
ACK_TIMEOUT_S = 20.0
"""How long a batch may wait for its PUBACKs before the rest counts as failed."""
MAX_INFLIGHT = 100


class BrokerError(ControlPlaneError):
    """The broker cannot be reached, refused the publisher, or is misconfigured here."""


def broker_address(url: str) -> tuple[str, int]:
    """Host and port of ``mqtts://host:port``; the channel is never in clear."""
    parts = urlsplit(url)
    if parts.scheme != "mqtts" or not parts.hostname:
        raise BrokerError(f"MQTT_URL must be mqtts://host:port, not {url!r}")
    try:
        return parts.hostname, parts.port or 8883
    except ValueError:
        raise BrokerError(f"MQTT_URL has a bad port: {url!r}") from None


class NoticePublisher:
    """A connected publisher for one job run: ``with NoticePublisher(url, ca) as p: ...``."""

    def __init__(self, url: str, ca_file: Path | None) -> None:
        if ca_file is None:
            raise BrokerError("MQTT_CA_FILE is not set: the publisher pins the broker's CA")
        self._host, self._port = broker_address(url)
        self._ca_file = ca_file
        self._connected = threading.Event()
        self._refusal: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{PUBLISHER_IDENTITY}-{uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.connect_timeout = CONNECT_TIMEOUT_S
        self._client.max_inflight_messages_set(MAX_INFLIGHT)

    def __enter__(self) -> NoticePublisher:
        try:
            self._client.tls_set_context(publisher_tls_context(self._ca_file))
            self._client.connect(self._host, self._port, keepalive=30)
        except (OSError, ssl.SSLError, DeviceCAError) as exc:
            raise BrokerError(f"cannot connect to {self._host}:{self._port}: {exc}") from None
        self._client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S) or self._refusal is not None:
            self._close()
            reason = self._refusal or f"no answer within {CONNECT_TIMEOUT_S:g} s"
            raise BrokerError(f"{self._host}:{self._port} refused the publisher: {reason}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close()

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> list[bool]:
        """Publishes each (topic, payload) QoS 1, retained; returns which the broker
        acknowledged within ``ACK_TIMEOUT_S`` (paho resends the rest after a reconnect,
        but they count as failed here and stay pending)."""
        infos = [
            self._client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages
        ]
        deadline = time.monotonic() + ACK_TIMEOUT_S
        for info in infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                info.wait_for_publish(remaining)
            except (RuntimeError, ValueError):  # not queued: no connection, or queue full
                continue
        return [info.is_published() for info in infos]

    def _close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        self._refusal = str(reason) if reason.is_failure else None
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            log.warning(
                "the broker %s:%s disconnected the publisher: %s", self._host, self._port, reason
            )
