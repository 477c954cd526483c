"""The device-initiated notice channel: what a device asks for and what it is granted.

A device sends a CSR for a key it made itself (at enrollment, or later to ``paths.CHANNEL``)
and is granted a client certificate for the MQTT broker plus the one topic it may read. The
grant arrives from the network, so `parse_channel_grant` checks every field before the
device connects anywhere: only ``mqtts://`` (the channel is never in clear), a host and port
that make sense, the device's own topic shape, and a PEM certificate of bounded size.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fleet_common.errors import FleetError
from fleet_common.wire.reports import ReportError

__all__ = [
    "MAX_CERTIFICATE_BYTES",
    "MAX_CSR_BYTES",
    "TOPIC_PREFIX",
    "ChannelError",
    "ChannelGrant",
    "ChannelRequest",
    "check_csr",
    "desired_topic",
    "parse_channel_grant",
    "parse_channel_request",
]

TOPIC_PREFIX = "pi-fleet/devices"
MAX_CSR_BYTES = 4096
MAX_CERTIFICATE_BYTES = 16 * 1024
MAX_URL_CHARS = 512
MAX_TOPIC_CHARS = 256
_DEVICE_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_TOPIC = re.compile(re.escape(TOPIC_PREFIX) + r"/([A-Za-z0-9._~-]{1,128})/desired")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_BASE64_LINES = r"(?:[A-Za-z0-9+/=]{1,76}\r?\n)+"
_CSR = re.compile(
    r"-----BEGIN CERTIFICATE REQUEST-----\r?\n"
    + _BASE64_LINES
    + r"-----END CERTIFICATE REQUEST-----\r?\n?"
)
_CERTIFICATE = re.compile(
    r"(?:-----BEGIN CERTIFICATE-----\r?\n" + _BASE64_LINES + r"-----END CERTIFICATE-----\r?\n?)+"
)


class ChannelError(FleetError):
    """A channel grant from the control plane has a missing or malformed field."""


def desired_topic(device_id: str) -> str:
    """The one topic a device reads: where its "desired state N is ready" notices go."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise ValueError(f"not a device id for a topic: {device_id[:60]!r}")
    return f"{TOPIC_PREFIX}/{device_id}/desired"


def check_csr(value: object, field: str) -> str:
    """A PEM certificate signing request, shape only; raises ReportError naming ``field``.

    Whether the request is well signed is the signer's business; here it is refused before
    it costs anything if it is too large or is not one PEM CERTIFICATE REQUEST block.
    """
    if not isinstance(value, str):
        raise ReportError(f"{field} must be a PEM certificate request (a string)")
    if len(value.encode()) > MAX_CSR_BYTES:
        raise ReportError(f"{field} is longer than {MAX_CSR_BYTES} bytes")
    if not _CSR.fullmatch(value):
        raise ReportError(f"{field} is not a PEM CERTIFICATE REQUEST block")
    return value


@dataclass(frozen=True)
class ChannelRequest:
    """A device's ``POST /api/v1/channel`` body: a CSR for the key it keeps to itself."""

    csr: str

    def to_json(self) -> dict[str, object]:
        return {"csr": self.csr}


def parse_channel_request(data: object) -> ChannelRequest:
    """A decoded channel request, checked; raises ReportError naming the bad field."""
    if not isinstance(data, dict):
        raise ReportError("the body must be a JSON object")
    return ChannelRequest(csr=check_csr(data.get("csr"), "csr"))


@dataclass(frozen=True)
class ChannelGrant:
    """Where and as whom a device listens for notices, and until when its certificate holds."""

    broker_url: str
    """``mqtts://host:port``; the broker's certificate is checked against the fleet CA."""
    topic: str
    certificate: str
    """The device's client certificate (PEM), optionally followed by its issuing chain."""
    expires_at: datetime

    @property
    def host(self) -> str:
        return _broker_address(self.broker_url)[0]

    @property
    def port(self) -> int:
        return _broker_address(self.broker_url)[1]

    def to_json(self) -> dict[str, object]:
        return {
            "broker_url": self.broker_url,
            "topic": self.topic,
            "certificate": self.certificate,
            "expires_at": self.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


def parse_channel_grant(data: object) -> ChannelGrant:
    """A decoded channel grant, checked; raises ChannelError naming the first bad field."""
    if not isinstance(data, dict):
        raise ChannelError("the channel must be a JSON object")
    broker_url = _string(data, "broker_url", MAX_URL_CHARS)
    _broker_address(broker_url)
    topic = _string(data, "topic", MAX_TOPIC_CHARS)
    if not _TOPIC.fullmatch(topic):
        raise ChannelError(f"topic must be {TOPIC_PREFIX}/<device id>/desired, not {topic[:60]!r}")
    certificate = _string(data, "certificate", MAX_CERTIFICATE_BYTES)
    if len(certificate.encode()) > MAX_CERTIFICATE_BYTES or not _CERTIFICATE.fullmatch(certificate):
        raise ChannelError(
            f"certificate must be PEM CERTIFICATE blocks of at most {MAX_CERTIFICATE_BYTES} bytes"
        )
    return ChannelGrant(broker_url, topic, certificate, _expiry(data))


def _broker_address(url: str) -> tuple[str, int]:
    """Host and port of an ``mqtts://host:port`` URL; raises ChannelError otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ChannelError(f"broker_url is not a URL: {url[:60]!r}") from None
    if parts.scheme != "mqtts":
        raise ChannelError(f"broker_url must be mqtts:// (TLS), not {parts.scheme or 'none'}://")
    host = parts.hostname or ""
    if "@" in parts.netloc or not (_HOST.fullmatch(host) or _is_ip(host)):
        raise ChannelError(f"broker_url has no usable host: {url[:60]!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ChannelError(f"broker_url must be mqtts://host:port only: {url[:60]!r}")
    if port is None or port == 0:
        raise ChannelError(f"broker_url must name a port from 1 to 65535: {url[:60]!r}")
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _string(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ChannelError(f"{key} must be a non-empty string")
    if len(value) > limit:
        raise ChannelError(f"{key} is longer than {limit} characters")
    return value


def _expiry(data: dict[str, Any]) -> datetime:
    value = _string(data, "expires_at", 64)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ChannelError(f"expires_at is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise ChannelError("expires_at has no time zone (add Z or +00:00)")
    return moment.astimezone(UTC)
