"""Checked fields of a decoded report: the helpers every parser of the device's wire shares.

Each raises `ReportError` naming the field (``plugins[3].trap_count``), so the one parser of
each shape gives the same messages for the same mistakes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, TypeGuard

from fleet_common.wire.reports import ReportError

MAX_NAME = 64
"""Names, versions and reading sources are cut to it; a longer host version is refused."""
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_COUNT = 1 << 63


def parse_timestamp(value: object, field: str) -> datetime:
    """Seconds since the epoch (what devices send) or an ISO 8601 string with a zone."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ReportError(f"{field} is out of range") from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ReportError(f"{field} is not an ISO 8601 time: {value[:40]!r}") from None
        if moment.tzinfo is None:
            raise ReportError(f"{field} has no time zone (add Z or +00:00)")
    else:
        raise ReportError(f"{field} must be seconds since the epoch or an ISO 8601 time")
    if moment < _EARLIEST:
        raise ReportError(f"{field} is before the year 2000 (is the device's clock set?)")
    return moment


def items(data: dict[str, Any], key: str, limit: int) -> enumerate[Any]:
    """The entries of a list field; missing is empty, longer than ``limit`` is refused."""
    entries = data.get(key, [])
    if not isinstance(entries, list):
        raise ReportError(f"{key} must be a list")
    if len(entries) > limit:
        raise ReportError(f"{key} has {len(entries)} entries; at most {limit} per heartbeat")
    return enumerate(entries)


def json_object(item: object, field: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ReportError(f"{field} must be an object")
    return item


def text(item: dict[str, Any], key: str, field: str, *, required: bool, limit: int) -> str:
    """A string cut to ``limit``; an optional one may be missing or null (then "")."""
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ReportError(f"{field}.{key} must be a non-empty string")
    return value[:limit]


def optional_text(item: dict[str, Any], key: str, field: str, *, limit: int) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReportError(f"{field}.{key} must be a string or null")
    return value[:limit]


def number(item: dict[str, Any], key: str, field: str) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReportError(f"{field}.{key} must be a number")
    return float(value)


def optional_number(item: dict[str, Any], key: str, field: str, *, minimum: float) -> float | None:
    """A finite number from ``minimum`` up, or None when missing or null."""
    value = item.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ReportError(f"{field}.{key} must be a finite number from {minimum:g}, or null")
    return float(value)


def count(item: dict[str, Any], key: str, field: str) -> int:
    """A non-negative integer; missing or null is 0."""
    value = item.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_COUNT:
        raise ReportError(f"{field}.{key} must be a count (an integer from 0)")
    return value


def optional_count(item: dict[str, Any], key: str, field: str) -> int | None:
    """A non-negative integer, or None when missing or null (unknown, not zero)."""
    return None if item.get(key) is None else count(item, key, field)


MAX_SEQUENCE = 1 << 53
"""Sequences stay below 2**53 so every JSON reader (JavaScript too) keeps them exact."""


def is_sequence(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a desired-state sequence: an integer from 0 below `MAX_SEQUENCE`."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_SEQUENCE
