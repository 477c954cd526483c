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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleet_common.wire import _fields as checks
from fleet_common.wire._fields import MAX_NAME, parse_timestamp
from fleet_common.wire.channel import check_csr
from fleet_common.wire.events import EventKind
from fleet_common.wire.health import (
    MAX_HEALTH,
    MAX_LOG_LINES,
    LogLine,
    PluginHealth,
    Vitals,
)
from fleet_common.wire.reports import EngineReport, ReportError

__all__ = [
    "MAX_EVENTS",
    "MAX_HEALTH",
    "MAX_LOG_LINES",
    "MAX_PLUGINS",
    "MAX_READINGS",
    "MAX_TEXT",
    "OTHER_KIND",
    "Enrollment",
    "EventReport",
    "Heartbeat",
    "LogLine",
    "PluginHealth",
    "PluginReport",
    "ReadingReport",
    "ReportError",
    "Vitals",
    "parse_enrollment",
    "parse_heartbeat",
    "parse_timestamp",
]

MAX_PLUGINS = 100
MAX_READINGS = 2000
MAX_EVENTS = 2000
MAX_TEXT = 2000
"""Free text (an error, an event's detail) is cut to this many characters, never refused."""
MAX_TOKEN = 512
OTHER_KIND = "other"
"""The kind an event of an unknown kind is stored as; its own kind leads its detail."""
_KINDS = frozenset(EventKind)


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
        plugin = checks.json_object(data, field)
        return cls(
            name=checks.text(plugin, "name", field, required=True, limit=MAX_NAME),
            version=checks.optional_text(plugin, "version", field, limit=MAX_TEXT),
            sha256=checks.optional_text(plugin, "sha256", field, limit=MAX_TEXT),
            state=checks.optional_text(plugin, "state", field, limit=MAX_TEXT),
            trap_count=checks.count(plugin, "trap_count", field),
            last_error=checks.optional_text(plugin, "last_error", field, limit=MAX_TEXT),
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
        reading = checks.json_object(data, field)
        return cls(
            source=checks.text(reading, "source", field, required=True, limit=MAX_NAME),
            temperature_c=checks.number(reading, "temperature_c", field),
            humidity_pct=checks.number(reading, "humidity_pct", field),
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
        event = checks.json_object(data, field)
        kind = checks.text(event, "kind", field, required=True, limit=MAX_NAME)
        detail = checks.text(event, "detail", field, required=False, limit=MAX_TEXT)
        if kind not in _KINDS:
            kind, detail = OTHER_KIND, f"[{kind}] {detail}"[:MAX_TEXT]
        return cls(
            at=parse_timestamp(event.get("at"), f"{field}.at"),
            plugin=checks.text(event, "plugin", field, required=True, limit=MAX_NAME),
            version=checks.text(event, "version", field, required=False, limit=MAX_NAME),
            kind=kind,
            detail=detail,
        )


@dataclass(frozen=True)
class Heartbeat:
    """One device's report: its host version and engine, plugin states, new readings and
    events, and what only the host sees of its plugins (per-version health, its own vitals,
    the plugins' recent output)."""

    host_version: str
    engine: EngineReport | None
    """None from a device too old to report one: it gets no compiled artifacts."""
    plugins: tuple[PluginReport, ...] = ()
    readings: tuple[ReadingReport, ...] = ()
    events: tuple[EventReport, ...] = ()
    health: tuple[PluginHealth, ...] = ()
    """Per plugin version, what changed since the last acknowledged heartbeat."""
    vitals: Vitals | None = None
    """Sent now and then, not in every heartbeat; None: unchanged for the control plane."""
    log_tail: tuple[LogLine, ...] = ()
    """Plugin output not yet acknowledged, oldest first."""
    desired_sequence: int | None = None
    """The newest desired state the device has accepted; the answer carries the envelope
    only when the control plane holds a newer one. None (older hosts): always send it."""

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"host_version": self.host_version}
        if self.desired_sequence is not None:
            body["desired_sequence"] = self.desired_sequence
        if self.engine is not None:
            body["engine"] = self.engine.to_json()
        body["plugins"] = [plugin.to_json() for plugin in self.plugins]
        body["readings"] = [reading.to_json() for reading in self.readings]
        body["events"] = [event.to_json() for event in self.events]
        body["health"] = [entry.to_json() for entry in self.health]
        if self.vitals is not None:
            body["vitals"] = self.vitals.to_json()
        body["log_tail"] = [line.to_json() for line in self.log_tail]
        return body


@dataclass(frozen=True)
class Enrollment:
    """A device's request to join the fleet with a one-time enrollment token."""

    enrollment_token: str = dataclasses.field(repr=False)
    name: str
    host_version: str = ""
    engine: EngineReport | None = None
    channel_csr: str | None = dataclasses.field(default=None, repr=False)
    """A PEM CSR for the device's own channel key; None: the device asks later, or never."""

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "enrollment_token": self.enrollment_token,
            "name": self.name,
            "host_version": self.host_version,
        }
        if self.engine is not None:
            body["engine"] = self.engine.to_json()
        if self.channel_csr is not None:
            body["channel_csr"] = self.channel_csr
        return body


def parse_heartbeat(data: object) -> Heartbeat:
    """A decoded heartbeat body, checked; raises ReportError naming the first bad field."""
    if not isinstance(data, dict):
        raise ReportError("the heartbeat must be a JSON object")
    return Heartbeat(
        desired_sequence=_desired_sequence(data),
        host_version=_host_version(data),
        engine=_engine(data),
        plugins=tuple(
            PluginReport.parse(item, f"plugins[{i}]")
            for i, item in checks.items(data, "plugins", MAX_PLUGINS)
        ),
        readings=tuple(
            ReadingReport.parse(item, f"readings[{i}]")
            for i, item in checks.items(data, "readings", MAX_READINGS)
        ),
        events=tuple(
            EventReport.parse(item, f"events[{i}]")
            for i, item in checks.items(data, "events", MAX_EVENTS)
        ),
        health=tuple(
            PluginHealth.parse(item, f"health[{i}]")
            for i, item in checks.items(data, "health", MAX_HEALTH)
        ),
        vitals=None if data.get("vitals") is None else Vitals.parse(data["vitals"]),
        log_tail=tuple(
            LogLine.parse(item, f"log_tail[{i}]")
            for i, item in checks.items(data, "log_tail", MAX_LOG_LINES)
        ),
    )


def parse_enrollment(data: object) -> Enrollment:
    """A decoded enrollment body, checked; raises ReportError naming the first bad field.

    The name is only typed here: what the control plane accepts as a device name is its
    models' business. An ``agent_url`` from hosts that still offer a push endpoint is
    ignored: the control plane never connects to a device.
    """
    if not isinstance(data, dict):
        raise ReportError("the body must be a JSON object")
    fields = {}
    for key in ("enrollment_token", "name", "host_version"):
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
        engine=_engine(data),
        channel_csr=None
        if data.get("channel_csr") is None
        else check_csr(data["channel_csr"], "channel_csr"),
    )


def _desired_sequence(data: dict[str, Any]) -> int | None:
    value = data.get("desired_sequence")
    if value is None:
        return None
    if not checks.is_sequence(value):
        raise ReportError(
            f"desired_sequence must be an integer from 0 below {checks.MAX_SEQUENCE}, or null"
        )
    return value


def _host_version(data: dict[str, Any]) -> str:
    host_version = data.get("host_version", "")
    if not isinstance(host_version, str) or len(host_version) > MAX_NAME:
        raise ReportError(f"host_version must be a string of at most {MAX_NAME} characters")
    return host_version


def _engine(data: dict[str, Any]) -> EngineReport | None:
    engine = data.get("engine")
    return None if engine is None else EngineReport.parse(engine)
