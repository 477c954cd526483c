"""``manage.py prune_history [--days N]``: forget readings, events and log lines past N days."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from control_plane.devices.services import prune_history


class Command(BaseCommand):
    help = "Deletes readings and device events older than the retention (run it daily)."

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
        readings, events, lines = prune_history(before=cutoff)
        self.stdout.write(
            f"deleted {readings} readings, {events} events and {lines} log lines before {cutoff}"
        )
