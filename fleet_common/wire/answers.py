"""The control plane's answers to a device, parsed into typed values before the agent uses them.

The control plane is trusted to sign, not to be well-formed: a bug, a proxy or a man in
the middle can answer anything, and a device must never crash or spin on it. Every field
is checked here, once, and a bad one raises AnswerError naming the field and its value.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Any

from fleet_common.errors import FleetError
from fleet_common.wire.channel import ChannelError, ChannelGrant, parse_channel_grant

MIN_HEARTBEAT_INTERVAL_S = 1.0
"""Fastest a control plane may make a device heartbeat (tests run at 1 s)."""
MAX_HEARTBEAT_INTERVAL_S = 3600.0
"""Slowest: a device is never silent for more than an hour."""
MAX_TOKEN_CHARS = 512
MAX_ID_CHARS = 128
MAX_PROBLEM_CHARS = 500
"""A rejected reading's problem is cut to this, never refused."""
_TOKEN_ALPHABET = frozenset(string.ascii_letters + string.digits + "-._~+/=:")


class AnswerError(FleetError):
    """An answer from the control plane has a missing or malformed field."""


@dataclass(frozen=True)
class EnrollAnswer:
    device_id: str
    device_token: str
    heartbeat_interval_s: float | None
    channel: ChannelGrant | None = None
    """The MQTT channel granted for the enrollment's CSR; None: no broker, or no CSR sent."""


@dataclass(frozen=True)
class RejectedReadings:
    """Readings of a heartbeat the control plane refused to store (too many, too far ahead)."""

    count: int
    problem: str
    """What was wrong with the first refused reading, for the device's conditions."""

    def to_json(self) -> dict[str, object]:
        return {"count": self.count, "problem": self.problem[:MAX_PROBLEM_CHARS]}


@dataclass(frozen=True)
class HeartbeatAnswer:
    desired: dict[str, Any] | None
    """The signed desired-state envelope, still to be verified; None when the device's own
    sequence is current (the answer leaves it out) or before any assignment."""
    heartbeat_interval_s: float | None
    """None: the control plane did not say; keep the current interval."""
    rejected_readings: RejectedReadings | None = None


def parse_enroll_answer(answer: dict[str, Any]) -> EnrollAnswer:
    channel = answer.get("channel")
    try:
        grant = None if channel is None else parse_channel_grant(channel)
    except ChannelError as exc:
        raise AnswerError(f"channel: {exc}") from None
    return EnrollAnswer(
        device_id=_text(answer, "device_id", MAX_ID_CHARS, _TOKEN_ALPHABET),
        device_token=_text(answer, "device_token", MAX_TOKEN_CHARS, _TOKEN_ALPHABET),
        heartbeat_interval_s=_interval(answer),
        channel=grant,
    )


def parse_heartbeat_answer(answer: dict[str, Any]) -> HeartbeatAnswer:
    desired = answer.get("desired")
    if desired is not None and not isinstance(desired, dict):
        raise AnswerError(f"desired must be an object or null, not {_show(desired)}")
    return HeartbeatAnswer(
        desired=desired,
        heartbeat_interval_s=_interval(answer),
        rejected_readings=_rejected_readings(answer),
    )


def _rejected_readings(answer: dict[str, Any]) -> RejectedReadings | None:
    value = answer.get("rejected_readings")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AnswerError(f"rejected_readings must be an object or null, not {_show(value)}")
    count, problem = value.get("count"), value.get("problem", "")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < 1 << 63:
        raise AnswerError(f"rejected_readings.count must be a count, not {_show(count)}")
    if not isinstance(problem, str):
        raise AnswerError(f"rejected_readings.problem must be a string, not {_show(problem)}")
    return RejectedReadings(count, problem[:MAX_PROBLEM_CHARS])


def clamp_interval(seconds: float) -> float:
    return min(max(seconds, MIN_HEARTBEAT_INTERVAL_S), MAX_HEARTBEAT_INTERVAL_S)


def _interval(answer: dict[str, Any]) -> float | None:
    """A finite number of seconds, clamped to the sane range; absent means "keep yours"."""
    value = answer.get("heartbeat_interval_s")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return clamp_interval(float(min(max(value, 0), int(MAX_HEARTBEAT_INTERVAL_S))))
    if not isinstance(value, float) or not math.isfinite(value):
        raise AnswerError(f"heartbeat_interval_s must be a finite number, not {_show(value)}")
    return clamp_interval(value)


def _text(answer: dict[str, Any], key: str, limit: int, alphabet: frozenset[str]) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise AnswerError(f"{key} must be a non-empty string, not {_show(value)}")
    if len(value) > limit:
        raise AnswerError(f"{key} is longer than {limit} characters")
    if not set(value) <= alphabet:
        raise AnswerError(f"{key} has characters outside [A-Za-z0-9-._~+/=:]: {_show(value)}")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
