"""``manage.py prune_history [--days N]``: forget readings, events and log lines past N days.

Run daily (the control-plane role installs a systemd timer). On PostgreSQL it also creates
the readings partitions of the coming days, so it must run at least every few days.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from control_plane.devices.retention import prune_history


class Command(BaseCommand):
    help = "Deletes readings, device events and log lines older than the retention (daily)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=float,
            default=settings.HISTORY_RETENTION_DAYS,
            help="keep this many days (default: CONTROL_PLANE_HISTORY_RETENTION_DAYS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] <= 0:
            raise CommandError("--days must be positive")
        cutoff = timezone.now() - timedelta(days=options["days"])
        pruned = prune_history(before=cutoff)
        partitions = (
            f" ({pruned.partitions_dropped} day partitions dropped)"
            if pruned.partitions_dropped
            else ""
        )
        self.stdout.write(
            f"deleted {pruned.readings} readings{partitions}, {pruned.events} events and "
            f"{pruned.log_lines} log lines before {cutoff.isoformat()}"
        )
