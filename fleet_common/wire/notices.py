"""The notice a device hears on its MQTT topic: "desired state N is ready, come and get it".

A notice carries no state, only a sequence number; the device fetches the signed envelope
over HTTPS with its next heartbeat. So a forged or replayed notice can at worst cause one
early heartbeat. The payload is bounded and parsed strictly because anyone who can publish
to the broker can send anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fleet_common.errors import FleetError
from fleet_common.wire._fields import MAX_SEQUENCE, is_sequence

__all__ = ["MAX_NOTICE_BYTES", "Notice", "NoticeError", "parse_notice"]

MAX_NOTICE_BYTES = 256


class NoticeError(FleetError):
    """An MQTT payload is not a notice; the message says why."""


@dataclass(frozen=True)
class Notice:
    sequence: int
    """The newest desired-state sequence the control plane holds for this device."""

    def __post_init__(self) -> None:
        if not is_sequence(self.sequence):
            raise ValueError(f"a notice's sequence is an integer from 0 below {MAX_SEQUENCE}")

    def to_bytes(self) -> bytes:
        return json.dumps({"desired_sequence": self.sequence}, separators=(",", ":")).encode()


def parse_notice(payload: bytes) -> Notice:
    """The notice in an MQTT payload; raises NoticeError naming what is wrong with it."""
    if len(payload) > MAX_NOTICE_BYTES:
        raise NoticeError(f"notice is {len(payload)} bytes; at most {MAX_NOTICE_BYTES}")
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        raise NoticeError("notice is not JSON") from None
    if not isinstance(data, dict):
        raise NoticeError("notice must be a JSON object")
    sequence = data.get("desired_sequence")
    if not is_sequence(sequence):
        raise NoticeError(f"desired_sequence must be an integer from 0 below {MAX_SEQUENCE}")
    return Notice(sequence)
