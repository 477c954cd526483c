"""The heartbeat report a device sends, parsed and checked before anything is stored.

Structure errors (a string where a list belongs) are refused with a message naming the
field. Values the protocol may grow (a new event kind) are accepted, so one odd event in a
device's backlog cannot block its heartbeats for ever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError

from control_plane.devices.choices import EventKind
from fleet_common.wire.reports import EngineReport, ReportError

MAX_PLUGINS = 100
MAX_READINGS = 2000
MAX_EVENTS = 2000
MAX_TEXT = 2000
PLUGIN_KEYS = ("name", "version", "sha256", "state", "trap_count", "last_error")
_EVENT_KINDS = frozenset(EventKind.values)
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ReadingReport:
    source: str
    temperature_c: float
    humidity_pct: float
    taken_at: datetime


@dataclass(frozen=True)
class EventReport:
    at: datetime
    plugin: str
    version: str
    kind: str
    detail: str


@dataclass(frozen=True)
class Heartbeat:
    """One device's report: its host version, plugin states, new readings and events."""

    host_version: str
    engine: EngineReport | None
    """None from a device too old to report one: it gets no compiled artifacts."""
    plugins: list[dict[str, Any]]
    readings: list[ReadingReport]
    events: list[EventReport]


def parse_heartbeat(data: object) -> Heartbeat:
    """Checks a decoded heartbeat body; raises ValidationError naming the first bad field."""
    if not isinstance(data, dict):
        raise ValidationError("the heartbeat must be a JSON object")
    host_version = data.get("host_version", "")
    if not isinstance(host_version, str) or len(host_version) > 64:
        raise ValidationError("host_version must be a string of at most 64 characters")
    try:
        engine = None if data.get("engine") is None else EngineReport.parse(data["engine"])
    except ReportError as exc:
        raise ValidationError(str(exc)) from None
    return Heartbeat(
        host_version=host_version,
        engine=engine,
        plugins=[
            _plugin(item, f"plugins[{i}]") for i, item in _items(data, "plugins", MAX_PLUGINS)
        ],
        readings=[
            _reading(item, f"readings[{i}]") for i, item in _items(data, "readings", MAX_READINGS)
        ],
        events=[_event(item, f"events[{i}]") for i, item in _items(data, "events", MAX_EVENTS)],
    )


def parse_timestamp(value: object, field: str) -> datetime:
    """Seconds since the epoch (what devices send) or an ISO 8601 string with a zone."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValidationError(f"{field} is out of range") from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"{field} is not an ISO 8601 time: {value[:40]!r}") from None
        if moment.tzinfo is None:
            raise ValidationError(f"{field} has no time zone (add Z or +00:00)")
    else:
        raise ValidationError(f"{field} must be seconds since the epoch or an ISO 8601 time")
    if moment < _EARLIEST:
        raise ValidationError(f"{field} is before the year 2000 (is the device's clock set?)")
    return moment


def _items(data: dict[str, Any], key: str, limit: int) -> enumerate[Any]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise ValidationError(f"{key} must be a list")
    if len(items) > limit:
        raise ValidationError(f"{key} has {len(items)} entries; at most {limit} per heartbeat")
    return enumerate(items)


def _object(item: object, field: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValidationError(f"{field} must be an object")
    return item


def _text(item: dict[str, Any], key: str, field: str, *, required: bool, limit: int) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ValidationError(f"{field}.{key} must be a non-empty string")
    return value[:limit]


def _number(item: dict[str, Any], key: str, field: str) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{field}.{key} must be a number")
    return float(value)


def _plugin(item: object, field: str) -> dict[str, Any]:
    plugin = _object(item, field)
    _text(plugin, "name", field, required=True, limit=64)
    kept = {key: plugin.get(key) for key in PLUGIN_KEYS}
    for key, value in kept.items():
        if isinstance(value, str) and len(value) > MAX_TEXT:
            kept[key] = value[:MAX_TEXT]
        elif not isinstance(value, str | int | float | type(None)):
            raise ValidationError(f"{field}.{key} must be a string, a number or null")
    return kept


def _reading(item: object, field: str) -> ReadingReport:
    reading = _object(item, field)
    return ReadingReport(
        source=_text(reading, "source", field, required=True, limit=64),
        temperature_c=_number(reading, "temperature_c", field),
        humidity_pct=_number(reading, "humidity_pct", field),
        taken_at=parse_timestamp(reading.get("taken_at"), f"{field}.taken_at"),
    )


def _event(item: object, field: str) -> EventReport:
    event = _object(item, field)
    kind = _text(event, "kind", field, required=True, limit=64)
    detail = _text(event, "detail", field, required=False, limit=MAX_TEXT)
    if kind not in _EVENT_KINDS:
        kind, detail = EventKind.OTHER, f"[{kind}] {detail}"
    return EventReport(
        at=parse_timestamp(event.get("at"), f"{field}.at"),
        plugin=_text(event, "plugin", field, required=True, limit=64),
        version=_text(event, "version", field, required=False, limit=64),
        kind=kind,
        detail=detail,
    )
