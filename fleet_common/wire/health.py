"""What only a device's wasm host knows about its plugins, for rollouts to be gated on.

A heartbeat carries three of these shapes: per plugin *version* health counters (deltas
since the last acknowledged heartbeat), the device's vitals now and then, and a bounded tail
of the plugins' output. Each has one parser, as strict as the rest of the heartbeat: counts
are integers from 0, numbers finite, lists bounded; unknown keys are ignored and missing
ones take their defaults, so an older device's report still parses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleet_common.wire import _fields as checks
from fleet_common.wire._fields import MAX_NAME, parse_timestamp
from fleet_common.wire.reports import ReportError

__all__ = [
    "DROPPED_LINES_PLUGIN",
    "MAX_HEALTH",
    "MAX_LOG_LINES",
    "MAX_LOG_TEXT",
    "MAX_TRAP_KINDS",
    "SELF_CHECK_FAILED",
    "SELF_CHECK_PASSED",
    "TRAP_KINDS",
    "LogLine",
    "PluginHealth",
    "ReportError",
    "Vitals",
]

MAX_HEALTH = 100
"""Health entries per heartbeat; a device with more changed versions sends the rest next time."""
MAX_LOG_LINES = 100
"""Log lines per heartbeat, the synthetic "dropped" line included."""
MAX_LOG_TEXT = 500
"""A log line's text is cut to this many characters, never refused."""
MAX_TRAP_KINDS = 16
TRAP_KINDS = (
    "timeout",
    "blocking-call",
    "exit",
    "crash",
    "out-of-memory",
    "bad-output",
    "host-error",
)
"""The kinds of trap this protocol version names (the device's `TrapKind`); a kind a newer
device sends that is not here is counted by the control plane as ``other``."""
MAX_VITALS_TEXT = 128
SELF_CHECK_PASSED = "passed"
SELF_CHECK_FAILED = "failed"
_SELF_CHECKS = frozenset({SELF_CHECK_PASSED, SELF_CHECK_FAILED})
DROPPED_LINES_PLUGIN = "-"
"""The ``plugin`` of the line a device adds when it dropped older lines (it names the count)."""
_ABSOLUTE_ZERO_C = -273.15


@dataclass(frozen=True)
class PluginHealth:
    """Counters for one plugin version since the device's last ACKNOWLEDGED heartbeat (deltas).

    Summing a version's entries over heartbeats gives its totals; a heartbeat that failed
    loses nothing, as the next one carries the sum.
    """

    plugin: str
    version: str
    requests: int = 0
    """Calls into the plugin (HTTP requests and ticks), all outcomes."""
    errors: int = 0
    """Requests that failed: trapped, answered 5xx (or a status the host will not send), a
    tick that returned an error, or a call the host could not complete."""
    traps: Mapping[str, int] = field(default_factory=dict)
    """Trap kind (``crash``, ``timeout``, ...) to count; kinds a newer host adds are kept."""
    deadline_hits: int = 0
    """Traps of kind ``timeout`` or ``blocking-call``."""
    memory_cap_hits: int = 0
    """Traps of kind ``out-of-memory``."""
    fallbacks: int = 0
    """Requests this version trapped on in probation that the previous version answered."""
    ticks_failed: int = 0
    """Periodic calls that returned an error or trapped."""
    self_check: str | None = None
    """``passed``, ``failed`` or None (no self-check export, or a value this side does not know)."""
    p50_ms: float | None = None
    """Call latency over the interval; None when there were no calls."""
    p99_ms: float | None = None
    sensor_age_s: float | None = None
    """Age of the freshest reading of a sensor the version is granted; None if none."""

    def to_json(self) -> dict[str, object]:
        """The entry without its zero counters and unknown values (the parser's defaults):
        most versions trap rarely, and a heartbeat carries up to `MAX_HEALTH` of these."""
        body: dict[str, object] = {
            "plugin": self.plugin,
            "version": self.version,
            "requests": self.requests,
        }
        counts = {
            "errors": self.errors,
            "deadline_hits": self.deadline_hits,
            "memory_cap_hits": self.memory_cap_hits,
            "fallbacks": self.fallbacks,
            "ticks_failed": self.ticks_failed,
        }
        body.update((key, count) for key, count in counts.items() if count)
        if self.traps:
            body["traps"] = dict(self.traps)
        known = {
            "self_check": self.self_check,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "sensor_age_s": self.sensor_age_s,
        }
        body.update((key, value) for key, value in known.items() if value is not None)
        return body

    @classmethod
    def parse(cls, data: object, field: str = "health") -> PluginHealth:
        """One entry; raises ReportError naming the first bad field."""
        entry = checks.json_object(data, field)
        self_check = entry.get("self_check")
        if self_check is not None and not isinstance(self_check, str):
            raise ReportError(f"{field}.self_check must be a string or null")
        return cls(
            plugin=checks.text(entry, "plugin", field, required=True, limit=MAX_NAME),
            version=checks.text(entry, "version", field, required=True, limit=MAX_NAME),
            requests=checks.count(entry, "requests", field),
            errors=checks.count(entry, "errors", field),
            traps=_traps(entry, field),
            deadline_hits=checks.count(entry, "deadline_hits", field),
            memory_cap_hits=checks.count(entry, "memory_cap_hits", field),
            fallbacks=checks.count(entry, "fallbacks", field),
            ticks_failed=checks.count(entry, "ticks_failed", field),
            self_check=self_check if self_check in _SELF_CHECKS else None,
            p50_ms=checks.optional_number(entry, "p50_ms", field, minimum=0),
            p99_ms=checks.optional_number(entry, "p99_ms", field, minimum=0),
            sensor_age_s=checks.optional_number(entry, "sensor_age_s", field, minimum=0),
        )


@dataclass(frozen=True)
class Vitals:
    """The device itself: where it is, what it runs, and how much room it has left.

    Every field is optional: a device that cannot read one (no thermal zone) leaves it out.
    """

    ip: str = ""
    os: str = ""
    kernel: str = ""
    uptime_s: float | None = None
    cpu_temp_c: float | None = None
    mem_total_bytes: int | None = None
    mem_available_bytes: int | None = None
    disk_total_bytes: int | None = None
    disk_free_bytes: int | None = None
    """Of the file system holding the host's state directory."""

    def to_json(self) -> dict[str, object]:
        return {
            "ip": self.ip,
            "os": self.os,
            "kernel": self.kernel,
            "uptime_s": self.uptime_s,
            "cpu_temp_c": self.cpu_temp_c,
            "mem_total_bytes": self.mem_total_bytes,
            "mem_available_bytes": self.mem_available_bytes,
            "disk_total_bytes": self.disk_total_bytes,
            "disk_free_bytes": self.disk_free_bytes,
        }

    @classmethod
    def parse(cls, data: object, field: str = "vitals") -> Vitals:
        """The vitals object; raises ReportError naming the first bad field."""
        vitals = checks.json_object(data, field)

        def text(key: str) -> str:
            return checks.text(vitals, key, field, required=False, limit=MAX_VITALS_TEXT)

        return cls(
            ip=text("ip"),
            os=text("os"),
            kernel=text("kernel"),
            uptime_s=checks.optional_number(vitals, "uptime_s", field, minimum=0),
            cpu_temp_c=checks.optional_number(
                vitals, "cpu_temp_c", field, minimum=_ABSOLUTE_ZERO_C
            ),
            mem_total_bytes=checks.optional_count(vitals, "mem_total_bytes", field),
            mem_available_bytes=checks.optional_count(vitals, "mem_available_bytes", field),
            disk_total_bytes=checks.optional_count(vitals, "disk_total_bytes", field),
            disk_free_bytes=checks.optional_count(vitals, "disk_free_bytes", field),
        )


@dataclass(frozen=True)
class LogLine:
    """One line a plugin wrote (stdout, stderr, or its ``log`` import), as the host logged it."""

    at: datetime
    plugin: str
    stream: str
    """``stdout``, ``stderr`` or ``log``."""
    level: str
    """``debug``, ``info``, ``warning`` or ``error``."""
    text: str
    """Escaped (no control characters) and cut to MAX_LOG_TEXT characters."""

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at.timestamp(),
            "plugin": self.plugin,
            "stream": self.stream,
            "level": self.level,
            "text": self.text,
        }

    @classmethod
    def parse(cls, data: object, field: str = "log") -> LogLine:
        """One line; a longer text is cut, never refused."""
        line = checks.json_object(data, field)
        return cls(
            at=parse_timestamp(line.get("at"), f"{field}.at"),
            plugin=checks.text(line, "plugin", field, required=True, limit=MAX_NAME),
            stream=checks.text(line, "stream", field, required=True, limit=MAX_NAME),
            level=checks.text(line, "level", field, required=True, limit=MAX_NAME),
            text=checks.text(line, "text", field, required=False, limit=MAX_LOG_TEXT),
        )


def _traps(entry: dict[str, Any], field: str) -> Mapping[str, int]:
    traps = entry.get("traps", {})
    if traps is None:
        return {}
    if not isinstance(traps, dict):
        raise ReportError(f"{field}.traps must be an object of trap kind to count")
    if len(traps) > MAX_TRAP_KINDS:
        raise ReportError(f"{field}.traps has {len(traps)} kinds; at most {MAX_TRAP_KINDS}")
    for kind in traps:
        if not isinstance(kind, str) or not kind or len(kind) > MAX_NAME:
            raise ReportError(f"{field}.traps has a kind that is empty or too long")
    return {kind: checks.count(traps, kind, f"{field}.traps") for kind in sorted(traps)}
