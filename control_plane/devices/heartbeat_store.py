"""The heartbeat's writes in plain SQL: the control plane's one hot path.

The ORM costs about 150 µs to build each query, several times what SQLite takes to run it,
and heartbeats arrive by the thousand per second. The statements are built once per
database from the models' own table and column names, and values go through the fields'
own adapters, so the SQL stays in step with the models on SQLite and PostgreSQL alike.

An idle device's heartbeat is one lookup and one UPDATE. Readings, events and log lines
are one INSERT each, and health counters (sent only for plugins that did something) one
upsert that adds them to the stored sums in SQL. The UPDATE also charges the heartbeat's
bytes to the device's hourly telemetry budget, and only if they fit: it runs first, and
when it matches no row nothing else is written (`OverBudget`), so concurrent heartbeats
of one device cannot together overdraw it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.dateparse import parse_datetime

from control_plane.devices.models import (
    Device,
    DeviceEvent,
    LogLine,
    PluginHealth,
    Reading,
    trap_column,
)
from fleet_common.wire.health import TRAP_KINDS
from fleet_common.wire.health import LogLine as LogLineReport
from fleet_common.wire.health import PluginHealth as HealthReport
from fleet_common.wire.heartbeat import EventReport, ReadingReport

READING_COLUMNS = ("device", "source", "temperature_c", "humidity_pct", "taken_at")
EVENT_COLUMNS = ("device", "at", "plugin", "version", "kind", "detail")
LOG_COLUMNS = ("device", "at", "plugin", "stream", "level", "text")
HEALTH_KEY = ("device", "plugin", "version")
TRAP_COLUMNS = (*(trap_column(kind) for kind in TRAP_KINDS), "trap_other")
HEALTH_SUMS = (
    "requests",
    "errors",
    "traps",
    *TRAP_COLUMNS,
    "deadline_hits",
    "memory_cap_hits",
    "fallbacks",
    "ticks_failed",
)
HEALTH_LATEST = ("updated_at", "self_check", "p50_ms", "p99_ms", "sensor_age_s")
HEALTH_COLUMNS = (*HEALTH_KEY, "first_at", *HEALTH_SUMS, *HEALTH_LATEST)
ALWAYS = ("last_seen", "host_version", "reported_plugins", "drifting", "failing")
OPTIONAL = ("last_reading", "vitals")


TELEMETRY_WINDOW = timedelta(hours=1)
LOOKUP = (
    "id",
    "name",
    "desired_envelope",
    "desired_sequence",
    "engine_key",
    "desired_versions",
    "in_rollout",
    "telemetry_window_start",
    "telemetry_bytes",
)


class OverBudget(Exception):
    """The device row's telemetry budget did not have room for this heartbeat's bytes."""


@dataclass(frozen=True)
class Found:
    """What a heartbeat needs of its device row, read with its token's hash."""

    id: Any
    name: str
    desired_envelope: str
    desired_sequence: int
    engine_key: str
    desired_versions: dict[str, str]
    in_rollout: bool
    telemetry_window_start: datetime | None
    telemetry_bytes: int


@dataclass(frozen=True)
class Statements:
    """SQL text for one database vendor, with ``%s`` placeholders."""

    lookup: str
    device_table: str
    where_id: str
    insert_readings: str
    insert_events: str
    insert_logs: str
    upsert_health: str


def _quote(name: str) -> str:
    return str(connection.ops.quote_name(name))


def _table(model: Any) -> str:
    return _quote(model._meta.db_table)


def _column(model: Any, name: str) -> str:
    return _quote(model._meta.get_field(name).column)


def _row(count: int) -> str:
    return "(" + ", ".join(["%s"] * count) + ")"


@cache
def statements(vendor: str) -> Statements:
    """Built lazily per vendor (``connection`` decides quoting)."""
    lookup_columns = ", ".join(_column(Device, name) for name in LOOKUP)
    health = _table(PluginHealth)
    key = ", ".join(_column(PluginHealth, name) for name in HEALTH_KEY)
    sums = [
        f"{_column(PluginHealth, n)} = {health}.{_column(PluginHealth, n)} + "
        f"excluded.{_column(PluginHealth, n)}"
        for n in HEALTH_SUMS
    ]
    latest = []
    for name in HEALTH_LATEST:  # a value the heartbeat lacks keeps the stored one
        column = _column(PluginHealth, name)
        new = f"NULLIF(excluded.{column}, '')" if name == "self_check" else f"excluded.{column}"
        latest.append(f"{column} = COALESCE({new}, {health}.{column})")
    return Statements(
        lookup=(
            f"SELECT {lookup_columns} FROM {_table(Device)} "
            f"WHERE {_column(Device, 'token_hash')} = %s"
        ),
        device_table=_table(Device),
        where_id=f" WHERE {_column(Device, 'id')} = %s",
        insert_readings=_insert_prefix(Reading, READING_COLUMNS),
        insert_events=_insert_prefix(DeviceEvent, EVENT_COLUMNS),
        insert_logs=_insert_prefix(LogLine, LOG_COLUMNS),
        upsert_health=(
            _insert_prefix(PluginHealth, HEALTH_COLUMNS)
            + "{rows}"
            + f" ON CONFLICT ({key}) DO UPDATE SET {', '.join(sums + latest)}"
        ),
    )


@cache
def _update(vendor: str, optional: tuple[str, ...]) -> str:
    """The device row's UPDATE; its last three SETs and the WHERE keep the telemetry budget.

    A window that started an hour or more ago (or never) restarts now with this heartbeat's
    bytes; otherwise they are added, and only while the sum stays within the limit.
    Parameters: the values, then (expired-before, bytes, bytes, expired-before, now, id,
    expired-before, bytes, limit).
    """
    sql = statements(vendor)
    columns = [f"{_column(Device, name)} = %s" for name in (*ALWAYS, *optional)]
    start = _column(Device, "telemetry_window_start")
    used = _column(Device, "telemetry_bytes")
    expired = f"({start} IS NULL OR {start} <= %s)"
    columns.append(f"{used} = CASE WHEN {expired} THEN %s ELSE {used} + %s END")
    columns.append(f"{start} = CASE WHEN {expired} THEN %s ELSE {start} END")
    return (
        f"UPDATE {sql.device_table} SET {', '.join(columns)}{sql.where_id}"
        f" AND ({expired} OR {used} + %s <= %s)"
    )


def _insert_prefix(model: Any, columns: Sequence[str]) -> str:
    names = ", ".join(_column(model, name) for name in columns)
    return f"INSERT INTO {_table(model)} ({names}) VALUES "


def find_device(token_hash: str) -> Found | None:
    """The device row a heartbeat with this token's hash belongs to."""
    with connection.cursor() as cursor:
        cursor.execute(statements(connection.vendor).lookup, [token_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    versions = Device._meta.get_field("desired_versions").from_db_value(row[5], None, connection)  # type: ignore[arg-type]
    start = _moment(row[7])
    return Found(
        id=row[0],
        name=row[1],
        desired_envelope=row[2],
        desired_sequence=int(row[3]),
        engine_key=row[4],
        desired_versions=versions or {},
        in_rollout=bool(row[6]),
        telemetry_window_start=start,
        telemetry_bytes=int(row[8]),
    )


@dataclass(frozen=True)
class DeviceRow:
    """The device row's new values, computed by the heartbeat service."""

    seen_at: datetime
    host_version: str
    plugins: list[dict[str, Any]]
    drifting: bool
    failing: bool
    last_reading: dict[str, Any] | None = None
    vitals: dict[str, Any] | None = None
    body_bytes: int = 0
    """What the heartbeat costs of the device's hourly telemetry budget."""
    budget_bytes: int | None = None
    """That budget; None: unlimited."""


Statement = tuple[str, list[Any]]
"""SQL text with ``%s`` placeholders, and its parameters."""


def store_heartbeat(
    device_id: Any,
    row: DeviceRow,
    *,
    readings: Sequence[ReadingReport] = (),
    events: Sequence[EventReport] = (),
    log_lines: Sequence[LogLineReport] = (),
    health: Sequence[HealthReport] = (),
) -> None:
    """One UPDATE of the device row, plus one INSERT each for what else the heartbeat carried.

    Rows already stored (a heartbeat retried after a lost answer) are skipped; health
    counters are deltas, so a device sends each once it is acknowledged. More than one
    statement runs in one transaction. Raises `OverBudget`, having written nothing, when
    the bytes do not fit the device's telemetry budget (or the row is gone).
    """
    sql = statements(connection.vendor)
    moment = connection.ops.adapt_datetimefield_value
    parts = [_device_update(row, device_id)]
    if readings:
        parts.append(
            _insert(
                sql.insert_readings,
                len(READING_COLUMNS),
                [
                    (device_id, r.source, r.temperature_c, r.humidity_pct, moment(r.taken_at))
                    for r in readings
                ],
            )
        )
    if events:
        parts.append(
            _insert(
                sql.insert_events,
                len(EVENT_COLUMNS),
                [(device_id, moment(e.at), e.plugin, e.version, e.kind, e.detail) for e in events],
            )
        )
    if log_lines:
        parts.append(
            _insert(
                sql.insert_logs,
                len(LOG_COLUMNS),
                [
                    (device_id, moment(line.at), line.plugin, line.stream, line.level, line.text)
                    for line in log_lines
                ],
            )
        )
    if health:
        parts.append(_health_upsert(sql, device_id, moment(row.seen_at), health))
    atomic = transaction.atomic() if len(parts) > 1 else nullcontext()
    with atomic, connection.cursor() as cursor:
        for index, (text, params) in enumerate(parts):
            cursor.execute(text, params)
            if index == 0 and cursor.rowcount == 0:
                raise OverBudget(device_id)


def _device_update(row: DeviceRow, device_id: Any) -> Statement:
    values: list[Any] = [
        connection.ops.adapt_datetimefield_value(row.seen_at),
        row.host_version,
        _json(connection, Device, "reported_plugins", row.plugins),
        row.drifting,
        row.failing,
    ]
    optional = tuple(name for name in OPTIONAL if getattr(row, name) is not None)
    values += [_json(connection, Device, name, getattr(row, name)) for name in optional]
    expired = connection.ops.adapt_datetimefield_value(row.seen_at - TELEMETRY_WINDOW)
    now = connection.ops.adapt_datetimefield_value(row.seen_at)
    limit = 2**62 if row.budget_bytes is None else row.budget_bytes
    budget = [expired, row.body_bytes, row.body_bytes, expired, now]
    where = [device_id, expired, row.body_bytes, limit]
    return _update(connection.vendor, optional), [*values, *budget, *where]


def _health_upsert(
    sql: Statements, device_id: Any, now: Any, health: Sequence[HealthReport]
) -> Statement:
    """Adds each version's counters to its stored sums, in one upsert."""
    merged: dict[tuple[str, str], HealthReport] = {}
    for entry in health:  # one row per version, even if a device repeats one
        key = (entry.plugin, entry.version)
        merged[key] = _sum(merged[key], entry) if key in merged else entry
    params: list[Any] = []
    for (plugin, version), entry in merged.items():
        traps = dict.fromkeys(TRAP_COLUMNS, 0)
        for kind, count in entry.traps.items():
            traps[trap_column(kind)] += count
        params += [
            device_id,
            plugin,
            version,
            now,
            entry.requests,
            entry.errors,
            sum(entry.traps.values()),
            *traps.values(),
            entry.deadline_hits,
            entry.memory_cap_hits,
            entry.fallbacks,
            entry.ticks_failed,
            now,
            entry.self_check or "",
            entry.p50_ms,
            entry.p99_ms,
            entry.sensor_age_s,
        ]
    rows = ", ".join([_row(len(HEALTH_COLUMNS))] * len(merged))
    return sql.upsert_health.format(rows=rows), params


def _sum(a: HealthReport, b: HealthReport) -> HealthReport:
    traps = dict(a.traps)
    for kind, count in b.traps.items():
        traps[kind] = traps.get(kind, 0) + count
    return HealthReport(
        plugin=a.plugin,
        version=a.version,
        requests=a.requests + b.requests,
        errors=a.errors + b.errors,
        traps=traps,
        deadline_hits=a.deadline_hits + b.deadline_hits,
        memory_cap_hits=a.memory_cap_hits + b.memory_cap_hits,
        fallbacks=a.fallbacks + b.fallbacks,
        ticks_failed=a.ticks_failed + b.ticks_failed,
        self_check=b.self_check or a.self_check,
        p50_ms=b.p50_ms if b.p50_ms is not None else a.p50_ms,
        p99_ms=b.p99_ms if b.p99_ms is not None else a.p99_ms,
        sensor_age_s=b.sensor_age_s if b.sensor_age_s is not None else a.sensor_age_s,
    )


def _insert(prefix: str, width: int, rows: list[tuple[Any, ...]]) -> Statement:
    # ON CONFLICT DO NOTHING: SQLite 3.24+ and PostgreSQL 9.5+.
    text = prefix + ", ".join([_row(width)] * len(rows)) + " ON CONFLICT DO NOTHING"
    return text, [value for row in rows for value in row]


def _moment(value: object) -> datetime | None:
    """A timestamp column's value as an aware datetime (SQLite returns UTC text)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else parse_datetime(str(value))
    if moment is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _json(db: BaseDatabaseWrapper, model: Any, field: str, value: object) -> Any:
    return model._meta.get_field(field).get_db_prep_save(value, db)
