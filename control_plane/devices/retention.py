"""Keeping history bounded: readings, events and log lines older than the retention go.

On PostgreSQL the readings table is partitioned by day (migration 0006): a day past the
retention is one ``DROP TABLE`` of its partition, instant whatever its size, and the prune
job creates the partitions of the coming days. Readings that found no day partition sit in
the default partition and are deleted row by row (few by construction). Everything else —
readings on SQLite, events and log lines on both — is deleted in short batches that each
walk an index on the timestamp from its oldest end, so the time is linear in the rows
removed and heartbeats keep writing between batches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection, transaction

from control_plane.devices.models import DeviceEvent, LogLine, Reading

DAYS_AHEAD = 3
"""Day partitions the prune job keeps ready beyond today (it runs daily; this survives misses)."""
BATCH = 10_000
_DAY_SUFFIX = re.compile(r"_p(\d{8})$")


@dataclass(frozen=True)
class Pruned:
    """What one prune removed. On PostgreSQL a dropped partition's rows are the planner's
    count after ``ANALYZE`` (exact below about 30,000 rows, an estimate above)."""

    readings: int
    events: int
    log_lines: int
    partitions_dropped: int = 0


def prune_history(*, before: datetime, batch: int = BATCH) -> Pruned:
    """Removes history older than ``before``; on PostgreSQL, readings by whole UTC days."""
    if connection.vendor == "postgresql":
        today = datetime.now(UTC).date()
        ensure_partitions(today, today + timedelta(days=DAYS_AHEAD))
        readings, dropped = _drop_partitions_before(before)
        readings += _delete_default_before(before)
    else:
        readings, dropped = _delete_in_batches(Reading, "taken_at", before, batch), 0
    return Pruned(
        readings=readings,
        events=_delete_in_batches(DeviceEvent, "at", before, batch),
        log_lines=_delete_in_batches(LogLine, "at", before, batch),
        partitions_dropped=dropped,
    )


def partition_name(day: date) -> str:
    return f"{Reading._meta.db_table}_p{day:%Y%m%d}"


def day_partitions() -> dict[date, str]:
    """The readings table's day partitions (PostgreSQL), by day."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [Reading._meta.db_table],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = {}
    for name in names:
        match = _DAY_SUFFIX.search(name)
        if match:
            days[datetime.strptime(match[1], "%Y%m%d").date()] = name
    return days


def ensure_partitions(first: date, last: date) -> list[str]:
    """Creates the missing day partitions from ``first`` to ``last``; returns their names.

    Each is made beside the table, given whatever rows of its day the default partition
    caught, and attached (which locks the parent less than ``CREATE … PARTITION OF``). An
    advisory lock keeps two prune jobs from racing on the same day.
    """
    created = []
    day = first
    while day <= last:
        if _create_partition(day):
            created.append(partition_name(day))
        day += timedelta(days=1)
    return created


def _create_partition(day: date) -> bool:
    table = connection.ops.quote_name(Reading._meta.db_table)
    default = connection.ops.quote_name(f"{Reading._meta.db_table}_default")
    name = partition_name(day)
    quoted = connection.ops.quote_name(name)
    low = datetime.combine(day, time(), UTC)
    bounds = [low, low + timedelta(days=1)]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"partitions {table}"])
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is not None:
            return False
        cursor.execute(f"CREATE TABLE {quoted} (LIKE {table} INCLUDING DEFAULTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {default} WHERE taken_at >= %s AND taken_at < %s "
            f"RETURNING *) INSERT INTO {quoted} SELECT * FROM moved",
            bounds,
        )
        cursor.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {quoted} FOR VALUES FROM (%s) TO (%s)",
            bounds,
        )
    return True


def _drop_partitions_before(before: datetime) -> tuple[int, int]:
    """Drops the day partitions that end at or before ``before``: returns (rows, partitions)."""
    rows = dropped = 0
    for day, name in sorted(day_partitions().items()):
        if datetime.combine(day + timedelta(days=1), time(), UTC) > before:
            continue
        quoted = connection.ops.quote_name(name)
        with transaction.atomic(), connection.cursor() as cursor:
            # Deferred foreign-key checks of rows written earlier in this transaction (if
            # any) must run before their table can go.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ANALYZE {quoted}")
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [name])
            rows += max(int(cursor.fetchone()[0]), 0)
            cursor.execute(f"DROP TABLE {quoted}")
        dropped += 1
    return rows, dropped


def _delete_default_before(before: datetime) -> int:
    default = connection.ops.quote_name(f"{Reading._meta.db_table}_default")
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {default} WHERE taken_at < %s", [before])
        return int(cursor.rowcount)


def _delete_in_batches(model: Any, field: str, before: datetime, batch: int) -> int:
    """Deletes the oldest ``batch`` rows at a time: each batch is an index range, so none
    rescans what an earlier one already removed."""
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    column = connection.ops.quote_name(model._meta.get_field(field).column)
    sql = (
        f"DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM {table} "
        f"WHERE {column} < %s ORDER BY {column} LIMIT %s)"
    )
    cutoff = connection.ops.adapt_datetimefield_value(before)
    total = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [cutoff, batch])
            removed = int(cursor.rowcount)
        total += removed
        if removed < batch:
            return total
