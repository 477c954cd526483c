"""``manage.py assign_release <plugin> <version> <all|tag:X|device:Y[,Z]>``: ship it now."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.errors import error_messages
from control_plane.rollouts.management.rollout_options import (
    add_wait_option,
    wait_until_delivered,
)
from control_plane.rollouts.selectors import find_version
from control_plane.rollouts.services import assign_now
from control_plane.rollouts.targets import parse_target
from control_plane.signing import SigningKeyError


class Command(BaseCommand):
    help = (
        "Ships an approved plugin version to all devices, a tag, or listed devices at once "
        "(a one-wave rollout with no gates; `rollout start` rolls out in waves)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("plugin")
        parser.add_argument("version")
        parser.add_argument("target", help="all, tag:<tag> or device:<name or id>[,…]")
        add_wait_option(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = find_version(options["plugin"], options["version"])
            target = parse_target(options["target"])
            rollout = assign_now(
                version=version, target=target.kind, tag=target.tag, devices=target.devices
            )
        except ValidationError as exc:
            raise CommandError("; ".join(error_messages(exc))) from None
        except SigningKeyError as exc:
            raise CommandError(str(exc)) from None
        if options["wait_delivered"] is not None:
            rollout = wait_until_delivered(rollout, options["wait_delivered"])
        self.stdout.write(f"assigned: {rollout} is {rollout.get_status_display()}")
