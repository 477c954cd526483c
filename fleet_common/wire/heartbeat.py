"""What a device sends the control plane: its enrollment request and its heartbeat report.

The device builds these dataclasses and sends their ``to_json()``; the control plane turns
the decoded body back into them with `parse_enrollment` and `parse_heartbeat`, the one
parser of each shape. Structure errors (a string where a list belongs, NaN, a list longer
than any device sends) raise `ReportError` naming the first bad field. Values the protocol
may grow are accepted: an event of a kind this version does not know is kept as ``other``
with its kind in the detail, so one odd event in a device's backlog cannot block its
heartbeats for ever.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleet_common.wire.events import EventKind
from fleet_common.wire.reports import EngineReport, ReportError

__all__ = [
    "MAX_EVENTS",
    "MAX_PLUGINS",
    "MAX_READINGS",
    "MAX_TEXT",
    "OTHER_KIND",
    "Enrollment",
    "EventReport",
    "Heartbeat",
    "PluginReport",
    "ReadingReport",
    "ReportError",
    "parse_enrollment",
    "parse_heartbeat",
    "parse_timestamp",
]

MAX_PLUGINS = 100
MAX_READINGS = 2000
MAX_EVENTS = 2000
MAX_TEXT = 2000
"""Free text (an error, an event's detail) is cut to this many characters, never refused."""
MAX_NAME = 64
"""Names, event versions and reading sources are cut to it; a longer host version is refused."""
MAX_TOKEN = 512
OTHER_KIND = "other"
"""The kind an event of an unknown kind is stored as; its own kind leads its detail."""
_KINDS = frozenset(EventKind)
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PluginReport:
    """One plugin slot as the device sees it; version and sha256 are None while none loads."""

    name: str
    version: str | None = None
    sha256: str | None = None
    state: str | None = None
    trap_count: int = 0
    last_error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "state": self.state,
            "trap_count": self.trap_count,
            "last_error": self.last_error,
        }

    @classmethod
    def parse(cls, data: object, field: str = "plugin") -> PluginReport:
        """One plugin; keys other than the six above are ignored."""
        plugin = _object(data, field)
        return cls(
            name=_text(plugin, "name", field, required=True, limit=MAX_NAME),
            version=_optional_text(plugin, "version", field),
            sha256=_optional_text(plugin, "sha256", field),
            state=_optional_text(plugin, "state", field),
            trap_count=_count(plugin, "trap_count", field),
            last_error=_optional_text(plugin, "last_error", field),
        )


@dataclass(frozen=True)
class ReadingReport:
    source: str
    temperature_c: float
    humidity_pct: float
    taken_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "temperature_c": self.temperature_c,
            "humidity_pct": self.humidity_pct,
            "taken_at": self.taken_at.timestamp(),
        }

    @classmethod
    def parse(cls, data: object, field: str = "reading") -> ReadingReport:
        reading = _object(data, field)
        return cls(
            source=_text(reading, "source", field, required=True, limit=MAX_NAME),
            temperature_c=_number(reading, "temperature_c", field),
            humidity_pct=_number(reading, "humidity_pct", field),
            taken_at=parse_timestamp(reading.get("taken_at"), f"{field}.taken_at"),
        )


@dataclass(frozen=True)
class EventReport:
    at: datetime
    plugin: str
    version: str
    kind: str
    """An `EventKind` value, or `OTHER_KIND` for one this version does not know."""
    detail: str

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at.timestamp(),
            "plugin": self.plugin,
            "version": self.version,
            "kind": self.kind,
            "detail": self.detail,
        }

    @classmethod
    def parse(cls, data: object, field: str = "event") -> EventReport:
        """One event, checked as `parse_heartbeat` checks each of its events."""
        event = _object(data, field)
        kind = _text(event, "kind", field, required=True, limit=MAX_NAME)
        detail = _text(event, "detail", field, required=False, limit=MAX_TEXT)
        if kind not in _KINDS:
            kind, detail = OTHER_KIND, f"[{kind}] {detail}"[:MAX_TEXT]
        return cls(
            at=parse_timestamp(event.get("at"), f"{field}.at"),
            plugin=_text(event, "plugin", field, required=True, limit=MAX_NAME),
            version=_text(event, "version", field, required=False, limit=MAX_NAME),
            kind=kind,
            detail=detail,
        )


@dataclass(frozen=True)
class Heartbeat:
    """One device's report: its host version and engine, plugin states, new readings and events."""

    host_version: str
    engine: EngineReport | None
    """None from a device too old to report one: it gets no compiled artifacts."""
    plugins: tuple[PluginReport, ...] = ()
    readings: tuple[ReadingReport, ...] = ()
    events: tuple[EventReport, ...] = ()

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"host_version": self.host_version}
        if self.engine is not None:
            body["engine"] = self.engine.to_json()
        body["plugins"] = [plugin.to_json() for plugin in self.plugins]
        body["readings"] = [reading.to_json() for reading in self.readings]
        body["events"] = [event.to_json() for event in self.events]
        return body


@dataclass(frozen=True)
class Enrollment:
    """A device's request to join the fleet with a one-time enrollment token."""

    enrollment_token: str = dataclasses.field(repr=False)
    name: str
    host_version: str = ""
    agent_url: str = ""
    """Where the control plane pushes desired states; empty: the device only polls."""
    engine: EngineReport | None = None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "enrollment_token": self.enrollment_token,
            "name": self.name,
            "host_version": self.host_version,
            "agent_url": self.agent_url,
        }
        if self.engine is not None:
            body["engine"] = self.engine.to_json()
        return body


def parse_heartbeat(data: object) -> Heartbeat:
    """A decoded heartbeat body, checked; raises ReportError naming the first bad field."""
    if not isinstance(data, dict):
        raise ReportError("the heartbeat must be a JSON object")
    return Heartbeat(
        host_version=_host_version(data),
        engine=_engine(data),
        plugins=tuple(
            PluginReport.parse(item, f"plugins[{i}]")
            for i, item in _items(data, "plugins", MAX_PLUGINS)
        ),
        readings=tuple(
            ReadingReport.parse(item, f"readings[{i}]")
            for i, item in _items(data, "readings", MAX_READINGS)
        ),
        events=tuple(
            EventReport.parse(item, f"events[{i}]")
            for i, item in _items(data, "events", MAX_EVENTS)
        ),
    )


def parse_enrollment(data: object) -> Enrollment:
    """A decoded enrollment body, checked; raises ReportError naming the first bad field.

    The name and agent URL are only typed here: what the control plane accepts as a device
    name or push address is its models' business.
    """
    if not isinstance(data, dict):
        raise ReportError("the body must be a JSON object")
    fields = {}
    for key in ("enrollment_token", "name", "host_version", "agent_url"):
        value = data.get(key, "")
        if not isinstance(value, str):
            raise ReportError(f"{key} must be a string")
        fields[key] = value
    for key in ("enrollment_token", "name"):
        if not fields[key]:
            raise ReportError(f"{key} is required")
    if len(fields["enrollment_token"]) > MAX_TOKEN:
        raise ReportError(f"enrollment_token is longer than {MAX_TOKEN} characters")
    return Enrollment(
        enrollment_token=fields["enrollment_token"],
        name=fields["name"],
        host_version=_host_version(data),
        agent_url=fields["agent_url"],
        engine=_engine(data),
    )


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


def _host_version(data: dict[str, Any]) -> str:
    host_version = data.get("host_version", "")
    if not isinstance(host_version, str) or len(host_version) > MAX_NAME:
        raise ReportError(f"host_version must be a string of at most {MAX_NAME} characters")
    return host_version


def _engine(data: dict[str, Any]) -> EngineReport | None:
    engine = data.get("engine")
    return None if engine is None else EngineReport.parse(engine)


def _items(data: dict[str, Any], key: str, limit: int) -> enumerate[Any]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise ReportError(f"{key} must be a list")
    if len(items) > limit:
        raise ReportError(f"{key} has {len(items)} entries; at most {limit} per heartbeat")
    return enumerate(items)


def _object(item: object, field: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ReportError(f"{field} must be an object")
    return item


def _text(item: dict[str, Any], key: str, field: str, *, required: bool, limit: int) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ReportError(f"{field}.{key} must be a non-empty string")
    return value[:limit]


def _optional_text(item: dict[str, Any], key: str, field: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReportError(f"{field}.{key} must be a string or null")
    return value[:MAX_TEXT]


def _number(item: dict[str, Any], key: str, field: str) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReportError(f"{field}.{key} must be a number")
    return float(value)


def _count(item: dict[str, Any], key: str, field: str) -> int:
    value = item.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise ReportError(f"{field}.{key} must be a count (an integer from 0)")
    return value
