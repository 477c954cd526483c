"""The HTTP paths of the delivery protocol, for the side that serves and the side that calls."""

from __future__ import annotations

ENROLL = "/api/v1/enroll"
HEARTBEAT = "/api/v1/heartbeat"
COMPONENT = "/api/v1/artifacts/{sha256}"
"""The raw component of an approved release, zstd (devices that compile for themselves)."""
COMPILED = "/api/v1/compiled/{sha256}"
"""A signed compiled artifact, zstd, by the SHA-256 of its raw bytes."""
CHANNEL = "/api/v1/channel"
"""POST a CSR, get the device's MQTT client certificate and topic (503: no broker)."""
