"""The limits on what one device may send, checked before the work they would cost.

Three bounds, all from settings: readings per heartbeat (``READINGS_PER_HEARTBEAT_MAX``),
heartbeat bytes per device per hour (``TELEMETRY_BYTES_PER_HOUR``, a fixed window that
starts with the first heartbeat after the last one ended, kept on the device row), and how
far ahead of this clock a reading may be dated (``READING_FUTURE_TOLERANCE_S``). The first
two refuse the heartbeat with `TelemetryRefused` (HTTP 429 with ``Retry-After``); the third
drops only the readings concerned, because a device with a bad clock must still report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings

from control_plane.devices.exceptions import TelemetryRefused
from control_plane.devices.heartbeat_store import TELEMETRY_WINDOW, Found
from fleet_common.wire.answers import RejectedReadings
from fleet_common.wire.heartbeat import ReadingReport


def check_reading_count(count: int) -> None:
    """Refuses a heartbeat with more readings than one may carry."""
    limit = settings.READINGS_PER_HEARTBEAT_MAX
    if count > limit:
        raise TelemetryRefused(
            f"the heartbeat carries {count} readings; at most {limit} are accepted per "
            "heartbeat (READINGS_PER_HEARTBEAT_MAX): send the rest in later heartbeats",
            retry_after_s=max(1, math.ceil(settings.HEARTBEAT_INTERVAL_S)),
        )


def check_budget(device: Found, body_bytes: int, now: datetime) -> None:
    """Refuses a heartbeat whose bytes the device's hourly budget has no room for.

    The heartbeat's own UPDATE charges the bytes (and refuses as well, for heartbeats that
    race); this check lets the view refuse before it reads the body.
    """
    limit = settings.TELEMETRY_BYTES_PER_HOUR
    start = device.telemetry_window_start
    current = start is not None and now - start < TELEMETRY_WINDOW
    used = device.telemetry_bytes if current else 0
    if used + body_bytes <= limit:
        return
    if start is None or not current:  # one body larger than a whole hour's budget
        start = now
    raise TelemetryRefused(
        f"device {device.name} has sent {used} heartbeat bytes this hour and this heartbeat "
        f"has {body_bytes}; the limit is {limit} bytes per hour (TELEMETRY_BYTES_PER_HOUR)",
        retry_after_s=retry_after(start, now),
    )


def retry_after(window_start: datetime, now: datetime) -> int:
    """Whole seconds until the telemetry window that began at ``window_start`` ends."""
    return max(1, math.ceil((window_start + TELEMETRY_WINDOW - now).total_seconds()))


def split_future(
    readings: Sequence[ReadingReport], now: datetime
) -> tuple[tuple[ReadingReport, ...], RejectedReadings | None]:
    """The readings to store, and what to tell the device of those dated too far ahead."""
    tolerance = settings.READING_FUTURE_TOLERANCE_S
    latest = now + timedelta(seconds=tolerance)
    ahead = [index for index, reading in enumerate(readings) if reading.taken_at > latest]
    if not ahead:
        return tuple(readings), None
    first = readings[ahead[0]]
    seconds = (first.taken_at - now).total_seconds()
    problem = (
        f"readings[{ahead[0]}].taken_at {first.taken_at.isoformat()} is {seconds:.0f} s ahead "
        f"of the control plane's clock (tolerance {tolerance:g} s): {len(ahead)} reading(s) "
        "not stored; check the device's clock"
    )
    skipped = set(ahead)
    kept = tuple(r for index, r in enumerate(readings) if index not in skipped)
    return kept, RejectedReadings(count=len(ahead), problem=problem)
