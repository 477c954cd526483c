"""``manage.py create_enrollment_token --label X [--uses N] [--expires-in-hours H]``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from control_plane.devices.services import create_enrollment_token


class Command(BaseCommand):
    help = "Creates an enrollment token for new devices and prints it (it is shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--label", required=True, help="what the token is for")
        parser.add_argument("--uses", type=int, default=1, help="enrollments allowed (1)")
        parser.add_argument(
            "--expires-in-hours",
            type=float,
            default=24.0,
            help="hours until it expires (24); 0 for never",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["uses"] < 1:
            raise CommandError("--uses must be at least 1")
        hours = options["expires_in_hours"]
        if hours < 0:
            raise CommandError("--expires-in-hours must not be negative")
        expires_at = timezone.now() + timedelta(hours=hours) if hours else None
        token, secret = create_enrollment_token(
            label=options["label"], uses=options["uses"], expires_at=expires_at
        )
        self.stderr.write(
            f"enrollment token {token.label!r}: {token.uses_left} use(s), "
            f"expires {token.expires_at or 'never'}"
        )
        self.stdout.write(secret)
