"""How long ``prune_history`` takes per million readings removed, SQLite and PostgreSQL.

A throwaway control plane database (migrated, so PostgreSQL's readings are partitioned by
day) gets ``--rows`` readings older than the 30-day retention, one a second from 40 days
back, spread over 10 devices, plus a quarter as many recent ones that must stay. Each size
is pruned with today's `retention.prune_history` and then, as the baseline in the same run,
the same rows again with the previous code (select 10,000 primary keys, delete them, repeat)
up to ``--baseline-rows``. Linear means the time per million stays flat as the rows grow.

    .venv/bin/python bench/fleet/bench_prune.py --rows 1000000,2000000
    scripts/with-postgres.sh .venv/bin/python bench/fleet/bench_prune.py --database postgresql
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import REPO, WORK, Table, exit_on_sigterm, machine, machine_line, write_results

RETENTION_DAYS = 30
DEVICES = 10


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rows", default="1000000,2000000", help="old readings per run")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=1_000_000,
        help="run the previous code only up to this many rows (it is superlinear on SQLite)",
    )
    args = parser.parse_args()
    state = WORK / f"prune-{args.database}"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    setup_django(args.database, state)

    from django.core.management import call_command

    call_command("migrate", "--noinput", "-v0")
    devices = make_devices()
    runs = []
    for rows in [int(n) for n in args.rows.split(",")]:
        for code in ("now", "previous"):
            if code == "previous" and rows > args.baseline_rows:
                continue
            clear_readings()
            fill(devices, rows)
            with previous_schema(code == "previous"):
                started = time.perf_counter()
                removed = prune_now() if code == "now" else prune_previous()
                seconds = time.perf_counter() - started
            run = {
                "code": code,
                "rows": rows,
                "removed": removed,
                "kept": count_readings(),
                "seconds": round(seconds, 2),
                "seconds_per_million": round(seconds / (rows / 1e6), 2),
            }
            runs.append(run)
            print(
                f"  {code:>8}: {rows:,} old readings pruned in {seconds:.2f} s "
                f"({run['seconds_per_million']} s per million; {run['kept']:,} kept)"
            )
    data = {"machine": machine(), "database": args.database, "runs": runs}
    write_results(f"prune-{args.database}", data, markdown(data))


def setup_django(database: str, state: Path) -> None:
    sys.path.insert(0, str(REPO))
    if database == "sqlite":
        url = f"sqlite:///{state / 'control-plane.sqlite3'}"
    else:
        url = os.environ.get("CONTROL_PLANE_TEST_DATABASE_URL", "")
        if not url:
            raise SystemExit("bench: no PostgreSQL; run under scripts/with-postgres.sh")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "control_plane.settings",
            "CONTROL_PLANE_SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
            "CONTROL_PLANE_DATABASE_URL": url,
            "CONTROL_PLANE_HISTORY_RETENTION_DAYS": str(RETENTION_DAYS),
            "CONTROL_PLANE_STATIC_ROOT": str(state / "static"),
            "CONTROL_PLANE_LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()


def make_devices() -> list[Any]:
    from control_plane.devices.models import Device

    return [
        Device.objects.create(name=f"prune-pi-{i}", token_hash=uuid.uuid4().hex * 2)
        for i in range(DEVICES)
    ]


def fill(devices: list[Any], rows: int) -> None:
    """``rows`` readings a second apart from 40 days back, and a quarter as many recent ones;
    on PostgreSQL into day partitions, as the daily job would have made them."""
    from django.db import connection

    from control_plane.devices.retention import ensure_partitions

    now = datetime.now(UTC)
    old_end = now - timedelta(days=RETENTION_DAYS + 10)
    if connection.vendor == "postgresql":
        first = (old_end - timedelta(seconds=rows)).date()
        ensure_partitions(first, now.date())
    insert(devices, old_end, rows)
    insert(devices, now - timedelta(minutes=1), rows // 4)


def insert(devices: list[Any], end: datetime, rows: int) -> None:
    """Generates the rows inside the database (a recursive CTE or generate_series)."""
    from django.db import connection, transaction

    from control_plane.devices.models import Reading

    field = Reading._meta.get_field("device")
    ids = [field.get_db_prep_value(device.pk, connection) for device in devices]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "INSERT INTO devices_reading (source, temperature_c, humidity_pct, taken_at, "
                "device_id) SELECT 'dht22:4', 21.5, 45.0, %s - g * interval '1 second', "
                "(%s::uuid[])[1 + g %% %s] FROM generate_series(1, %s) g",
                [end, ids, len(ids), rows],
            )
            return
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS bench_devices (n INTEGER, id TEXT)")
        cursor.execute("DELETE FROM bench_devices")
        cursor.executemany("INSERT INTO bench_devices VALUES (%s, %s)", list(enumerate(ids)))
        cursor.execute(
            "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < %s) "
            "INSERT INTO devices_reading (source, temperature_c, humidity_pct, taken_at, "
            "device_id) SELECT 'dht22:4', 21.5, 45.0, "
            "strftime('%%Y-%%m-%%d %%H:%%M:%%S', %s, '-' || x || ' seconds'), "
            "(SELECT id FROM bench_devices WHERE n = x %% %s) FROM g",
            [rows, end.strftime("%Y-%m-%d %H:%M:%S"), len(ids)],
        )


def clear_readings() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM devices_reading")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE devices_reading")


def count_readings() -> int:
    from control_plane.devices.models import Reading

    return int(Reading.objects.count())


def cutoff() -> datetime:
    return datetime.now(UTC) - timedelta(days=RETENTION_DAYS)


def prune_now() -> int:
    from control_plane.devices.retention import prune_history

    return int(prune_history(before=cutoff()).readings)


@contextmanager
def previous_schema(wanted: bool) -> Iterator[None]:
    """For the baseline on SQLite, the table as it was: without the ``taken_at`` index."""
    from django.db import connection

    if not wanted or connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX devices_reading_taken_at")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("CREATE INDEX devices_reading_taken_at ON devices_reading (taken_at)")


def prune_previous(batch: int = 10_000) -> int:
    """The readings part of ``prune_history`` before issue 11, verbatim."""
    from control_plane.devices.models import Reading

    before, total = cutoff(), 0
    while True:
        ids = list(Reading.objects.filter(taken_at__lt=before).values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        total += int(Reading.objects.filter(pk__in=ids).delete()[0])


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    rows = [
        [
            run["code"],
            f"{run['rows']:,}",
            f"{run['removed']:,}",
            f"{run['kept']:,}",
            f"{run['seconds']}",
            f"{run['seconds_per_million']}",
        ]
        for run in data["runs"]
    ]
    table = Table(
        ["code", "old readings", "removed", "kept", "seconds", "seconds per million"], rows
    )
    how = (
        "drops whole day partitions"
        if data["database"] == "postgresql"
        else "deletes the oldest 10,000 at a time through the taken_at index"
    )
    return (
        f"### Readings retention, {data['database']}\n\n"
        f"{machine_line(data['machine'])}. `prune_history` now {how}; previous = the code "
        f"before issue 11 (select 10,000 keys, delete them, repeat) on the same rows, as "
        f"the baseline (on SQLite without the taken_at index, as the table was). Recent "
        f"readings (a quarter as many) are kept.\n\n{table.markdown()}\n"
    )


if __name__ == "__main__":
    main()
