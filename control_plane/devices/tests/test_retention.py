"""Retention: old history goes, in day partitions on PostgreSQL, in index batches on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from control_plane.devices.models import DeviceEvent, LogLine, Reading
from control_plane.devices.retention import (
    DAYS_AHEAD,
    day_partitions,
    ensure_partitions,
    partition_name,
    prune_history,
)

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="day partitions are PostgreSQL's"
)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's prune")


def add_history(device, days_ago: float, count: int = 1) -> datetime:
    at = timezone.now() - timedelta(days=days_ago)
    Reading.objects.bulk_create(
        Reading(device=device, source="s", temperature_c=1, humidity_pct=1, taken_at=moment)
        for moment in (at + timedelta(seconds=i) for i in range(count))
    )
    DeviceEvent.objects.create(device=device, at=at, plugin="hello", kind="trapped")
    LogLine.objects.create(device=device, at=at, plugin="hello", stream="stdout", text="hi")
    return at


def test_pruning_forgets_history_older_than_the_retention(enroll):
    device, _ = enroll()
    if connection.vendor == "postgresql":
        today = datetime.now(UTC).date()
        ensure_partitions(today - timedelta(days=41), today - timedelta(days=39))
    add_history(device, days_ago=40, count=3)
    add_history(device, days_ago=0)

    pruned = prune_history(before=timezone.now() - timedelta(days=30))

    assert (pruned.readings, pruned.events, pruned.log_lines) == (3, 1, 1)
    assert Reading.objects.count() == DeviceEvent.objects.count() == LogLine.objects.count() == 1


def test_the_command_prunes_with_the_retention_setting(enroll, settings, capsys):
    device, _ = enroll()
    settings.HISTORY_RETENTION_DAYS = 30
    add_history(device, days_ago=0)

    call_command("prune_history", "--days", "30")

    assert "deleted 0 readings" in capsys.readouterr().out
    assert Reading.objects.count() == 1


@postgresql_only
def test_readings_are_partitioned_by_day_with_a_default(enroll):
    device, _ = enroll()
    today = datetime.now(UTC).date()
    add_history(device, days_ago=0)

    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM devices_reading")
        [(partition,)] = cursor.fetchall()
        cursor.execute("SELECT to_regclass('devices_reading_default')")
        assert cursor.fetchone()[0] is not None
    assert partition == partition_name(today)
    assert today + timedelta(days=DAYS_AHEAD) in day_partitions()


@postgresql_only
def test_a_day_past_the_retention_is_dropped_whole(enroll):
    device, _ = enroll()
    today = datetime.now(UTC).date()
    ensure_partitions(today - timedelta(days=45), today - timedelta(days=44))
    add_history(device, days_ago=44.5, count=50)
    add_history(device, days_ago=29.5)  # inside the retention's first partial day: kept

    pruned = prune_history(before=timezone.now() - timedelta(days=30))

    assert pruned.partitions_dropped >= 2 and pruned.readings == 50
    assert today - timedelta(days=44) not in day_partitions()
    assert Reading.objects.count() == 1


@postgresql_only
def test_readings_a_missing_partition_let_into_the_default_move_to_their_day(enroll):
    device, _ = enroll()
    old = datetime.now(UTC).date() - timedelta(days=60)
    add_history(device, days_ago=(datetime.now(UTC).date() - old).days - 0.5)

    assert ensure_partitions(old - timedelta(days=1), old + timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM devices_reading_default")
        assert cursor.fetchone()[0] == 0
    assert Reading.objects.count() == 1


@sqlite_only
def test_sqlite_prunes_through_the_taken_at_index(enroll):
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM devices_reading WHERE taken_at < ? "
            "ORDER BY taken_at LIMIT 10",
            ["2026-01-01"],
        )
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "devices_reading_taken_at" in plan


@sqlite_only
def test_sqlite_prune_work_grows_linearly_with_the_rows_removed(enroll):
    """Twice the rows takes twice the work, not four times: counted in SQLite VM steps,
    which unlike a stopwatch do not depend on what else the machine is doing."""
    device, _ = enroll()
    raw = connection.connection

    def work(count: int) -> int:
        add_history(device, days_ago=40, count=count)
        add_history(device, days_ago=0, count=count)  # kept rows must not add work
        steps = [0]

        def step() -> int:
            steps[0] += 1
            return 0

        raw.set_progress_handler(step, 1000)
        try:
            pruned = prune_history(before=timezone.now() - timedelta(days=30), batch=500)
        finally:
            raw.set_progress_handler(None, 0)
        assert pruned.readings == count
        return steps[0]

    small, large = work(5_000), work(10_000)

    assert 1.8 * small < large < 2.2 * small
